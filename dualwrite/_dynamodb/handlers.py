"""DynamoDB: which operation is mirrored how, and how the shadow converges to the primary.

Three tables classify every operation of botocore's DynamoDB model (a test walks the model and
fails on any operation missing from them):

* ``HANDLERS``: item writes mirrored to the shadow, each by a function below;
* ``UNSUPPORTED``: writes that cannot be mirrored and are reported as ``unsupported``;
* ``PRIMARY_ONLY``: reads and control-plane calls, which go to the primary only.

The shadow receives state, never a replay of the request: conditions are decided by the primary
alone, and the shadow gets the primary's resulting item (a put without condition) or the deletion.
Where the call does not tell the resulting item (an ``UpdateItem`` that asked for ``ALL_OLD``, a
transaction's ``Update``, a PartiQL ``UPDATE``), it is read back from the primary with a
consistent read while the key's lock is held.

Attribute values keep the format of the caller's level: typed ``AttributeValue`` dicts
(``{"pk": {"S": "a"}}``) through a low-level client, plain Python values (``{"pk": "a"}``, numbers
as ``Decimal``) through a resource or ``Table``, whose client (de)serialises both sides. So is
:attr:`Write.key <dualwrite.events.Write.key>`. Locks and matching use a canonical form of the
values, the same for both levels.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import attrs
from boto3.dynamodb.types import Binary, TypeDeserializer

from dualwrite._core.converge import retry_until_stable
from dualwrite._core.errors import ErrorInfo, RepairError, SkipShadow, UnsupportedWrite, safe_invoke
from dualwrite._core.mirror import Mirror, ShadowContext
from dualwrite._core.snapshot import snapshot
from dualwrite.events import Unsupported, Write
from dualwrite.exceptions import ShadowWriteError

logger = logging.getLogger("dualwrite")

Level = Literal["client", "resource"]
"""The format of attribute values: typed (low-level client) or Python (resource, ``Table``)."""

Call = Callable[..., Any]
Handler = Callable[[Mirror, Call, dict[str, Any], Any], Any]

UNKNOWN_TABLE = "<unknown table>"
"""``Write.resource`` of a PartiQL write whose table could not be read from the statement."""

# Limits of the DynamoDB API.
_BATCH_WRITE_MAX = 25
_BATCH_GET_MAX = 100
_TRANSACTION_MAX = 100
# The shadow's own UnprocessedItems (and a read-back's UnprocessedKeys) are retried this many
# times, with exponential backoff from _RETRY_BASE seconds (0.75 s in all), then reported.
_RETRY_ATTEMPTS = 4
_RETRY_BASE = 0.05
# A table whose DescribeTable failed is not described again before this many seconds.
_SCHEMA_RETRY = 60.0
_SCHEMA_FAILURES_MAX = 1000


# -- per-client state ----------------------------------------------------------------------


class KeySchemas:
    """Primary table name -> its key attribute names (hash first), from a cached DescribeTable.

    A ``PutItem`` names no key: the key is the item's key attributes, which only the table's key
    schema tells. The first write to each table through a wrapped client describes it once on
    the primary; where that is denied (no ``dynamodb:DescribeTable`` permission), on the other
    account's table of the same name mapping (both tables share their key schema). When
    neither can be described, the write's key is unknown (``None``): it is still mirrored as
    well as can be and reported ``unsupported`` (a table-level journal entry); the table is
    described again after a minute.

    Args:
        client: the client of the account written first.
        other: the other account's client, asked when ``client`` cannot describe the table.
        other_name: the other account's name of a table, or ``None`` when it has none.
    """

    def __init__(
        self,
        client: Any,
        other: Any = None,
        other_name: Callable[[str], str | None] | None = None,
    ) -> None:
        self._client = client
        self._other = other
        self._other_name = other_name
        self._lock = threading.Lock()
        self._known: dict[str, tuple[str, ...]] = {}
        self._failed: dict[str, float] = {}

    def get(self, table: str) -> tuple[str, ...] | None:
        """Return the key attribute names of ``table``, or ``None`` if they cannot be known."""
        known = self._known.get(table)
        if known is not None:
            return known
        failed_at = self._failed.get(table)
        if failed_at is not None and time.monotonic() - failed_at < _SCHEMA_RETRY:
            return None
        names, code = _describe_key(self._client, table)
        if names is None and self._other is not None:
            other_table, exc = safe_invoke(self._other_name or _same_name, table)
            if exc is None and isinstance(other_table, str) and other_table:
                names, other_code = _describe_key(self._other, other_table)
                code = f"{code}; the other account's: {other_code}"
        if names is None:
            log = logger.debug if code.startswith("ResourceNotFoundException") else logger.warning
            log(
                "dualwrite: DescribeTable of table %r failed (%s); its writes whose key cannot "
                "be read otherwise are reported unsupported (a table-level journal entry)",
                table,
                code,
            )
            with self._lock:
                if len(self._failed) >= _SCHEMA_FAILURES_MAX:
                    self._failed.clear()
                self._failed[table] = time.monotonic()
            return None
        with self._lock:
            self._known[table] = names
            self._failed.pop(table, None)
        return names

    def known(self, table: str) -> tuple[str, ...] | None:
        """The key attribute names of ``table`` if already described; never calls DynamoDB."""
        return self._known.get(table)

    def key_of(self, table: str, item: Any) -> dict[str, Any] | None:
        """Return the key of ``item`` in ``table``, or ``None`` if it cannot be known."""
        if not isinstance(item, Mapping):
            return None
        names = self.get(table)
        if names is None:
            return None
        try:
            return {name: item[name] for name in names}
        except Exception:  # noqa: BLE001 - a missing attribute: the primary rejects the item
            return None


def _same_name(table: str) -> str:
    return table


def _describe_key(client: Any, table: str) -> tuple[tuple[str, ...] | None, str]:
    """The key attribute names of ``table`` (hash first), or ``None`` and why not."""
    try:
        schema = client.describe_table(TableName=table)["Table"]["KeySchema"]
        return tuple(
            str(entry["AttributeName"])
            for entry in sorted(schema, key=lambda entry: entry["KeyType"] != "HASH")
        ), ""
    except Exception as exc:  # noqa: BLE001 - the write goes on without the schema
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return None, str(code or type(exc).__name__)


@attrs.frozen
class State:
    level: Level
    schemas: KeySchemas


def _state(mirror: Mirror) -> State:
    return mirror.state  # type: ignore[no-any-return]


# -- canonical values: locks and matching ---------------------------------------------------


def canonical(value: Any, level: Level) -> Hashable:
    """A hashable form of an attribute value, equal for equal values at either level.

    ``{"N": "1.0"}`` (client level), ``1`` and ``Decimal("1")`` (resource level) all give the
    same result; booleans and numbers stay distinct.
    """
    try:
        if level == "client":
            return _canon_typed(value)
        return _canon_python(value)
    except Exception:  # noqa: BLE001 - a malformed value: the primary judges it, not the wrapper
        return ("?", id(value))


def _number(text: Any) -> Hashable:
    if not isinstance(text, (str, int, Decimal, float)) or isinstance(text, bool):
        return ("N?", _repr(text))
    try:
        return ("N", Decimal(str(text)))
    except (InvalidOperation, ValueError):
        return ("N?", _repr(text))


def _canon_typed(value: Any) -> Hashable:
    if type(value) is dict and len(value) == 1:  # the common case, without an ABC check
        ((tag, inner),) = value.items()
        if tag == "S" and type(inner) is str:
            return ("S", inner)
    if isinstance(value, Mapping) and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "S" and isinstance(inner, str):
            return ("S", inner)
        if tag == "N":
            return _number(inner)
        if tag == "B":
            return ("B", _bytes(inner))
        if tag == "BOOL":
            return ("BOOL", bool(inner))
        if tag == "NULL":
            return ("NULL",)
        if tag in ("SS", "NS", "BS") and isinstance(inner, (list, tuple, set, frozenset)):
            element = tag[0]
            return ("SET", frozenset(_canon_typed({element: e}) for e in inner))
        if tag == "L" and isinstance(inner, (list, tuple)):
            return ("L", tuple(_canon_typed(e) for e in inner))
        if tag == "M" and isinstance(inner, Mapping):
            return ("M", _canon_map(inner, _canon_typed))
    return ("?", _repr(value))


def _repr(value: Any) -> str:
    """``repr(value)``, or its type's name when even that raises (a malformed request)."""
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - an object whose __repr__ raises
        return f"<{type(value).__name__}>"


def _canon_python(value: Any) -> Hashable:
    if type(value) is str:  # the common case first
        return ("S", value)
    if value is None:
        return ("NULL",)
    if isinstance(value, bool):
        return ("BOOL", value)
    if isinstance(value, str):
        return ("S", value)
    if isinstance(value, (int, Decimal, float)):
        return _number(value)
    if isinstance(value, (bytes, bytearray, memoryview, Binary)):
        return ("B", _bytes(value))
    if isinstance(value, (set, frozenset)):
        return ("SET", frozenset(_canon_python(e) for e in value))
    if isinstance(value, (list, tuple)):
        return ("L", tuple(_canon_python(e) for e in value))
    if isinstance(value, Mapping):
        return ("M", _canon_map(value, _canon_python))
    return ("?", _repr(value))


def _canon_map(value: Mapping[Any, Any], canon: Callable[[Any], Hashable]) -> Hashable:
    # Names are unique within a map, so sorting the pairs compares names only.
    return tuple(sorted([(str(k), canon(v)) for k, v in value.items()]))


def _bytes(value: Any) -> bytes:
    if isinstance(value, Binary):
        return bytes(value.value)  # type: ignore[attr-defined] # untyped in the stubs
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode(errors="surrogatepass")
    return _repr(value).encode(errors="surrogatepass")


def well_formed_key(key: Any, level: Level, schema: tuple[str, ...] | None = None) -> bool:
    """Whether ``key`` is a key DynamoDB could accept: a map of key attribute names (those of
    ``schema`` when known) to a string, number or binary value in the format of ``level``.

    A key that is not well formed cannot be read back, locked sensibly or journaled for repair;
    the service refuses it, and should it not, the write is reported ``unsupported``.
    """
    try:
        if not isinstance(key, Mapping) or not key:
            return False
        if schema is not None and set(key) != set(schema):
            return False
        return all(isinstance(name, str) and _key_value(v, level) for name, v in key.items())
    except Exception:  # noqa: BLE001 - a mapping that misbehaves is no key
        return False


def _key_value(value: Any, level: Level) -> bool:
    if level == "client":
        if not isinstance(value, Mapping) or len(value) != 1:
            return False
        ((tag, inner),) = value.items()
        if tag in ("S", "N"):
            return isinstance(inner, str)
        return tag == "B" and isinstance(inner, (bytes, bytearray, str))
    if isinstance(value, bool):
        return False
    return isinstance(value, (str, int, Decimal, bytes, bytearray, Binary))


def _canon_key(key: Mapping[str, Any] | None, level: Level) -> Hashable:
    """A hashable form of a key, equal for equal keys at either level; never raises."""
    if key is None:
        return None
    try:
        return _canon_map(key, _canon_typed if level == "client" else _canon_python)
    except Exception:  # noqa: BLE001 - a malformed key: one lock for all such, never an error
        return ("?",)


# -- locks --------------------------------------------------------------------------------------


def lock_name(table: str) -> str:
    """A table ARN and the table's name share their locks."""
    if table.startswith("arn:") and ":table/" in table:
        return table.split(":table/", 1)[1].split("/", 1)[0]
    return table


def _holding(
    mirror: Mirror, level: Level, targets: Sequence[tuple[str, Mapping[str, Any] | None]]
) -> contextlib.AbstractContextManager[Any]:
    """The per-key locks of every ``(table, key)``, held from the primary call to the shadow's.

    A key of ``None`` (unknown) takes the table's lock. Several locks are taken in one global
    order (by identity of the striped lock), so that calls holding several never deadlock.
    """
    # The canonical key is passed as its hash: already hashable, it needs no further freezing.
    if len(targets) == 1:
        table, key = targets[0]
        return mirror.key_lock(lock_name(table), hash(_canon_key(key, level)))
    locks = {
        id(lock): lock
        for lock in (
            mirror.key_lock(lock_name(table), hash(_canon_key(key, level)))
            for table, key in targets
        )
    }
    if len(locks) == 1:
        return next(iter(locks.values()))
    return _all_of([lock for _, lock in sorted(locks.items())])


class _all_of:  # noqa: N801 - used like a function
    """Several locks held as one, in the given order; reusable (``Mirror.call`` may take it again
    after waiting without it, in background mode with stages)."""

    def __init__(self, locks: Sequence[contextlib.AbstractContextManager[Any]]) -> None:
        self._locks = locks
        self._held = threading.local()

    def __enter__(self) -> None:
        stack = contextlib.ExitStack()
        with contextlib.ExitStack() as failing:
            failing.push(stack)  # a lock that raises releases those already taken
            for lock in self._locks:
                stack.enter_context(lock)
            failing.pop_all()
        self._held.stack = stack

    def __exit__(self, *exc_info: object) -> None:
        self._held.stack.close()


# -- describing, deciding ------------------------------------------------------------------------


def _describe(mirror: Mirror, operation: str, table: str, key: Mapping[str, Any] | None) -> Write:
    write = mirror.describe(operation, table, None if key is None else dict(key))
    shadow = write.shadow_resource
    if shadow is not None and shadow == table and lock_name(table) != table:
        # A table ARN names the primary's account: on the shadow the same name means the
        # shadow's own table (mapped by names= as the name is), never a cross-account write
        # back into the primary.
        write = attrs.evolve(write, shadow_resource=mirror.shadow_name(lock_name(table)))
    return write


def _decided(
    mirror: Mirror, operation: str, table: str, key: Mapping[str, Any] | None
) -> Write | None:
    """The write to mirror, or ``None`` when the flag is off for it."""
    write, on = mirror.decide(_describe(mirror, operation, table, key))
    return write if on else None


def _table_of(params: Mapping[str, Any]) -> str | None:
    for name in ("TableName", "TargetTableName", "TableArn", "ResourceArn"):
        value = params.get(name)
        if isinstance(value, str) and value:
            return value
    creation = params.get("TableCreationParameters")
    if isinstance(creation, Mapping) and isinstance(creation.get("TableName"), str):
        return str(creation["TableName"])
    return None


# -- converging the shadow ------------------------------------------------------------------------


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
    """What identifies a change's request in an ``UnprocessedItems`` echo."""
    if change.item is None:
        return ("D", _canon_key(change.key, level))
    return ("P", canonical(change.item, level))


def _request_ident(request: Any, level: Level) -> Hashable:
    if not isinstance(request, Mapping):
        return None
    delete, put = request.get("DeleteRequest"), request.get("PutRequest")
    if isinstance(delete, Mapping) and isinstance(delete.get("Key"), Mapping):
        return ("D", _canon_key(delete["Key"], level))
    if isinstance(put, Mapping):
        return ("P", canonical(put.get("Item"), level))
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


# -- fleet convergence ----------------------------------------------------------------------------


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

    Returns the call and the list that receives the counts (in ``targets`` order).
    """
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
    return canonical(primary, level) == canonical(image, level)


def _unknown_keys(mirror: Mirror, changes: Sequence[_Change]) -> None:
    """Report the changes whose key could not be read (no key schema from either account).

    Their items went to the shadow as well as can be, but neither ordered by key nor checked:
    each is reported ``unsupported`` with no key, which the journal keeps as a table-level
    entry until a ``diff``/``copy`` of the table settles it.
    """
    for change in changes:
        if change.key is None:
            mirror.unsupported(change.write, *_unknown_key(change.table))


def _unknown_key(table: str) -> tuple[str, str]:
    return "unknown-key", (
        f"the key schema of table {table!r} could not be read from either account "
        "(DescribeTable denied or failed), so the item's key is unknown; the item was written "
        "to the shadow unordered and unchecked: run `dualwrite diff`/`copy` on the table"
    )


def _main_write(flagged: Mapping[str, Write]) -> Write:
    """The write a call spanning tables is reported under: its first table with a shadow name."""
    for write in flagged.values():
        if write.shadow_resource is not None:
            return attrs.evolve(write, key=None)
    return attrs.evolve(next(iter(flagged.values())), key=None)


def _mapped(mirror: Mirror, flagged: Mapping[str, Write], changes: list[_Change]) -> list[_Change]:
    """The changes whose table has a shadow name; the others are reported, key by key."""
    mapped = []
    for change in changes:
        if flagged[change.table].shadow_resource is None:
            mirror.unsupported(
                change.write, "unmapped", f"no shadow name for dynamodb table {change.table!r}"
            )
        else:
            mapped.append(change)
    return mapped


def _batches_by_table(
    ctx: ShadowContext, flagged: Mapping[str, Write], changes: list[_Change]
) -> None:
    """Write resolved changes with one BatchWriteItem per table.

    Every table is written even when another fails; then the first failure is raised, so the
    write fails as a whole (every key of the call journaled, the circuit breaker told).
    """
    by_table: dict[str, list[_Change]] = {}
    for change in changes:
        by_table.setdefault(change.table, []).append(change)
    failure: Exception | None = None
    for table, table_changes in by_table.items():
        try:
            _shadow_batch(ctx, str(flagged[table].shadow_resource), table_changes)
        except Exception as exc:  # noqa: BLE001 - raised below, once every table was tried
            failure = failure or exc
    if failure is not None:
        raise failure


Done = Callable[[Any], list[_Change]]
"""Given the primary's response, the changes it made (e.g. a batch minus its UnprocessedItems)."""
ToShadow = Callable[[ShadowContext, list[_Change]], list[_Change]]
"""Writes changes, all with a shadow name, to the shadow in one go (sync mode); returns them
resolved (every item read back where it had to be), for :func:`_settle`."""


def _call_keys(
    mirror: Mirror,
    state: State,
    call: Call,
    params: Mapping[str, Any],
    flagged: Mapping[str, Write],
    changes: list[_Change],
    done: Done,
    to_shadow: ToShadow,
) -> Any:
    """Call the primary once for a write of several keys, then give the shadow what it changed.

    Sync mode: one shadow call for all the changes (a batch, a transaction), under the locks of
    every key, reported under the call's first table, then one read of the primary to settle
    them (:func:`_settle`); every key is journaled with its own table if that fails.

    Background mode: one job per changed key, queued on that key's own worker queue (a call's
    keys do not share one queue, so a batch cannot overtake, or be overtaken by, another write
    of one of its keys). Each job reads its key back from the primary when it runs, with a
    consistent read, puts or deletes it, and settles it: a job that runs later than it was
    queued still writes the newest state, so the key's queue order is all that ordering needs.
    """
    if not mirror.writer.background:

        def action(ctx: ShadowContext, response: Any) -> None:
            mapped = _mapped(mirror, flagged, done(response))
            if not mapped:
                raise SkipShadow
            written = to_shadow(ctx, mapped)
            _unknown_keys(mirror, written)
            _settle(ctx, state.level, written)

        hold = _holding(mirror, state.level, [(c.table, c.key) for c in changes])
        keys = [c.write for c in changes]
        return mirror.call(_main_write(flagged), call, params, action, keys=keys, hold=hold)

    # Same-key primary calls stay serialised in this process, as on every other path; the
    # locks are released before the jobs are queued, so no caller waits for room holding them.
    # Every key's intent is journaled before the primary call; each job removes its own.
    with mirror.write_ahead(_main_write(flagged), [c.write for c in changes]) as intent:
        response = mirror.locked(
            _main_write(flagged),
            [c.write for c in changes],
            _holding(mirror, state.level, [(c.table, c.key) for c in changes]),
            lambda: intent.primary(call, params),
        )
        mapped, exc = safe_invoke(lambda: _mapped(mirror, flagged, done(response)))
        if exc is not None:  # a response this module cannot read: journal every key, never raise
            mirror.run_shadow(
                _main_write(flagged),
                _raising(exc),
                acked_at=time.perf_counter(),
                keys=[c.write for c in changes],
                intent=intent,
            )
            return response
        for change in mapped:
            counted: list[int] = []
            mirror.shadow_acked(
                change.write,
                response,
                _converge_key(mirror, state, change, counted),
                hold=_holding(mirror, state.level, [(change.table, change.key)]),
                intent=intent.part(change.write),
                acked=functools.partial(
                    _count, mirror, state.level, [(change.table, change.key)], counted
                ),
            )
    return response


def _converge_key(
    mirror: Mirror, state: State, change: _Change, counted: list[int]
) -> Callable[[ShadowContext, Any], None]:
    def action(ctx: ShadowContext, response: Any) -> None:
        shadow_table = str(ctx.write.shadow_resource)
        if change.key is None:  # a put whose key schema is unknown: its item is all there is
            ctx.shadow.put_item(TableName=shadow_table, Item=change.item)
            raise UnsupportedWrite(*_unknown_key(change.table))
        item = read_item(mirror.primary, change.table, change.key)
        _converge_one(ctx.shadow, shadow_table, change.key, item)
        _settle(ctx, state.level, [attrs.evolve(change, item=item, generation=counted[0])])

    return action


def _raising(exc: BaseException) -> Callable[[ShadowContext], None]:
    def action(ctx: ShadowContext) -> None:
        raise exc

    return action


# -- requests the wrapper cannot read --------------------------------------------------------------


class _Outcome:
    """What the primary did during one handler call (see :func:`_guarded`)."""

    __slots__ = ("called", "error", "response")

    def __init__(self) -> None:
        self.called = False
        self.response: Any = None
        self.error: BaseException | None = None


def _guarded(operation: str, handler: Handler) -> Handler:
    """``handler``, made unable to change the caller's outcome whatever the request holds.

    Every handler reads the request before the primary call (table, key, tenant, locks). It is
    written never to raise for any shape, but a request is the caller's to get wrong (a client
    with ``parameter_validation=False`` sends anything): should anything the wrapper derives
    raise all the same, the primary is called with the request exactly as given (if it was not
    yet), its response or exception reaches the caller, and the write is reported
    ``unsupported`` (``unreadable-request``) for its table, with no key.
    """

    def guarded(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
        outcome = _Outcome()

        def primary(**kwargs: Any) -> Any:
            outcome.called = True
            try:
                outcome.response = call(**kwargs)
            except BaseException as exc:
                outcome.error = exc
                raise
            return outcome.response

        try:
            return handler(mirror, primary, params, pin)
        except ShadowWriteError:
            raise  # the caller asked for shadow failures to be raised
        except Exception as exc:
            if outcome.error is not None:
                if outcome.error is exc:
                    raise
                raise outcome.error from None
            # Called already: the wrapper failed after the primary's success; return it.
            response = outcome.response if outcome.called else call(**params)
            _report_unreadable(mirror, operation, params, f"{type(exc).__name__} reading it")
            return response

    guarded.__name__ = handler.__name__
    guarded.__wrapped__ = handler  # type: ignore[attr-defined] # for tests: the bare handler
    return guarded


def _report_unreadable(
    mirror: Mirror,
    operation: str,
    params: Mapping[str, Any],
    why: str,
    decided: Write | None = None,
) -> None:
    """Report a write the wrapper could not read, for its table as far as one can be told.

    ``decided``: the write as already decided flag-on, so that the flag is not asked twice.
    """

    def report() -> None:
        write = decided
        if write is None:
            write = _decided(mirror, operation, _any_table(operation, params), None)
        if write is not None:
            mirror.unsupported(write, *_unreadable(operation, why))

    _, failed = safe_invoke(report)
    if failed is not None:
        logger.error(
            "dualwrite: could not report an unreadable %s request: %s",
            operation,
            type(failed).__name__,
        )


def _unreadable(operation: str, why: str) -> tuple[str, str]:
    return "unreadable-request", (
        f"dualwrite could not read this {operation} request ({why}); it went to the primary "
        "only: run `dualwrite diff`/`copy` on the table"
    )


def _any_table(operation: str, params: Mapping[str, Any]) -> str:
    """The first table a request names, whatever its operation; :data:`UNKNOWN_TABLE` if none."""
    table = _table_of(params)
    if table is not None:
        return table
    request = params.get("RequestItems")
    if isinstance(request, Mapping):
        for name in request:
            if isinstance(name, str) and name:
                return name
    items = params.get("TransactItems")
    if isinstance(items, Sequence) and not isinstance(items, (str, bytes)):
        for entry in items:
            body = next(iter(entry.values()), None) if isinstance(entry, Mapping) else None
            if isinstance(body, Mapping) and isinstance(body.get("TableName"), str):
                return str(body["TableName"])
    if operation in _PARTIQL:
        for entry in _statements(operation, params):
            if isinstance(entry, Mapping):
                name = statement_table(entry.get("Statement"))
                if name:
                    return name
    return UNKNOWN_TABLE


def _malformed(
    mirror: Mirror,
    operation: str,
    call: Call,
    params: Mapping[str, Any],
    why: str,
    decided: Write | None = None,
) -> Any:
    """A request whose shape the wrapper cannot mirror: the primary judges it.

    AWS rejects such a request, and then nothing happens; should it ever succeed, it is
    reported ``unsupported`` (no key: a table-level journal entry), never skipped silently.
    ``decided``: the write, if the flag was already asked (on) for it. Otherwise the flag is
    asked first, in the caller's thread; flag on, the table is journaled before the primary
    call (:meth:`Mirror.reported_call`).
    """
    write, failed = safe_invoke(
        lambda: decided or _decided(mirror, operation, _any_table(operation, params), None)
    )
    if failed is not None:  # never raises on any shape; should it, report after the call
        response = call(**params)
        _report_unreadable(mirror, operation, params, why)
        return response
    if write is None:
        return call(**params)
    return mirror.reported_call(write, call, params, *_unreadable(operation, why))


def _with_unknown(
    mirror: Mirror,
    call: Call,
    unknown: Sequence[_Planned],
    run: Callable[[Call], Any],
    written: Callable[[Any], Sequence[_Planned]],
) -> Any:
    """Run a PartiQL call some of whose write statements name no readable key.

    Their tables are journaled before the primary call (write-ahead); once the primary
    answered, those it changed (``written(response)``) are reported ``unsupported``, each with
    its table and no key, and the table-level ``unsupported`` entries replace the intent.

    Args:
        mirror: the wrapped client's mirror.
        call: the primary client's bound method.
        unknown: the flag-on statements whose key could not be read.
        run: makes the call, given the primary method to use (the rest of the handler).
        written: given the primary's response, which of ``unknown`` it carried out.

    Returns:
        What ``run`` returns: the primary's response.
    """
    if not unknown:
        return run(call)
    ahead = mirror.intend(unknown[0].write, [p.write for p in unknown])
    answered: list[Any] = []

    def primary(**kwargs: Any) -> Any:
        response = ahead.primary(call, kwargs)  # a failure settles the intent as it says
        answered.append(response)
        return response

    try:
        return run(primary)
    finally:
        if answered:  # also when a shadow error is raised to the caller (on_shadow_error)
            done, failed = safe_invoke(written, answered[0])
            events = [
                Unsupported(write=p.write, reason=p.unsupported()[0], detail=p.unsupported()[1])
                for p in (unknown if failed is not None else done)
            ]
            mirror.writer.report(events, intent=ahead)


# -- single-item handlers ---------------------------------------------------------------------


def _put_item(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    table, item = params.get("TableName"), params.get("Item")
    if not isinstance(table, str) or not isinstance(item, Mapping):
        return _malformed(mirror, "PutItem", call, params, "no table name or no Item map")
    # The request as it is now: the caller may reuse its dict the moment the call returns.
    item = snapshot(item)
    state = _state(mirror)
    schema = state.schemas.get(table)
    key = None if schema is None else state.schemas.key_of(table, item)
    if schema is not None and not well_formed_key(key, state.level, schema):
        return _malformed(mirror, "PutItem", call, params, "the item's key is not well formed")
    write = _decided(mirror, "PutItem", table, key)
    if write is None:
        return call(**params)

    def action(ctx: ShadowContext, response: Any) -> None:
        # The item as the caller wrote it, without ConditionExpression/Expected: the primary
        # alone decided that the put happens.
        ctx.shadow.put_item(TableName=ctx.write.shadow_resource, Item=item)
        if key is None:
            raise UnsupportedWrite(*_unknown_key(table))
        image = _Change(write=ctx.write, table=table, key=key, item=item, generation=counted[0])
        _settle(ctx, state.level, [image])

    primary, counted = _counting(mirror, state.level, call, [(table, key)])
    return mirror.call(
        write, primary, params, action, hold=_holding(mirror, state.level, [(table, key)])
    )


def _delete_item(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    table, key = params.get("TableName"), params.get("Key")
    if not isinstance(table, str) or not isinstance(key, Mapping):
        return _malformed(mirror, "DeleteItem", call, params, "no table name or no Key map")
    key = snapshot(key)
    state = _state(mirror)
    if not well_formed_key(key, state.level, state.schemas.known(table)):
        return _malformed(mirror, "DeleteItem", call, params, "the Key is not well formed")
    write = _decided(mirror, "DeleteItem", table, key)
    if write is None:
        return call(**params)

    def action(ctx: ShadowContext, response: Any) -> None:
        ctx.shadow.delete_item(TableName=ctx.write.shadow_resource, Key=key)
        image = _Change(write=ctx.write, table=table, key=key, item=None, generation=counted[0])
        _settle(ctx, state.level, [image])

    primary, counted = _counting(mirror, state.level, call, [(table, key)])
    return mirror.call(
        write, primary, params, action, hold=_holding(mirror, state.level, [(table, key)])
    )


_ABSENT = object()


def _update_item(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    table, key = params.get("TableName"), params.get("Key")
    if not isinstance(table, str) or not isinstance(key, Mapping):
        return _malformed(mirror, "UpdateItem", call, params, "no table name or no Key map")
    key = snapshot(key)
    state = _state(mirror)
    if not well_formed_key(key, state.level, state.schemas.known(table)):
        return _malformed(mirror, "UpdateItem", call, params, "the Key is not well formed")
    write = _decided(mirror, "UpdateItem", table, key)
    if write is None:
        return call(**params)
    asked = params.get("ReturnValues")
    result: list[Any] = []  # the primary's resulting item, when its response carries it
    primary = call
    if write.shadow_resource is None:
        pass  # reported "unmapped"; the caller's call stays exactly as it was
    elif asked is None or asked == "NONE":

        def primary(**kwargs: Any) -> Any:
            # One call gives the caller's outcome and the resulting item; the caller then gets
            # the response it asked for: the same dict, without the Attributes.
            response = call(**{**kwargs, "ReturnValues": "ALL_NEW"})
            result.append(response.pop("Attributes", _ABSENT))
            return response

    elif asked == "ALL_NEW":

        def primary(**kwargs: Any) -> Any:
            response = call(**kwargs)
            # A copy: the caller owns the response and may change it the moment it returns.
            result.append(snapshot(response.get("Attributes", _ABSENT)))
            return response

    # Otherwise (ALL_OLD, UPDATED_OLD, UPDATED_NEW) the same call cannot also return the new
    # item: the action reads it back, consistently, while the key's lock is held (sync mode) or
    # from the key's own queue (background mode), which orders it just as well.

    def action(ctx: ShadowContext, response: Any) -> None:
        item = result[0] if result else _ABSENT
        if item is _ABSENT:
            item = read_item(mirror.primary, table, key)
        _converge_one(ctx.shadow, str(ctx.write.shadow_resource), key, item)
        image = _Change(write=ctx.write, table=table, key=key, item=item, generation=counted[0])
        _settle(ctx, state.level, [image])

    primary, counted = _counting(mirror, state.level, primary, [(table, key)])
    return mirror.call(
        write, primary, params, action, hold=_holding(mirror, state.level, [(table, key)])
    )


# -- BatchWriteItem ------------------------------------------------------------------------------


def _batch_write_item(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    request = params.get("RequestItems")
    if not isinstance(request, Mapping):
        return _malformed(mirror, "BatchWriteItem", call, params, "RequestItems is not a map")
    request = snapshot(request)
    state = _state(mirror)
    flagged: dict[str, Write] = {}
    changes: list[_Change] = []
    for table, entries in request.items():
        if not isinstance(table, str) or not isinstance(entries, Sequence):
            continue  # botocore rejects the whole call before anything is written
        write = _decided(mirror, "BatchWriteItem", table, None)
        if write is not None:
            flagged[table] = write
            changes.extend(c for c in (_batch_change(state, write, table, e) for e in entries) if c)
    if not flagged:
        return call(**params)
    if not _well_formed(state, changes):
        return _malformed(
            mirror, "BatchWriteItem", call, params, "a key is not well formed", _main_write(flagged)
        )

    def done(response: Any) -> list[_Change]:
        # Only what the primary processed: the caller retries the rest through this wrapper,
        # and those retries are mirrored when they succeed.
        unprocessed = response.get("UnprocessedItems") or {}
        skipped = {
            (table, _request_ident(r, state.level))
            for table, requests in unprocessed.items()
            for r in requests or ()
        }
        return [c for c in changes if (c.table, _change_ident(c, state.level)) not in skipped]

    def to_shadow(ctx: ShadowContext, done: list[_Change]) -> list[_Change]:
        _batches_by_table(ctx, flagged, done)
        return done

    return _call_keys(mirror, state, call, params, flagged, changes, done, to_shadow)


def _well_formed(state: State, changes: Sequence[_Change]) -> bool:
    """Whether every known key of ``changes`` is well formed (an unknown one is reported as
    such: its table's key schema could not be read)."""
    return all(
        c.key is None or well_formed_key(c.key, state.level, state.schemas.known(c.table))
        for c in changes
    )


def _batch_change(state: State, write: Write, table: str, entry: Any) -> _Change | None:
    if not isinstance(entry, Mapping):
        return None
    put, delete = entry.get("PutRequest"), entry.get("DeleteRequest")
    if isinstance(put, Mapping) and isinstance(put.get("Item"), Mapping):
        item = put["Item"]
        key = state.schemas.key_of(table, item)
        if key is None and state.schemas.known(table) is not None:
            key = {}  # the key schema is known and the item lacks a key attribute: malformed
        return _Change(write=attrs.evolve(write, key=key), table=table, key=key, item=item)
    if isinstance(delete, Mapping) and isinstance(delete.get("Key"), Mapping):
        key = dict(delete["Key"])
        return _Change(write=attrs.evolve(write, key=key), table=table, key=key, item=None)
    return None


# -- transactions ------------------------------------------------------------------------------


def _transact_write_items(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    items = params.get("TransactItems")
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        return _malformed(mirror, "TransactWriteItems", call, params, "TransactItems not a list")
    items = snapshot(items)
    state = _state(mirror)
    decisions: dict[str, Write | None] = {}
    changes: list[_Change] = []
    for entry in items:
        if not isinstance(entry, Mapping) or len(entry) != 1:
            continue  # invalid: the primary rejects the whole transaction
        ((kind, body),) = entry.items()
        if kind not in ("Put", "Update", "Delete") or not isinstance(body, Mapping):
            continue  # a ConditionCheck writes nothing: the primary alone decides it
        table = body.get("TableName")
        if not isinstance(table, str):
            continue
        if table not in decisions:
            decisions[table] = _decided(mirror, "TransactWriteItems", table, None)
        write = decisions[table]
        if write is None:
            continue
        if kind == "Put":
            key = state.schemas.key_of(table, body.get("Item"))
            if key is None and state.schemas.known(table) is not None:
                key = {}  # the key schema is known and the item lacks a key attribute
            item: Any = body.get("Item")
        elif isinstance(body.get("Key"), Mapping):
            key = dict(body["Key"])
            item = READ_BACK if kind == "Update" else None
        else:
            continue
        changes.append(_Change(write=attrs.evolve(write, key=key), table=table, key=key, item=item))
    flagged = {table: write for table, write in decisions.items() if write is not None}
    if not changes:
        return call(**params)
    if not _well_formed(state, changes):
        return _malformed(
            mirror,
            "TransactWriteItems",
            call,
            params,
            "a key is not well formed",
            _main_write(flagged),
        )
    return _transaction(mirror, state, call, params, flagged, changes)


def _transaction(
    mirror: Mirror,
    state: State,
    call: Call,
    params: Mapping[str, Any],
    flagged: Mapping[str, Write],
    changes: list[_Change],
) -> Any:
    """Call the primary's transaction, then give the shadow its result as one transaction.

    Puts carry their item, deletes their key; updates are read back from the primary (one
    consistent read each) after the commit, while the keys' locks are held.
    """

    def done(response: Any) -> list[_Change]:
        return changes  # all or nothing: the primary committed them all

    def to_shadow(ctx: ShadowContext, mapped: list[_Change]) -> list[_Change]:
        names = {c.table: str(flagged[c.table].shadow_resource) for c in mapped}
        resolved = _resolve(mirror, state.level, mapped)
        _shadow_transaction(ctx, resolved, names)
        return resolved

    return _call_keys(mirror, state, call, params, flagged, changes, done, to_shadow)


# -- PartiQL --------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<comment>--|/\*)
    | (?P<str>'(?:[^']|'')*')
    | (?P<qid>"(?:[^"]|"")*")
    | (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<param>\?)
    | (?P<id>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<op><<|>>|<=|>=|<>|!=|\|\||[{}\[\](),:.=<>+\-*/%;])
    """,
    re.VERBOSE,
)
_OPEN = {"{": "}", "[": "]", "(": ")", "<<": ">>"}
_CLOSE = frozenset(_OPEN.values())


@attrs.frozen
class _Token:
    kind: str
    text: str
    param: int = -1  # index into Parameters, for "?"
    start: int = attrs.field(default=-1, eq=False)  # its span in the statement
    end: int = attrs.field(default=-1, eq=False)

    def keyword(self) -> str:
        return self.text.upper() if self.kind == "id" else ""


@attrs.frozen
class _Value:
    """A scalar in a statement: a literal, or the ``index``-th parameter."""

    kind: str  # "str", "num" or "param"
    text: str = ""
    index: int = -1


@attrs.frozen
class Statement:
    """What :func:`parse_statement` could tell about one PartiQL statement.

    Attributes:
        verb: ``"SELECT"``, ``"INSERT"``, ``"UPDATE"``, ``"DELETE"``, ``"EXISTS"``, or ``""``.
        table: the table name, or ``None``.
        terms: attribute name -> the scalar it is equal to, for the names that may be key
            attributes (an INSERT's top-level values; a WHERE clause's ``name = value`` terms).
            ``None`` when the statement cannot be read safely.
    """

    verb: str
    table: str | None
    terms: Mapping[str, _Value] | None

    @property
    def is_read(self) -> bool:
        """SELECT, or an EXISTS condition: nothing is written."""
        return self.verb in ("SELECT", "EXISTS")

    def key(self, schema: tuple[str, ...] | None, parameters: Any, level: Level) -> Any:
        """The statement's key in the caller's format, or ``None`` when it cannot be known."""
        if schema is None or self.terms is None:
            return None
        key = {}
        for name in schema:
            value = self.terms.get(name)
            if value is None:
                return None
            if value.kind == "param":
                if not isinstance(parameters, Sequence) or not 0 <= value.index < len(parameters):
                    return None
                key[name] = parameters[value.index]
            elif value.kind == "str":
                text = value.text[1:-1].replace("''", "'")
                key[name] = {"S": text} if level == "client" else text
            else:
                key[name] = {"N": value.text} if level == "client" else Decimal(value.text)
        return key


def _tokenize(statement: str) -> list[_Token] | None:
    tokens: list[_Token] = []
    position, params = 0, 0
    while position < len(statement):
        match = _TOKEN_RE.match(statement, position)
        if match is None or match.lastgroup == "comment":
            return None
        position = match.end()
        kind = str(match.lastgroup)
        if kind == "ws":
            continue
        if kind == "param":
            tokens.append(_Token(kind, "?", params, match.start(), match.end()))
            params += 1
        else:
            tokens.append(_Token(kind, match.group(), -1, match.start(), match.end()))
    return tokens


def _name(token: _Token) -> str | None:
    if token.kind == "id":
        return token.text
    if token.kind == "qid":
        return token.text[1:-1].replace('""', '"')
    return None


def _scalar(tokens: Sequence[_Token]) -> _Value | None:
    if len(tokens) == 1 and tokens[0].kind in ("str", "num"):
        return _Value(tokens[0].kind, tokens[0].text)
    if len(tokens) == 1 and tokens[0].kind == "param":
        return _Value("param", index=tokens[0].param)
    if len(tokens) == 2 and tokens[0].text == "-" and tokens[1].kind == "num":
        return _Value("num", "-" + tokens[1].text)
    return None


def _split_top(
    tokens: Sequence[_Token], separator: Callable[[_Token], bool]
) -> list[list[_Token]] | None:
    """Split at depth 0 where ``separator`` holds; ``None`` on unbalanced brackets."""
    parts: list[list[_Token]] = [[]]
    stack: list[str] = []
    for token in tokens:
        if token.kind == "op" and token.text in _OPEN:
            stack.append(_OPEN[token.text])
        elif token.kind == "op" and token.text in _CLOSE:
            if not stack or stack.pop() != token.text:
                return None
        elif not stack and separator(token):
            parts.append([])
            continue
        parts[-1].append(token)
    return None if stack else parts


def _where_terms(tokens: Sequence[_Token]) -> dict[str, _Value] | None:
    """``name = value`` terms of a WHERE clause made of AND-ed conditions, else ``None``."""
    if any(t.keyword() in ("OR", "BETWEEN") for t in _depth0(tokens)):
        return None
    conjuncts = _split_top(tokens, lambda t: t.keyword() == "AND")
    if conjuncts is None:
        return None
    terms: dict[str, _Value] = {}
    ambiguous: set[str] = set()
    for conjunct in conjuncts:
        if not conjunct:
            return None
        if len(conjunct) >= 3 and conjunct[1].text == "=" and conjunct[1].kind == "op":
            name, value = _name(conjunct[0]), _scalar(conjunct[2:])
            if name is not None and value is not None:
                if name in terms:
                    ambiguous.add(name)
                terms[name] = value
    for name in ambiguous:
        del terms[name]
    return terms


def _depth0(tokens: Sequence[_Token]) -> Iterator[_Token]:
    depth = 0
    for token in tokens:
        if token.kind == "op" and token.text in _OPEN:
            depth += 1
        elif token.kind == "op" and token.text in _CLOSE:
            depth -= 1
        elif depth == 0:
            yield token


def _document_terms(tokens: Sequence[_Token]) -> dict[str, _Value] | None:
    """Top-level ``'name': value`` pairs of an INSERT's ``{...}`` document."""
    if len(tokens) < 2 or tokens[0].text != "{" or tokens[-1].text != "}":
        return None
    pairs = _split_top(tokens[1:-1], lambda t: t.kind == "op" and t.text == ",")
    if pairs is None:
        return None
    terms: dict[str, _Value] = {}
    for pair in pairs:
        if len(pair) < 3 or pair[1].text != ":":
            return None
        if pair[0].kind == "str":
            name: str | None = pair[0].text[1:-1].replace("''", "'")
        else:
            name = _name(pair[0])
        if name is None or name in terms:
            return None
        value = _scalar(pair[2:])
        if value is not None:
            terms[name] = value
    return terms


def parse_statement(statement: str) -> Statement:
    """Read the verb, table and key terms of one PartiQL statement, conservatively.

    Anything this parser is not sure of (comments, ``OR``, nested conditions, a key attribute
    named twice) leaves ``terms`` as ``None``: the write is then reported ``unsupported`` rather
    than mirrored to a guessed key.
    """
    tokens = _tokenize(statement)
    if not tokens:
        return Statement(verb="", table=None, terms=None)
    verb = tokens[0].keyword()
    if verb in ("SELECT", "EXISTS"):
        return Statement(verb=verb, table=None, terms=None)
    if verb == "INSERT":
        if len(tokens) < 4 or tokens[1].keyword() != "INTO":
            return Statement(verb=verb, table=None, terms=None)
        table = _name(tokens[2])
        if tokens[3].keyword() != "VALUE":
            return Statement(verb=verb, table=table, terms=None)
        return Statement(verb=verb, table=table, terms=_document_terms(tokens[4:]))
    if verb in ("UPDATE", "DELETE"):
        start = 1
        if verb == "DELETE":
            if len(tokens) < 3 or tokens[1].keyword() != "FROM":
                return Statement(verb=verb, table=None, terms=None)
            start = 2
        if len(tokens) <= start:
            return Statement(verb=verb, table=None, terms=None)
        table = _name(tokens[start])
        rest = tokens[start + 1 :]
        if rest and rest[0].text == ".":
            return Statement(verb=verb, table=table, terms=None)
        clauses = _split_top(rest, lambda t: t.keyword() in ("WHERE", "RETURNING"))
        wheres = [i for i, t in enumerate(_depth0(rest)) if t.keyword() == "WHERE"]
        if clauses is None or len(wheres) != 1:
            return Statement(verb=verb, table=table, terms=None)
        # clauses: [before WHERE, condition, (returning)]
        return Statement(verb=verb, table=table, terms=_where_terms(clauses[1]))
    return Statement(verb=verb, table=None, terms=None)


@attrs.frozen
class _Planned:
    """One write statement of a PartiQL call, decided flag-on."""

    index: int
    verb: str
    write: Write
    change: _Change | None  # None: its key could not be read from the statement

    def unsupported(self) -> tuple[str, str]:
        return _partiql_unsupported(self.verb, self.write.resource)


def _partiql_unsupported(verb: str, table: str) -> tuple[str, str]:
    # Never quote the statement: its literals are item data.
    if table == UNKNOWN_TABLE:
        return "partiql-unparsed", (
            f"PartiQL {verb or 'statement'}: the table could not be read from the statement; "
            "it went to the primary only"
        )
    return "partiql-key", (
        f"PartiQL {verb}: the key of the item in table {table!r} could not be read from the "
        "statement; it went to the primary only"
    )


def _plan_statements(
    mirror: Mirror, state: State, entries: Sequence[Any], operation: str
) -> tuple[list[_Planned], dict[str, Write | None]]:
    """Parse and decide every write statement (``{"Statement", "Parameters"}``) of a call."""
    decisions: dict[str, Write | None] = {}
    planned = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("Statement"), str):
            continue
        parsed = parse_statement(entry["Statement"])
        if parsed.is_read:
            continue
        table = parsed.table or UNKNOWN_TABLE
        if table not in decisions:
            decisions[table] = _decided(mirror, operation, table, None)
        write = decisions[table]
        if write is None:
            continue
        schema = state.schemas.get(parsed.table) if parsed.table else None
        # A copy of the parameters as they are now: the key must not follow the caller's dicts.
        key = parsed.key(schema, snapshot(entry.get("Parameters")), state.level)
        change = None
        if key is not None and not well_formed_key(key, state.level, schema):
            key = None  # a parameter of the wrong type: reported, never read back
        if key is not None:
            write = attrs.evolve(write, key=key)
            item = None if parsed.verb == "DELETE" else READ_BACK
            change = _Change(write=write, table=table, key=key, item=item)
        planned.append(_Planned(index=index, verb=parsed.verb, write=write, change=change))
    return planned, decisions


def _execute_statement(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    statement = params.get("Statement")
    if not isinstance(statement, str):
        return _malformed(mirror, "ExecuteStatement", call, params, "Statement is not a string")
    if parse_statement(statement).is_read:
        return call(**params)
    state = _state(mirror)
    planned, _ = _plan_statements(mirror, state, [params], "ExecuteStatement")
    return _execute_one(mirror, state, call, params, planned[0] if planned else None)


def _execute_one(
    mirror: Mirror, state: State, call: Call, params: Mapping[str, Any], planned: _Planned | None
) -> Any:
    if planned is None:
        return call(**params)  # flag off
    change = planned.change
    if change is None:  # the key could not be read: the table, journaled ahead
        return mirror.reported_call(planned.write, call, params, *planned.unsupported())

    def action(ctx: ShadowContext, response: Any) -> None:
        (resolved,) = _resolve(mirror, state.level, [change])
        _converge_one(ctx.shadow, str(ctx.write.shadow_resource), change.key or {}, resolved.item)
        _settle(ctx, state.level, [attrs.evolve(resolved, generation=counted[0])])

    primary, counted = _counting(mirror, state.level, call, [(change.table, change.key)])
    hold = _holding(mirror, state.level, [(change.table, change.key)])
    return mirror.call(planned.write, primary, params, action, hold=hold)


def _batch_execute_statement(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    entries = params.get("Statements")
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        return _malformed(mirror, "BatchExecuteStatement", call, params, "Statements not a list")
    state = _state(mirror)
    planned, decisions = _plan_statements(mirror, state, entries, "BatchExecuteStatement")
    if not planned:
        return call(**params)
    flagged = {table: write for table, write in decisions.items() if write is not None}

    def carried_out(response: Any) -> list[_Planned]:
        results = response.get("Responses") or []
        carried = []
        for entry in planned:
            outcome = results[entry.index] if entry.index < len(results) else None
            if isinstance(outcome, Mapping) and not outcome.get("Error"):
                carried.append(entry)  # else the primary refused it: nothing changed
        return carried

    def done(response: Any) -> list[_Change]:
        changes: dict[Hashable, _Change] = {}
        for entry in carried_out(response):
            if entry.change is not None:
                ident = (entry.change.table, _canon_key(entry.change.key, state.level))
                changes[ident] = entry.change
        return list(changes.values())

    def to_shadow(ctx: ShadowContext, mapped: list[_Change]) -> list[_Change]:
        resolved = _resolve(mirror, state.level, mapped)
        _batches_by_table(ctx, flagged, resolved)
        return resolved

    changes = [e.change for e in planned if e.change is not None]
    unknown = [e for e in planned if e.change is None]

    def run(primary: Call) -> Any:
        if not changes:
            return primary(**params)
        return _call_keys(mirror, state, primary, params, flagged, changes, done, to_shadow)

    def written(response: Any) -> list[_Planned]:
        return [e for e in carried_out(response) if e.change is None]

    return _with_unknown(mirror, call, unknown, run, written)


def _execute_transaction(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    entries = params.get("TransactStatements")
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        return _malformed(
            mirror, "ExecuteTransaction", call, params, "TransactStatements is not a list"
        )
    state = _state(mirror)
    planned, decisions = _plan_statements(mirror, state, entries, "ExecuteTransaction")
    changes = [e.change for e in planned if e.change is not None]
    unknown = [e for e in planned if e.change is None]
    if not changes:  # flag off, nothing that writes, or no key that could be read
        return _with_unknown(mirror, call, unknown, lambda c: c(**params), lambda _: unknown)
    flagged = {table: write for table, write in decisions.items() if write is not None}

    def run(primary: Call) -> Any:
        return _transaction(mirror, state, primary, params, flagged, changes)

    # All or nothing: a committed transaction carried out every statement.
    return _with_unknown(mirror, call, unknown, run, lambda _: unknown)


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
        return None if item is None else canonical(item, state.level)

    def copy_once() -> tuple[str, Hashable]:
        item = read_item(mirror.primary, table, item_key)
        _converge_one(mirror.shadow, shadow_table, item_key, item)
        if item is None:
            return "deleted", None
        return "copied", canonical(item, state.level)

    return retry_until_stable(copy_once, version_now, attempts=attempts, deadline=deadline)


_DESERIALIZER = TypeDeserializer()


def _key_for_level(key: Mapping[str, Any], level: Level) -> dict[str, Any]:
    """A key in the pair's format: typed for a low-level pair, Python for a resource pair."""
    typed = all(
        isinstance(v, Mapping) and len(v) == 1 and next(iter(v)) in ("S", "N", "B")
        for v in key.values()
    )
    if level == "client" or not typed:
        return dict(key)
    return {name: _DESERIALIZER.deserialize(value) for name, value in key.items()}


# -- operations that cannot be mirrored -------------------------------------------------------


def _reported(operation: str, reason: str, detail: str) -> Handler:
    def handler(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
        table = _table_of(params) or UNKNOWN_TABLE
        write = _decided(mirror, operation, table, None)
        if write is None:
            return call(**params)
        return mirror.reported_call(write, call, params, reason, detail)

    handler.__name__ = f"_unsupported_{operation}"
    return handler


HANDLERS: dict[str, Handler] = {
    operation: _guarded(operation, handler)
    for operation, handler in {
        "PutItem": _put_item,
        "UpdateItem": _update_item,
        "DeleteItem": _delete_item,
        "BatchWriteItem": _batch_write_item,
        "TransactWriteItems": _transact_write_items,
        "ExecuteStatement": _execute_statement,
        "BatchExecuteStatement": _batch_execute_statement,
        "ExecuteTransaction": _execute_transaction,
    }.items()
}
"""Item writes mirrored to the shadow."""

UNSUPPORTED: dict[str, str] = {
    "StartBulkPutItems": (
        "an asynchronous bulk load from Amazon S3 writes items the wrapper never sees; load the "
        "same data into the shadow table, or backfill it with `dualwrite copy`"
    ),
    "ImportTable": (
        "an import from Amazon S3 creates a table filled with data the wrapper never sees; "
        "create the shadow table and backfill it with `dualwrite copy`"
    ),
    "RestoreTableFromBackup": (
        "a restore creates a table filled from a backup of the primary account; create the "
        "shadow table and backfill it with `dualwrite copy`"
    ),
    "RestoreTableToPointInTime": (
        "a point-in-time restore creates a table filled from the primary's history; create the "
        "shadow table and backfill it with `dualwrite copy`"
    ),
}
"""Writes that cannot be mirrored: each call is reported as an ``unsupported`` event."""

for _operation, _detail in UNSUPPORTED.items():
    HANDLERS[_operation] = _guarded(_operation, _reported(_operation, "not-mirrorable", _detail))

PRIMARY_ONLY: frozenset[str] = frozenset(
    {
        # reads
        "BatchGetItem", "GetItem", "Query", "Scan", "TransactGetItems", "SearchVectors",
        "DescribeBackup", "DescribeBulkOperation", "DescribeContinuousBackups",
        "DescribeContributorInsights", "DescribeEndpoints", "DescribeExport",
        "DescribeGlobalTable", "DescribeGlobalTableSettings", "DescribeImport",
        "DescribeKinesisStreamingDestination", "DescribeLimits", "DescribeTable",
        "DescribeTableReplicaAutoScaling", "DescribeTimeToLive", "GetResourcePolicy",
        "ListBackups", "ListBulkOperations", "ListContributorInsights", "ListExports",
        "ListGlobalTables", "ListImports", "ListTables", "ListTagsOfResource",
        # table configuration: the control plane, set up per account
        "CreateTable", "DeleteTable", "UpdateTable", "UpdateTimeToLive",
        "UpdateContinuousBackups", "UpdateContributorInsights", "UpdateTableReplicaAutoScaling",
        "CreateGlobalTable", "UpdateGlobalTable", "UpdateGlobalTableSettings",
        "CreateBackup", "DeleteBackup", "ExportTableToPointInTime",
        "EnableKinesisStreamingDestination", "DisableKinesisStreamingDestination",
        "UpdateKinesisStreamingDestination",
        "PutResourcePolicy", "DeleteResourcePolicy", "TagResource", "UntagResource",
        "CancelBulkOperation",  # stops a bulk load that was itself reported unsupported
    }
)  # fmt: skip
"""Reads and control-plane operations: the primary only, as documented in docs/dynamodb.md."""

_READ_PREFIXES = ("Get", "BatchGet", "TransactGet", "Describe", "List", "Query", "Scan", "Search")


def unclassified(api_name: str, http_method: str) -> Handler | None:
    """Handle an operation botocore knows and this module does not (a newer botocore).

    DynamoDB sends every operation as a POST, so the name decides: a read (``Get*``,
    ``Describe*``, ``List*``, ``Query``, ``Scan``, ...) passes through; anything else goes to the
    primary and is reported ``unsupported`` with reason ``"unclassified"``.
    """
    del http_method  # always POST
    if api_name in PRIMARY_ONLY or api_name.startswith(_READ_PREFIXES):
        return None
    return _reported(
        api_name,
        "unclassified",
        f"{api_name} is not known to this version of dualwrite; it went to the primary only",
    )


# -- stages: routing a call to the new account first ---------------------------------------------

ROUTED_READS: frozenset[str] = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
)
"""Item reads that follow the tenant's stage to the account that owns it (PartiQL SELECTs too)."""

_PARTIQL = {
    "ExecuteStatement": None,
    "BatchExecuteStatement": "Statements",
    "ExecuteTransaction": "TransactStatements",
}


def _table_token(tokens: Sequence[_Token]) -> _Token | None:
    """The token naming the table of a statement (any verb), or ``None``."""
    if not tokens:
        return None
    verb = tokens[0].keyword()
    if verb in ("INSERT", "DELETE"):
        keyword = "INTO" if verb == "INSERT" else "FROM"
        return tokens[2] if len(tokens) > 2 and tokens[1].keyword() == keyword else None
    if verb == "UPDATE":
        return tokens[1] if len(tokens) > 1 else None
    if verb == "SELECT":
        depth0 = list(_depth0(tokens))
        for position, token in enumerate(depth0[:-1]):
            if token.keyword() == "FROM":
                return depth0[position + 1]
    if verb == "EXISTS":  # EXISTS(SELECT ... FROM t ...): the table of the inner SELECT
        for position, token in enumerate(tokens[:-1]):
            if token.keyword() == "FROM":
                return tokens[position + 1]
    return None


def statement_table(statement: Any) -> str | None:
    """The table a PartiQL statement names (any verb), or ``None``."""
    if not isinstance(statement, str):
        return None
    token = _table_token(_tokenize(statement) or [])
    return None if token is None else _name(token)


def rename_statement(statement: Any, rename: Callable[[str], str | None]) -> str | None:
    """The statement with its table renamed by ``rename``; ``None`` when that is not sure.

    Only the table's own token changes (quoted: ``"orders-v2"``); literals, parameters and
    the rest of the text are kept byte for byte.
    """
    if not isinstance(statement, str):
        return None
    token = _table_token(_tokenize(statement) or [])
    name = None if token is None else _name(token)
    if token is None or name is None:
        return None
    new = rename(name)
    if new is None:
        return None
    if new == name:
        return statement
    quoted = '"' + new.replace('"', '""') + '"'
    return statement[: token.start] + quoted + statement[token.end :]


def _statements(api: str, params: Mapping[str, Any]) -> list[Any]:
    field = _PARTIQL[api]
    if field is None:
        return [params]
    entries = params.get(field)
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        return []
    return list(entries)


def stage_targets(mirror: Mirror, api: str, params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The ``(table, key)`` pairs a call's stage is asked for, as its handler names them."""
    table = params.get("TableName")
    if api == "PutItem":
        if not isinstance(table, str):
            return []
        key = _state(mirror).schemas.key_of(table, params.get("Item"))
        if key is None and not mirror.reversed:
            # The old account's DescribeTable failed (no permission for the new deployment's
            # role, say): both tables share their key schema, so ask the new account's. Without
            # a key a tenant_of reading it could not name the tenant, nor the stage its owner.
            new = mirror.new_name(table)
            if new is not None:
                key = _state(mirror.reverse()).schemas.key_of(new, params.get("Item"))
        return [(table, key)]
    if isinstance(table, str):
        key = params.get("Key")
        return [(table, dict(key) if isinstance(key, Mapping) else None)]
    if api in ("BatchWriteItem", "BatchGetItem"):
        request = params.get("RequestItems")
        if not isinstance(request, Mapping):
            return []
        return [(t, None) for t in request if isinstance(t, str)]
    if api in ("TransactWriteItems", "TransactGetItems"):
        items = params.get("TransactItems")
        if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
            return []
        found = []
        for entry in items:
            if isinstance(entry, Mapping) and len(entry) == 1:
                body = next(iter(entry.values()))
                if isinstance(body, Mapping) and isinstance(body.get("TableName"), str):
                    found.append((body["TableName"], None))
        return found
    if api in _PARTIQL:
        tables = []
        for entry in _statements(api, params):
            if isinstance(entry, Mapping):
                parsed = statement_table(entry.get("Statement"))
                tables.append((parsed or UNKNOWN_TABLE, None))
        return tables
    return []


def reroute(mirror: Mirror, api: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The parameters of a call for the new account, or ``None`` when it cannot go there.

    Table names become the new account's, in PartiQL statements too (the table's token only).
    A statement whose table cannot be read cannot go there.
    """
    routed = dict(params)
    table = params.get("TableName")
    if isinstance(table, str):
        new = mirror.new_name(table)
        if new is None:
            return None
        routed["TableName"] = new
    request = params.get("RequestItems")
    if api in ("BatchWriteItem", "BatchGetItem") and isinstance(request, Mapping):
        renamed = {}
        for name, value in request.items():
            new = mirror.new_name(name) if isinstance(name, str) else None
            if new is None:
                return None
            renamed[new] = value
        routed["RequestItems"] = renamed
    items = params.get("TransactItems")
    if api in ("TransactWriteItems", "TransactGetItems") and isinstance(items, Sequence):
        entries = []
        for entry in items:
            if isinstance(entry, Mapping) and len(entry) == 1:
                ((kind, body),) = entry.items()
                if isinstance(body, Mapping) and isinstance(body.get("TableName"), str):
                    new = mirror.new_name(body["TableName"])
                    if new is None:
                        return None
                    entry = {kind: {**body, "TableName": new}}  # noqa: PLW2901
            entries.append(entry)
        routed["TransactItems"] = entries
    if api in _PARTIQL:
        renamed_entries = []
        for entry in _statements(api, params):
            if not isinstance(entry, Mapping):
                return None
            statement = rename_statement(entry.get("Statement"), mirror.new_name)
            if statement is None:
                return None
            renamed_entries.append({**entry, "Statement": statement})
        field = _PARTIQL[api]
        if field is None:
            routed["Statement"] = renamed_entries[0]["Statement"] if renamed_entries else None
        else:
            routed[field] = renamed_entries
    return routed


_BY_TABLE = ("Responses", "UnprocessedItems", "UnprocessedKeys", "ItemCollectionMetrics")


def as_called(api: str, response: dict[str, Any], renamed: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the new account's response with the caller's table names: the keys of
    ``Responses``/``UnprocessedItems``/``UnprocessedKeys``/``ItemCollectionMetrics`` (a
    ``batch_writer`` retries what it finds under its own table's name) and
    ``ConsumedCapacity``'s ``TableName``."""
    del api
    changes: dict[str, Any] = {}
    for field in _BY_TABLE:
        value = response.get(field)
        if isinstance(value, Mapping) and any(name in renamed for name in value):
            changes[field] = {renamed.get(name, name): v for name, v in value.items()}
    listed = response.get("Responses")
    if isinstance(listed, list) and any(
        isinstance(r, Mapping) and r.get("TableName") in renamed for r in listed
    ):  # BatchExecuteStatement: one entry per statement, each naming its table
        changes["Responses"] = [
            {**r, "TableName": renamed[r["TableName"]]}
            if isinstance(r, Mapping) and r.get("TableName") in renamed
            else r
            for r in listed
        ]
    capacity = response.get("ConsumedCapacity")
    if isinstance(capacity, Mapping) and capacity.get("TableName") in renamed:
        changes["ConsumedCapacity"] = {**capacity, "TableName": renamed[capacity["TableName"]]}
    elif isinstance(capacity, list) and any(
        isinstance(c, Mapping) and c.get("TableName") in renamed for c in capacity
    ):
        changes["ConsumedCapacity"] = [
            {**c, "TableName": renamed[c["TableName"]]}
            if isinstance(c, Mapping) and c.get("TableName") in renamed
            else c
            for c in capacity
        ]
    return {**response, **changes} if changes else response


def route_name(mirror: Mirror, table: str) -> str | None:
    shadow = mirror.shadow_name(table)
    if shadow is not None and shadow == table and lock_name(table) != table:
        # A table ARN names the old account: the new one's own table, by the table's name.
        return mirror.shadow_name(lock_name(table))
    return shadow


def build_reverse(mirror: Mirror) -> Mirror:
    """The mirror that writes the new account first and mirrors to the old (CUTOVER)."""
    state = _state(mirror)
    reverse = Mirror(
        mirror.writer,
        service=mirror.plugin,
        primary=mirror.shadow,
        shadow=mirror.primary,
        names=mirror.old_name,
        forward=mirror,
    )
    reverse.state = State(
        level=state.level, schemas=KeySchemas(mirror.shadow, mirror.primary, reverse.shadow_name)
    )
    return reverse


def written_keys(
    mirror: Mirror, api: str, params: Mapping[str, Any] | None
) -> list[tuple[str, Any]] | None:
    """The ``(table, key)`` pairs a batch or transaction changes; ``None`` when not all can be
    told (PartiQL, an item whose key schema is unknown)."""
    if params is None:
        return None
    schemas = _state(mirror).schemas
    found: list[tuple[str, Any]] = []
    if api == "BatchWriteItem" and isinstance(params.get("RequestItems"), Mapping):
        for table, entries in params["RequestItems"].items():
            for entry in entries if isinstance(entries, Sequence) else ():
                put = entry.get("PutRequest") if isinstance(entry, Mapping) else None
                delete = entry.get("DeleteRequest") if isinstance(entry, Mapping) else None
                if isinstance(put, Mapping):
                    key = schemas.key_of(table, put.get("Item"))
                elif isinstance(delete, Mapping) and isinstance(delete.get("Key"), Mapping):
                    key = dict(delete["Key"])
                else:
                    key = None
                if key is None:
                    return None
                found.append((table, key))
        return found
    if api == "TransactWriteItems" and isinstance(params.get("TransactItems"), Sequence):
        for entry in params["TransactItems"]:
            if not isinstance(entry, Mapping) or len(entry) != 1:
                return None
            ((kind, body),) = entry.items()
            if kind == "ConditionCheck":
                continue
            if not isinstance(body, Mapping) or not isinstance(body.get("TableName"), str):
                return None
            table = body["TableName"]
            if kind == "Put":
                key = schemas.key_of(table, body.get("Item"))
            else:
                key = dict(body["Key"]) if isinstance(body.get("Key"), Mapping) else None
            if key is None:
                return None
            found.append((table, key))
        return found
    return None


def stage_sources(mirror: Mirror, api: str, params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """DynamoDB calls read from no other table than the ones they write."""
    del mirror, api, params
    return []


def upload_owner(mirror: Mirror, api: str, params: Mapping[str, Any]) -> str | None:
    """DynamoDB has no multipart uploads: every call is routed by its stage."""
    del mirror, api, params
    return None
