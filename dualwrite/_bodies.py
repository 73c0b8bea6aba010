"""Send the same bytes twice: once to the primary, once to the shadow.

botocore sends a file-like body from its current position and leaves it at EOF, so a naive
second send stores an empty object without any error. A :class:`Body` remembers where the body
started and rewinds it for the shadow; a body that cannot rewind (a pipe, a socket, a generator
wrapper) is spooled first, to memory up to ``SPOOL_MEMORY`` bytes and to a temporary file beyond,
and both accounts are sent the spool.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from typing import IO, Any

SPOOL_MEMORY = 8 * 1024 * 1024
"""Bytes of a non-seekable body kept in memory before the spool moves to a temporary file."""

# Small enough that the copies a burst of threads makes at once stay small too.
_COPY_CHUNK = 256 * 1024


class Body:
    """A request body that can be sent twice.

    Args:
        body: the caller's ``Body`` (bytes, str, bytearray, or a readable file-like object).
    """

    __slots__ = ("_body", "_spool", "_start")

    def __init__(self, body: Any) -> None:
        self._body = body
        self._start: int | None = None
        self._spool: tempfile.SpooledTemporaryFile[bytes] | None = None
        if body is None or isinstance(body, (bytes, bytearray, str, memoryview)):
            return
        try:
            # Do not trust seekable(): s3transfer's ReadFileChunk lacks it, and tell()/seek() are
            # what botocore itself relies on.
            self._start = body.tell()
            body.seek(self._start)
        except (AttributeError, OSError, ValueError):
            self._start = None
            self._spool = _spool(body)

    def for_primary(self) -> Any:
        """Return the body to send to the primary."""
        if self._spool is not None:
            self._spool.seek(0)
            return self._spool
        return self._body

    def for_shadow(self) -> Any:
        """Return the body to send to the shadow: the same bytes, from the same position."""
        if self._spool is not None:
            self._spool.seek(0)
            return self._spool
        if self._start is not None:
            self._body.seek(self._start)
        return self._body

    def detach(self) -> None:
        """Take a private copy of the bytes, so the caller may close or reuse its body.

        Called after the primary's call when the shadow write will run later (background
        mode). Immutable bodies (``bytes``, ``str``) are kept as they are; a mutable buffer is
        copied; a file-like body is copied from its start position into a spool whose memory
        part comes from a process-wide budget (:data:`BACKGROUND_MEMORY`), the rest on disk.
        """
        body = self._body
        if self._spool is not None or body is None or isinstance(body, (bytes, str)):
            return
        if isinstance(body, (bytearray, memoryview)):
            self._body = bytes(body)
            return
        if self._start is not None:
            body.seek(self._start)
        self._spool = _spool(body, budgeted=True)
        self._body = None
        self._start = None

    def close(self) -> None:
        """Release the spool, if one was made. The caller's own body is never closed."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None


BACKGROUND_MEMORY = 16 * 1024 * 1024
"""Bytes of RAM that all bodies waiting in the background queue may hold together; the rest of
each body is spooled to a temporary file."""


class _Budget:
    """Process-wide memory budget for bodies held by queued background writes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, amount: int) -> bool:
        """Take ``amount`` bytes if the budget has them all; return whether it did."""
        with self._lock:
            if self.used + amount > self.limit:
                return False
            self.used += amount
            return True

    def give(self, amount: int) -> None:
        with self._lock:
            self.used -= amount


_BUDGET = _Budget(BACKGROUND_MEMORY)


class _BudgetedSpool(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """A spool that stays in memory only while the process-wide budget allows it.

    The bytes it holds in memory are taken from :data:`_BUDGET` (at most :data:`SPOOL_MEMORY`
    per spool), so small bodies cost what they weigh. A body whose size is known up front goes
    straight to disk when it does not fit (no copy in memory first); otherwise the spool moves
    to disk when either limit is reached, and gives back what it held. Closing gives back the
    rest.

    Args:
        expected: the body's size, when known.
    """

    def __init__(self, expected: int | None) -> None:
        super().__init__(max_size=SPOOL_MEMORY, prefix="dualwrite-body-")
        self._held = 0
        self._size = 0
        if expected is not None:
            if expected <= SPOOL_MEMORY and _BUDGET.take(expected):
                self._held = expected
            else:
                self.rollover()

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if not self._rolled:  # type: ignore[attr-defined]
            need = self._size + len(data) - self._held
            if need > 0:
                if self._held + need <= SPOOL_MEMORY and _BUDGET.take(need):
                    self._held += need
                else:
                    self.rollover()
        self._size += len(data)
        return super().write(data)

    def rollover(self) -> None:
        super().rollover()
        self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()

    def _release(self) -> None:
        held, self._held = self._held, 0
        if held:
            _BUDGET.give(held)


def _remaining(stream: Any) -> int | None:
    """Bytes left in ``stream`` from its position, when that is cheap to know; else ``None``."""
    try:
        if hasattr(stream, "__len__"):  # s3transfer's ReadFileChunk: its own part's size
            return max(0, len(stream) - int(stream.tell()))
        info = os.fstat(stream.fileno())
        if stat.S_ISREG(info.st_mode):
            return max(0, info.st_size - int(stream.tell()))
    except Exception:  # noqa: BLE001 - a guess only; the copy itself finds the real size
        return None
    return None


def _spool(stream: IO[Any], *, budgeted: bool = False) -> tempfile.SpooledTemporaryFile[bytes]:
    spool: tempfile.SpooledTemporaryFile[bytes]
    if budgeted:
        spool = _BudgetedSpool(_remaining(stream))
    else:
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, prefix="dualwrite-body-")
    try:
        while True:
            chunk = stream.read(_COPY_CHUNK)
            if not chunk:
                break
            spool.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool
