"""DynamoDB's stage-routing hooks: which tables and keys a call's stage is asked for
(:func:`stage_targets`), the call renamed for the new account (:func:`reroute`) and its response
renamed back (:func:`as_called`), the new account's table name (:func:`route_name`), the
reverse mirror of CUTOVER (:func:`build_reverse`), and the keys a batch or transaction writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dualwrite._core.mirror import Mirror
from dualwrite._dynamodb.calls import UNKNOWN_TABLE
from dualwrite._dynamodb.keys import KeySchemas, State, _state, lock_name
from dualwrite._dynamodb.partiql import _PARTIQL, _statements, rename_statement, statement_table


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
    """The new account's name of ``table`` (a name or a table ARN), or ``None`` when it has none."""
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
