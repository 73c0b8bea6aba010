"""DynamoDB quickstart: dual-write one tenant's items to a second account, state not requests.

Runs as is on in-process moto (``pip install -e '.[demo]'``): nothing reaches AWS. Against real
accounts, drop ``mock_aws`` and the fake credentials, and build the shadow session from a role in
the new account.

The ``orders`` table exists in both accounts; each tenant's visit counter was written before the
migration started, so only the primary has it. A replayed ``ADD`` would give the shadow a counter
of 1; dualwrite gives it the primary's resulting item.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from moto import mock_aws

import dualwrite
from dualwrite.sessions import assume_role_session, shadow_config
from dualwrite.testing import RecordingHook

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "example",
        "AWS_SECRET_ACCESS_KEY": "example",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
)
MIGRATING = {"acme"}


def main() -> None:
    primary = boto3.Session()
    # The new account, reached the way a service would: a role in it, whose credentials
    # renew before they expire (a service dual-writes for weeks).
    shadow = assume_role_session(
        "arn:aws:iam::111111111111:role/migration", session_name="quickstart"
    )
    for session in (primary, shadow):  # table names are per account: the same name on both
        session.client("dynamodb").create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    before = primary.resource("dynamodb").Table("orders")
    for tenant in ("acme", "globex"):
        before.put_item(Item={"pk": f"{tenant}#visits", "n": 41})

    events = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=lambda write: write.tenant in MIGRATING,
        hooks=[events, dualwrite.hooks.LoggingHook()],
    )
    # Resource-level primary, resource-level shadow: like with like.
    orders = writer.wrap(
        primary.resource("dynamodb").Table("orders"),
        shadow=shadow.resource("dynamodb", config=shadow_config()).Table("orders"),
    )

    for tenant in ("acme", "globex"):
        with dualwrite.tenant(tenant):
            orders.update_item(
                Key={"pk": f"{tenant}#visits"},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": 1},
            )
            orders.put_item(Item={"pk": f"{tenant}#order-1", "status": "PAID"})
            with orders.batch_writer() as batch:
                for line in range(2):
                    batch.put_item(Item={"pk": f"{tenant}#line-{line}", "qty": line + 1})
    writer.close()

    for name, session in (("primary", primary), ("shadow", shadow)):
        items = session.client("dynamodb").scan(TableName="orders", ConsistentRead=True)["Items"]
        print(f"{name:>8}: {sorted(_show(item) for item in items)}")
    print("events:", events.kinds())


def _show(item: dict[str, Any]) -> str:
    attributes = {k: next(iter(v.values())) for k, v in item.items() if k != "pk"}
    return f"{item['pk']['S']} {attributes}" if attributes else item["pk"]["S"]


if __name__ == "__main__":
    with mock_aws():
        main()
