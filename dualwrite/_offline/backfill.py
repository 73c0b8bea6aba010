"""Diff and copy (backfill): compare the two accounts and copy what the shadow lacks, at scale.

This module holds what S3 and DynamoDB share; :mod:`dualwrite._s3.backfill` and
:mod:`dualwrite._dynamodb.backfill` say what a key is and how one is compared and copied.

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

import base64
import contextlib
import json
import os
import queue
import shutil
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TextIO

import attrs

from dualwrite import _services as services
from dualwrite._core.errors import describe_error
from dualwrite.journal import Journal, one_pass

_STATE_VERSION = 1
_SAVE_EVERY = 0.5  # seconds between two writes of the state file
_MAX_ERRORS = 100  # error lines kept in a report; the count is exact
_WINDOW_PER_WORKER = 4  # units queued or running per worker


class BackfillError(Exception):
    """The run cannot go on (a listing failed, a state file belongs to another job)."""


KINDS = ("missing_in_shadow", "extra_in_shadow", "different")
"""The kinds of difference, as written in the JSON Lines output."""


@attrs.frozen(kw_only=True)
class Difference:
    """One key on which the two accounts disagree. Never holds a body or item values.

    Attributes:
        kind: ``"missing_in_shadow"``, ``"extra_in_shadow"`` or ``"different"``.
        service: ``"s3"`` or ``"dynamodb"``.
        resource: the primary bucket or table.
        shadow_resource: the shadow bucket or table.
        key: the S3 key, or the DynamoDB key as typed attribute values.
        fields: for ``different``: what differs (``size``, ``etag``, metadata names, or the
            DynamoDB attribute names).
        primary: what the primary showed (S3: size and ETag), or ``None``.
        shadow: what the shadow showed, or ``None``.
    """

    kind: str
    service: str
    resource: str
    shadow_resource: str
    key: Any
    fields: tuple[str, ...] = ()
    primary: Mapping[str, Any] | None = None
    shadow: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON Lines record of this difference."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "service": self.service,
            "resource": self.resource,
            "shadow_resource": self.shadow_resource,
            "key": to_jsonable(self.key),
        }
        if self.fields:
            data["fields"] = list(self.fields)
        if self.primary is not None:
            data["primary"] = to_jsonable(self.primary)
        if self.shadow is not None:
            data["shadow"] = to_jsonable(self.shadow)
        return data


OUTCOMES = (
    "copied",
    "deleted",
    "skipped_changed",
    "gone",
    "kept",
    "failed",
    "would_copy",
    "would_delete",
)
"""What copy did with a difference: ``skipped_changed`` means a live write changed the shadow's
key after it was read (the backfill left the newer value); ``gone`` means the key vanished from
the primary meanwhile and the shadow lacks it too; ``kept`` is an extra key left in place
(no ``--delete-extra``); ``would_*`` are ``--dry-run`` answers."""


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


# -- JSON for keys and positions ------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """``value`` with bytes as base64 strings (DynamoDB's own JSON form of ``B``)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    return value


def _encode_position(value: Any) -> Any:
    """A position (S3 key, DynamoDB LastEvaluatedKey) as JSON that round-trips bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): _encode_position(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_position(v) for v in value]
    return value


def _decode_position(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b64"}:
            return base64.b64decode(value["$b64"])
        return {k: _decode_position(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_position(v) for v in value]
    return value


# -- state file -----------------------------------------------------------------------------------


class StateFile:
    """The resume points of one job, in a JSON file replaced atomically.

    Args:
        path: the file, or ``None`` to keep nothing (a run that cannot be resumed).
        job: what identifies the job (service, resource, shadow resource, scope); a file
            written for another job is refused.

    Raises:
        BackfillError: the file is unreadable or belongs to another job.
    """

    def __init__(self, path: Path | None, job: Mapping[str, Any]) -> None:
        self.path = path
        self.job = dict(job)
        self._lock = threading.Lock()
        self._streams: dict[str, dict[str, Any]] = {}
        self._saved_at = 0.0
        self._dirty = False
        self.runs = 0
        # When the job's first run started: entries journaled before it are covered by a
        # complete run (None: unknown, a state file of an earlier release).
        self.started: float | None = time.time()
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                msg = f"cannot read state file {path}: {exc}"
                raise BackfillError(msg) from exc
            if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
                msg = f"state file {path} is not a dualwrite state file (version {_STATE_VERSION})"
                raise BackfillError(msg)
            if data.get("job") != self.job:
                msg = (
                    f"state file {path} belongs to another job ({json.dumps(data.get('job'))}); "
                    "use another --state file for this one"
                )
                raise BackfillError(msg)
            self._streams = dict(data.get("streams", {}))
            self.runs = int(data.get("runs", 0))
            started = data.get("started")
            self.started = float(started) if isinstance(started, (int, float)) else None
        self._resumed = bool(self._streams)

    @staticmethod
    def peek(path: Path | None) -> dict[str, Any] | None:
        """The job recorded in a state file, or ``None`` (no file, unreadable)."""
        if path is None or not path.exists():
            return None
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("job"), dict):
                return dict(data["job"])
        return None

    @property
    def resumed(self) -> bool:
        """Whether the file held progress when it was opened."""
        return self._resumed

    def start(self, stream: str) -> tuple[bool, Any]:
        """``(done, position)`` of ``stream``: whether it was finished, and where it stopped."""
        with self._lock:
            entry = self._streams.get(stream, {})
            return bool(entry.get("done")), _decode_position(entry.get("after"))

    def done(self, stream: str) -> bool:
        """Whether ``stream`` was finished."""
        return self.start(stream)[0]

    def advance(self, stream: str, position: Any) -> None:
        """Record that every unit of ``stream`` up to ``position`` is done."""
        with self._lock:
            self._streams[stream] = {"after": _encode_position(position), "done": False}
            self._dirty = True
        self.save()

    def finish(self, stream: str) -> None:
        """Record that ``stream`` is done."""
        with self._lock:
            self._streams[stream] = {"done": True}
            self._dirty = True
        self.save()

    def save(self, *, force: bool = False) -> None:
        """Write the file (at most every half second unless ``force``)."""
        if self.path is None:
            return
        with self._lock:
            now = time.monotonic()
            if not self._dirty and not force:
                return
            if not force and now - self._saved_at < _SAVE_EVERY:
                return
            data = {
                "version": _STATE_VERSION,
                "job": self.job,
                "runs": self.runs,
                "streams": self._streams,
            }
            if self.started is not None:
                data["started"] = self.started
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
            self._saved_at = now
            self._dirty = False

    def close(self) -> None:
        """Count this run and write the file."""
        with self._lock:
            self.runs += 1
            self._dirty = True
        self.save(force=True)


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


# -- what units report to -------------------------------------------------------------------------


class Sink:
    """Writes JSON Lines (differences, or copy actions) to a text stream, one line at a time.

    A reader that goes away (``diff ... | head``) closes the stream: the first write that
    finds it closed marks the sink ``closed``, calls ``on_closed`` (the CLI stops the run
    there) and later lines are dropped; nothing is raised into the workers.

    Args:
        out: the text stream.
        on_closed: called once when the stream turns out to be closed.
    """

    def __init__(self, out: TextIO, on_closed: Callable[[], None] | None = None) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._on_closed = on_closed
        self.closed = False

    def write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, default=str)
        with self._lock:
            if self.closed:
                return
            try:
                self._out.write(line + "\n")
            except BrokenPipeError:
                self._close()

    def flush(self) -> None:
        """Flush the stream (a closed reader is found here when the lines fit its buffer)."""
        with self._lock:
            if self.closed:
                return
            try:
                self._out.flush()
            except BrokenPipeError:
                self._close()

    def _close(self) -> None:
        self.closed = True
        if self._on_closed is not None:
            self._on_closed()


class Tally:
    """Thread-safe counts of one run, and its first error lines."""

    def __init__(self, sink: Sink | None) -> None:
        self.sink = sink
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._errors: list[str] = []

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._counts[name] += count

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def record(self, difference: Difference | None, outcome: str | None = None) -> None:
        """Count ``difference`` (``None``: an equal key) and ``outcome``; write its line."""
        with self._lock:
            self._counts[difference.kind if difference is not None else "equal"] += 1
            if outcome is not None:
                self._counts[outcome] += 1
        if difference is not None and self.sink is not None:
            data = difference.to_json()
            if outcome is not None:
                data["outcome"] = outcome
            self.sink.write(data)

    def error(self, what: str, exc: BaseException | str, *, count: bool = True) -> None:
        """Keep a failure's line (type and code only); count it unless already counted."""
        if isinstance(exc, BaseException):
            info = describe_error(exc)
            line = f"{what}: {info.type}{f' {info.code}' if info.code else ''}: {info.message}"
            line = line if len(line) <= 300 else line[:297] + "..."
        else:
            line = f"{what}: {exc}"
        with self._lock:
            if count:
                self._counts["failed"] += 1
            if len(self._errors) < _MAX_ERRORS:
                self._errors.append(line)

    def errors(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._errors)


# -- jobs, streams, batches -----------------------------------------------------------------------


Unit = Callable[[], None]
"""One piece of work (a key to copy, a chunk of items to compare); handles its own errors."""


@attrs.frozen(kw_only=True)
class Batch:
    """The work found in one stretch of a stream's listing.

    Attributes:
        units: work to do, each with the number of primary keys it covers.
        settled: primary keys of this stretch that need no work (equal by listing).
        position: where the stream resumes once every unit here and before is done (``None``:
            the stretch ends the stream).
    """

    units: Sequence[tuple[Unit, int]]
    settled: int
    position: Any


class Job(Protocol):
    """A diff or copy of one bucket or table (see ``dualwrite._s3.backfill`` and ``_dynamodb``)."""

    @property
    def command(self) -> str:
        """``"diff"`` or ``"copy"``."""

    @property
    def service(self) -> str:
        """``"s3"`` or ``"dynamodb"``."""

    @property
    def resource(self) -> str:
        """The primary bucket or table."""

    @property
    def shadow_resource(self) -> str:
        """The shadow bucket or table."""

    def identity(self) -> dict[str, Any]:
        """What a state file must match to be resumed by this job."""

    def streams(self) -> list[str]:
        """The names of the job's streams."""

    def batches(self, stream: str, start: Any, tally: Tally) -> Iterator[Batch]:
        """The batches of ``stream`` from ``start`` (``None``: the beginning)."""

    def estimate(self, streams: Sequence[str], state: StateFile) -> int | None:
        """How many primary keys the streams hold, for the progress bar (``None``: unknown)."""


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


class Progress:
    """A progress bar with rate and ETA on standard error, redrawn at most 10 times a second."""

    def __init__(self, label: str, out: TextIO | None = None) -> None:
        self._label = label
        self._out = out or sys.stderr
        self._lock = threading.Lock()
        self._done = 0
        self._total: int | None = None
        self._started = time.monotonic()
        self._drawn = 0.0
        self._tally: Tally | None = None

    def set_total(self, total: int | None) -> None:
        with self._lock:
            self._total = total

    def watch(self, tally: Tally) -> None:
        self._tally = tally

    def step(self, count: int) -> None:
        with self._lock:
            self._done += count
            now = time.monotonic()
            if now - self._drawn < 0.1:
                return
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        total = self._total
        if total:
            shown = min(self._done, total)
            width = 30
            filled = int(width * shown / total)
            eta = (total - shown) / rate if rate else 0.0
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {shown}/{total}"
            tail = f", ETA {_duration(eta)}"
        else:
            bar, tail = f"{self._done} keys", ""
        counts = ""
        if self._tally is not None:
            t = self._tally
            found = sum(t.get(kind) for kind in KINDS)
            counts = (
                f" | differences {found} copied {t.get('copied')}"
                f" skipped {t.get('skipped_changed')} failed {t.get('failed')}"
            )
        line = f"{self._label} {bar}, {rate:.0f}/s{tail}{counts}"
        # A line wider than the terminal wraps, and "\r" then redraws only its last row: the
        # bar would scroll. Cut it to the width (read each time: the window may be resized).
        width = shutil.get_terminal_size(fallback=(80, 24)).columns - 1
        self._out.write(f"\r{line[:width]:<{width}}" if width > 0 else f"\r{line}")
        self._out.flush()

    def close(self) -> None:
        with self._lock:
            self._draw(time.monotonic())
            self._out.write("\n")
            self._out.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


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
            self.progress.watch(self.tally)
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


def _estimate_later(job: Job, streams: Sequence[str], state: StateFile, progress: Progress) -> None:
    """Count the job's keys on a daemon thread, so the bar gets a total (and an ETA) early."""

    def count() -> None:
        with contextlib.suppress(Exception):  # no total: the bar shows a count and a rate
            progress.set_total(job.estimate(streams, state))

    threading.Thread(target=count, name="dualwrite-count", daemon=True).start()


def chunked(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_ahead(pages: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Iterate ``pages`` from a thread that fetches up to ``depth`` pages ahead.

    Lets the two sides' listings run at the same time; an exception of the listing is raised
    here, at the point where its page would have come.
    """
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    gone = threading.Event()

    def fetch() -> None:
        try:
            for page in pages:
                while not gone.is_set():
                    try:
                        buffer.put(("page", page), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if gone.is_set():
                    return
            item: tuple[str, Any] = ("end", None)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            item = ("error", exc)
        while not gone.is_set():
            with contextlib.suppress(queue.Full):
                buffer.put(item, timeout=0.2)
                return

    threading.Thread(target=fetch, name="dualwrite-read-ahead", daemon=True).start()
    try:
        while True:
            kind, value = buffer.get()
            if kind == "page":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        gone.set()


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
