"""The ``TransactWriteItems`` handler, and :func:`_transaction`: the primary's transaction,
then the shadow given its result as one transaction (also for PartiQL's ``ExecuteTransaction``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dualwrite._core.mirror import Mirror, ShadowContext
from dualwrite._core.snapshot import snapshot
from dualwrite._dynamodb.batch import _call_keys, _main_write, _well_formed
from dualwrite._dynamodb.calls import Call, _decided, _malformed
from dualwrite._dynamodb.converge import READ_BACK, _Change, _resolve, _shadow_transaction
from dualwrite._dynamodb.keys import State, _state
from dualwrite.events import Write


def _transact_write_items(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    items = params.get("TransactItems")
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        return _malformed(mirror, "TransactWriteItems", call, params, "TransactItems not a list")
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
        # The entry as it is now (one the flag leaves alone is not copied): the caller may
        # reuse its dicts the moment the call returns.
        body = snapshot(body)
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
