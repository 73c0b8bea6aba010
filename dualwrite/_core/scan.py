"""The vocabulary of a diff or copy job: what a per-service job yields and reports to.

A *stream* is one ordered source of keys: an S3 prefix (S3 lists keys in lexicographic order) or
a DynamoDB scan segment or query. A stream yields *batches* (:class:`Batch`): the units of work
found in one stretch of the listing, and the position after that stretch. A unit records what
it found in a :class:`Tally` (as :class:`Difference` values, written as JSON Lines by a
:class:`Sink`); a :class:`StateFile` keeps each stream's resume point.

:mod:`dualwrite._s3.backfill` and :mod:`dualwrite._dynamodb.backfill` build jobs (:class:`Job`)
from these; :mod:`dualwrite._offline.backfill` runs them. This module knows no AWS service.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

import attrs

from dualwrite._core.errors import describe_error

_STATE_VERSION = 1
_SAVE_EVERY = 0.5  # seconds between two writes of the state file
_MAX_ERRORS = 100  # error lines kept in a report; the count is exact


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
