"""DynamoDB attribute values and keys: their canonical form, well-formed keys, the key schema
of a table (:class:`KeySchemas`), a wrapped client's :class:`State`, and :func:`lock_name`, the
one "table ARN -> table name" rule.

Attribute values keep the format of the caller's level: typed ``AttributeValue`` dicts
(``{"pk": {"S": "a"}}``) through a low-level client, plain Python values (``{"pk": "a"}``, numbers
as ``Decimal``) through a resource or ``Table``, whose client (de)serialises both sides. So is
:attr:`Write.key <dualwrite.events.Write.key>`. Locks and matching use a canonical form of the
values, the same for both levels.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import attrs
from boto3.dynamodb.types import Binary, TypeDeserializer

from dualwrite._core.errors import error_code, safe_invoke
from dualwrite._core.keys import freeze
from dualwrite._core.mirror import Mirror

logger = logging.getLogger("dualwrite")

Level = Literal["client", "resource"]
"""The format of attribute values: typed (low-level client) or Python (resource, ``Table``)."""


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
        self.described: Mapping[str, tuple[str, ...]] = self._known
        """Table -> key attribute names, for those already described: what :meth:`known`
        returns, read without a method call by the writes' hot paths. Read-only."""
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
        return None, error_code(exc) or type(exc).__name__


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


def queue_key(key: Any) -> Hashable:
    """A key's canonical form for the background queues, whichever level spelled it.

    The key's lock uses :func:`_canon_key` at its pair's level; the queues are chosen without
    the pair, so each value's level is told by its shape (a typed value is a one-entry map of
    ``S``/``N``/``B``; no resource-level key value is a map). Equal keys give equal forms, as
    for the lock: ``{"N": "1.0"}`` and ``{"N": "1"}`` share a queue. Always hashable.
    """
    if key is None or not isinstance(key, Mapping):
        return freeze(key)
    try:
        return tuple(
            sorted(
                [
                    (str(name), _canon_typed(value) if _typed(value) else _canon_python(value))
                    for name, value in key.items()
                ]
            )
        )
    except Exception:  # noqa: BLE001 - a malformed key: one queue for all such, never an error
        return ("?",)


def _typed(value: Any) -> bool:
    if type(value) is dict:  # the common case, without an ABC check
        return len(value) == 1 and next(iter(value)) in _TYPED_TAGS
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in _TYPED_TAGS


_TYPED_TAGS = frozenset(("S", "N", "B"))


def canonical_item(item: Any, level: Level) -> Hashable:
    """A hashable form of a whole item, equal for equal items whatever the order of their
    attributes (DynamoDB does not promise the request's order in what it returns)."""
    if level == "client":
        return canonical({"M": item}, "client")  # a low-level item is a map's content
    return canonical(item, level)


def _number(text: Any) -> Hashable:
    if type(text) is str:  # a typed "N" value: the common case, without the checks below
        if text.isdigit() and text.isascii() and len(text) <= 38:
            # A non-negative integer (most number keys): an int is equal to the Decimal of any
            # spelling of it ("1", "1.0", "1E0") and hashes the same, for a tenth of the cost.
            return ("N", int(text))
        try:
            return ("N", Decimal(text))
        except (InvalidOperation, ValueError):
            return ("N?", _repr(text))
    if not isinstance(text, (str, int, Decimal, float)) or isinstance(text, bool):
        return ("N?", _repr(text))
    try:
        return ("N", Decimal(str(text)))
    except (InvalidOperation, ValueError):
        return ("N?", _repr(text))


def _canon_typed(value: Any) -> Hashable:
    if type(value) is dict and len(value) == 1:  # the common cases, without an ABC check
        ((tag, inner),) = value.items()
        if type(inner) is str:
            if tag == "S":
                return ("S", inner)
            if tag == "N":
                return _number(inner)
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
    if type(value) is str:  # the common cases first
        return ("S", value)
    if type(value) is Decimal or type(value) is int:
        return _number(value)
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
        if not (type(key) is dict or isinstance(key, Mapping)) or not key:
            return False
        # A schema names each attribute once: same size and all of its names is the same set.
        if schema is not None and (len(key) != len(schema) or not all(n in key for n in schema)):
            return False
        return all(isinstance(name, str) and _key_value(v, level) for name, v in key.items())
    except Exception:  # noqa: BLE001 - a mapping that misbehaves is no key
        return False


def plain_key(item: Any, names: tuple[str, ...], level: Level) -> dict[str, Any] | None:
    """The key of ``item`` when it is of the common shape, well formed and copied; else ``None``.

    What ``snapshot(key_of(...))`` gives after :func:`well_formed_key` passed, for a plain
    ``dict`` item whose key values are ``{"S"|"N": str}`` / ``{"B": bytes}`` (client level) or
    ``str``/``int``/``Decimal``/``bytes`` (resource level), built in one pass: every write
    reads its key, flag on or off. ``None`` means "take the general path", never "malformed".
    """
    if type(item) is not dict:
        return None
    key: dict[str, Any] = {}
    client = level == "client"
    for name in names:
        value = item.get(name)
        if client:
            if type(value) is not dict or len(value) != 1:
                return None
            # A new map each: the caller's may change after the call. Looked up by tag rather
            # than unpacked from value.items() (a view and an iterator per value).
            inner = value.get("S")
            if type(inner) is str:
                key[name] = {"S": inner}
                continue
            inner = value.get("N")
            if type(inner) is str:
                key[name] = {"N": inner}
                continue
            inner = value.get("B")
            if type(inner) is not bytes:
                return None
            key[name] = {"B": inner}
        elif type(value) in _PLAIN_KEY_VALUES:  # immutable: the value itself is its copy
            key[name] = value
        else:
            return None
    return key


_PLAIN_KEY_VALUES = frozenset((str, int, Decimal, bytes))


def item_key(
    item: Any, names: tuple[str, ...], level: Level
) -> tuple[dict[str, Any], Hashable] | None:
    """The key of ``item`` and its canonical form (``_canon_key(key, level)``) when the key is
    of the common shape and well formed, its values not copied (``item`` is a snapshot
    already: a batch's request); else ``None``.

    What ``key_of`` gives once :func:`well_formed_key` passed, for the shapes
    :func:`plain_key` accepts, read once for the key, its lock and its queue; ``None`` means
    "take the general path", never "malformed".
    """
    if type(item) is not dict:
        return None
    key: dict[str, Any] = {}
    pairs: list[tuple[str, Hashable]] = []
    if level == "client":
        for name in names:
            value = item.get(name)
            if type(value) is not dict or len(value) != 1:
                return None
            inner = value.get("S")
            if type(inner) is str:
                canon: Hashable = ("S", inner)
            else:
                inner = value.get("N")
                if type(inner) is str:
                    canon = _number(inner)
                else:
                    inner = value.get("B")
                    if type(inner) is not bytes:
                        return None
                    canon = ("B", inner)
            key[name] = value
            pairs.append((name, canon))
    else:
        for name in names:
            value = item.get(name)
            kind = type(value)
            if kind is str:
                canon = ("S", value)
            elif kind is int or kind is Decimal:
                canon = _number(value)
            elif kind is bytes:
                canon = ("B", value)
            else:
                return None
            key[name] = value
            pairs.append((name, canon))
    pairs.sort()  # names: the table's key schema, distinct strs (see _describe_key)
    return key, tuple(pairs)


def _key_value(value: Any, level: Level) -> bool:
    if level == "client":
        if not (type(value) is dict or isinstance(value, Mapping)) or len(value) != 1:
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
    if level == "client" and type(key) is dict:
        # The common shape (every value {"S": str} or {"N": str}) in one pass, as _canon_map
        # and _canon_typed spell it; anything else the general way below.
        pairs: list[tuple[str, Hashable]] = []
        for name, value in key.items():
            if type(name) is not str or type(value) is not dict or len(value) != 1:
                break
            inner = value.get("S")
            if type(inner) is str:
                pairs.append((name, ("S", inner)))
                continue
            inner = value.get("N")
            if type(inner) is not str:
                break
            pairs.append((name, _number(inner)))
        else:
            pairs.sort()
            return tuple(pairs)
    try:
        return _canon_map(key, _canon_typed if level == "client" else _canon_python)
    except Exception:  # noqa: BLE001 - a malformed key: one lock for all such, never an error
        return ("?",)


# -- table names ---------------------------------------------------------------------------------


def lock_name(table: str) -> str:
    """The table's name, also of a table ARN: a table ARN and the table's name share their locks.

    The one "table ARN -> table name" rule of the DynamoDB package.
    """
    if table.startswith("arn:") and ":table/" in table:
        return table.split(":table/", 1)[1].split("/", 1)[0]
    return table


# -- a journaled key in the pair's format ------------------------------------------------------

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
