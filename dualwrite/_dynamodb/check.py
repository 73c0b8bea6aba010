"""Pre-flight checks of a DynamoDB table pair, against the real accounts.

The two tables' shapes are compared (key schema, indexes, capacity, TTL); the probe item is put
in the shadow table with a condition that it did not exist, read back and deleted with a
condition that it is the probe, so a check never touches real data.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dualwrite._core.checks import Check, access_fix, failure, failure_code

if TYPE_CHECKING:
    from dualwrite._core.mirror import Mirror


def _describe(client: Any, table: str) -> dict[str, Any]:
    return dict(client.describe_table(TableName=table)["Table"])


def _key_schema(desc: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    types = {a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions", [])}
    return [
        (k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?"))
        for k in sorted(desc.get("KeySchema", []), key=lambda k: k["KeyType"] != "HASH")
    ]


def _show_schema(schema: list[tuple[str, str, str]]) -> str:
    return ", ".join(f"{name} ({kind}, {typ})" for name, kind, typ in schema)


def _indexes(desc: Mapping[str, Any]) -> dict[str, str]:
    types = {a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions", [])}
    found = {}
    for kind, field in (("GSI", "GlobalSecondaryIndexes"), ("LSI", "LocalSecondaryIndexes")):
        for index in desc.get(field, []) or []:
            keys = ", ".join(
                f"{k['AttributeName']} {k['KeyType']} {types.get(k['AttributeName'], '?')}"
                for k in sorted(index["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
            )
            projection = index.get("Projection", {})
            also = sorted(projection.get("NonKeyAttributes", []))
            shown = projection.get("ProjectionType", "?") + (f" {also}" if also else "")
            found[index["IndexName"]] = f"{kind} keys ({keys}) projection {shown}"
    return found


def _capacity(desc: Mapping[str, Any]) -> tuple[str, int | None]:
    mode = desc.get("BillingModeSummary", {}).get("BillingMode")
    throughput = desc.get("ProvisionedThroughput", {})
    wcu = throughput.get("WriteCapacityUnits")
    if mode == "PAY_PER_REQUEST" or (mode is None and not wcu):
        return "PAY_PER_REQUEST (on demand)", None
    rcu = throughput.get("ReadCapacityUnits")
    return f"PROVISIONED, {rcu} RCU / {wcu} WCU", int(wcu or 0)


def _ttl(client: Any, table: str) -> str:
    try:
        ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        return f"not readable ({failure_code(exc)})"
    status = str(ttl.get("TimeToLiveStatus", "DISABLED"))
    attribute = ttl.get("AttributeName")
    return f"{status} on {attribute}" if attribute and status != "DISABLED" else status


def _probe_value(attr_type: str) -> dict[str, Any]:
    token = uuid.uuid4()
    if attr_type == "N":
        return {"N": f"-{token.int % 10**37}"}
    if attr_type == "B":
        return {"B": token.bytes}
    return {"S": f"dualwrite-check#{token.hex}"}


def check_dynamodb(mirror: Mirror, table: str) -> list[Check]:
    """Check that ``table`` and its shadow have the same shape and that the shadow takes writes.

    Args:
        mirror: the wrapped DynamoDB pair (names and both clients).
        table: the primary table.
    """
    primary, shadow = mirror.primary, mirror.shadow
    checks = []
    shadow_table = mirror.shadow_name(table) or table
    descs = {}
    for side, client, name in (("primary", primary, table), ("shadow", shadow, shadow_table)):
        try:
            descs[side] = _describe(client, name)
        except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
            fix = (
                f"create table {name} in the {side} account with the primary's key schema"
                if failure_code(exc) == "ResourceNotFoundException"
                else access_fix(exc, side, f"dynamodb:DescribeTable on table {name}")
            )
            checks.append(
                Check(status="FAIL", name=f"{side} table exists", detail=failure(exc), fix=fix)
            )
    if len(descs) < 2:
        return checks
    for side, name in (("primary", table), ("shadow", shadow_table)):
        desc = descs[side]
        checks.append(
            Check(
                status="PASS",
                name=f"{side} table exists",
                detail=f"{name}, {desc.get('TableStatus')}, about {desc.get('ItemCount', 0)} items",
            )
        )
    p_schema, s_schema = _key_schema(descs["primary"]), _key_schema(descs["shadow"])
    if p_schema == s_schema:
        checks.append(Check(status="PASS", name="same key schema", detail=_show_schema(p_schema)))
    else:
        checks.append(
            Check(
                status="FAIL",
                name="same key schema",
                detail=f"primary {_show_schema(p_schema)}; shadow {_show_schema(s_schema)}",
                fix=f"recreate {shadow_table} with the primary's key schema: items are copied "
                "by key",
            )
        )
    checks.append(_compare_indexes(descs["primary"], descs["shadow"], shadow_table))
    checks.extend(_compare_capacity(descs["primary"], descs["shadow"], shadow_table))
    checks.extend(_compare_ttl(primary, table, shadow, shadow_table))
    checks.append(_primary_readable(primary, table))
    if p_schema == s_schema:
        checks.extend(_item_probe(shadow, shadow_table, s_schema))
    return checks


def _compare_indexes(
    primary: Mapping[str, Any], shadow: Mapping[str, Any], shadow_table: str
) -> Check:
    p_idx, s_idx = _indexes(primary), _indexes(shadow)
    if p_idx == s_idx:
        detail = ", ".join(sorted(p_idx)) if p_idx else "no secondary indexes on either side"
        return Check(status="PASS", name="same secondary indexes", detail=detail)
    problems = []
    for name in sorted(set(p_idx) - set(s_idx)):
        problems.append(f"missing on the shadow: {name} ({p_idx[name]})")
    for name in sorted(set(p_idx) & set(s_idx)):
        if p_idx[name] != s_idx[name]:
            problems.append(f"{name} differs: primary {p_idx[name]}; shadow {s_idx[name]}")
    for name in sorted(set(s_idx) - set(p_idx)):
        problems.append(f"only on the shadow: {name}")
    return Check(
        status="FAIL",
        name="same secondary indexes",
        detail="; ".join(problems),
        fix=f"create or fix the indexes on {shadow_table} (update-table "
        "--global-secondary-index-updates; an LSI needs the table recreated) so that queries "
        "behave the same after cutover",
    )


def _compare_capacity(
    primary: Mapping[str, Any], shadow: Mapping[str, Any], shadow_table: str
) -> list[Check]:
    (p_mode, p_wcu), (s_mode, s_wcu) = _capacity(primary), _capacity(shadow)
    checks = [
        Check(status="INFO", name="billing mode (primary)", detail=p_mode),
        Check(status="INFO", name="billing mode (shadow)", detail=s_mode),
    ]
    if s_wcu is not None and (p_wcu is None or s_wcu < p_wcu):
        checks.append(
            Check(
                status="WARN",
                name="shadow write capacity",
                detail=f"shadow {s_mode}; primary {p_mode}",
                fix=f"give {shadow_table} at least the primary's write capacity, or on-demand: "
                "it takes every dual-write plus the backfill's (copy --max-rps paces the "
                "backfill)",
            )
        )
    return checks


def _compare_ttl(primary: Any, table: str, shadow: Any, shadow_table: str) -> list[Check]:
    p_ttl, s_ttl = _ttl(primary, table), _ttl(shadow, shadow_table)
    if p_ttl == s_ttl:
        return [Check(status="INFO", name="time to live", detail=f"{p_ttl} on both sides")]
    return [
        Check(
            status="WARN",
            name="time to live",
            detail=f"primary {p_ttl}; shadow {s_ttl}",
            fix=f"configure TTL on {shadow_table} as on the primary: expiry deletions happen in "
            "each account on its own and are not dual-written",
        )
    ]


def _primary_readable(primary: Any, table: str) -> Check:
    name = "primary table readable"
    try:
        primary.scan(TableName=table, Limit=1)
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        return Check(
            status="FAIL",
            name=name,
            detail=failure(exc),
            fix=f"grant dynamodb:Scan, Query, GetItem and BatchGetItem on table {table} to the "
            "primary's credentials (diff, copy and repair read it)",
        )
    return Check(status="PASS", name=name, detail="Scan")


def _item_probe(shadow: Any, table: str, schema: list[tuple[str, str, str]]) -> list[Check]:
    key = {name: _probe_value(attr_type) for name, _, attr_type in schema}
    token = uuid.uuid4().hex
    hash_name = schema[0][0]
    try:
        shadow.put_item(
            TableName=table,
            Item={**key, "dualwrite_probe": {"S": token}},
            ConditionExpression="attribute_not_exists(#k)",
            ExpressionAttributeNames={"#k": hash_name},
        )
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        return [
            Check(
                status="FAIL",
                name="probe item written",
                detail=failure(exc),
                fix=f"grant dynamodb:PutItem, UpdateItem, DeleteItem, BatchWriteItem and "
                f"BatchGetItem on table {table} to the shadow's credentials",
            )
        ]
    checks = [Check(status="PASS", name="probe item written", detail="conditional PutItem")]
    try:
        found = shadow.batch_get_item(
            RequestItems={table: {"Keys": [key], "ConsistentRead": True}}
        )["Responses"].get(table, [])
        if found and found[0].get("dualwrite_probe") == {"S": token}:
            checks.append(Check(status="PASS", name="probe item read back", detail="BatchGetItem"))
        else:
            checks.append(
                Check(
                    status="FAIL",
                    name="probe item read back",
                    detail="a consistent read did not return the probe",
                    fix="check that --shadow-endpoint-url and the shadow table are the same",
                )
            )
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        checks.append(
            Check(
                status="FAIL",
                name="probe item read back",
                detail=failure(exc),
                fix=f"grant dynamodb:BatchGetItem and GetItem on table {table} (copy and diff "
                "read the shadow)",
            )
        )
    try:
        shadow.delete_item(
            TableName=table,
            Key=key,
            ConditionExpression="dualwrite_probe = :t",
            ExpressionAttributeValues={":t": {"S": token}},
        )
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        checks.append(
            Check(
                status="FAIL",
                name="probe item deleted",
                detail=failure(exc),
                fix=f"grant dynamodb:DeleteItem on table {table}, then delete the item whose "
                "dualwrite_probe attribute is set",
            )
        )
    else:
        checks.append(Check(status="PASS", name="probe item deleted", detail="conditional"))
    return checks
