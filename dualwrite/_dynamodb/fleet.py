"""Fleet convergence: after a key's shadow write, the primary is read once more and the shadow
given its current state until both agree (:func:`_settle`), so that writers in several
processes racing on one key still leave the shadow equal; :class:`_Later` counts this
process's own writes of a key, which settle it after this one.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import attrs

from dualwrite._core.errors import ErrorInfo
from dualwrite._core.mirror import Mirror, ShadowContext
from dualwrite._dynamodb.calls import Call
from dualwrite._dynamodb.converge import _Change, _converge_one, _read_many
from dualwrite._dynamodb.keys import Level, _canon_key, canonical_item, lock_name


class _Later:
    """Per writer, how many primary writes of each key this process made so far.

    In background mode a key's shadow jobs run in order on the key's queue, after the callers
    returned: when a job settles its key, a later write of the same key by this process may
    already be on the primary, with its own job (which writes the newest state and settles it
    again) queued behind. That job makes further rounds here redundant, and without this
    count a key written continuously by many threads of one process would be reported
    unsettled. Another process's writes are not counted: they are what the rounds are for.
    The counts are dropped wholesale past a bound: a missing count only means the rounds run.
    """

    _BOUND = 100_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: weakref.WeakKeyDictionary[Any, dict[Hashable, int]] = (
            weakref.WeakKeyDictionary()
        )

    def bump(self, mirror: Mirror, level: Level, table: str, key: Mapping[str, Any]) -> int:
        """Count one primary write of ``key``; return the new count."""
        ident = (lock_name(table), _canon_key(key, level))
        with self._lock:
            counts = self._counts.setdefault(mirror.writer, {})
            if len(counts) >= self._BOUND:
                counts.clear()
            counts[ident] = counts.get(ident, 0) + 1
            return counts[ident]

    def after(self, mirror: Mirror, level: Level, change: _Change) -> bool:
        """Whether this process wrote ``change``'s key on the primary again since."""
        if change.generation < 0 or change.key is None:
            return False
        ident = (lock_name(change.table), _canon_key(change.key, level))
        with self._lock:
            counts = self._counts.get(mirror.writer)
            return counts is not None and counts.get(ident, 0) > change.generation


_LATER = _Later()


def _counting(
    mirror: Mirror, level: Level, call: Call, targets: Sequence[tuple[str, Any]]
) -> tuple[Call, list[int]]:
    """``call``, counting each of ``targets`` as written once it succeeded (see :class:`_Later`).

    Returns the call and the list that receives the counts (in ``targets`` order). With
    ``single_writer`` nothing is counted (no fleet check asks): the call is returned as it is,
    with a count of -1 per target, which a check made all the same (``single_writer`` turned
    off meanwhile) takes as "not known", so it runs its rounds.
    """
    if mirror.writer.single_writer:
        return call, [-1] * len(targets)
    counted: list[int] = []

    def counting(**kwargs: Any) -> Any:
        response = call(**kwargs)
        _count(mirror, level, targets, counted)
        return response

    return counting, counted


def _count(
    mirror: Mirror, level: Level, targets: Sequence[tuple[str, Any]], counted: list[int]
) -> None:
    """Count each of ``targets`` as written once (see :class:`_Later`), into ``counted``."""
    counted.extend(
        _LATER.bump(mirror, level, table, key) if key is not None else -1 for table, key in targets
    )


# Rounds of "the primary moved on: give the shadow its current state" before a key is reported
# (journaled) as unsettled; each round is one consistent read and one shadow write of that key.
_SETTLE_ROUNDS = 3


def _settle(ctx: ShadowContext, level: Level, changes: Sequence[_Change]) -> None:
    """Converge every key whose primary moved on while its image was written to the shadow.

    Several processes may write one key at once, and a later write's shadow call may land
    before an earlier one's, leaving the older image on the shadow with no error anywhere. So
    after the shadow write, the primary is read once more with a consistent read (GetItem for
    one key, BatchGetItem for several) and compared with the image just written. Where the
    primary moved on, the shadow gets the primary's current state and the primary is read
    again, until they agree (at most :data:`_SETTLE_ROUNDS` rounds; a key still moving after
    that is reported ``shadow_failed`` and so journaled). Every shadow write is followed by such
    a read, so whichever writer's shadow write lands last also leaves the shadow equal.

    Skipped with ``DualWriter(single_writer=True)``. ``changes`` carry their resolved item
    (``None``: deleted) and their shadow table in ``change.write.shadow_resource``; a change
    whose key is unknown cannot be read back and is left out (it is reported ``unsupported``).

    Raises:
        Exception: what a read of the primary or a write of the shadow raises.
    """
    if ctx.mirror.writer.single_writer:
        return
    ctx.written()
    mirror = ctx.mirror
    pending = [c for c in changes if c.key is not None and c.write.shadow_resource is not None]
    for round_ in range(_SETTLE_ROUNDS + 1):
        # A later same-key write of this process settles the key after this one (_Later).
        pending = [c for c in pending if not _LATER.after(mirror, level, c)]
        if not pending:
            return
        targets = [(c.table, c.key) for c in pending if c.key is not None]
        found = _read_many(mirror.primary, level, targets)
        moved = []
        for change in pending:
            now = found[(change.table, _canon_key(change.key, level))]
            if not _same_item(now, change.item, level):
                moved.append(attrs.evolve(change, item=now))
        pending = moved
        if pending and round_ == _SETTLE_ROUNDS:
            pending = [c for c in pending if not _LATER.after(mirror, level, c)]
        if round_ < _SETTLE_ROUNDS:
            for change in pending:
                assert change.key is not None
                _converge_one(
                    ctx.shadow, str(change.write.shadow_resource), change.key, change.item
                )
    info = ErrorInfo(
        type="Unsettled",
        code="Unsettled",
        message=(
            f"the item kept changing on the primary during {_SETTLE_ROUNDS} rounds of "
            "convergence; journaled for repair"
        ),
    )
    for change in pending:
        ctx.failed(change.write, info)


def _same_item(primary: Any, image: Any, level: Level) -> bool:
    """Whether the primary's item (``None``: absent) equals the image written to the shadow."""
    if primary is None or image is None:
        return primary is None and image is None
    return canonical_item(primary, level) == canonical_item(image, level)
