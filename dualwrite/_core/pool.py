"""Background mode: shadow writes done by a worker pool, in per-key order.

Jobs are queued per key (a *shard*: an int, see :func:`dualwrite._core.entries.shard`), first
in, first out, so writes to one key reach the shadow one at a time, in the order the primary
acknowledged them. A key whose oldest job may start (no job of that key is running) is *ready*,
and any idle worker takes the oldest ready job: a job never waits behind another key's job while
a worker is free. (Two keys whose shards collide are simply ordered as one.)

A write of several keys (``DeleteObjects``) is one job queued on the queue of each of its keys:
it becomes ready once it is the oldest job of every one of them, runs once, and only then lets
each key's next job go, so it keeps its place in each key's order (neither overtaking nor
overtaken by a single-key write of one of its keys). Jobs are queued under one lock, so any two
of them are in the same order on every queue they share, and none can wait for a job that waits
for it. No worker waits for such a job: it is taken only when it can run.

The jobs waiting to start are bounded (``queue_size``, all keys together); what happens when
they are at the limit is the writer's ``on_full`` policy: ``"block"`` the caller until there is
room, or ``"journal"`` the key for repair and move on. Either way no key is lost silently. A
blocked caller waits *after* its job is queued (:meth:`WorkerPool.wait_for_room`), not while
queueing it: the caller queues under the key's lock (that is what orders same-key writes) and
must not keep that lock while it waits for a worker, since the worker may need the same lock
(converging a key from the primary). The pool therefore holds at most its capacity plus one job
per blocked caller.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence

logger = logging.getLogger("dualwrite")

ON_FULL = ("block", "journal")

Job = Callable[[], None]
Tag = tuple[int, bool]
"""A job's shard and direction (whether it writes the old account as the shadow)."""


class _Worker(threading.local):
    active = False  # a class default: read without an AttributeError in other threads


_worker = _Worker()
"""``active`` on the pool's threads: a hook that writes through a wrapped client runs there, and
must not wait for room or for a direction, which only the workers themselves can make."""


class PoolClosedError(RuntimeError):
    """The pool was closed: the job was not queued (the caller should run it itself)."""


class _Job:
    """A queued job: its keys, its direction tags, and how many of its keys it still waits on."""

    __slots__ = ("context", "run", "sequence", "shards", "tags", "waiting")

    def __init__(
        self,
        context: contextvars.Context,
        run: Job,
        shards: tuple[int, ...],
        tags: tuple[Tag, ...],
        sequence: int,
    ) -> None:
        self.context = context
        self.run = run
        self.shards = shards
        self.tags = tags
        self.sequence = sequence
        # Keys whose queue this job is not yet the oldest of; ready to run at zero.
        self.waiting = len(shards)


class WorkerPool:
    """A fixed pool of daemon threads taking jobs in per-key order, any thread any key.

    Args:
        workers: number of threads.
        queue_size: how many jobs may wait to start, all keys together.
        name: prefix of the threads' names.
    """

    def __init__(self, *, workers: int, queue_size: int, name: str = "dualwrite") -> None:
        self._capacity = max(1, queue_size)
        self._lock = threading.Lock()
        # Workers wait on _work for a ready job; callers wait on _changed for room, for a
        # direction's jobs to finish, or for the pool to be idle.
        self._work = threading.Condition(self._lock)
        self._changed = threading.Condition(self._lock)
        # Per shard, its jobs in order: the first is running or waiting on its other shards.
        self._keys: dict[int, deque[_Job]] = {}
        self._ready: deque[_Job] = deque()
        self._waiting = 0  # queued, not started: what the capacity bounds
        self._pending = 0  # queued or running
        # (shard, direction) -> jobs queued or running with that tag (see submit).
        self._directions: Counter[Tag] = Counter()
        # Per direction, the sequence numbers of its jobs not finished, oldest first.
        self._unfinished: dict[bool, dict[int, None]] = {False: {}, True: {}}
        self._sequence = 0
        self._closed = False
        self._stopping = False
        # A timer on the workers (see arm): on_due is called on a worker, outside the lock, at
        # the first moment after _due that a worker has no ready job.
        self.on_due: Callable[[], None] | None = None
        self._due: float | None = None
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self,
        shard: int | Sequence[int],
        job: Job,
        *,
        block: bool,
        direction: bool | None = None,
    ) -> bool:
        """Queue ``job`` for ``shard``, in the caller's context. Never waits.

        Args:
            shard: any int, or several (a write of several keys); jobs sharing a shard run one
                after the other, in the order they were queued.
            job: the work.
            block: the caller will wait for room (:meth:`wait_for_room`) instead of being
                refused: the job is queued even when the pool is full.
            direction: with stages, which way the job writes (``True``: new account first);
                counted per shard until it is done, for :meth:`wait_direction`.

        Returns:
            ``False`` when the pool is full and ``block`` is false; the job was not queued.

        Raises:
            PoolClosedError: :meth:`close` was called; the job was not queued.
        """
        shards = _shards(shard)
        tags = () if direction is None else tuple((s, direction) for s in shards)
        context = contextvars.copy_context()
        with self._lock:
            if self._closed:
                msg = "the DualWriter is closed"
                raise PoolClosedError(msg)
            if not block and self._waiting >= self._capacity:
                return False
            self._sequence += 1
            queued = _Job(context, job, shards or (0,), tags, self._sequence)
            self._waiting += 1
            self._pending += 1
            if tags:
                self._directions.update(tags)
                self._unfinished[tags[0][1]][queued.sequence] = None
            keys = self._keys
            for key in queued.shards:
                jobs = keys.get(key)
                if jobs is None:
                    keys[key] = deque((queued,))
                    queued.waiting -= 1  # _reached(), inline: a batch queues 25 keys
                else:
                    jobs.append(queued)
            if not queued.waiting:
                self._ready.append(queued)
                self._work.notify()
        return True

    def _reached(self, job: _Job) -> None:
        """``job`` became the oldest of one of its keys' queues; it is ready once of all."""
        job.waiting -= 1
        if not job.waiting:
            self._ready.append(job)
            self._work.notify()

    def wait_direction(self, shard: int | Sequence[int], direction: bool) -> None:
        """Wait until no job of ``shard`` queued in the other direction is left.

        Returns at once on a worker thread (see :meth:`wait_for_room`).
        """
        if _worker.active:
            return
        tags = [(s, not direction) for s in _shards(shard)]
        with self._lock:
            while not self._stopping and any(self._directions[tag] for tag in tags):
                self._changed.wait()

    def wait_direction_all(self, direction: bool) -> None:
        """Wait until every job queued so far in the other direction, of any shard, is done.

        Jobs queued after the call do not count, so steady traffic in the other direction (other
        tenants) cannot keep the caller waiting.
        """
        if _worker.active:
            return
        unfinished = self._unfinished[not direction]
        with self._lock:
            last = self._sequence
            # Sequence numbers are inserted in increasing order: the first left is the oldest.
            while not self._stopping and next(iter(unfinished), last + 1) <= last:
                self._changed.wait()

    def direction_pending(self, shard: int | Sequence[int], direction: bool) -> bool:
        """Whether a job of ``shard`` queued in the other direction is left (``False`` on a
        worker thread, as :meth:`wait_direction` returns at once there)."""
        if _worker.active:
            return False
        tags = [(s, not direction) for s in _shards(shard)]
        with self._lock:
            # A stopping pool (close() timed out) is not waited for, here as in wait_direction:
            # the caller goes on rather than spin.
            return not self._stopping and any(self._directions[tag] for tag in tags)

    def settle_keys(self, shard: int | Sequence[int]) -> bool:
        """Wait until no job of ``shard`` is queued or running, in either direction, or the
        pool stops (a closing pool's flush timed out or ended); whether none is left.

        On a worker thread returns at once (as :meth:`wait_direction`), with what is left then.
        """
        keys = _shards(shard) or (0,)  # as submit() queues a job without a shard
        with self._lock:
            if not _worker.active:
                while not self._stopping and any(key in self._keys for key in keys):
                    self._changed.wait()
            return not any(key in self._keys for key in keys)

    def wait_for_room(self, shard: int | Sequence[int]) -> None:
        """Wait until the jobs waiting to start are within the pool's capacity.

        ``shard`` is the caller's (all keys share the capacity). Returns at once on a worker
        thread: a hook that writes through a wrapped client runs there, and waiting for the
        workers to drain would never end.
        """
        if _worker.active:
            return
        with self._lock:
            while self._waiting > self._capacity and not self._stopping:
                self._changed.wait()

    def _run(self) -> None:
        _worker.active = True
        while True:
            with self._lock:
                job = self._next()
                if job is None:
                    if self._stopping:
                        return
                else:
                    self._waiting -= 1
                    self._changed.notify_all()  # a blocked caller may go on
            if job is None:  # the timer is due (see arm)
                self._fire()
                continue
            try:
                job.context.run(job.run)
            except Exception:  # pragma: no cover - jobs contain their own failures
                logger.exception("dualwrite: a background shadow job raised")
            finally:
                with self._lock:
                    self._finished(job)

    def arm(self, delay: float) -> None:
        """Have a worker call :attr:`on_due` in about ``delay`` seconds (an earlier time already
        set stands): when the time comes and a worker has no ready job, or as soon as one has
        none after that."""
        due = time.monotonic() + delay
        with self._lock:
            if self._due is None or due < self._due:
                self._due = due
                self._work.notify()  # a worker in an untimed wait: it waits for _due instead

    def _next(self) -> _Job | None:
        """Under the lock: the next ready job, waiting for one; ``None`` when stopping, or when
        the timer is due (this worker then calls ``on_due``)."""
        while not self._ready:
            if self._stopping:
                return None
            due = self._due
            if due is None:
                self._work.wait()
                continue
            remaining = due - time.monotonic()
            if remaining > 0:
                self._work.wait(remaining)
                continue
            self._due = None
            return None
        return self._ready.popleft()

    def _fire(self) -> None:
        on_due = self.on_due
        if on_due is None:
            return
        try:
            on_due()
        except Exception:  # pragma: no cover - on_due contains its own failures
            logger.exception("dualwrite: the pool's timer callback raised")

    def _finished(self, job: _Job) -> None:
        """Let each of ``job``'s keys go on to its next job; count ``job`` done."""
        for key in job.shards:
            jobs = self._keys[key]
            jobs.popleft()  # job itself: only the oldest job of every key it has runs
            if jobs:
                self._reached(jobs[0])
            else:
                del self._keys[key]
        if job.tags:
            self._directions.subtract(job.tags)
            for tag in job.tags:
                if self._directions[tag] <= 0:
                    del self._directions[tag]
            del self._unfinished[job.tags[0][1]][job.sequence]
        self._pending -= 1
        self._changed.notify_all()

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return self._pending

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until no job is queued or running; return ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new jobs, finish the queued ones, stop the threads.

        Returns:
            Whether everything queued was done within ``timeout``. Jobs left over keep running
            on the (daemon) threads until none is left: a thread stops once no job is ready,
            and the one finishing a key's job takes that key's next.
        """
        with self._lock:
            self._closed = True
        done = self.flush(timeout)
        with self._lock:
            self._stopping = True
            self._work.notify_all()
            self._changed.notify_all()
        if done:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join(timeout)
        return done


def _shards(shard: int | Sequence[int]) -> tuple[int, ...]:
    """``shard`` as distinct ints, in the order given."""
    if isinstance(shard, int):
        return (shard,)
    return tuple(dict.fromkeys(shard))
