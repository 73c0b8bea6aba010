"""Send the same bytes twice: once to the primary, once to the shadow.

botocore sends a file-like body from its current position and leaves it at EOF, so a naive
second send stores an empty object without any error. A :class:`Body` remembers where the body
started and rewinds it for the shadow; a body that cannot rewind (a pipe, a socket, a generator
wrapper) is spooled first, to memory up to ``SPOOL_MEMORY`` bytes and to a temporary file beyond,
and both accounts are sent the spool.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
import threading
from typing import Any

SPOOL_MEMORY = 8 * 1024 * 1024
"""Bytes of a non-seekable body kept in memory before the spool moves to a temporary file."""

# Small enough that the copies a burst of threads makes at once stay small too.
_COPY_CHUNK = 256 * 1024


class SpoolError(OSError):
    """The shadow's copy of a body could not be kept (e.g. a full disk); the key is journaled.

    Raised by :meth:`Body.for_shadow` only, that is inside a shadow action, where it becomes a
    ``shadow_failed`` event and a journal entry: never in the caller's thread.
    """


_BYTES_LIKE = (bytes, bytearray, str, memoryview)


class Body:
    """A request body that can be sent twice.

    Args:
        body: the caller's ``Body`` (bytes, str, bytearray, or a readable file-like object).
            Anything else (``Body=123``) is passed to the primary as it is, so that the caller
            gets botocore's own error.
    """

    __slots__ = ("_body", "_error", "_spool", "_start")

    def __init__(self, body: Any) -> None:
        self._body = body
        self._start: int | None = None
        self._spool: Any = None
        self._error: str | None = None
        if body is None or isinstance(body, _BYTES_LIKE) or not hasattr(body, "read"):
            return
        try:
            # Do not trust seekable(): s3transfer's ReadFileChunk lacks it, and tell()/seek() are
            # what botocore itself relies on.
            self._start = body.tell()
            body.seek(self._start)
        except Exception:  # noqa: BLE001 - any failure means "cannot rewind": spool it
            self._start = None
            self._spool, self._body, self._error = _spool_before_primary(body)

    def for_primary(self) -> Any:
        """Return the body to send to the primary."""
        if self._spool is not None:
            self._spool.seek(0)
            return self._spool
        return self._body

    def for_shadow(self) -> Any:
        """Return the body to send to the shadow: the same bytes, from the same position.

        Raises:
            SpoolError: the bytes could not be kept for the shadow (the spool's disk was full).
        """
        if self._error is not None:
            raise SpoolError(self._error)
        if self._spool is not None:
            self._spool.seek(0)
            return self._spool
        if self._start is not None:
            self._body.seek(self._start)
        return self._body

    def detach(self) -> None:
        """Take a private copy of the bytes, so the caller may close, reuse or free its body.

        Called after the primary's call when the shadow write will run later (background
        mode, or a sync shadow write that outlives ``shadow_timeout``). No reference to the
        caller's object is kept, ``bytes`` included (the queue would otherwise keep every queued
        body alive): the bytes are copied into a spool whose memory part comes from the
        process-wide budget :data:`BACKGROUND_MEMORY`, the rest on disk. Never raises: when the
        copy fails (a full disk), the body is dropped and :meth:`for_shadow` raises
        :class:`SpoolError`, so the key is journaled instead.
        """
        body = self._body
        if self._error is not None or isinstance(self._spool, _BudgetedSpool):
            return
        if self._spool is not None and not isinstance(self._spool, io.BytesIO):
            return  # spooled to disk before the primary call: it holds no memory
        if self._spool is None and not isinstance(body, _BYTES_LIKE) and not hasattr(body, "read"):
            return  # None, or a value botocore refused (the shadow is never called then)
        try:
            if self._spool is not None:
                source: Any = self._spool
                source.seek(0)
            elif isinstance(body, _BYTES_LIKE):
                source = _as_bytes(body)
            else:
                if self._start is not None:
                    body.seek(self._start)
                source = body
            spool = _spool(source, budgeted=True)
        except Exception as exc:  # noqa: BLE001 - the caller's call succeeded: never raise
            self._error = f"the body could not be kept for the shadow: {type(exc).__name__}"
            spool = None
        if self._spool is not None:
            self._spool.close()
        self._spool = spool
        self._body = None
        self._start = None

    def close(self) -> None:
        """Release the spool, if one was made. The caller's own body is never closed."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if isinstance(self._body, _Replay):
            self._body.close()


def _as_bytes(body: bytes | bytearray | str | memoryview) -> memoryview:
    """A read-only view of a bytes-like body, as botocore encodes it (``str`` as UTF-8)."""
    if isinstance(body, str):
        return memoryview(body.encode("utf-8"))
    return memoryview(body).cast("B")


BACKGROUND_MEMORY = 16 * 1024 * 1024
"""Bytes of RAM that all bodies waiting in the background queue may hold together; the rest of
each body is spooled to a temporary file."""


def _temporary_file(**options: Any) -> Any:
    """A new temporary file for a spool (tests replace it with a full disk)."""
    return tempfile.TemporaryFile(**options)


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

    A body read from a file (``upload_file``'s parts, an open file) goes straight to disk: its
    bytes were on disk already, the copy mostly lands in the page cache, and keeping such parts
    in RAM is what made a large background upload grow the process by the whole budget (and
    more, as the allocator kept the freed part buffers).

    Args:
        expected: the body's size, when known.
        from_file: the body is read from a file.
    """

    _rolled: bool  # SpooledTemporaryFile's own state, replaced by rollover() below
    _file: Any

    def __init__(self, expected: int | None, *, from_file: bool = False) -> None:
        super().__init__(max_size=SPOOL_MEMORY, prefix="dualwrite-body-")
        self._held = 0
        self._size = 0
        if expected is not None:
            if not from_file and expected <= SPOOL_MEMORY and _BUDGET.take(expected):
                self._held = expected
            else:
                self.rollover()

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if not self._rolled:
            need = self._size + len(data) - self._held
            if need > 0:
                if self._held + need <= SPOOL_MEMORY and _BUDGET.take(need):
                    self._held += need
                else:
                    self.rollover()
        self._size += len(data)
        return super().write(data)

    def rollover(self) -> None:
        """Move the bytes to a temporary file (from :func:`_temporary_file`), then give back
        the memory they held. A failure (a full disk) leaves the spool as it was, and raises."""
        if self._rolled:
            return
        memory: Any = self._file
        disk = _temporary_file(prefix="dualwrite-body-")
        try:
            disk.write(memory.getbuffer())
            disk.seek(memory.tell())
        except BaseException:
            disk.close()
            raise
        self._file = disk
        self._rolled = True
        memory.close()
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


def _remaining(stream: Any) -> tuple[int | None, bool]:
    """Bytes left in ``stream`` from its position, when that is cheap to know (else ``None``),
    and whether the stream reads a file (s3transfer's ``ReadFileChunk``, a regular file)."""
    try:
        if isinstance(stream, memoryview):
            return stream.nbytes, False
        if hasattr(stream, "__len__"):  # s3transfer's ReadFileChunk: its own part's size
            return max(0, len(stream) - int(stream.tell())), True
        info = os.fstat(stream.fileno())
        if stat.S_ISREG(info.st_mode):
            return max(0, info.st_size - int(stream.tell())), True
    except Exception:  # noqa: BLE001 - a guess only; the copy itself finds the real size
        return None, False
    return None, False


def _spool(stream: Any, *, budgeted: bool = False) -> tempfile.SpooledTemporaryFile[bytes]:
    """Copy ``stream`` (a readable object or a ``memoryview``) from its position into a spool."""
    spool: tempfile.SpooledTemporaryFile[bytes]
    if budgeted:
        size, from_file = _remaining(stream)
        spool = _BudgetedSpool(size, from_file=from_file)
    else:
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, prefix="dualwrite-body-")
    try:
        if isinstance(stream, memoryview):
            for offset in range(0, stream.nbytes, _COPY_CHUNK):
                spool.write(stream[offset : offset + _COPY_CHUNK])  # type: ignore[arg-type]
        else:
            _copy_stream(stream, spool)
        spool.flush()
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


_KEPT_BUFFERS = 4  # copy buffers kept for reuse; more copies at once allocate their own
_free_buffers: list[memoryview] = []
_buffers_lock = threading.Lock()


def _copy_stream(stream: Any, spool: Any) -> None:
    """Copy ``stream`` from its position to its end into ``spool``, through a reused buffer.

    A fresh 256 KiB chunk per read lands above glibc's dynamic mmap threshold once that has
    risen, and the allocator then keeps the freed chunks of every copying thread in its arenas.
    A stream with ``readinto`` fills one buffer, taken from a small pool and given back, in
    place; one without it (s3transfer's ``ReadFileChunk``) is read chunk by chunk.
    """
    readinto = getattr(stream, "readinto", None)
    if readinto is None or isinstance(stream, io.TextIOBase):
        while True:
            chunk = stream.read(_COPY_CHUNK)
            if not chunk:
                return
            spool.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
    with _buffers_lock:
        buffer = _free_buffers.pop() if _free_buffers else None
    if buffer is None:
        buffer = memoryview(bytearray(_COPY_CHUNK))
    try:
        while True:
            count = readinto(buffer)
            if not count:
                return
            spool.write(buffer[:count])
    finally:
        with _buffers_lock:
            if len(_free_buffers) < _KEPT_BUFFERS:
                _free_buffers.append(buffer)


def _spool_before_primary(stream: Any) -> tuple[Any, Any, str | None]:
    """Spool a body that cannot rewind, before the primary call: ``(spool, body, error)``.

    Up to :data:`SPOOL_MEMORY` bytes stay in memory, the rest goes to an unbuffered temporary
    file, so that what reached the disk is known to the byte. When the disk refuses (full, or no
    temporary directory), the bytes already read from the caller's stream are not lost: the
    primary gets a stream that replays them, then the rest of the caller's, so the caller's call
    goes on as it would without the wrapper; only the shadow lacks the body (``error`` says why,
    and :meth:`Body.for_shadow` raises it, which journals the key).
    """
    memory = bytearray()
    disk: Any = None
    on_disk = 0
    while True:
        chunk = stream.read(_COPY_CHUNK)
        if not chunk:
            break
        memory += chunk.encode("utf-8") if isinstance(chunk, str) else chunk
        if disk is None and len(memory) <= SPOOL_MEMORY:
            continue
        try:
            if disk is None:
                disk = _temporary_file(prefix="dualwrite-body-", buffering=0)
            on_disk += _write_all(disk, memory)
            memory = bytearray()
        except OSError as exc:
            written = exc.written if isinstance(exc, _PartialWriteError) else 0
            del memory[:written]
            on_disk += written
            error = f"the body could not be spooled for the shadow: {type(exc).__name__}: {exc}"
            return None, _Replay(disk, on_disk, bytes(memory), stream), error
    if disk is None:
        return io.BytesIO(bytes(memory)), None, None
    return disk, None, None


class _PartialWriteError(OSError):
    """A write to the spool's file failed after ``written`` bytes reached it."""

    def __init__(self, written: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.written = written


def _write_all(file: Any, data: bytearray) -> int:
    """Write ``data`` to an unbuffered ``file``; on failure say how much of it was written."""
    view = memoryview(data)
    done = 0
    try:
        while done < len(view):
            count = file.write(view[done:])
            if not count:  # a raw file that takes nothing: no room left
                break
            done += count
    except OSError as exc:
        raise _PartialWriteError(done, exc) from exc
    finally:
        view.release()
    if done < len(data):
        raise _PartialWriteError(done, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    return done


class _Replay(io.RawIOBase):
    """The caller's stream as it was: the bytes a failed spool kept, then the rest of it.

    Not seekable, like the caller's stream: botocore sends it the same way.
    """

    def __init__(self, disk: Any, on_disk: int, kept: bytes, rest: Any) -> None:
        super().__init__()
        self._disk = disk
        self._on_disk = on_disk
        self._kept = kept
        self._rest = rest
        if disk is not None:
            disk.seek(0)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = -1 if size is None or size < 0 else size
        out = bytearray()
        if self._on_disk:
            got = self._disk.read(self._on_disk if want < 0 else min(want, self._on_disk))
            self._on_disk -= len(got)
            out += got
        if self._kept and (want < 0 or len(out) < want):
            take = len(self._kept) if want < 0 else want - len(out)
            out += self._kept[:take]
            self._kept = self._kept[take:]
        if want < 0 or len(out) < want:
            more = self._rest.read(-1 if want < 0 else want - len(out))
            out += more.encode("utf-8") if isinstance(more, str) else (more or b"")
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
            self._disk = None
        super().close()
