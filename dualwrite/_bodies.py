"""Send the same bytes twice: once to the primary, once to the shadow.

botocore sends a file-like body from its current position and leaves it at EOF, so a naive
second send stores an empty object without any error. A :class:`Body` remembers where the body
started and rewinds it for the shadow; a body that cannot rewind (a pipe, a socket, a generator
wrapper) is spooled first, to memory up to ``SPOOL_MEMORY`` bytes and to a temporary file beyond,
and both accounts are sent the spool.
"""

from __future__ import annotations

import tempfile
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

    def close(self) -> None:
        """Release the spool, if one was made. The caller's own body is never closed."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None


def _spool(stream: IO[Any]) -> tempfile.SpooledTemporaryFile[bytes]:
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(
        max_size=SPOOL_MEMORY, prefix="dualwrite-body-"
    )
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
