"""Send the same bytes twice: once to the primary, once to the shadow.

botocore sends a file-like body from its current position and leaves it at EOF, so a naive
second send stores an empty object without any error. A :class:`Body` remembers where the body
started and rewinds it for the shadow; a body that cannot rewind (a pipe, a socket, a generator
wrapper) is spooled first, to memory up to ``SPOOL_MEMORY`` bytes and to a temporary file beyond,
and both accounts are sent the spool.
"""

from __future__ import annotations

import tempfile
import threading
from typing import IO, Any

SPOOL_MEMORY = 8 * 1024 * 1024
"""Bytes of a non-seekable body kept in memory before the spool moves to a temporary file."""

_COPY_CHUNK = 1024 * 1024


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


BACKGROUND_MEMORY = 32 * 1024 * 1024
"""Bytes of RAM that all bodies waiting in the background queue may hold together; the rest of
each body is spooled to a temporary file."""


class _Budget:
    """Process-wide memory budget for bodies held by queued background writes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, want: int) -> int:
        with self._lock:
            granted = max(0, min(want, self.limit - self.used))
            self.used += granted
            return granted

    def give(self, amount: int) -> None:
        with self._lock:
            self.used -= amount


_BUDGET = _Budget(BACKGROUND_MEMORY)


class _BudgetedSpool(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """A spool whose in-memory allowance is returned to the budget when it is closed."""

    def __init__(self) -> None:
        allowance = _BUDGET.take(SPOOL_MEMORY)
        # max_size=0 would mean "never roll over to disk": one byte means "disk at once".
        super().__init__(max_size=allowance or 1, prefix="dualwrite-body-")
        self._allowance = allowance

    def close(self) -> None:
        allowance, self._allowance = self._allowance, 0
        try:
            super().close()
        finally:
            if allowance:
                _BUDGET.give(allowance)


def _spool(stream: IO[Any], *, budgeted: bool = False) -> tempfile.SpooledTemporaryFile[bytes]:
    spool: tempfile.SpooledTemporaryFile[bytes]
    if budgeted:
        spool = _BudgetedSpool()
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
