"""The embedded default backend: :class:`SQLiteJournal`, one WAL-mode file on the host."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from dualwrite.exceptions import JournalError
from dualwrite.journal._model import Entry, decode_key, encode_key

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
        if len(batch) == 1 and not connection.in_transaction:
            op = batch[0]
            rows, remove = op.rows, op.remove
            # One statement (the common case: one write's intent, or its removal): SQLite's
            # own transaction around it, as durable as BEGIN..COMMIT, in one step instead of
            # three. Each step releases the GIL, and in a busy process every release may cost
            # the caller a wait of up to the interpreter's switch interval to get it back.
            if rows and len(rows) == 1 and not remove:
                op.ids = [str(connection.execute(_INSERT, rows[0]).lastrowid)]
                return
            if remove and len(remove) == 1 and not rows:
                connection.execute("DELETE FROM entries WHERE id = ?", remove[0])
                return
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
