"""Background mode: shadow writes done by a worker pool, in per-key order.

Each key is hashed to one worker, and each worker takes its jobs first in, first out, so writes
to one key reach the shadow in the order the primary acknowledged them while writes to different
keys proceed in parallel. The queues are bounded; what happens when one is full is the writer's
``on_full`` policy: ``"block"`` the caller until there is room, or ``"journal"`` the key for
repair and move on. Either way no key is lost silently.

A write of several keys (``DeleteObjects``) is queued on the queue of each of its keys, as a
barrier: it runs once every one of those queues has reached it, so it keeps its place in each
key's order (neither overtaking nor overtaken by a single-key write of one of its keys). The
barriers of two such writes are queued in the same order on every queue, so they cannot wait for
each other.

A blocked caller waits *after* its job is queued (:meth:`WorkerPool.wait_for_room`), not while
queueing it: the caller queues under the key's lock (that is what orders same-key writes) and
must not keep that lock while it waits for a worker, since the worker may need the same lock
(converging a key from the primary). A queue therefore holds at most its capacity plus one job
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

_worker = threading.local()


class PoolClosedError(RuntimeError):
    """The pool was closed: the job was not queued (the caller should run it itself)."""


class _Queue:
    """One worker's FIFO of jobs, with the condition its worker and blocked callers wait on."""

    __slots__ = ("capacity", "changed", "directions", "finished", "jobs", "queued", "stopping")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.jobs: deque[tuple[contextvars.Context | None, Job, tuple[Tag, ...]]] = deque()
        self.changed = threading.Condition()
        self.stopping = False
        # (shard, direction) -> jobs queued or running with that tag (see WorkerPool.submit).
        self.directions: Counter[Tag] = Counter()
        # Jobs with a direction ever queued and finished here, per direction.
        self.queued = {False: 0, True: 0}
        self.finished = {False: 0, True: 0}


class _Barrier:
    """A job queued on several queues: the last worker to reach it runs it, the others wait."""

    def __init__(self, parties: int, context: contextvars.Context, job: Job) -> None:
        self._left = parties
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._context = context
        self._job = job

    def arrive(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if not last:
            self._finished.wait()
            return
        try:
            self._context.run(self._job)
        finally:
            self._finished.set()


class WorkerPool:
    """A fixed pool of daemon threads, each with its own bounded FIFO queue.

    Args:
        workers: number of threads (and queues).
        queue_size: capacity of all queues together (each holds ``queue_size // workers``).
        name: prefix of the threads' names.
    """

    def __init__(self, *, workers: int, queue_size: int, name: str = "dualwrite") -> None:
        capacity = max(1, queue_size // workers)
        self._queues = [_Queue(capacity) for _ in range(workers)]
        self._pending = 0
        self._closed = False
        self._idle = threading.Condition()
        self._multi = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"{name}-{i}", daemon=True)
            for i, q in enumerate(self._queues)
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
        """Queue ``job`` on the worker for ``shard``, in the caller's context. Never waits.

        Args:
            shard: any int, or several (a write of several keys); jobs sharing a shard run one
                after the other, in the order they were queued.
            job: the work.
            block: the caller will wait for room (:meth:`wait_for_room`) instead of being
                refused: the job is queued even when the queue is full.
            direction: with stages, which way the job writes (``True``: new account first);
                counted per shard until it is done, for :meth:`wait_direction`.

        Returns:
            ``False`` when a queue is full and ``block`` is false; the job was not queued.

        Raises:
            PoolClosedError: :meth:`close` was called; the job was not queued.
        """
        queues = self._queues_of(shard)
        with self._idle:
            if self._closed:
                msg = "the DualWriter is closed"
                raise PoolClosedError(msg)
            # Counted before they are queued, so that close() waits for them.
            self._pending += len(queues)
        context = contextvars.copy_context()
        if len(queues) == 1:
            (jobs,) = queues
            with jobs.changed:
                queued = block or len(jobs.jobs) < jobs.capacity
                if queued:
                    tags = self._tags(jobs, shard, direction)
                    jobs.jobs.append((context, job, tags))
                    jobs.directions.update(tags)
                    if tags:
                        jobs.queued[tags[0][1]] += 1
                    jobs.changed.notify_all()
        else:
            barrier = _Barrier(len(queues), context, job)
            # One multi-queue job at a time: their barriers keep one order on every queue.
            with self._multi:
                queued = block or all(len(q.jobs) < q.capacity for q in queues)
                if queued:
                    for jobs in queues:
                        with jobs.changed:
                            tags = self._tags(jobs, shard, direction)
                            jobs.jobs.append((None, barrier.arrive, tags))
                            jobs.directions.update(tags)
                            if tags:
                                jobs.queued[tags[0][1]] += 1
                            jobs.changed.notify_all()
        if not queued:
            for _ in queues:
                self._done()
        return queued

    def _tags(
        self, jobs: _Queue, shard: int | Sequence[int], direction: bool | None
    ) -> tuple[Tag, ...]:
        if direction is None:
            return ()
        shards = [shard] if isinstance(shard, int) else list(shard)
        mine = self._queues.index(jobs)
        return tuple({(s, direction) for s in shards if s % len(self._queues) == mine})

    def wait_direction(self, shard: int | Sequence[int], direction: bool) -> None:
        """Wait until no job of ``shard`` queued in the other direction is left.

        Returns at once on a worker thread (see :meth:`wait_for_room`).
        """
        if getattr(_worker, "active", False):
            return
        shards = [shard] if isinstance(shard, int) else list(shard)
        for jobs in self._queues_of(shard):
            with jobs.changed:
                while not jobs.stopping and any(
                    jobs.directions[(s, not direction)] for s in shards
                ):
                    jobs.changed.wait()

    def wait_direction_all(self, direction: bool) -> None:
        """Wait until every job queued so far in the other direction, of any shard, is done.

        Jobs queued after the call do not count, so steady traffic in the other direction (other
        tenants) cannot keep the caller waiting.
        """
        if getattr(_worker, "active", False):
            return
        other = not direction
        for jobs in self._queues:
            with jobs.changed:
                target = jobs.queued[other]
                while not jobs.stopping and jobs.finished[other] < target:
                    jobs.changed.wait()

    def direction_pending(self, shard: int | Sequence[int], direction: bool) -> bool:
        """Whether a job of ``shard`` queued in the other direction is left (``False`` on a
        worker thread, as :meth:`wait_direction` returns at once there)."""
        if getattr(_worker, "active", False):
            return False
        shards = [shard] if isinstance(shard, int) else list(shard)
        for jobs in self._queues_of(shard):
            with jobs.changed:
                # A stopping queue (close() timed out) is not waited for, here as in
                # wait_direction: the caller goes on rather than spin.
                if not jobs.stopping and any(jobs.directions[(s, not direction)] for s in shards):
                    return True
        return False

    def _queues_of(self, shard: int | Sequence[int]) -> list[_Queue]:
        shards = [shard] if isinstance(shard, int) else list(shard)
        indices = sorted({s % len(self._queues) for s in shards}) or [0]
        return [self._queues[i] for i in indices]

    def wait_for_room(self, shard: int | Sequence[int]) -> None:
        """Wait until the queues of ``shard`` are within their capacity.

        Returns at once on a worker thread: a hook that writes through a wrapped client runs
        there, and waiting for its own queue to drain would never end.
        """
        if getattr(_worker, "active", False):
            return
        for jobs in self._queues_of(shard):
            with jobs.changed:
                while len(jobs.jobs) > jobs.capacity and not jobs.stopping:
                    jobs.changed.wait()

    def _run(self, jobs: _Queue) -> None:
        _worker.active = True
        while True:
            with jobs.changed:
                while not jobs.jobs and not jobs.stopping:
                    jobs.changed.wait()
                if not jobs.jobs:  # stopping, and nothing left
                    return
                context, job, tags = jobs.jobs.popleft()
                jobs.changed.notify_all()  # a blocked caller may go on
            try:
                if context is None:  # a barrier: it enters the job's context itself
                    job()
                else:
                    context.run(job)
            except Exception:  # pragma: no cover - jobs contain their own failures
                logger.exception("dualwrite: a background shadow job raised")
            finally:
                if tags:
                    with jobs.changed:
                        jobs.finished[tags[0][1]] += 1
                        jobs.directions.subtract(tags)
                        for tag in tags:
                            if jobs.directions[tag] <= 0:
                                del jobs.directions[tag]
                        jobs.changed.notify_all()
                self._done()

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        with self._idle:
            return self._pending

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until no job is queued or running; return ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new jobs, finish the queued ones, stop the threads.

        Returns:
            Whether everything queued was done within ``timeout``. Jobs left over keep running
            on the (daemon) threads until their queues are empty.
        """
        with self._idle:
            self._closed = True
        done = self.flush(timeout)
        for jobs in self._queues:
            with jobs.changed:
                jobs.stopping = True
                jobs.changed.notify_all()
        if done:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join(timeout)
        return done
