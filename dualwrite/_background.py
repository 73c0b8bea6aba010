"""Background mode: shadow writes done by a worker pool, in per-key order.

Each key is hashed to one worker, and each worker takes its jobs first in, first out, so writes
to one key reach the shadow in the order the primary acknowledged them while writes to different
keys proceed in parallel. The queues are bounded; what happens when they are full is the
writer's ``on_full`` policy: ``"block"`` the caller until there is room, or ``"journal"`` the key
for repair and move on. Either way no key is lost silently.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("dualwrite")

ON_FULL = ("block", "journal")

Job = Callable[[], None]


class WorkerPool:
    """A fixed pool of daemon threads, each with its own bounded FIFO queue.

    Args:
        workers: number of threads (and queues).
        queue_size: capacity of all queues together.
        name: prefix of the threads' names.
    """

    def __init__(self, *, workers: int, queue_size: int, name: str = "dualwrite") -> None:
        per_queue = max(1, queue_size // workers)
        self._queues: list[queue.Queue[tuple[contextvars.Context, Job] | None]] = [
            queue.Queue(maxsize=per_queue) for _ in range(workers)
        ]
        self._pending = 0
        self._idle = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"{name}-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()
        self._closed = False

    def submit(self, shard: int, job: Job, *, block: bool) -> bool:
        """Queue ``job`` on the worker for ``shard``, in the caller's context.

        Returns:
            ``False`` when the queue is full and ``block`` is false; the job was not queued.
        """
        if self._closed:
            msg = "the DualWriter is closed"
            raise RuntimeError(msg)
        context = contextvars.copy_context()
        with self._idle:
            self._pending += 1
        try:
            self._queues[shard % len(self._queues)].put((context, job), block=block)
        except queue.Full:
            self._done()
            return False
        return True

    def _run(self, jobs: queue.Queue[tuple[contextvars.Context, Job] | None]) -> None:
        while True:
            item = jobs.get()
            if item is None:  # close() asks the thread to stop
                return
            context, job = item
            try:
                context.run(job)
            except Exception:  # pragma: no cover - jobs contain their own failures
                logger.exception("dualwrite: a background shadow job raised")
            finally:
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
        """Flush, then stop the threads. Returns whether everything queued was done."""
        done = self.flush(timeout)
        self._closed = True
        for jobs in self._queues:
            # Timed out with work left: the daemon threads then end with the process.
            with contextlib.suppress(queue.Full):
                jobs.put_nowait(None)
        for thread in self._threads:
            thread.join(0 if not done else timeout)
        return done
