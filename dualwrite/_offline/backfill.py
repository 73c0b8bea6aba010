"""Diff and copy (backfill): compare the two accounts and copy what the shadow lacks, at scale.

This module runs a job; :mod:`dualwrite._core.scan` holds the vocabulary a job is made of, and
:mod:`dualwrite._s3.backfill` and :mod:`dualwrite._dynamodb.backfill` say what a key is and how
one is compared and copied.

A *stream* is one ordered source of keys: an S3 prefix (S3 lists keys in lexicographic order) or
a DynamoDB scan segment or query. A stream yields *batches*: the units of work found in one stretch
of the listing, and the position after that stretch. One producer thread per stream feeds a pool
of workers through a bounded window, so memory stays bounded whatever the size of the bucket or
table. Workers finish out of order; a stream's *watermark* is the last position below which every
unit is done, and that is what the state file keeps: a resumed copy starts each stream at its
watermark (redoing at most the window that was in flight, which compares equal by then).

Every copy is conditional on the shadow's state as it was read, so that a backfill running beside
live dual-writes never puts an older value over a newer one (see ``docs/migration.md``).
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import attrs

from dualwrite import _services as services
from dualwrite._core.errors import describe_error
from dualwrite._core.scan import KINDS, BackfillError, Job, Sink, StateFile, Tally
from dualwrite._offline.progress import Progress
from dualwrite.journal import Journal, one_pass

_WINDOW_PER_WORKER = 4  # units queued or running per worker


@attrs.frozen(kw_only=True)
class BackfillReport:
    """What a diff or copy run found and did.

    Attributes:
        command: ``"diff"`` or ``"copy"``.
        service: ``"s3"`` or ``"dynamodb"``.
        resource: the primary bucket or table.
        shadow_resource: the shadow bucket or table.
        compared: primary keys examined in this run.
        equal: keys equal on both sides.
        missing_in_shadow: keys the shadow lacked.
        extra_in_shadow: keys only the shadow had.
        different: keys present on both sides with different content.
        copied: keys written to the shadow (copy).
        deleted: keys deleted on the shadow (copy).
        skipped_changed: keys a live write changed on the shadow meanwhile (left as they are).
        gone: keys that vanished from the primary meanwhile, absent on the shadow too.
        failed: keys that could not be compared or copied (see ``errors``).
        bytes_copied: S3 bytes written to the shadow.
        streams: streams (prefixes, segments, queries) in this run.
        streams_done: streams finished, in this run or an earlier one (state file).
        resumed: whether a state file with progress was found.
        interrupted: whether the run stopped early (signal); rerun with the same state file.
        dry_run: whether nothing was written.
        requests: HTTP requests sent, per side and operation (retries included).
        seconds: how long the run took.
        errors: the first failure lines (error type and code, never a payload).
    """

    command: str
    service: str
    resource: str
    shadow_resource: str
    compared: int = 0
    equal: int = 0
    missing_in_shadow: int = 0
    extra_in_shadow: int = 0
    different: int = 0
    copied: int = 0
    deleted: int = 0
    skipped_changed: int = 0
    gone: int = 0
    failed: int = 0
    bytes_copied: int = 0
    streams: int = 0
    streams_done: int = 0
    resumed: bool = False
    interrupted: bool = False
    dry_run: bool = False
    requests: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)
    seconds: float = 0.0
    errors: tuple[str, ...] = ()

    @property
    def differences(self) -> int:
        """Keys found missing, extra or different."""
        return self.missing_in_shadow + self.extra_in_shadow + self.different

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON object (with ``differences``)."""
        data = attrs.asdict(self)
        data["differences"] = self.differences
        data["errors"] = list(self.errors)
        return data


# -- requests: counting and rate limiting ---------------------------------------------------------


class RequestMeter:
    """Counts every HTTP request the attached clients send and, with ``max_rps``, spaces them.

    The limit is for all attached clients together (both accounts), whatever the number of
    workers: each request waits for its slot in botocore's ``before-send`` event, per attempt,
    so retries count too.
    """

    def __init__(self, max_rps: float | None = None) -> None:
        if max_rps is not None and max_rps <= 0:
            msg = f"max_rps must be > 0; got {max_rps!r}"
            raise ValueError(msg)
        self._interval = 1.0 / max_rps if max_rps else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {}

    def attach(self, client: Any, side: str) -> None:
        """Count (and pace) the requests of ``client`` under ``side``."""
        counts = self._counts.setdefault(side, Counter())

        def on_send(event_name: str, **_: Any) -> None:
            if self._interval:
                self._wait()
            with self._lock:
                counts[event_name.rsplit(".", 1)[-1]] += 1

        client.meta.events.register(
            "before-send", on_send, unique_id=f"dualwrite-backfill-meter-{id(self)}-{side}"
        )

    def _wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            time.sleep(slot - now)

    def counts(self) -> dict[str, dict[str, int]]:
        """Requests sent so far, per side and operation."""
        with self._lock:
            return {side: dict(sorted(c.items())) for side, c in self._counts.items() if c}


class _Watermark:
    """The position of one stream below which every unit is done."""

    def __init__(self, stream: str, state: StateFile) -> None:
        self._stream = stream
        self._state = state
        self._lock = threading.Lock()
        self._pending: deque[list[Any]] = deque()  # [position, units left]
        self._ended = False

    def open(self, position: Any, units: int) -> list[Any]:
        entry = [position, units]
        with self._lock:
            self._pending.append(entry)
        if units == 0:
            self._settle()
        return entry

    def close(self, entry: list[Any]) -> None:
        with self._lock:
            entry[1] -= 1
        self._settle()

    def end(self) -> None:
        with self._lock:
            self._ended = True
        self._settle()

    def _settle(self) -> None:
        # The state is told under this lock, so that positions reach it in order and nothing
        # follows the stream's end (the state never calls back: no lock-order issue).
        with self._lock:
            advanced: Any = None
            while self._pending and self._pending[0][1] == 0:
                position = self._pending.popleft()[0]
                if position is not None:
                    advanced = position
            if self._ended and not self._pending:
                self._ended = False  # finish once
                self._state.finish(self._stream)
            elif advanced is not None:
                self._state.advance(self._stream, advanced)


# -- the runner -----------------------------------------------------------------------------------


def run(
    job: Job,
    *,
    workers: int = 8,
    state: StateFile | None = None,
    sink: Sink | None = None,
    meter: RequestMeter | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    dry_run: bool = False,
) -> BackfillReport:
    """Run ``job`` with ``workers`` threads; return its report.

    Args:
        job: the diff or copy.
        workers: threads doing units (comparisons, copies) in parallel.
        state: where resume points are kept (``None``: nowhere).
        sink: where differences (diff) or actions (copy) are written as JSON Lines.
        meter: the request counter attached to the job's clients.
        progress: a progress bar to update, or ``None``.
        stop: set it (e.g. from a signal handler) to stop early: no new unit starts, the units
            in flight finish, and the state file is written.
        dry_run: for the report only (the job itself writes nothing when it is a dry run).

    Raises:
        BackfillError: a stream could not be read (its listing failed); the state file keeps
            what was done.
    """
    if workers < 1:
        msg = f"workers must be >= 1; got {workers!r}"
        raise ValueError(msg)
    started = time.perf_counter()
    runner = _Runner(
        job,
        workers=workers,
        state=state if state is not None else StateFile(None, job.identity()),
        tally=Tally(sink),
        progress=progress,
        stop=stop if stop is not None else threading.Event(),
    )
    runner.run()
    tally = runner.tally
    return BackfillReport(
        command=job.command,
        service=job.service,
        resource=job.resource,
        shadow_resource=job.shadow_resource,
        compared=tally.get("compared"),
        equal=tally.get("equal"),
        missing_in_shadow=tally.get("missing_in_shadow"),
        extra_in_shadow=tally.get("extra_in_shadow"),
        different=tally.get("different"),
        copied=tally.get("copied"),
        deleted=tally.get("deleted"),
        skipped_changed=tally.get("skipped_changed"),
        gone=tally.get("gone"),
        failed=tally.get("failed"),
        bytes_copied=tally.get("bytes_copied"),
        streams=len(runner.streams),
        streams_done=sum(1 for s in runner.streams if runner.state.done(s)),
        resumed=runner.state.resumed,
        interrupted=runner.interrupted,
        dry_run=dry_run,
        requests=meter.counts() if meter is not None else {},
        seconds=time.perf_counter() - started,
        errors=tally.errors(),
    )


class _Runner:
    """One producer thread per stream (at most ``workers`` at once) feeding a worker pool."""

    def __init__(
        self,
        job: Job,
        *,
        workers: int,
        state: StateFile,
        tally: Tally,
        progress: Progress | None,
        stop: threading.Event,
    ) -> None:
        self.job = job
        self.workers = workers
        self.state = state
        self.tally = tally
        self.progress = progress
        self.stop = stop
        self.streams = job.streams()
        self.interrupted = False
        self._fatal: list[BaseException] = []
        self._slots = threading.BoundedSemaphore(workers * _WINDOW_PER_WORKER)
        self._pending: queue.Queue[str] = queue.Queue()
        self._executor: ThreadPoolExecutor | None = None

    def run(self) -> None:
        todo = [s for s in self.streams if not self.state.done(s)]
        for stream in todo:
            self._pending.put(stream)
        if self.progress is not None:
            self.progress.watch(functools.partial(_counts, self.tally))
            _estimate_later(self.job, todo, self.state, self.progress)
        threads = [
            threading.Thread(target=self._producer, name=f"dualwrite-list-{i}", daemon=True)
            for i in range(max(1, min(len(todo), self.workers)))
        ]
        self._executor = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="dualwrite-backfill"
        )
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        finally:
            # Stopped: the queued units are dropped (their keys stay behind the watermark, so a
            # rerun does them); only the units already running finish.
            self._executor.shutdown(wait=True, cancel_futures=self.stop.is_set())
            self.interrupted = self.stop.is_set() and not self._fatal
            self.state.close()
            if self.progress is not None:
                self.progress.close()
        if self._fatal:
            exc = self._fatal[0]
            info = describe_error(exc)
            code = f" {info.code}" if info.code else ""
            msg = f"{self.job.service} {self.job.resource}: {info.type}{code}: {info.message}"
            raise BackfillError(msg) from exc

    def _producer(self) -> None:
        while not self.stop.is_set():
            try:
                stream = self._pending.get_nowait()
            except queue.Empty:
                return
            try:
                self._produce(stream)
            except Exception as exc:  # noqa: BLE001 - reported as the run's error, after cleanup
                self._fatal.append(exc)
                self.stop.set()

    def _produce(self, stream: str) -> None:
        assert self._executor is not None
        _, position = self.state.start(stream)
        watermark = _Watermark(stream, self.state)
        for batch in self.job.batches(stream, position, self.tally):
            self._settled(batch.settled)
            entry = watermark.open(batch.position, len(batch.units))
            for unit, keys in batch.units:
                if not self._take_slot():
                    return  # stopped: the units not submitted hold the watermark back
                future = self._executor.submit(unit)
                future.add_done_callback(self._unit_done(watermark, entry, keys))
            if self.stop.is_set():
                return
        watermark.end()

    def _take_slot(self) -> bool:
        while not self._slots.acquire(timeout=0.1):
            if self.stop.is_set():
                return False
        return True

    def _settled(self, keys: int) -> None:
        if keys:
            self.tally.add("compared", keys)
            if self.progress is not None:
                self.progress.step(keys)

    def _unit_done(
        self, watermark: _Watermark, entry: list[Any], keys: int
    ) -> Callable[[Future[None]], None]:
        def callback(future: Future[None]) -> None:
            self._slots.release()
            if future.cancelled():  # dropped at a stop: not done, so the watermark stays
                return
            exc = future.exception()
            if exc is not None:  # a unit counts its own errors: this one escaped it
                self.tally.error(f"{self.job.service} {self.job.resource}", exc)
            self._settled(keys)
            watermark.close(entry)

        return callback


def _counts(tally: Tally) -> str:
    """The running counts shown at the end of the progress bar."""
    found = sum(tally.get(kind) for kind in KINDS)
    return (
        f" | differences {found} copied {tally.get('copied')}"
        f" skipped {tally.get('skipped_changed')} failed {tally.get('failed')}"
    )


def _estimate_later(job: Job, streams: Sequence[str], state: StateFile, progress: Progress) -> None:
    """Count the job's keys on a daemon thread, so the bar gets a total (and an ETA) early."""

    def count() -> None:
        with contextlib.suppress(Exception):  # no total: the bar shows a count and a rate
            progress.set_total(job.estimate(streams, state))

    threading.Thread(target=count, name="dualwrite-count", daemon=True).start()


# -- the journal's resource-level entries ---------------------------------------------------------


def settle_resource_entries(journal: Journal, service: str, resource: str, before: float) -> int:
    """Remove the resource-level entries of ``resource`` made before ``before``.

    Called after a complete copy of the whole bucket or table (every key compared and made
    equal, extra keys deleted) that started at ``before``: a write whose key could not be read
    and that was journaled before then is covered by it. Entries are compared by the time they
    carry (the writer's clock).

    Returns:
        How many entries were removed.
    """
    lock_name = services.get(service).lock_name
    name = lock_name(resource)
    ids = [
        entry.id
        for entry in one_pass(journal)
        if entry.resource_level
        and entry.id is not None
        and entry.service == service
        and lock_name(entry.resource) == name
        and entry.at < before
    ]
    journal.remove(ids)
    return len(ids)
