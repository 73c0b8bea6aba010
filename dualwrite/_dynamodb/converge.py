"""Giving the DynamoDB shadow one key's state: the changes a write made, reading them back from
the primary, writing them to the shadow (one item, a batch, a transaction), and
:func:`repair_item`, the convergence of one key that ``repair()`` runs.

The shadow receives state, never a replay of the request: conditions are decided by the primary
alone, and the shadow gets the primary's resulting item (a put without condition) or the deletion.
Where the call does not tell the resulting item (an ``UpdateItem`` that asked for ``ALL_OLD``, a
transaction's ``Update``, a PartiQL ``UPDATE``), it is read back from the primary with a
consistent read while the key's lock is held.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from typing import Any

import attrs

from dualwrite._core.converge import retry_until_stable
from dualwrite._core.errors import RepairError
from dualwrite._core.mirror import Mirror, ShadowContext
from dualwrite._dynamodb.calls import _describe
from dualwrite._dynamodb.keys import (
    Level,
    _canon_key,
    _key_for_level,
    _state,
    canonical_item,
)
from dualwrite.events import Write

# Limits of the DynamoDB API.
_BATCH_WRITE_MAX = 25
_BATCH_GET_MAX = 100
_TRANSACTION_MAX = 100
# The shadow's own UnprocessedItems (and a read-back's UnprocessedKeys) are retried this many
# times, with exponential backoff from _RETRY_BASE seconds (0.75 s in all), then reported.
_RETRY_ATTEMPTS = 4
_RETRY_BASE = 0.05


@attrs.frozen
class _Change:
    """One key's state to give the shadow.

    ``item`` is the resulting item, ``None`` for a deletion, or :data:`READ_BACK` when it must be
    read from the primary first. ``write`` is the per-key write (events, journal).
    """

    write: Write
    table: str
    key: Mapping[str, Any] | None
    item: Any
    # This process's count of primary writes of the key when this one was made (see _Later).
    generation: int = -1


_new = object.__new__
_CHANGE_FIELDS = ("write", "table", "key", "item", "generation")
if tuple(f.name for f in attrs.fields(_Change)) != _CHANGE_FIELDS:  # pragma: no cover
    raise AssertionError("_Change changed: update dualwrite._dynamodb.converge.new_change")
_set_write, _set_table, _set_key, _set_item, _set_generation = (
    vars(_Change)[name].__set__ for name in _CHANGE_FIELDS
)


def new_change(
    write: Write, table: str, key: Mapping[str, Any] | None, item: Any, generation: int = -1
) -> _Change:
    """``_Change(...)`` without attrs' keyword ``__init__`` (about twice as fast): a batch
    builds one per key. tests/test_dynamodb_queue_key.py holds it to the attrs class."""
    change = _new(_Change)
    _set_write(change, write)
    _set_table(change, table)
    _set_key(change, key)
    _set_item(change, item)
    _set_generation(change, generation)
    return change


READ_BACK = object()
"""Marks a change whose resulting item is read back from the primary (consistent read)."""


def read_item(client: Any, table: str, key: Mapping[str, Any]) -> Any:
    """Read ``key`` from ``table`` with a consistent read; ``None`` when the item is absent."""
    return client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")


def _converge_one(shadow: Any, table: str, key: Mapping[str, Any], item: Any) -> None:
    """Give the shadow one key's state: the item, put without condition, or its deletion."""
    if item is None:
        shadow.delete_item(TableName=table, Key=key)
    else:
        shadow.put_item(TableName=table, Item=item)


def _resolve(mirror: Mirror, level: Level, changes: list[_Change]) -> list[_Change]:
    """Replace every ``READ_BACK`` item by the primary's current item (``None``: absent)."""
    wanted = [(c.table, c.key) for c in changes if c.item is READ_BACK and c.key is not None]
    if not wanted:
        return changes
    found = _read_many(mirror.primary, level, wanted)
    return [
        attrs.evolve(c, item=found[(c.table, _canon_key(c.key, level))])
        if c.item is READ_BACK and c.key is not None
        else c
        for c in changes
    ]


def _read_many(
    client: Any, level: Level, targets: list[tuple[str, Mapping[str, Any]]]
) -> dict[tuple[str, Hashable], Any]:
    """Consistent reads of many keys: one GetItem, or BatchGetItem with its leftovers retried.

    Every target is in the result, ``None`` for an absent item.
    """
    unique: dict[tuple[str, Hashable], tuple[str, Mapping[str, Any]]] = {}
    for table, key in targets:
        unique.setdefault((table, _canon_key(key, level)), (table, key))
    if len(unique) == 1:
        ((ident, (table, key)),) = unique.items()
        return {ident: read_item(client, table, key)}
    found: dict[tuple[str, Hashable], Any] = dict.fromkeys(unique)
    pending = list(unique.values())
    for start in range(0, len(pending), _BATCH_GET_MAX):
        chunk = pending[start : start + _BATCH_GET_MAX]
        names = {table: tuple(key) for table, key in chunk}
        request: dict[str, dict[str, Any]] = {}
        for table, key in chunk:
            request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
        for attempt in range(_RETRY_ATTEMPTS + 1):
            response = client.batch_get_item(RequestItems=request)
            for table, items in (response.get("Responses") or {}).items():
                for item in items:
                    returned = _canon_key({name: item.get(name) for name in names[table]}, level)
                    found[(table, returned)] = item
            request = {
                table: {**spec, "ConsistentRead": True}
                for table, spec in (response.get("UnprocessedKeys") or {}).items()
                if spec.get("Keys")
            }
            if not request:
                break
            if attempt < _RETRY_ATTEMPTS:
                time.sleep(_RETRY_BASE * 2**attempt)
        for table, spec in request.items():  # still unprocessed: one by one
            for key in spec["Keys"]:
                found[(table, _canon_key(key, level))] = read_item(client, table, key)
    return found


class ShadowUnprocessed(Exception):  # noqa: N818 - botocore names it so: UnprocessedItems
    """The shadow left items of a batch unprocessed after every retry (throttling).

    Raised out of the shadow action, so that the write fails as a whole: every key of the call
    is journaled, and the circuit breaker counts the failure (a shadow that keeps throttling is
    a failing shadow).
    """

    def __init__(self, table: str, left: int, attempts: int) -> None:
        super().__init__(
            f"the shadow table {table!r} left {left} item(s) unprocessed after {attempts} "
            "attempts (throttled)"
        )
        self.response = {"Error": {"Code": "UnprocessedItems", "Message": str(self)}}


def _shadow_batch(ctx: ShadowContext, shadow_table: str, changes: list[_Change]) -> None:
    """Write resolved changes of one table to the shadow with BatchWriteItem.

    The shadow's own ``UnprocessedItems`` are retried with backoff.

    Raises:
        ShadowUnprocessed: items were still unprocessed after the last attempt.
        Exception: what a failing call raises.
    """
    for start in range(0, len(changes), _BATCH_WRITE_MAX):
        chunk = changes[start : start + _BATCH_WRITE_MAX]
        pending = [_request_of(c) for c in chunk]
        for attempt in range(_RETRY_ATTEMPTS + 1):
            response = ctx.shadow.batch_write_item(RequestItems={shadow_table: pending})
            pending = list((response.get("UnprocessedItems") or {}).get(shadow_table) or [])
            if not pending:
                break
            if attempt < _RETRY_ATTEMPTS:
                time.sleep(_RETRY_BASE * 2**attempt)
        if pending:
            raise ShadowUnprocessed(shadow_table, len(pending), _RETRY_ATTEMPTS + 1)


def _request_of(change: _Change) -> dict[str, Any]:
    if change.item is None:
        return {"DeleteRequest": {"Key": change.key}}
    return {"PutRequest": {"Item": change.item}}


def _change_ident(change: _Change, level: Level) -> Hashable:
    """What identifies a change's request in an ``UnprocessedItems`` echo.

    A put is identified by its whole item and a delete by its key, each in the canonical form
    of an attribute map (:func:`_canon_key`): the echo is parsed from JSON, and nothing
    promises its attributes (or a set's elements) come back in the order they were sent.
    """
    if change.item is None:
        return ("D", _canon_key(change.key, level))
    return ("P", _canon_key(change.item, level))


def _request_ident(request: Any, level: Level) -> Hashable:
    """What identifies a request of an ``UnprocessedItems`` echo (see :func:`_change_ident`)."""
    if not isinstance(request, Mapping):
        return None
    delete, put = request.get("DeleteRequest"), request.get("PutRequest")
    if isinstance(delete, Mapping) and isinstance(delete.get("Key"), Mapping):
        return ("D", _canon_key(delete["Key"], level))
    if isinstance(put, Mapping) and isinstance(put.get("Item"), Mapping):
        return ("P", _canon_key(put["Item"], level))
    return None


def _shadow_transaction(
    ctx: ShadowContext, changes: list[_Change], shadow_names: Mapping[str, str]
) -> None:
    """Write resolved changes to the shadow as one TransactWriteItems."""
    operations = []
    for change in changes:
        table = shadow_names[change.table]
        if change.item is None:
            operations.append({"Delete": {"TableName": table, "Key": change.key}})
        else:
            operations.append({"Put": {"TableName": table, "Item": change.item}})
    # The primary's transaction held at most 100 items, so this is one transaction; the loop
    # only matters if that limit ever grows on one side before the other. No ClientRequestToken:
    # botocore makes a fresh one, since the caller's token names the primary's request.
    for start in range(0, len(operations), _TRANSACTION_MAX):
        ctx.shadow.transact_write_items(TransactItems=operations[start : start + _TRANSACTION_MAX])


# -- repair ---------------------------------------------------------------------------------------


def repair_item(
    mirror: Mirror,
    table: str,
    key: str | Mapping[str, Any],
    *,
    attempts: int | None = None,
    deadline: float | None = None,
) -> str:
    """Make the shadow's item of ``key`` equal to the primary's current item.

    Reads the key with a consistent read on the primary and puts the item on the shadow, or
    deletes the shadow's when the primary has none; then reads the primary again and redoes the
    copy if a live write changed the item meanwhile (at most ``attempts`` copies in all).
    Idempotent and order-free. No lock of the live write path is held: a live write between
    the read and the put changes the primary's item, so the copy is redone; one after it
    reaches the shadow after the copy.

    Args:
        mirror: the wrapped pair the table belongs to.
        table: the primary table.
        key: the key, typed (``{"pk": {"S": "a"}}``, as the journal keeps it) or, for a
            resource-level pair, Python values.
        attempts: copies at most (default: :data:`dualwrite._core.converge.ATTEMPTS`).
        deadline: a ``time.monotonic()`` instant after which no new attempt starts.

    Returns:
        ``"copied"`` or ``"deleted"``.

    Raises:
        RepairError: no shadow table name, the item kept changing on the primary, or the
            deadline passed.
        botocore.exceptions.ClientError: a read or write failed.
    """

    write = _describe(mirror, "Repair", table, None)
    shadow_table = write.shadow_resource
    if shadow_table is None:
        msg = f"no shadow name for table {table!r}"
        raise RepairError(msg)
    if not isinstance(key, Mapping):
        msg = f"a DynamoDB key is a map of attribute values; got {type(key).__name__}"
        raise RepairError(msg)
    state = _state(mirror)
    item_key = _key_for_level(key, state.level)

    def version_now() -> Hashable:
        item = read_item(mirror.primary, table, item_key)
        return None if item is None else canonical_item(item, state.level)

    def copy_once() -> tuple[str, Hashable]:
        item = read_item(mirror.primary, table, item_key)
        _converge_one(mirror.shadow, shadow_table, item_key, item)
        if item is None:
            return "deleted", None
        return "copied", canonical_item(item, state.level)

    return retry_until_stable(copy_once, version_now, attempts=attempts, deadline=deadline)
