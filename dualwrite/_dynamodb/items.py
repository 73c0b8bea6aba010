"""The single-item write handlers: ``PutItem``, ``DeleteItem``, ``UpdateItem``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dualwrite._core.errors import UnsupportedWrite
from dualwrite._core.mirror import Mirror, ShadowContext
from dualwrite._core.snapshot import snapshot
from dualwrite._dynamodb.calls import (
    PASS,
    Call,
    _decided,
    _holding,
    _malformed,
    _unknown_key,
    _write_of,
)
from dualwrite._dynamodb.converge import _Change, _converge_one, read_item
from dualwrite._dynamodb.fleet import _counting, _settle
from dualwrite._dynamodb.keys import State, _state, plain_key, well_formed_key

# -- decide phases (see calls._guarded): the common shape, read and decided first -------------


def _decide_put_item(mirror: Mirror, params: dict[str, Any]) -> Any:
    """``PutItem`` of a plain ``dict`` item whose key is of the common shape (``plain_key``):
    ``PASS`` (flag off), ``(write, key)`` (flag on), or ``None`` (any other shape)."""
    table, item = params.get("TableName"), params.get("Item")
    if type(table) is not str or type(item) is not dict:
        return None
    state = mirror.state
    schema = state.schemas.described.get(table) or state.schemas.get(table)
    if schema is None:
        return None
    # The decision needs the key (tenant_of and the flag get it), not the rest of the item:
    # a write the flag leaves alone copies nothing but its key.
    key = plain_key(item, schema, state.level)
    if key is None:
        return None
    write, on = mirror.decide(_write_of(mirror, "PutItem", table, key))
    # The write holds the key it was decided with; the handler, a copy of its own.
    return (write, dict(key)) if on else PASS


def _decide_keyed(operation: str) -> Callable[[Mirror, dict[str, Any]], Any]:
    """The decide phase of ``DeleteItem``/``UpdateItem``: ``_checked_key``'s one-pass case,
    also for a table whose key schema is not known (``_checked_key`` then copies the key and
    checks its values: ``plain_key`` does both for the common shape)."""

    def decide(mirror: Mirror, params: dict[str, Any]) -> Any:
        table, key = params.get("TableName"), params.get("Key")
        if type(table) is not str or type(key) is not dict:
            return None
        state = mirror.state
        schema = state.schemas.described.get(table)
        if schema is None:
            # Not described (nothing but updates and deletes of the table so far: they never
            # ask): the key's own names, which well_formed_key() then only needs to be strs.
            schema = tuple(key)
            if not schema:
                return None
            for name in schema:
                if type(name) is not str:
                    return None
        elif len(key) != len(schema):
            return None
        key = plain_key(key, schema, state.level)
        if key is None:
            return None
        write, on = mirror.decide(_write_of(mirror, operation, table, key))
        # The write holds the key it was decided with; the handler, a copy of its own.
        return (write, dict(key)) if on else PASS

    decide.__name__ = f"_decide_{operation}"
    return decide


# -- handlers --------------------------------------------------------------------------------


def _put_item(
    mirror: Mirror, call: Call, params: dict[str, Any], pin: Any, decided: Any = None
) -> Any:
    state = _state(mirror)
    if decided is not None:  # by _decide_put_item: flag on
        write, key = decided
        table, item = params["TableName"], params["Item"]
    else:
        table, item = params.get("TableName"), params.get("Item")
        if not isinstance(table, str) or not (type(item) is dict or isinstance(item, Mapping)):
            return _malformed(mirror, "PutItem", call, params, "no table name or no Item map")
        schema = state.schemas.get(table)
        key = None if schema is None else plain_key(item, schema, state.level)
        if key is None:
            key = None if schema is None else state.schemas.key_of(table, item)
            if schema is not None and not well_formed_key(key, state.level, schema):
                return _malformed(
                    mirror, "PutItem", call, params, "the item's key is not well formed"
                )
            key = snapshot(key)  # the key only: see _decide_put_item
        write = _decided(mirror, "PutItem", table, key)
        if write is None:
            return call(**params)
    # The request as it is now: the caller may reuse its dict the moment the call returns.
    # Unless the shadow call (and the fleet check) run in this call, before it returns: then
    # they read the caller's item itself (a copy is the largest cost of a mirrored put).
    borrowed = mirror.runs_inline()
    if not borrowed:
        item = snapshot(item)

    def action(ctx: ShadowContext, response: Any) -> None:
        # The item as the caller wrote it, without ConditionExpression/Expected: the primary
        # alone decided that the put happens.
        ctx.shadow.put_item(TableName=ctx.write.shadow_resource, Item=item)
        if key is None:
            raise UnsupportedWrite(*_unknown_key(table))
        if mirror.writer.single_writer:
            return  # no fleet check (see _settle)
        image = _Change(write=ctx.write, table=table, key=key, item=item, generation=counted[0])
        _settle(ctx, state.level, [image])

    primary, counted = _counting(mirror, state.level, call, [(table, key)])
    return mirror.call(
        write,
        primary,
        params,
        action,
        hold=_holding(mirror, state.level, [(table, key)]),
        borrowed=borrowed,
    )


def _delete_item(
    mirror: Mirror, call: Call, params: dict[str, Any], pin: Any, decided: Any = None
) -> Any:
    state = _state(mirror)
    if decided is not None:  # by _decide_keyed: flag on
        write, key = decided
        table = params["TableName"]
    else:
        table, key = params.get("TableName"), params.get("Key")
        if not isinstance(table, str) or not (type(key) is dict or isinstance(key, Mapping)):
            return _malformed(mirror, "DeleteItem", call, params, "no table name or no Key map")
        key = _checked_key(state, table, key)
        if key is None:
            return _malformed(mirror, "DeleteItem", call, params, "the Key is not well formed")
        write = _decided(mirror, "DeleteItem", table, key)
        if write is None:
            return call(**params)

    def action(ctx: ShadowContext, response: Any) -> None:
        ctx.shadow.delete_item(TableName=ctx.write.shadow_resource, Key=key)
        if mirror.writer.single_writer:
            return  # no fleet check (see _settle)
        image = _Change(write=ctx.write, table=table, key=key, item=None, generation=counted[0])
        _settle(ctx, state.level, [image])

    primary, counted = _counting(mirror, state.level, call, [(table, key)])
    return mirror.call(
        write, primary, params, action, hold=_holding(mirror, state.level, [(table, key)])
    )


def _checked_key(state: State, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
    """The request's ``Key`` copied (semantics 10) if it is well formed, else ``None``."""
    schema = state.schemas.known(table)
    if schema is not None and type(key) is dict and len(key) == len(schema):
        fast = plain_key(key, schema, state.level)  # the common shape, in one pass
        if fast is not None:
            return fast
    copied: Any = snapshot(key)  # a plain dict, whatever Mapping the caller gave
    return copied if well_formed_key(copied, state.level, schema) else None


_ABSENT = object()


def _update_item(
    mirror: Mirror, call: Call, params: dict[str, Any], pin: Any, decided: Any = None
) -> Any:
    state = _state(mirror)
    if decided is not None:  # by _decide_keyed: flag on
        write, key = decided
        table = params["TableName"]
    else:
        table, key = params.get("TableName"), params.get("Key")
        if not isinstance(table, str) or not (type(key) is dict or isinstance(key, Mapping)):
            return _malformed(mirror, "UpdateItem", call, params, "no table name or no Key map")
        key = _checked_key(state, table, key)
        if key is None:
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
        if mirror.writer.single_writer:
            return  # no fleet check (see _settle)
        image = _Change(write=ctx.write, table=table, key=key, item=item, generation=counted[0])
        _settle(ctx, state.level, [image])

    primary, counted = _counting(mirror, state.level, primary, [(table, key)])
    return mirror.call(
        write, primary, params, action, hold=_holding(mirror, state.level, [(table, key)])
    )
