"""The journal: which keys the shadow may lack, so that ``repair()`` can restore them.

An entry names a key, never a payload: the service, the primary bucket or table, the key, why it
is there and when. Repair reads the key's *current* state on the primary and writes it to the
shadow (or deletes it there), so replaying an entry twice, or entries in any order, is harmless.

Backends implement the small :class:`Journal` protocol. Three ship with the library:

* :class:`SQLiteJournal`, the embedded default: one file on the host (WAL mode), safe from many
  threads and several processes; concurrent writers of one process share one transaction
  (group commit).
* :class:`SQSJournal`: an Amazon SQS queue shared by a fleet of hosts.
* :class:`MemoryJournal`: this process only; what ``journal="auto"`` falls back to where the
  state directory cannot be written (a crash then loses it).

``DualWriter(journal=...)`` accepts ``"auto"`` (the default: :func:`default_path`), ``None``, a
path (an SQLite journal there) or a backend.

A backend that cannot record raises :class:`~dualwrite.exceptions.JournalError` naming the
problem (``"locked"``, ``"full"``, ``"deleted"``, ``"error"``); the writer turns it into a
``journal_failed`` event and one log line, and goes on.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import attrs

from dualwrite.exceptions import JournalError

__all__ = [
    "Entry",
    "Journal",
    "MemoryJournal",
    "SQLiteJournal",
    "SQSJournal",
    "default_path",
    "one_pass",
    "open_journal",
    "owner_alive",
    "process_token",
]

REASONS = (
    "pending",
    "shadow_failed",
    "unsupported",
    "overflow",
    "circuit_open",
    "mismatch",
    "flag_failed",
    "uncertain",
    "timeout",
    "closed",
    "presigned",
)
"""Why a key is in the journal.

``pending``: the write's intent, recorded before the primary is called and removed once the
shadow holds the state; ``shadow_failed``: the shadow write failed; ``unsupported``: the write
could not be mirrored; ``overflow``: the background queue was full; ``circuit_open``: the circuit
breaker skipped the shadow; ``mismatch``: both accounts answered but their results disagree;
``flag_failed``: the flag or ``tenant_of`` raised, so the shadow was not written; ``uncertain``:
the primary's call failed in a way that does not say whether it wrote (a timeout, a dropped
connection); ``timeout``: the shadow did not answer within ``shadow_timeout``; ``closed``: the
write came after the writer was closed; ``presigned``: a presigned URL or POST for a write was
signed through a wrapped client (the upload will reach the primary only; see ``Entry.expires``).
"""


@attrs.frozen(kw_only=True)
class Entry:
    """One journaled key.

    Attributes:
        service: ``"s3"`` or ``"dynamodb"``.
        resource: the primary bucket or table name.
        key: the S3 object key, or the DynamoDB key in its typed form (``{"pk": {"S": "a"}}``).
        reason: one of :data:`REASONS`.
        tenant: the write's tenant, if known.
        detail: a short explanation (an error code, an unsupported reason); never a payload.
        at: when the entry was made (seconds since the epoch).
        id: the backend's id of the entry, set when it is read back.
        first: the account the write went to first, as wrapped: ``"primary"`` (the old account;
            always, without stages) or ``"shadow"`` (the new one, at ``CUTOVER``). Repair copies
            a key from the account its latest entry's write went to first: that account
            acknowledged the write.
        owner: for a ``pending`` intent, the token of the writer process that made it (see
            :func:`process_token`); repair leaves the intent of a process that is still alive
            to that process, which removes it once its shadow write is done.
        expires: for a ``presigned`` entry, when the URL or POST stops working (seconds since
            the epoch); repair keeps the entry until the upload exists or this time passed. A
            ``presigned`` entry whose ``detail`` is ``"prefix"`` names a key prefix (a POST
            whose key ends in ``${filename}``), not a key.
    """

    service: str
    resource: str
    key: str | Mapping[str, Any]
    reason: str
    tenant: str | None = None
    detail: str = ""
    at: float = attrs.field(factory=time.time)
    id: str | None = None
    first: str = "primary"
    owner: str | None = None
    expires: float | None = None

    @property
    def resource_level(self) -> bool:
        """Whether the entry names a whole bucket or table rather than one key.

        A write whose key could not be read (an unparsed PartiQL statement, a table whose key
        schema neither account would describe) is journaled with an empty key: ``""`` for S3,
        ``{}`` for DynamoDB. Repair cannot settle such an entry key by key; a ``diff`` or
        ``copy`` of the resource does.
        """
        return not self.key

    def identity(self) -> tuple[str, str, str]:
        """``(service, resource, key as canonical JSON)``: entries for one key share it."""
        return self.service, self.resource, encode_key(self.key)


@runtime_checkable
class Journal(Protocol):
    """A place to record keys the shadow may lack.

    Implementations must be safe to call from several threads at once.
    """

    def add(self, entries: Sequence[Entry]) -> list[str]:
        """Record ``entries``; return their ids, in order."""

    def remove(self, ids: Sequence[str]) -> None:
        """Forget the entries ``ids``; unknown ids are ignored."""

    def entries(self, limit: int | None = None) -> Iterator[Entry]:
        """Yield recorded entries (with their ids), oldest first, up to ``limit``."""

    def count(self) -> int:
        """Return how many entries are recorded."""

    def close(self) -> None:
        """Release the backend's resources."""


# -- owners of pending intents -------------------------------------------------------------------

_token_cache: tuple[int, str] | None = None


def _start_ticks(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else ``None``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19].decode("ascii") if len(fields) > 19 else None


def process_token() -> str:
    """This process's token, ``host/pid/start``: names the owner of its ``pending`` intents.

    The start time tells a live process from a later one that reuses its pid (Linux); where it
    cannot be read, a random value stands in (a reused pid then looks alive: repair waits).
    """
    global _token_cache  # noqa: PLW0603 - one token per process, recomputed after a fork
    pid = os.getpid()
    cached = _token_cache
    if cached is not None and cached[0] == pid:
        return cached[1]
    start = _start_ticks(pid) or uuid.uuid4().hex[:12]
    token = f"{socket.gethostname()}/{pid}/{start}"
    _token_cache = (pid, token)
    return token


def owner_alive(owner: str | None) -> bool | None:
    """Whether the process named by ``owner`` (a :func:`process_token`) still runs.

    Returns:
        ``True`` or ``False`` for a process of this host; ``None`` when that cannot be told (a
        process of another host, or no owner recorded).
    """
    if not owner:
        return None
    host, _, rest = owner.partition("/")
    pid_text, _, start = rest.partition("/")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return owner == process_token()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    now = _start_ticks(pid)
    return now is None or not start.isdigit() or now == start


# -- key encoding --------------------------------------------------------------------------------


def encode_key(key: str | Mapping[str, Any]) -> str:
    """Canonical JSON for a key: an S3 key as a string, a DynamoDB key in its typed form."""
    if isinstance(key, str):
        return json.dumps(key)
    return json.dumps(_typed(key), sort_keys=True, separators=(",", ":"))


def decode_key(text: str) -> str | dict[str, Any]:
    """Inverse of :func:`encode_key`; DynamoDB binary values come back as ``bytes``."""
    value = json.loads(text)
    if isinstance(value, str):
        return value
    return {name: _unjson(attr) for name, attr in value.items()}


def _typed(key: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB key in typed form, JSON-safe (binary as base64), whatever level it came from."""
    from boto3.dynamodb.types import Binary, TypeSerializer  # noqa: PLC0415 - boto3 is a dependency

    out: dict[str, Any] = {}
    serializer = TypeSerializer()
    for name, value in key.items():
        typed: dict[str, Any]
        if isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in ("S", "N", "B"):
            typed = dict(value)  # already low-level
        else:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = Decimal(str(value))  # noqa: PLW2901
            typed = dict(serializer.serialize(value))
        if "B" in typed:
            raw: Any = typed["B"]
            raw = raw.value if isinstance(raw, Binary) else raw  # type: ignore[attr-defined]
            # botocore accepts a str blob and sends it UTF-8 encoded.
            raw = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
            typed = {"B": base64.b64encode(raw).decode("ascii")}
        out[str(name)] = typed
    return out


def _unjson(attr: Mapping[str, Any]) -> dict[str, Any]:
    if "B" in attr:
        return {"B": base64.b64decode(attr["B"])}
    return dict(attr)


# -- SQLite --------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    resource TEXT NOT NULL,
    key TEXT NOT NULL,
    reason TEXT NOT NULL,
    tenant TEXT,
    detail TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL,
    first TEXT NOT NULL DEFAULT 'primary',
    owner TEXT,
    expires REAL
)
"""

# Columns added after the first release, with their definitions, for journals made before.
_ADDED_COLUMNS = (
    ("first", "TEXT NOT NULL DEFAULT 'primary'"),
    ("owner", "TEXT"),
    ("expires", "REAL"),
)


_SQLITE_FULL = 13
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_INSERT = (
    "INSERT INTO entries"
    " (service, resource, key, reason, tenant, detail, at, first, owner, expires)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _problem(exc: sqlite3.Error) -> str:
    """What an SQLite error means for the journal: ``"locked"``, ``"full"`` or ``"error"``."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    if primary == _SQLITE_FULL or "disk is full" in text:
        return "full"
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "locked" in text:
        return "locked"
    return "error"


def _journal_error(path: str, exc: sqlite3.Error | OSError) -> JournalError:
    if isinstance(exc, OSError):
        problem = "full" if exc.errno == 28 else "error"
    else:
        problem = _problem(exc)
    says = {
        "full": "the disk holding it is full",
        "locked": "another process held its write lock past the busy timeout",
        "error": "it failed",
    }[problem]
    error = JournalError(f"journal {path!r}: {says} ({type(exc).__name__}: {exc})", problem=problem)
    error.__cause__ = exc
    return error


class _Op:
    """One thread's add or remove, waiting for the group commit that includes it."""

    __slots__ = ("done", "error", "ids", "remove", "rows")

    def __init__(self, rows: list[tuple[Any, ...]] | None, remove: list[tuple[int]] | None) -> None:
        self.rows = rows
        self.remove = remove
        self.ids: list[str] = []
        self.error: BaseException | None = None
        self.done = False


class SQLiteJournal:
    """A journal in an SQLite file: the embedded default.

    WAL mode and ``synchronous=NORMAL``: a committed entry survives the death of the process
    (not a power cut of the machine). Writes of all threads go through one connection, and the
    adds and removes waiting while one transaction runs are committed together in the next one
    (group commit): a write costs a share of one transaction, however many threads write. Reads
    use a small pool of connections. Safe from many threads and several processes on one host
    (not on a network file system).

    Faults are loud, never stalls or silence: a write lock held by another process longer than
    ``timeout`` raises :class:`~dualwrite.exceptions.JournalError` (``problem="locked"``); a
    full disk raises it with ``problem="full"``; a journal file deleted while open is noticed
    before the next transaction, recreated, and reported to :attr:`on_notice`.

    Args:
        path: the database file; created with its table (and its directory) if missing.
        timeout: seconds to wait for another process's write lock before failing.

    Attributes:
        on_notice: called with ``(problem, message)`` when the journal recovered from a fault
            by itself (``"deleted"``: the file was recreated); the writer sets it.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 1.0) -> None:
        self.path = os.fspath(path)
        self._timeout = timeout
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.on_notice: Callable[[str, str], None] | None = None
        # Group commit: the ops waiting for the next transaction, and whether a thread (the
        # leader) is running transactions on the writer connection right now.
        self._group = threading.Condition()
        self._waiting: list[_Op] = []
        self._leading = False
        self._sleepers = 0
        # Transactions run by the group commit, for benchmarks (ops per transaction).
        self.transactions = 0
        self._pid = os.getpid()
        self._writer: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._create()

    def _create(self) -> None:
        """Create the file, its table and missing columns; remember which file it is."""
        directory = os.path.dirname(self.path)
        if directory and self.path != ":memory:":
            os.makedirs(directory, exist_ok=True)
        connection = self._open()
        try:
            connection.execute(_SCHEMA)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(entries)")}
            for column, definition in _ADDED_COLUMNS:
                if column in columns:
                    continue
                try:  # a journal made by an earlier release
                    connection.execute(f"ALTER TABLE entries ADD COLUMN {column} {definition}")
                except sqlite3.OperationalError as exc:  # another process added it meanwhile
                    if "duplicate column" not in str(exc):
                        raise
        finally:
            connection.close()
        self._identity = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit survives a crash of the process (not of the machine).
            connection.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            connection.close()
            raise
        return connection

    def _check_file(self) -> None:
        """Recreate the journal if its file was deleted (or replaced) since it was opened.

        SQLite keeps writing to an open file that was unlinked: every entry would be lost
        silently. One ``stat`` per transaction notices it.
        """
        if self.path == ":memory:" or self._stat() == self._identity:
            return
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        try:
            self._create()
        except (OSError, sqlite3.Error) as exc:
            error = _journal_error(self.path, exc)
            raise JournalError(
                f"journal {self.path!r} was deleted and could not be recreated: {exc}",
                problem="deleted",
            ) from error
        message = (
            f"journal {self.path!r} was deleted while in use; recreated empty (entries made "
            "before were lost: run a diff of the migrating tenants' data)"
        )
        notice = self.on_notice
        if notice is not None:
            notice("deleted", message)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A read connection from the pool (after close(), a one-off connection)."""
        with self._lock:
            connection = self._idle.pop() if self._idle else None
            closed = self._closed
        if connection is None:
            connection = self._open()
        try:
            yield connection
        finally:
            keep = False
            if not closed:
                with self._lock:
                    keep = not self._closed
                    if keep:
                        self._idle.append(connection)
            if not keep:
                connection.close()

    # -- writes: group commit ------------------------------------------------------------------

    def _commit(self, op: _Op) -> _Op:
        if self._pid != os.getpid():
            self._forked()
        with self._group:
            self._waiting.append(op)
            if self._leading:
                self._sleepers += 1
                try:
                    while self._leading and not op.done:
                        self._group.wait()
                finally:
                    self._sleepers -= 1
                if op.done:
                    return op
            self._leading = True
        # This thread leads: it runs transactions until no op is waiting, its own first.
        try:
            while True:
                with self._group:
                    batch, self._waiting = self._waiting, []
                    if not batch:
                        self._leading = False
                        break
                self._run(batch)
                with self._group:
                    if self._sleepers:
                        self._group.notify_all()
        except BaseException:
            with self._group:
                self._leading = False
            raise
        finally:
            with self._group:
                # A waiter that queued after the last batch wakes up and leads the next one.
                if self._sleepers:
                    self._group.notify_all()
        return op

    def _forked(self) -> None:
        """In a forked child: forget the parent's connections and leader (no thread of the
        parent runs here, and an SQLite connection must not cross a fork)."""
        self._pid = os.getpid()
        self._group = threading.Condition()
        self._waiting = []
        self._leading = False
        self._sleepers = 0
        self._writer = None
        self._lock = threading.Lock()
        self._idle = []

    def _run(self, batch: list[_Op]) -> None:
        """One transaction for every op of ``batch``; each op gets its ids or the error."""
        try:
            self._check_file()
            connection = self._open() if self._writer is None or self._closed else self._writer
            try:
                self._transaction(connection, batch)
            finally:
                if self._closed:
                    connection.close()
                    self._writer = None
                else:
                    self._writer = connection
        except JournalError as exc:
            error: BaseException = exc
        except (sqlite3.Error, OSError) as exc:
            error = _journal_error(self.path, exc)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting thread
            error = exc
        else:
            for op in batch:
                op.done = True
            return
        for op in batch:
            op.ids = []
            op.error = error
            op.done = True

    def _transaction(self, connection: sqlite3.Connection, batch: list[_Op]) -> None:
        self.transactions += 1
        connection.execute("BEGIN IMMEDIATE")
        try:
            for op in batch:
                if op.rows:
                    op.ids = [str(connection.execute(_INSERT, row).lastrowid) for row in op.rows]
                if op.remove:
                    connection.executemany("DELETE FROM entries WHERE id = ?", op.remove)
            connection.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (a full disk) may already have rolled back: rolling back again
            # would raise "cannot rollback" and hide the real error.
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            raise

    def add(self, entries: Sequence[Entry]) -> list[str]:
        """Record ``entries`` in one transaction (shared with other threads'); return their ids.

        Raises:
            JournalError: the journal is locked by another process, its disk is full, or it
                failed otherwise; nothing was recorded.
        """
        rows = [
            (
                entry.service,
                entry.resource,
                encode_key(entry.key),
                entry.reason,
                entry.tenant,
                entry.detail,
                entry.at,
                entry.first,
                entry.owner,
                entry.expires,
            )
            for entry in entries
        ]
        if not rows:
            return []
        op = self._commit(_Op(rows, None))
        if op.error is not None:
            raise op.error
        return op.ids

    def remove(self, ids: Sequence[str]) -> None:
        """Forget entries ``ids`` (in a transaction shared with other threads').

        Raises:
            JournalError: as :meth:`add`; nothing was removed.
        """
        if not ids:
            return
        op = self._commit(_Op(None, [(int(i),) for i in ids]))
        if op.error is not None:
            raise op.error

    def entries(self, limit: int | None = None) -> Iterator[Entry]:
        """Yield entries, oldest first."""
        query = (
            "SELECT id, service, resource, key, reason, tenant, detail, at, first, owner,"
            " expires FROM entries ORDER BY id"
        )
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self._group:
            if not self._leading:
                self._check_file()
        with self._connection() as connection:
            rows = connection.execute(query).fetchall()
        for row in rows:
            yield Entry(
                id=str(row[0]),
                service=row[1],
                resource=row[2],
                key=decode_key(row[3]),
                reason=row[4],
                tenant=row[5],
                detail=row[6],
                at=row[7],
                first=row[8],
                owner=row[9],
                expires=row[10],
            )

    def count(self) -> int:
        """Return the number of entries."""
        with self._connection() as connection:
            return int(connection.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def close(self) -> None:
        """Close the connections; later calls open a connection each (a write after close)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        with self._group:
            if not self._leading and self._writer is not None:
                self._writer.close()
                self._writer = None

    def __repr__(self) -> str:
        return f"SQLiteJournal({self.path!r})"


# -- in memory -----------------------------------------------------------------------------------


class MemoryJournal:
    """A journal in this process's memory: lost when the process ends.

    What ``journal="auto"`` falls back to where no state directory can be written; also handy
    in tests. Safe from many threads.
    """

    def __init__(self) -> None:
        self._entries: dict[int, Entry] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, entries: Sequence[Entry]) -> list[str]:
        """Record ``entries``; return their ids."""
        ids: list[str] = []
        with self._lock:
            for entry in entries:
                number = next(self._ids)
                encode_key(entry.key)  # the same keys as an SQLite journal accepts
                self._entries[number] = attrs.evolve(entry, id=str(number))
                ids.append(str(number))
        return ids

    def remove(self, ids: Sequence[str]) -> None:
        """Forget entries ``ids``."""
        with self._lock:
            for entry_id in ids:
                self._entries.pop(int(entry_id), None)

    def entries(self, limit: int | None = None) -> Iterator[Entry]:
        """Yield entries, oldest first."""
        with self._lock:
            found = [self._entries[n] for n in sorted(self._entries)]
        yield from found if limit is None else found[: int(limit)]

    def count(self) -> int:
        """Return the number of entries."""
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        """Nothing to release; the entries stay readable."""

    def __repr__(self) -> str:
        return f"MemoryJournal({self.count()} entries)"


# -- SQS -----------------------------------------------------------------------------------------


class SQSJournal:
    """A journal on an Amazon SQS queue, shared by a fleet of hosts.

    Each entry is one message (JSON, keys only). :meth:`entries` receives messages with a
    visibility timeout, so several repair processes split the backlog; :meth:`remove` deletes the
    received ones. SQS cannot delete a message it has not handed out, so ``pending`` intents of
    background mode are not sent here: they are kept by the local ``intents`` journal when one is
    given (an :class:`SQLiteJournal`), else only in memory (a crash of the host then loses the
    writes that were still queued). Failures are always sent to the queue.

    Args:
        client: a boto3 SQS client (of the account that owns the queue).
        queue_url: the queue's URL.
        visibility_timeout: seconds a received entry stays hidden from other repairers.
        intents: an optional local journal for ``pending`` intents.
    """

    def __init__(
        self,
        client: Any,
        queue_url: str,
        *,
        visibility_timeout: int = 300,
        intents: Journal | None = None,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.visibility_timeout = visibility_timeout
        self.intents = intents
        self._receipts: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, entries: Sequence[Entry]) -> list[str]:
        """Send ``entries`` (``pending`` ones to the local intents journal, if any)."""
        ids: list[str] = []
        for entry in entries:
            if entry.reason == "pending":
                if self.intents is not None:
                    ids.append("local:" + self.intents.add([entry])[0])
                else:
                    ids.append("memory:" + uuid.uuid4().hex)
                continue
            body = json.dumps(
                {
                    "service": entry.service,
                    "resource": entry.resource,
                    "key": encode_key(entry.key),
                    "reason": entry.reason,
                    "tenant": entry.tenant,
                    "detail": entry.detail,
                    "at": entry.at,
                    "first": entry.first,
                    "owner": entry.owner,
                    "expires": entry.expires,
                }
            )
            response = self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)
            ids.append("sqs:" + response["MessageId"])
        return ids

    def remove(self, ids: Sequence[str]) -> None:
        """Delete received messages and local intents."""
        for entry_id in ids:
            kind, _, rest = entry_id.partition(":")
            if kind == "local" and self.intents is not None:
                self.intents.remove([rest])
            elif kind == "sqs":
                with self._lock:
                    receipt = self._receipts.pop(rest, None)
                if receipt is not None:
                    self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)

    def entries(self, limit: int | None = None) -> Iterator[Entry]:
        """Receive entries until the queue looks empty (or ``limit``)."""
        seen = 0
        if self.intents is not None:
            for entry in self.intents.entries(limit):
                yield attrs.evolve(entry, id=f"local:{entry.id}")
                seen += 1
        while limit is None or seen < limit:
            batch = min(10, (limit - seen) if limit is not None else 10)
            response = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=batch,
                VisibilityTimeout=self.visibility_timeout,
                WaitTimeSeconds=0,
            )
            messages = response.get("Messages", [])
            if not messages:
                return
            for message in messages:
                body = json.loads(message["Body"])
                with self._lock:
                    self._receipts[message["MessageId"]] = message["ReceiptHandle"]
                yield Entry(
                    id="sqs:" + message["MessageId"],
                    service=body["service"],
                    resource=body["resource"],
                    key=decode_key(body["key"]),
                    reason=body["reason"],
                    tenant=body.get("tenant"),
                    detail=body.get("detail", ""),
                    at=float(body.get("at", 0.0)),
                    first=str(body.get("first", "primary")),
                    owner=body.get("owner"),
                    expires=body.get("expires"),
                )
                seen += 1

    def count(self) -> int:
        """Approximate number of entries (SQS counts are approximate)."""
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        local = self.intents.count() if self.intents is not None else 0
        return local + sum(int(v) for v in attributes.values())

    def close(self) -> None:
        """Close the local intents journal, if any."""
        if self.intents is not None:
            self.intents.close()

    def __repr__(self) -> str:
        return f"SQSJournal({self.queue_url!r})"


def default_path() -> str:
    """Where ``journal="auto"`` keeps its SQLite file.

    ``$DUALWRITE_JOURNAL`` if set, else ``$XDG_STATE_HOME/dualwrite/journal.sqlite3``, else
    ``~/.local/state/dualwrite/journal.sqlite3``.
    """
    explicit = os.environ.get("DUALWRITE_JOURNAL")
    if explicit:
        return explicit
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "dualwrite", "journal.sqlite3")


_fallback_warned = False
_fallback_lock = threading.Lock()


def _auto() -> Journal:
    """The ``"auto"`` journal: an SQLite file at :func:`default_path`, else one in memory."""
    global _fallback_warned
    path = default_path()
    try:
        return SQLiteJournal(path)
    except (OSError, sqlite3.Error) as exc:
        with _fallback_lock:
            warn, _fallback_warned = not _fallback_warned, True
        if warn:
            logging.getLogger("dualwrite").warning(
                "dualwrite: cannot write the journal at %r (%s: %s); journaling in memory "
                "instead: a crash of this process loses what it holds. Set DUALWRITE_JOURNAL "
                "or pass journal= a writable path",
                path,
                type(exc).__name__,
                exc,
            )
        return MemoryJournal()


def open_journal(spec: object) -> Journal | None:
    """Turn ``DualWriter(journal=...)`` into a backend.

    Raises:
        TypeError: ``spec`` is neither ``"auto"``, ``None``, a path, nor a :class:`Journal`.
    """
    if spec is None:
        return None
    if spec == "auto":
        return _auto()
    if isinstance(spec, (str, os.PathLike)):
        return SQLiteJournal(spec)
    if isinstance(spec, Journal):
        return spec
    msg = (
        'journal must be "auto", None, a path (an SQLite journal is created there) or a '
        f"dualwrite.journal.Journal; got {type(spec).__name__}"
    )
    raise TypeError(msg)


_ROUND_REPEATS = 10  # consecutive entries seen before in this run: the backlog went round


def one_pass(journal: Journal) -> Iterator[Entry]:
    """The journal's entries, each once, until a run of entries already seen shows that the
    backlog went round (an SQS message reappears once its visibility timeout ran out)."""
    seen: set[str] = set()
    repeats = 0
    for entry in journal.entries(None):
        if entry.id is not None and entry.id in seen:
            repeats += 1
            if repeats >= _ROUND_REPEATS:
                return
            continue
        repeats = 0
        if entry.id is not None:
            seen.add(entry.id)
        yield entry
