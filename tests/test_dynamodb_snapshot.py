"""The request as it was at call time (design.md, semantics 10), for every DynamoDB write.

A caller may reuse its dicts and lists the moment a call returns. In background mode the shadow
write runs later, on a worker: here the worker is held at a gate until the caller's loop has
changed its objects for the next call, so what reaches the shadow can only be right if the
request was copied when the call was made.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from _support.shadow import Gate
from boto3.dynamodb.types import TypeSerializer
from conftest import Accounts, DynamoEnv, drop_tables

import dualwrite
from dualwrite.testing import RecordingHook

SERIALIZER = TypeSerializer()
KEYS = ["k1", "k2", "k3", "k4"]


@pytest.fixture
def aws(shared_accounts: Accounts) -> Iterator[Accounts]:
    yield shared_accounts
    drop_tables(shared_accounts)


def typed(item: dict[str, Any]) -> dict[str, Any]:
    return {k: SERIALIZER.serialize(v) for k, v in item.items()}


class Held:
    """A background writer whose shadow calls wait until :meth:`release`."""

    def __init__(self, env: DynamoEnv) -> None:
        self.env = env
        self.recorder = RecordingHook()
        # single_writer: no read of the primary after the shadow write, which would otherwise
        # repair a put of the wrong item by its key and hide what this module tests.
        self.writer = dualwrite.DualWriter(
            flag=True, mode="background", journal=None, hooks=[self.recorder], single_writer=True
        )
        self.wrapped = self.writer.wrap(env.primary, shadow=env.shadow)
        shadow = env.shadow if env.level == "client" else env.shadow.meta.client
        self.gate = Gate(shadow)

    def release(self) -> None:
        self.gate.open()
        assert self.writer.flush(timeout=30)
        self.writer.close()
        assert set(self.recorder.kinds()) == {"shadow_written"}


def _loop_put(c: Any) -> None:
    item = {"pk": {"S": ""}, "tags": {"L": [{"S": ""}]}}
    for k in KEYS:
        item["pk"]["S"] = k  # the same dicts, changed in place for the next call
        item["tags"]["L"][0]["S"] = f"tag-{k}"
        c.put_item(TableName="orders", Item=item)


def _loop_update(c: Any) -> None:
    key = {"pk": {"S": ""}}
    values = {":v": {"S": ""}}
    for k in KEYS:
        key["pk"]["S"] = k
        values[":v"]["S"] = f"v-{k}"
        c.update_item(
            TableName="orders",
            Key=key,
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues=values,
            ReturnValues="UPDATED_OLD",
        )


def _loop_delete(c: Any) -> None:
    key = {"pk": {"S": ""}}
    for k in KEYS[:2]:
        key["pk"]["S"] = k
        c.delete_item(TableName="orders", Key=key)


def _loop_batch(c: Any) -> None:
    item = {"pk": {"S": ""}, "n": {"N": "1"}}
    key = {"pk": {"S": ""}}
    puts = [{"PutRequest": {"Item": item}}]
    deletes = [{"DeleteRequest": {"Key": key}}]
    request = {"orders": puts}
    for k in KEYS:
        item["pk"]["S"] = k
        c.batch_write_item(RequestItems=request)
    request["orders"] = deletes
    for k in KEYS[:2]:
        key["pk"]["S"] = k
        c.batch_write_item(RequestItems=request)
    deletes.clear()  # the Delete list itself, emptied once the calls returned


def _loop_transaction(c: Any) -> None:
    item = {"pk": {"S": ""}}
    items = [{"Put": {"TableName": "orders", "Item": item}}]
    for k in KEYS:
        item["pk"]["S"] = k
        c.transact_write_items(TransactItems=items)


def _loop_partiql(c: Any) -> None:
    parameters = [{"S": ""}, {"S": ""}]
    for k in KEYS:
        parameters[0]["S"] = f"v-{k}"
        parameters[1]["S"] = k
        c.execute_statement(Statement="UPDATE orders SET v = ? WHERE pk = ?", Parameters=parameters)


LOOPS = [
    pytest.param(_loop_put, id="put_item"),
    pytest.param(_loop_update, id="update_item"),
    pytest.param(_loop_delete, id="delete_item"),
    pytest.param(_loop_batch, id="batch_write_item"),
    pytest.param(_loop_transaction, id="transact_write_items"),
    pytest.param(_loop_partiql, id="execute_statement"),
]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_loop_reusing_its_request_mirrors_every_call(aws: Accounts, loop: Any) -> None:
    env = DynamoEnv(aws)
    for k in KEYS:  # the deletes need something to delete, on both sides
        env.p_raw.put_item(TableName="orders", Item=typed({"pk": k, "old": True}))
        env.s_raw.put_item(TableName="orders", Item=typed({"pk": k, "old": True}))
    held = Held(env)
    loop(held.wrapped)
    held.release()
    assert env.scan("shadow") == env.scan("primary")


def test_a_table_loop_reusing_python_values(aws: Accounts) -> None:
    env = DynamoEnv(aws, level="resource")
    held = Held(env)
    table = held.wrapped.Table("orders")
    item: dict[str, Any] = {"pk": "", "n": Decimal(0), "nested": {"list": [], "set": {"a"}}}
    for n, k in enumerate(KEYS):
        item["pk"] = k
        item["n"] = Decimal(n)
        item["nested"]["list"].append(n)
        item["nested"]["set"].add(k)
        table.put_item(Item=item)
    key = {"pk": ""}
    for k in KEYS[2:]:
        key["pk"] = k
        table.update_item(
            Key=key, UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": 1}
        )
    held.release()
    assert len(env.scan("primary")) == 4
    assert env.scan("shadow") == env.scan("primary")
