"""Write-ahead intents, and how a primary failure settles one.

Holds :class:`Intent` (the ``pending`` journal entries of one flag-on write, taken before its
primary call and removed once the shadow holds the state), the per-thread count of failed
journal adds (:func:`journal_faults`), and the per-thread count of the primary's sent requests
(:func:`track_sends`, :func:`call_primary`), which tells a failure before the request left from
one that may have changed the primary.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dualwrite._core.entries import entry_identity
from dualwrite._core.errors import ambiguous, describe_error
from dualwrite.events import Write

if TYPE_CHECKING:
    from dualwrite._core.mirror import Mirror
    from dualwrite._core.runtime import Runtime
    from dualwrite.journal import Entry


class _Count(threading.local):
    """A per-thread count, 0 until set: a class default, so that reading it in a thread that
    never set it costs no AttributeError (``getattr(local, name, 0)`` raises and catches one:
    about 350 ns)."""

    count = 0


_sent = _Count()
_faults = _Count()
# An async client's request leaves from its event loop's thread, not from the worker thread
# that waits for it (dualwrite._core.aio): there the sends are counted into the box of the
# task that makes the call, and added to the waiting thread's count.
_send_box: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "dualwrite_send_box", default=None
)


def journal_faults() -> int:
    """How many journal adds failed in this thread so far (see :meth:`Mirror.write_ahead`)."""
    return _faults.count


def note_journal_fault() -> None:
    """Count a failed journal add of this thread."""
    _faults.count = journal_faults() + 1


def _count_send(**_: Any) -> None:
    """``before-send`` handler on the primary client: a request is leaving (returns ``None``)."""
    box = _send_box.get()
    if box is not None:
        box[0] += 1
        return
    _sent.count += 1


def count_sends_into(box: list[int]) -> None:
    """Count the requests the current context sends into ``box`` (an event loop's task that
    makes a call for a waiting thread; see :func:`add_sends`)."""
    _send_box.set(box)


def add_sends(count: int) -> None:
    """Add ``count`` requests sent for this thread from elsewhere (its event loop)."""
    if count:
        _sent.count += count


def track_sends(client: Any) -> bool:
    """Count the primary client's sent requests per thread, to classify its failures.

    Registered first, so that it runs before any handler that answers the request itself
    (moto's in-process stubber). Returns whether it could be registered.
    """
    events = getattr(getattr(client, "meta", None), "events", None)
    register = getattr(events, "register_first", None)
    if register is None:
        return False
    try:
        register("before-send.*", _count_send, unique_id="dualwrite-count-sends")
    except Exception:  # noqa: BLE001 - an unusual client: classify by the exception alone
        return False
    return True


def call_primary(
    intent: Intent | None,
    call: Callable[..., Any],
    params: Mapping[str, Any],
    *,
    tracks_sends: bool,
) -> Any:
    """Call the primary; on an exception settle ``intent`` as the failure says, and re-raise.

    Args:
        intent: the write's intent (``None`` or empty: the primary is just called).
        call: the primary client's bound method.
        params: the request.
        tracks_sends: whether the primary's sent requests are counted (:func:`track_sends`).
    """
    if intent is None or not intent:
        return call(**params)
    _sent.count = 0
    try:
        return call(**params)
    except BaseException as exc:
        intent.primary_failed(exc, sent=_sent.count > 0 if tracks_sends else None)
        raise


class Intent:
    """The write-ahead intent of one flag-on write: ``pending`` entries journaled before the
    primary call, one per key, removed once the shadow holds the state.

    An empty intent (no journal, or a journal that failed to record it) is falsy and every
    method is a no-op, except that the failures it would settle are still journaled.
    """

    __slots__ = ("_ids", "_mirror", "_writer", "kept", "keys", "write")

    def __init__(
        self,
        writer: Runtime,
        write: Write,
        keys: Sequence[Any] | None,
        ids: list[tuple[Entry, str]],
        mirror: Mirror | None = None,
    ) -> None:
        self._writer = writer
        self._mirror = mirror
        self.write = write
        self.keys = keys
        self._ids = ids
        self.kept = False

    def __bool__(self) -> bool:
        return bool(self._ids)

    @property
    def ids(self) -> list[str]:
        """The journal ids this intent still owns."""
        return [entry_id for _, entry_id in self._ids]

    def primary(self, call: Callable[..., Any], params: Mapping[str, Any]) -> Any:
        """Call the primary; on an exception settle this intent as it says, and re-raise
        (see :meth:`Mirror.call_primary`)."""
        if self._mirror is None:
            return call(**params)
        return self._mirror.call_primary(self, call, params)

    def part(self, write: Write) -> Intent:
        """Hand this intent's entries for ``write``'s key over to a new intent (one key of a
        multi-key write, queued as its own job)."""
        if self._mirror is None:  # nothing journaled: nothing to hand over
            return Intent(self._writer, write, None, [], None)
        wanted = entry_identity(self._mirror.plugin, write)
        mine = [(e, i) for e, i in self._ids if e.identity() == wanted]
        self._ids = [(e, i) for e, i in self._ids if e.identity() != wanted]
        return Intent(self._writer, write, None, mine, self._mirror)

    def keep(self) -> None:
        """Leave the entries in the journal (what should replace them could not be recorded)."""
        self.kept = True

    def settle(self) -> None:
        """Remove the entries (the shadow holds the state, or their replacement is durable)."""
        if not self._ids:  # nothing journaled (no journal), or already settled
            return
        ids = self.ids
        self._ids = []
        if ids and not self.kept:
            self._writer.unjournal(self.write, ids)

    def primary_failed(self, exc: BaseException, *, sent: bool | None) -> None:
        """The primary raised: journal ``uncertain`` if the write may have happened, then
        remove the intent (kept if the ``uncertain`` entry could not be recorded)."""
        if ambiguous(exc, sent=sent):
            info = describe_error(exc)
            if not self._writer.journal_now(
                self.write, self.keys, "uncertain", info.code or info.type
            ):
                self.kept = True
        self.settle()
