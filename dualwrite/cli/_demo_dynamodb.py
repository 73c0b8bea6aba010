"""The DynamoDB part of ``dualwrite demo``: counters, conditions, a transaction and a batch."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TextIO

import dualwrite

TABLE = "orders"
TENANTS = ("acme", "globex", "initech")


def demo_dynamodb(primary_session: Any, shadow_session: Any, writer: Any, out: TextIO) -> bool:
    """Create ``orders`` in both accounts, write through a wrapped ``Table``, print placement.

    Each tenant gets: a counter bumped with ``ADD`` (the item exists on the primary only before
    the demo, where a replayed ``ADD`` would give the shadow a wrong count), a conditional update
    that passes and one that fails (caught, as a service would), a transaction with a
    ``ConditionCheck``, and a batch through ``Table.batch_writer()``. The flag is the writer's:
    tenants it turns on must end up identical in both accounts, the others absent from the
    shadow.

    Args:
        primary_session: boto3 session of the primary account.
        shadow_session: boto3 session of the shadow account.
        writer: the :class:`dualwrite.DualWriter` whose flag and hooks apply.
        out: where to print.

    Returns:
        Whether every item of a flagged tenant is equal in both accounts and no item of another
        tenant reached the shadow.
    """
    p_client = primary_session.client("dynamodb")
    s_client = shadow_session.client("dynamodb")
    for client in (p_client, s_client):
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(TableName=TABLE)
    primary_table = primary_session.resource("dynamodb").Table(TABLE)
    for tenant in TENANTS:  # written before the migration: on the primary only
        primary_table.put_item(Item={"pk": f"{tenant}#visits", "n": Decimal(100)})
    orders = writer.wrap(primary_table, shadow=shadow_session.resource("dynamodb").Table(TABLE))
    conditional_failed = orders.meta.client.exceptions.ConditionalCheckFailedException

    print("\n== DynamoDB: writes through the wrapped Table ==", file=out)
    for tenant in TENANTS:
        with dualwrite.tenant(tenant):
            for _ in range(3):
                orders.update_item(
                    Key={"pk": f"{tenant}#visits"},
                    UpdateExpression="ADD n :one",
                    ExpressionAttributeValues={":one": 1},
                )
            orders.put_item(Item={"pk": f"{tenant}#order-1", "status": "NEW", "total": 42})
            orders.update_item(  # passes: the order is NEW
                Key={"pk": f"{tenant}#order-1"},
                UpdateExpression="SET #s = :paid",
                ConditionExpression="#s = :new",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":paid": "PAID", ":new": "NEW"},
            )
            try:  # fails: it is PAID now; the primary decides, the shadow is not touched
                orders.update_item(
                    Key={"pk": f"{tenant}#order-1"},
                    UpdateExpression="SET #s = :paid",
                    ConditionExpression="#s = :new",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":paid": "PAID", ":new": "NEW"},
                )
            except conditional_failed:
                print(
                    f"  {tenant}: second 'NEW -> PAID' refused by the primary, as it should",
                    file=out,
                )
            orders.meta.client.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": TABLE,
                            "Key": {"pk": f"{tenant}#order-1"},
                            "ConditionExpression": "#s = :paid",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": {":paid": "PAID"},
                        }
                    },
                    {"Put": {"TableName": TABLE, "Item": {"pk": f"{tenant}#invoice-1"}}},
                    {
                        "Update": {
                            "TableName": TABLE,
                            "Key": {"pk": f"{tenant}#visits"},
                            "UpdateExpression": "ADD invoices :one",
                            "ExpressionAttributeValues": {":one": 1},
                        }
                    },
                ]
            )
            with orders.batch_writer() as batch:
                for line in range(3):
                    batch.put_item(Item={"pk": f"{tenant}#line-{line}", "qty": line + 1})
            orders.get_item(Key={"pk": f"{tenant}#order-1"})  # reads: primary only

    print("\n== DynamoDB: where each item landed ==", file=out)
    primary_items = _items(p_client)
    shadow_items = _items(s_client)
    flagged = {
        tenant
        for tenant in TENANTS
        if writer.flag is True or (callable(writer.flag) and _flag_on(writer, tenant, orders.name))
    }
    ok = True
    print(f"  {'key':<20} {'primary':<26} {'shadow':<26} same", file=out)
    for key in sorted(primary_items.keys() | shadow_items.keys()):
        p_item, s_item = primary_items.get(key), shadow_items.get(key)
        same = "yes" if p_item == s_item else ("-" if s_item is None else "NO")
        expected_on_shadow = key.split("#", 1)[0] in flagged
        if (expected_on_shadow and same != "yes") or (not expected_on_shadow and s_item):
            ok = False
        print(f"  {key:<20} {_show(p_item):<26} {_show(s_item):<26} {same}", file=out)
    return ok


def _flag_on(writer: Any, tenant: str, table: str) -> bool:
    write = dualwrite.Write(
        tenant=tenant,
        service="dynamodb",
        operation="UpdateItem",
        resource=table,
        shadow_resource=table,
    )
    try:
        return bool(writer.flag(write))
    except Exception:  # noqa: BLE001 - a failing flag means "off", as for a real write
        return False


def _items(client: Any) -> dict[str, dict[str, Any]]:
    pages = client.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True)
    return {item["pk"]["S"]: item for page in pages for item in page["Items"]}


def _show(item: dict[str, Any] | None) -> str:
    """A short view of an item's attributes (the demo's own data, safe to print)."""
    if item is None:
        return "absent"
    fields = []
    for name in sorted(item):
        if name == "pk":
            continue
        ((_, value),) = item[name].items()
        fields.append(f"{name}={value}")
    return " ".join(fields) or "(key only)"
