"""DynamoDB dual-write on moto with two accounts: state replication, fidelity, placement.

Every assertion about data reads each account through its own unwrapped client
(``DynamoEnv.p_raw`` / ``s_raw``); every assertion about what a side received records the
requests its client really sent.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from conftest import (
    Accounts,
    DynamoEnv,
    LeaveUnprocessed,
    create_table,
    drop_tables,
    record_requests,
)

import dualwrite
from dualwrite._dynamodb import converge as _converge
from dualwrite._dynamodb import keys as _keys
from dualwrite._dynamodb import operations as _operations
from dualwrite._dynamodb import partiql as _partiql
from dualwrite._dynamodb.proxy import DynamoDBClientProxy
from dualwrite.events import ShadowFailed, Unsupported
from dualwrite.exceptions import ConfigurationError, ShadowWriteError
from dualwrite.testing import RecordingHook

TWIN_REGION = "eu-west-1"
SERIALIZER = TypeSerializer()


@pytest.fixture
def aws(shared_accounts: Accounts) -> Iterator[Accounts]:
    """The module's two moto accounts, with no table left over from the previous test."""
    yield shared_accounts
    drop_tables(shared_accounts)


# -- helpers ---------------------------------------------------------------------------------------


def typed(item: dict[str, Any]) -> dict[str, Any]:
    return {k: SERIALIZER.serialize(v) for k, v in item.items()}


class Ops:
    """Build parameters in the format of one level: typed values, or Python values."""

    def __init__(self, client: Any, level: str, table: str = "orders") -> None:
        self.client = client
        self.level = level
        self.table = table

    def conv(self, item: dict[str, Any]) -> dict[str, Any]:
        return typed(item) if self.level == "client" else item

    def key(self, pk: str) -> dict[str, Any]:
        return self.conv({"pk": pk})

    def item(self, **attributes: Any) -> dict[str, Any]:
        return self.conv(attributes)

    def values(self, **values: Any) -> dict[str, Any]:
        return self.conv({f":{name}": value for name, value in values.items()})


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A response without what differs between any two calls (request id, date, checksum)."""
    out = {k: v for k, v in result.items() if k != "ResponseMetadata"}
    meta = result["ResponseMetadata"]
    out["_status"] = meta["HTTPStatusCode"]
    out["_headers"] = sorted(meta["HTTPHeaders"])
    return out


def outcome(action: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", comparable response)`` or ``("error", what the caller can see of it)``."""
    try:
        return "ok", comparable(action())
    except ClientError as exc:
        response = {k: v for k, v in exc.response.items() if k != "ResponseMetadata"}
        return "error", (
            type(exc).__name__,
            str(exc),
            exc.operation_name,
            response,
            exc.response["ResponseMetadata"]["HTTPStatusCode"],
        )


class Fidelity:
    """The wrapped primary and a plain twin (same account, another region) seeded alike."""

    def __init__(self, accounts: Accounts, level: str) -> None:
        self.env = DynamoEnv(accounts, level=level)
        self.recorder = RecordingHook()
        wrapped = self.env.wrap(hooks=[self.recorder])
        twin_raw = accounts.client("primary", "dynamodb", region_name=TWIN_REGION)
        create_table(twin_raw, "orders")
        if level == "client":
            twin = accounts.client("primary", "dynamodb", region_name=TWIN_REGION)
            self.wrapped = Ops(wrapped, level)
        else:
            twin = accounts.resource("primary", "dynamodb", region_name=TWIN_REGION).meta.client
            self.wrapped = Ops(wrapped.meta.client, level)
        self.twin = Ops(twin, level)
        for raw in (self.env.p_raw, twin_raw):
            raw.put_item(
                TableName="orders",
                Item=typed({"pk": "a", "n": 5, "tags": ["x"], "secret": "s3cr3t"}),
            )
        self.shadow_sent = record_requests(accounts_shadow_client(self.env))

    def both(self, action: Callable[[Ops], Any]) -> tuple[tuple[str, Any], tuple[str, Any]]:
        return outcome(lambda: action(self.wrapped)), outcome(lambda: action(self.twin))


def accounts_shadow_client(env: DynamoEnv) -> Any:
    return env.shadow if env.level == "client" else env.shadow.meta.client


LEVELS = [pytest.param("client", id="client"), pytest.param("resource", id="resource")]


def _update(return_values: str | None) -> Callable[[Ops], Any]:
    def action(o: Ops) -> Any:
        extra = {} if return_values is None else {"ReturnValues": return_values}
        return o.client.update_item(
            TableName="orders",
            Key=o.key("a"),
            UpdateExpression="ADD n :one SET note = :note",
            ExpressionAttributeValues=o.values(one=1, note="hi"),
            ReturnConsumedCapacity="TOTAL",
            ReturnItemCollectionMetrics="SIZE",
            **extra,
        )

    return action


def TRANSACTION(o: Ops) -> Any:
    return o.client.transact_write_items(
        TransactItems=[
            {
                "ConditionCheck": {
                    "TableName": "orders",
                    "Key": o.key("a"),
                    "ConditionExpression": "n = :five",
                    "ExpressionAttributeValues": o.values(five=5),
                }
            },
            {"Put": {"TableName": "orders", "Item": o.item(pk="t", n=1)}},
        ],
        ReturnConsumedCapacity="TOTAL",
    )


SUCCESSES = [
    pytest.param(_update(None), id="update-no-return-values"),
    pytest.param(_update("NONE"), id="update-NONE"),
    pytest.param(_update("ALL_NEW"), id="update-ALL_NEW"),
    pytest.param(_update("ALL_OLD"), id="update-ALL_OLD"),
    pytest.param(_update("UPDATED_NEW"), id="update-UPDATED_NEW"),
    pytest.param(_update("UPDATED_OLD"), id="update-UPDATED_OLD"),
    pytest.param(
        lambda o: o.client.put_item(
            TableName="orders",
            Item=o.item(pk="a", n=1),
            ConditionExpression="attribute_exists(pk)",
            ReturnValues="ALL_OLD",
            ReturnConsumedCapacity="INDEXES",
        ),
        id="put-conditional-ALL_OLD",
    ),
    pytest.param(
        lambda o: o.client.delete_item(TableName="orders", Key=o.key("a"), ReturnValues="ALL_OLD"),
        id="delete-ALL_OLD",
    ),
    pytest.param(
        lambda o: o.client.batch_write_item(
            RequestItems={
                "orders": [
                    {"PutRequest": {"Item": o.item(pk="b", n=2)}},
                    {"DeleteRequest": {"Key": o.key("a")}},
                ]
            },
            ReturnConsumedCapacity="TOTAL",
        ),
        id="batch",
    ),
    pytest.param(TRANSACTION, id="transaction"),
]


FAILURES = [
    pytest.param(
        lambda o: o.client.put_item(
            TableName="orders",
            Item=o.item(pk="a", n=1),
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
        id="put-condition-failed-with-old-item",
    ),
    pytest.param(
        lambda o: o.client.update_item(
            TableName="orders",
            Key=o.key("a"),
            UpdateExpression="SET n = :one",
            ConditionExpression="n > :ten",
            ExpressionAttributeValues=o.values(one=1, ten=10),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        ),
        id="update-condition-failed",
    ),
    pytest.param(
        lambda o: o.client.update_item(
            TableName="orders",
            Key=o.key("a"),
            UpdateExpression="SET missing = missing + :one",
            ExpressionAttributeValues=o.values(one=1),
        ),
        id="update-validation-error",
    ),
    pytest.param(
        lambda o: o.client.delete_item(
            TableName="orders",
            Key=o.key("a"),
            ConditionExpression="n = :zero",
            ExpressionAttributeValues=o.values(zero=0),
        ),
        id="delete-condition-failed",
    ),
    pytest.param(
        lambda o: o.client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "orders", "Item": o.item(pk="t", n=1)}},
                {
                    "Update": {
                        "TableName": "orders",
                        "Key": o.key("a"),
                        "UpdateExpression": "ADD n :one",
                        "ConditionExpression": "n > :ten",
                        "ExpressionAttributeValues": o.values(one=1, ten=10),
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ]
        ),
        id="transaction-cancelled",
    ),
]


# -- caller fidelity -------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("action", SUCCESSES)
def test_responses_are_those_of_plain_boto3(
    aws: Accounts, level: str, action: Callable[[Ops], Any]
) -> None:
    f = Fidelity(aws, level)
    wrapped, twin = f.both(action)
    assert wrapped == twin
    assert wrapped[0] == "ok"
    # ... and the shadow converged to the primary for every key the call wrote. The seeded
    # item "a" exists on the primary only: a transaction that merely checks it leaves it so.
    primary, shadow = f.env.scan("primary"), f.env.scan("shadow")
    if action is TRANSACTION:
        assert shadow == [i for i in primary if i["pk"]["S"] != "a"]
    else:
        assert shadow == primary
    assert f.recorder.kinds() == ["shadow_written"]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("action", FAILURES)
def test_errors_are_those_of_plain_boto3_and_the_shadow_is_untouched(
    aws: Accounts, level: str, action: Callable[[Ops], Any]
) -> None:
    f = Fidelity(aws, level)
    before = f.env.scan("primary")
    wrapped, twin = f.both(action)
    assert wrapped == twin
    assert wrapped[0] == "error"
    assert f.shadow_sent == []
    assert f.env.scan("shadow") == []
    assert f.env.scan("primary") == before
    assert f.recorder.events == []


def test_the_caller_gets_the_primary_clients_own_exception_class(ddb: DynamoEnv) -> None:
    wrapped = ddb.wrap()
    ddb.p_raw.put_item(TableName="orders", Item=typed({"pk": "a"}))
    with pytest.raises(ddb.primary.exceptions.ConditionalCheckFailedException) as excinfo:
        wrapped.put_item(
            TableName="orders",
            Item=typed({"pk": "a"}),
            ConditionExpression="attribute_not_exists(pk)",
        )
    assert excinfo.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    with pytest.raises(wrapped.exceptions.TransactionCanceledException) as cancelled:
        wrapped.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": "orders",
                        "Item": typed({"pk": "a"}),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            ]
        )
    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == [
        "ConditionalCheckFailed"
    ]
    assert ddb.scan("shadow") == []


# -- UpdateItem: the shadow gets the resulting item ------------------------------------------------


def _body_of(requests: list[dict[str, Any]], operation: str) -> list[dict[str, Any]]:
    return [r["body"] for r in requests if r["operation"] == operation]


def record_bodies(client: Any) -> list[dict[str, Any]]:
    """The JSON body of every request ``client`` sends, with its operation name."""
    seen: list[dict[str, Any]] = []

    def on_call(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append({"operation": model.name, "body": json.loads(params["body"] or b"{}")})

    client.meta.events.register(
        "before-call.dynamodb", on_call, unique_id=f"dualwrite-tests-bodies-{id(seen)}"
    )
    return seen


@pytest.mark.parametrize(
    ("asked", "primary_calls", "sent"),
    [
        pytest.param(None, ["UpdateItem"], "ALL_NEW", id="none-asked"),
        pytest.param("NONE", ["UpdateItem"], "ALL_NEW", id="NONE"),
        pytest.param("ALL_NEW", ["UpdateItem"], "ALL_NEW", id="ALL_NEW"),
        pytest.param("ALL_OLD", ["UpdateItem", "GetItem"], "ALL_OLD", id="ALL_OLD"),
        pytest.param("UPDATED_NEW", ["UpdateItem", "GetItem"], "UPDATED_NEW", id="UPDATED_NEW"),
        pytest.param("UPDATED_OLD", ["UpdateItem", "GetItem"], "UPDATED_OLD", id="UPDATED_OLD"),
    ],
)
@pytest.mark.parametrize("single_writer", [False, True], ids=["fleet", "single-writer"])
def test_update_item_calls_and_what_the_primary_was_asked(
    ddb: DynamoEnv, asked: str | None, primary_calls: list[str], sent: str, single_writer: bool
) -> None:
    ddb.p_raw.put_item(TableName="orders", Item=typed({"pk": "a", "n": 5}))
    wrapped = ddb.wrap(single_writer=single_writer)
    if not single_writer:  # one consistent read after the shadow write (fleet convergence)
        primary_calls = [*primary_calls, "GetItem"]
    primary_bodies = record_bodies(ddb.primary)
    shadow_bodies = record_bodies(ddb.shadow)
    extra = {} if asked is None else {"ReturnValues": asked}
    response = wrapped.update_item(
        TableName="orders",
        Key=typed({"pk": "a"}),
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues=typed({":one": 1}),
        **extra,
    )
    assert [r["operation"] for r in primary_bodies] == primary_calls
    assert primary_bodies[0]["body"]["ReturnValues"] == sent
    for read in primary_bodies[1:]:
        assert read["body"]["ConsistentRead"] is True
    assert ("Attributes" in response) == (asked not in (None, "NONE"))
    # The shadow lacked the item: it gets the primary's resulting item, n = 6, not a replay (1).
    assert [r["operation"] for r in shadow_bodies] == ["PutItem"]
    assert shadow_bodies[0]["body"] == {
        "TableName": "orders",
        "Item": {"pk": {"S": "a"}, "n": {"N": "6"}},
    }
    assert ddb.get("shadow", typed({"pk": "a"})) == typed({"pk": "a", "n": 6})


def test_an_update_that_passes_on_the_primary_overwrites_a_diverged_shadow(
    ddb: DynamoEnv,
) -> None:
    ddb.p_raw.put_item(TableName="orders", Item=typed({"pk": "a", "v": 1, "l": [1]}))
    ddb.s_raw.put_item(TableName="orders", Item=typed({"pk": "a", "v": 99, "stale": True}))
    wrapped = ddb.wrap()
    wrapped.update_item(
        TableName="orders",
        Key=typed({"pk": "a"}),
        UpdateExpression="SET v = v + :one, l = list_append(l, :more)",
        ConditionExpression="v = :one",
        ExpressionAttributeValues=typed({":one": 1, ":more": [2]}),
    )
    assert ddb.get("shadow", typed({"pk": "a"})) == typed({"pk": "a", "v": 2, "l": [1, 2]})


def test_a_read_back_that_finds_no_item_deletes_it_on_the_shadow(ddb: DynamoEnv) -> None:
    key = typed({"pk": "a"})
    ddb.p_raw.put_item(TableName="orders", Item=typed({"pk": "a", "n": 1}))
    ddb.s_raw.put_item(TableName="orders", Item=typed({"pk": "a", "n": 1}))

    def deleted_by_another_process(**_: Any) -> None:
        ddb.p_raw.delete_item(TableName="orders", Key=key)

    ddb.primary.meta.events.register(
        "after-call.dynamodb.UpdateItem", deleted_by_another_process, unique_id="race"
    )
    wrapped = ddb.wrap()
    wrapped.update_item(
        TableName="orders",
        Key=key,
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues=typed({":one": 1}),
        ReturnValues="UPDATED_OLD",
    )
    assert ddb.get("primary", key) is None
    assert ddb.get("shadow", key) is None


# -- PutItem, DeleteItem ---------------------------------------------------------------------------


def test_put_and_delete_reach_the_shadow_without_the_callers_condition(ddb: DynamoEnv) -> None:
    # The shadow holds an item the condition would reject; the primary decides alone.
    ddb.s_raw.put_item(TableName="orders", Item=typed({"pk": "a", "old": True}))
    wrapped = ddb.wrap()
    shadow_bodies = record_bodies(ddb.shadow)
    wrapped.put_item(
        TableName="orders",
        Item=typed({"pk": "a", "n": 1}),
        ConditionExpression="attribute_not_exists(pk)",
        ReturnValues="ALL_OLD",
    )
    assert ddb.get("shadow", typed({"pk": "a"})) == typed({"pk": "a", "n": 1})
    assert shadow_bodies[-1]["body"] == {"TableName": "orders", "Item": typed({"pk": "a", "n": 1})}
    wrapped.delete_item(
        TableName="orders",
        Key=typed({"pk": "a"}),
        ConditionExpression="n = :one",
        ExpressionAttributeValues=typed({":one": 1}),
    )
    assert shadow_bodies[-1]["body"] == {"TableName": "orders", "Key": typed({"pk": "a"})}
    assert ddb.scan("primary") == ddb.scan("shadow") == []


def test_the_key_schema_is_described_once_per_table(ddb: DynamoEnv) -> None:
    wrapped = ddb.wrap()
    primary_calls = record_requests(ddb.primary)
    for n in range(3):
        wrapped.put_item(TableName="orders", Item=typed({"pk": f"k{n}"}))
    # Each put is followed by one consistent read (fleet convergence).
    assert primary_calls == ["DescribeTable"] + ["PutItem", "GetItem"] * 3


def _deny_describe(client: Any) -> None:
    def deny(**_: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "no DescribeTable"}},
            "DescribeTable",
        )

    client.meta.events.register("before-call.dynamodb.DescribeTable", deny, unique_id="deny")


def test_the_key_schema_comes_from_the_shadow_when_the_primary_denies_it(
    ddb: DynamoEnv,
) -> None:
    _deny_describe(ddb.primary)
    shadow_calls = record_requests(ddb.shadow)
    rec = RecordingHook()
    wrapped = ddb.wrap(hooks=[rec])
    wrapped.put_item(TableName="orders", Item=typed({"pk": "a", "n": 1}))
    wrapped.put_item(TableName="orders", Item=typed({"pk": "b", "n": 2}))
    assert ddb.scan("shadow") == ddb.scan("primary")
    assert [(e.kind, e.write.key) for e in rec.events] == [
        ("shadow_written", typed({"pk": "a"})),
        ("shadow_written", typed({"pk": "b"})),
    ]
    assert shadow_calls == ["DescribeTable", "PutItem", "PutItem"]


def test_at_cutover_the_key_schema_comes_from_the_old_account_when_the_new_denies_it(
    ddb: DynamoEnv,
) -> None:
    _deny_describe(ddb.shadow)  # the new account, written first at CUTOVER
    old_calls = record_requests(ddb.primary)
    rec = RecordingHook()
    writer = dualwrite.DualWriter(
        stage=lambda write: dualwrite.Stage.CUTOVER, hooks=[rec], journal=None
    )
    wrapped = writer.wrap(ddb.primary, shadow=ddb.shadow)
    wrapped.put_item(TableName="orders", Item=typed({"pk": "a", "n": 1}))
    assert ddb.scan("shadow") == ddb.scan("primary") == [typed({"pk": "a", "n": 1})]
    assert [(e.kind, e.write.key) for e in rec.events] == [("shadow_written", typed({"pk": "a"}))]
    assert old_calls[0] == "DescribeTable"
    writer.close()


@pytest.mark.parametrize("mode", ["sync", "background"])
def test_a_put_whose_key_schema_neither_account_tells_is_mirrored_and_reported(
    ddb: DynamoEnv, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    _deny_describe(ddb.primary)
    _deny_describe(ddb.shadow)
    rec = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, hooks=[rec], mode=mode, journal=None)
    wrapped = writer.wrap(ddb.primary, shadow=ddb.shadow)
    with caplog.at_level(logging.WARNING, logger="dualwrite"):
        wrapped.put_item(TableName="orders", Item=typed({"pk": "a", "n": 1}))
        wrapped.batch_write_item(
            RequestItems={"orders": [{"PutRequest": {"Item": typed({"pk": "b", "n": 2})}}]}
        )
        writer.flush()
    # The items reach the shadow as well as can be, but unordered and unchecked: each write is
    # reported unsupported, with no key (a table-level journal entry), never silently.
    assert ddb.scan("shadow") == ddb.scan("primary")
    unknown = [e for e in rec.events if isinstance(e, Unsupported)]
    assert [(e.reason, e.write.key, e.write.resource) for e in unknown] == [
        ("unknown-key", None, "orders"),
        ("unknown-key", None, "orders"),
    ]
    assert "shadow_failed" not in rec.kinds()
    # Described once per account, then left alone for a while: one warning, not one per write.
    assert sum("DescribeTable" in r.getMessage() for r in caplog.records) == 1
    writer.close()


# -- BatchWriteItem --------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_batch_mirrors_only_what_the_primary_processed(aws: Accounts, level: str) -> None:
    env = DynamoEnv(aws, level=level)
    primary_client = env.primary if level == "client" else env.primary.meta.client
    shadow_client = accounts_shadow_client(env)
    leave = LeaveUnprocessed(primary_client, env.p_raw)
    leave.choose = lambda table, request: (
        "PutRequest" in request and (request["PutRequest"]["Item"]["pk"]["S"] == "b")
    )
    rec = RecordingHook()
    wrapped = env.wrap(hooks=[rec])
    client = Ops(wrapped if level == "client" else wrapped.meta.client, level)
    shadow_bodies = record_bodies(shadow_client)
    response = client.client.batch_write_item(
        RequestItems={"orders": [{"PutRequest": {"Item": client.item(pk=pk)}} for pk in "abc"]}
    )
    left = response["UnprocessedItems"]["orders"]
    assert left == [{"PutRequest": {"Item": client.item(pk="b")}}]
    assert [i["pk"]["S"] for i in env.scan("shadow")] == ["a", "c"]
    assert [len(b["body"]["RequestItems"]["orders"]) for b in shadow_bodies] == [2]
    # The caller retries the rest through the wrapper: mirrored when it succeeds.
    leave.choose = lambda table, request: False
    client.client.batch_write_item(RequestItems=response["UnprocessedItems"])
    assert env.scan("shadow") == env.scan("primary")
    assert [i["pk"]["S"] for i in env.scan("shadow")] == ["a", "b", "c"]
    assert rec.kinds() == ["shadow_written", "shadow_written"]


def test_a_batch_the_primary_left_entirely_unprocessed_reports_nothing(ddb: DynamoEnv) -> None:
    LeaveUnprocessed(ddb.primary, ddb.p_raw).choose = lambda table, request: True
    rec = RecordingHook()
    wrapped = ddb.wrap(hooks=[rec])
    shadow_calls = record_requests(ddb.shadow)
    wrapped.batch_write_item(
        RequestItems={"orders": [{"DeleteRequest": {"Key": typed({"pk": "a"})}}]}
    )
    assert shadow_calls == []
    assert rec.events == []


def test_the_shadows_own_unprocessed_items_are_retried(ddb: DynamoEnv) -> None:
    shadow_leave = LeaveUnprocessed(ddb.shadow, ddb.s_raw)
    seen: set[str] = set()

    def once(table: str, request: dict[str, Any]) -> bool:
        pk = request["PutRequest"]["Item"]["pk"]["S"]
        first = pk not in seen
        seen.add(pk)
        return first and pk in ("a", "c")

    shadow_leave.choose = once
    rec = RecordingHook()
    wrapped = ddb.wrap(hooks=[rec])
    wrapped.batch_write_item(
        RequestItems={"orders": [{"PutRequest": {"Item": typed({"pk": pk})}} for pk in "abc"]}
    )
    assert ddb.scan("shadow") == ddb.scan("primary")
    assert len(ddb.scan("shadow")) == 3
    assert rec.kinds() == ["shadow_written"]


def test_items_the_shadow_never_processes_fail_the_write_and_journal_its_keys(
    ddb: DynamoEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_converge, "_RETRY_BASE", 0.001)
    LeaveUnprocessed(ddb.shadow, ddb.s_raw).choose = lambda table, request: (
        "DeleteRequest" in request
    )
    ddb.p_raw.put_item(TableName="orders", Item=typed({"pk": "gone"}))
    ddb.s_raw.put_item(TableName="orders", Item=typed({"pk": "gone"}))
    rec = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, hooks=[rec], journal=str(tmp_path / "j.db"))
    wrapped = writer.wrap(ddb.primary, shadow=ddb.shadow)
    wrapped.batch_write_item(
        RequestItems={
            "orders": [
                {"PutRequest": {"Item": typed({"pk": "a"})}},
                {"DeleteRequest": {"Key": typed({"pk": "gone"})}},
            ]
        }
    )
    (failed,) = rec.of_kind("shadow_failed")
    assert isinstance(failed, ShadowFailed)
    assert (failed.error_type, failed.error_code) == ("ShadowUnprocessed", "UnprocessedItems")
    assert failed.write.operation == "BatchWriteItem"
    assert ddb.get("shadow", typed({"pk": "a"})) == typed({"pk": "a"})
    assert ddb.get("shadow", typed({"pk": "gone"})) == typed({"pk": "gone"})
    assert writer.journal is not None
    assert sorted(json.dumps(e.key) for e in writer.journal.entries()) == [
        json.dumps(typed({"pk": "a"})),
        json.dumps(typed({"pk": "gone"})),
    ]
    LeaveUnprocessed(ddb.shadow, ddb.s_raw).choose = lambda table, request: False
    assert writer.repair().remaining == 0
    assert ddb.scan("shadow") == ddb.scan("primary")
    writer.close()


def test_a_shadow_that_keeps_throttling_batches_opens_the_circuit(
    ddb: DynamoEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_converge, "_RETRY_BASE", 0.0)
    throttle = LeaveUnprocessed(ddb.shadow, ddb.s_raw)
    throttle.choose = lambda table, request: True  # the shadow processes nothing
    rec = RecordingHook()
    breaker = dualwrite.CircuitBreaker(failures=3, reset_after=3600)
    writer = dualwrite.DualWriter(flag=True, hooks=[rec], journal=None, circuit_breaker=breaker)
    wrapped = writer.wrap(ddb.primary, shadow=ddb.shadow)
    shadow_calls: list[str] = []
    ddb.shadow.meta.events.register(
        "provide-client-params.dynamodb",
        lambda model, **_: shadow_calls.append(model.name),
        unique_id="count-calls",
    )
    for n in range(5):
        wrapped.batch_write_item(
            RequestItems={"orders": [{"PutRequest": {"Item": typed({"pk": f"k{n}"})}}]}
        )
    # Three throttled writes (5 attempts each) open the circuit; the next two skip the shadow.
    assert rec.kinds() == ["shadow_failed"] * 3 + ["circuit_opened"] + ["shadow_failed"] * 2
    failed = rec.of_kind("shadow_failed")
    assert [e.error_type for e in failed] == ["ShadowUnprocessed"] * 3 + ["CircuitOpen"] * 2  # type: ignore[attr-defined]
    assert shadow_calls.count("BatchWriteItem") == 3 * (_converge._RETRY_ATTEMPTS + 1)
    assert len(ddb.scan("primary")) == 5
    writer.close()


def test_a_batch_over_two_tables(aws: Accounts, tmp_path: Path) -> None:
    env = DynamoEnv(aws)
    create_table(env.p_raw, "lines")
    create_table(env.p_raw, "audit")  # the shadow account lacks this one
    create_table(env.s_raw, "lines")
    rec = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, hooks=[rec], journal=str(tmp_path / "j.db"))
    wrapped = writer.wrap(env.primary, shadow=env.shadow)
    wrapped.batch_write_item(
        RequestItems={
            "orders": [{"PutRequest": {"Item": typed({"pk": "o1"})}}],
            "lines": [{"PutRequest": {"Item": typed({"pk": "l1"})}}],
        }
    )
    # One call, reported under its first table; both tables written.
    assert [(e.kind, e.write.resource) for e in rec.events] == [("shadow_written", "orders")]
    assert env.s_raw.scan(TableName="lines")["Items"] == [typed({"pk": "l1"})]
    assert env.get("shadow", typed({"pk": "o1"})) == typed({"pk": "o1"})
    rec.clear()
    wrapped.batch_write_item(
        RequestItems={
            "orders": [{"PutRequest": {"Item": typed({"pk": "o2"})}}],
            "audit": [{"PutRequest": {"Item": typed({"pk": "a1"})}}],
        }
    )
    # The table the shadow lacks fails the write as a whole (the circuit breaker counts it),
    # after the other table was written; every key is journaled with its own table.
    assert [(e.kind, e.write.resource, e.write.key) for e in rec.events] == [
        ("shadow_failed", "orders", None)
    ]
    assert env.get("shadow", typed({"pk": "o2"})) == typed({"pk": "o2"})
    assert writer.journal is not None
    assert sorted((e.resource, json.dumps(e.key)) for e in writer.journal.entries()) == [
        ("audit", json.dumps(typed({"pk": "a1"}))),
        ("orders", json.dumps(typed({"pk": "o2"}))),
    ]
    writer.close()


# -- TransactWriteItems ----------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_a_transaction_reaches_the_shadow_as_its_result(aws: Accounts, level: str) -> None:
    env = DynamoEnv(aws, level=level)
    for pk, n in (("chk", 1), ("upd", 5), ("del", 0)):
        env.p_raw.put_item(TableName="orders", Item=typed({"pk": pk, "n": n}))
    env.s_raw.put_item(TableName="orders", Item=typed({"pk": "del", "n": 0}))
    wrapped = env.wrap()
    client = Ops(wrapped if level == "client" else wrapped.meta.client, level)
    shadow_bodies = record_bodies(accounts_shadow_client(env))
    primary_bodies = record_bodies(env.primary if level == "client" else env.primary.meta.client)
    client.client.transact_write_items(
        TransactItems=[
            {
                "ConditionCheck": {
                    "TableName": "orders",
                    "Key": client.key("chk"),
                    "ConditionExpression": "n = :one",
                    "ExpressionAttributeValues": client.values(one=1),
                }
            },
            {
                "Update": {
                    "TableName": "orders",
                    "Key": client.key("upd"),
                    "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": client.values(one=1),
                }
            },
            {"Put": {"TableName": "orders", "Item": client.item(pk="new", n=7)}},
            {"Delete": {"TableName": "orders", "Key": client.key("del")}},
        ],
        ClientRequestToken="caller-token-0001",
    )
    # The shadow got one transaction: no ConditionCheck, a fresh token, the update's result.
    (sent,) = [b["body"] for b in shadow_bodies if b["operation"] == "TransactWriteItems"]
    assert sent["ClientRequestToken"] != "caller-token-0001"
    assert sent["TransactItems"] == [
        {"Put": {"TableName": "orders", "Item": typed({"pk": "upd", "n": 6})}},
        {"Put": {"TableName": "orders", "Item": typed({"pk": "new", "n": 7})}},
        {"Delete": {"TableName": "orders", "Key": typed({"pk": "del"})}},
    ]
    # Only the updated key was read back from the primary; then every key the shadow got was
    # read once more, in one consistent BatchGetItem (fleet convergence).
    assert [b["operation"] for b in primary_bodies] == [
        "DescribeTable",
        "TransactWriteItems",
        "GetItem",
        "BatchGetItem",
    ]
    (settle,) = [b["body"] for b in primary_bodies if b["operation"] == "BatchGetItem"]
    assert settle["RequestItems"]["orders"]["ConsistentRead"] is True
    assert len(settle["RequestItems"]["orders"]["Keys"]) == 3
    assert env.get("shadow", typed({"pk": "chk"})) is None
    assert [i for i in env.scan("primary") if i["pk"]["S"] != "chk"] == env.scan("shadow")


def test_a_failed_shadow_transaction_journals_every_key_with_its_table(
    aws: Accounts, tmp_path: Path
) -> None:
    env = DynamoEnv(aws)
    create_table(env.p_raw, "lines")  # the shadow account lacks this table
    rec = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, hooks=[rec], journal=str(tmp_path / "j.db"))
    wrapped = writer.wrap(env.primary, shadow=env.shadow)
    wrapped.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "orders", "Item": typed({"pk": "o1"})}},
            {"Put": {"TableName": "lines", "Item": typed({"pk": "l1"})}},
        ]
    )
    assert rec.kinds() == ["shadow_failed"]
    assert writer.journal is not None
    journaled = sorted((e.resource, json.dumps(e.key)) for e in writer.journal.entries())
    assert journaled == [
        ("lines", json.dumps({"pk": {"S": "l1"}})),
        ("orders", json.dumps({"pk": {"S": "o1"}})),
    ]
    # Once the shadow table exists, repair converges both keys from the primary's state.
    create_table(env.s_raw, "lines")
    report = writer.repair()
    assert (report.copied, report.failed, report.remaining) == (2, 0, 0)
    assert env.get("shadow", typed({"pk": "o1"})) == typed({"pk": "o1"})
    assert env.s_raw.scan(TableName="lines")["Items"] == [typed({"pk": "l1"})]
    writer.close()


def test_repair_of_a_resource_level_pair(aws: Accounts, tmp_path: Path) -> None:
    env = DynamoEnv(aws, level="resource")
    env.s_raw.delete_table(TableName="orders")  # the shadow is not ready yet
    writer = dualwrite.DualWriter(flag=True, journal=str(tmp_path / "j.db"))
    table = writer.wrap(env.primary, shadow=env.shadow).Table("orders")
    table.put_item(Item={"pk": "a", "n": 1, "blob": b"\x00\x01"})
    table.put_item(Item={"pk": "b", "n": 2})
    table.delete_item(Key={"pk": "b"})
    assert writer.journal is not None
    assert writer.journal.count() == 3
    create_table(env.s_raw, "orders")
    env.s_raw.put_item(TableName="orders", Item=typed({"pk": "b", "stale": True}))
    report = writer.repair()
    assert (report.keys, report.copied, report.deleted, report.failed) == (2, 1, 1, 0)
    assert env.scan("shadow") == env.scan("primary")
    assert env.get("shadow", typed({"pk": "a"})) == typed({"pk": "a", "n": 1, "blob": b"\x00\x01"})
    writer.close()


# -- PartiQL ---------------------------------------------------------------------------------------


def test_partiql_reads_never_touch_the_shadow_or_the_flag(ddb: DynamoEnv) -> None:
    decisions: list[Any] = []
    wrapped = ddb.wrap(flag=lambda w: decisions.append(w) or True)
    shadow_calls = record_requests(ddb.shadow)
    ddb.p_raw.put_item(TableName="orders", Item=typed({"pk": "a"}))
    wrapped.execute_statement(Statement="SELECT * FROM orders WHERE pk = 'a'")
    wrapped.batch_execute_statement(Statements=[{"Statement": "select * from orders"}])
    wrapped.execute_transaction(
        TransactStatements=[{"Statement": "SELECT * FROM orders WHERE pk = 'a'"}]
    )
    assert shadow_calls == []
    assert decisions == []


def test_partiql_writes_are_mirrored_by_key(ddb: DynamoEnv) -> None:
    rec = RecordingHook()
    wrapped = ddb.wrap(hooks=[rec])
    wrapped.execute_statement(Statement="INSERT INTO orders VALUE {'pk': 'a', 'n': 5}")
    wrapped.execute_statement(
        Statement='UPDATE "orders" SET note = ? WHERE "pk" = ?',
        Parameters=[{"S": "hello"}, {"S": "a"}],
    )
    assert ddb.get("shadow", typed({"pk": "a"})) == typed({"pk": "a", "n": 5, "note": "hello"})
    wrapped.execute_statement(Statement="DELETE FROM orders WHERE pk = 'a'")
    assert ddb.scan("shadow") == ddb.scan("primary") == []
    assert rec.kinds() == ["shadow_written"] * 3
    assert [e.write.key for e in rec.events] == [typed({"pk": "a"})] * 3


def test_partiql_through_a_resource_uses_python_values(aws: Accounts) -> None:
    env = DynamoEnv(aws, level="resource")
    env.p_raw.put_item(TableName="orders", Item=typed({"pk": "a", "n": 1}))
    rec = RecordingHook()
    client = env.wrap(hooks=[rec]).meta.client
    client.execute_statement(
        Statement="UPDATE orders SET v = ? WHERE pk = ?", Parameters=["x", "a"]
    )
    assert env.get("shadow", typed({"pk": "a"})) == typed({"pk": "a", "n": 1, "v": "x"})
    assert rec.events[0].write.key == {"pk": "a"}


def test_partiql_batch_skips_what_the_primary_refused(ddb: DynamoEnv) -> None:
    ddb.p_raw.put_item(TableName="orders", Item=typed({"pk": "a"}))
    rec = RecordingHook()
    wrapped = ddb.wrap(hooks=[rec])
    response = wrapped.batch_execute_statement(
        Statements=[
            {"Statement": "INSERT INTO orders VALUE {'pk': 'b', 'v': 'x'}"},
            {"Statement": "UPDATE missing_table SET v = 'y' WHERE pk = 'a'"},
            {
                "Statement": "UPDATE orders SET v = ? WHERE pk = ?",
                "Parameters": typed_list("z", "a"),
            },
        ]
    )
    assert "Error" in response["Responses"][1]
    assert ddb.scan("shadow") == ddb.scan("primary")
    assert [(e.kind, e.write.resource) for e in rec.events] == [("shadow_written", "orders")]


def typed_list(*values: Any) -> list[dict[str, Any]]:
    return [SERIALIZER.serialize(v) for v in values]


def test_partiql_transaction_is_mirrored_as_one_transaction(ddb: DynamoEnv) -> None:
    ddb.p_raw.put_item(TableName="orders", Item=typed({"pk": "a"}))
    ddb.p_raw.put_item(TableName="orders", Item=typed({"pk": "old"}))
    wrapped = ddb.wrap()
    shadow_calls = record_requests(ddb.shadow)
    wrapped.execute_transaction(
        TransactStatements=[
            {"Statement": "INSERT INTO orders VALUE {'pk': 'c', 'v': 'w'}"},
            {
                "Statement": "UPDATE orders SET q = ? WHERE pk = ?",
                "Parameters": typed_list("w", "a"),
            },
            {"Statement": "DELETE FROM orders WHERE pk = 'old'"},
        ],
        ClientRequestToken="caller-token",
    )
    assert shadow_calls == ["TransactWriteItems"]
    assert ddb.scan("shadow") == ddb.scan("primary")


def test_a_partiql_write_whose_key_cannot_be_read_is_reported_with_its_table(
    ddb: DynamoEnv,
) -> None:
    ddb.p_raw.put_item(TableName="orders", Item=typed({"pk": "a", "secret": "s3cr3t"}))
    rec = RecordingHook()
    wrapped = ddb.wrap(hooks=[rec])
    shadow_calls = record_requests(ddb.shadow)
    statement = "UPDATE orders SET x = 's3cr3t' WHERE pk = 'a' AND pk = 'a'"
    wrapped.execute_statement(Statement=statement)
    assert shadow_calls == []
    (event,) = rec.events
    assert isinstance(event, Unsupported)
    assert (event.reason, event.write.resource, event.write.key) == ("partiql-key", "orders", None)
    assert "'orders'" in event.detail
    assert "s3cr3t" not in repr(event)


# -- levels, wrapping, names -----------------------------------------------------------------------


def test_mismatched_levels_are_refused_at_wrap_time(aws: Accounts) -> None:
    client = aws.client("primary", "dynamodb")
    resource = aws.resource("shadow", "dynamodb")
    with pytest.raises(ConfigurationError, match=r"shadow_session\.client\('dynamodb'\)"):
        dualwrite.wrap(client, shadow=resource, flag=True)
    with pytest.raises(ConfigurationError, match=r"shadow_session\.resource\('dynamodb'\)"):
        dualwrite.wrap(
            aws.resource("primary", "dynamodb").Table("t"),
            shadow=aws.client("shadow", "dynamodb"),
            flag=True,
        )
    with pytest.raises(ConfigurationError, match="same DynamoDB client"):
        dualwrite.wrap(client, shadow=client, flag=True)


def test_wrap_returns_the_same_kind_of_object_and_leaves_the_callers_alone(
    aws: Accounts,
) -> None:
    client = aws.client("primary", "dynamodb")
    wrapped_client = dualwrite.wrap(client, shadow=aws.client("shadow", "dynamodb"), flag=True)
    assert isinstance(wrapped_client, type(client))
    assert isinstance(wrapped_client, DynamoDBClientProxy)
    resource = aws.resource("primary", "dynamodb")
    original_client = resource.meta.client
    wrapped_resource = dualwrite.wrap(
        resource, shadow=aws.resource("shadow", "dynamodb"), flag=True
    )
    assert type(wrapped_resource) is type(resource)
    assert isinstance(wrapped_resource.meta.client, DynamoDBClientProxy)
    assert resource.meta.client is original_client
    table = wrapped_resource.Table("orders")
    assert isinstance(table.meta.client, DynamoDBClientProxy)
    plain_table = resource.Table("orders")
    wrapped_table = dualwrite.wrap(
        plain_table, shadow=aws.resource("shadow", "dynamodb").Table("orders"), flag=True
    )
    assert type(wrapped_table) is type(plain_table)
    assert wrapped_table.name == "orders"
    assert plain_table.meta.client is original_client


def test_a_table_pair_maps_its_names(aws: Accounts) -> None:
    env = DynamoEnv(aws, level="resource", shadow_table="orders-v2")
    rec = RecordingHook()
    table = dualwrite.wrap(
        env.primary.Table("orders"), shadow=env.shadow.Table("orders-v2"), flag=True, hooks=[rec]
    )
    table.put_item(Item={"pk": "a", "n": 1})
    table.update_item(
        Key={"pk": "a"}, UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": 1}
    )
    with table.batch_writer() as batch:
        for n in range(30):  # two chunks of batch_write_item, both through the wrapper
            batch.put_item(Item={"pk": f"b{n:02}", "n": n})
        batch.delete_item(Key={"pk": "b00"})
    assert env.scan("shadow") == env.scan("primary")
    assert len(env.scan("shadow")) == 30
    assert env.s_raw.list_tables()["TableNames"] == ["orders-v2"]
    assert {e.write.shadow_resource for e in rec.events} == {"orders-v2"}
    assert rec.events[0].write.key == {"pk": "a"}


def test_a_table_arn_writes_the_shadows_own_table(ddb: DynamoEnv) -> None:
    arn = ddb.p_raw.describe_table(TableName="orders")["Table"]["TableArn"]
    rec = RecordingHook()
    wrapped = ddb.wrap(hooks=[rec])
    wrapped.put_item(TableName=arn, Item=typed({"pk": "a"}))
    assert rec.events[0].write.shadow_resource == "orders"
    assert ddb.get("shadow", typed({"pk": "a"})) == typed({"pk": "a"})


def test_flag_per_tenant(ddb: DynamoEnv) -> None:
    wrapped = ddb.wrap(flag=lambda w: w.tenant == "acme")
    shadow_calls = record_requests(ddb.shadow)
    with dualwrite.tenant("acme"):
        wrapped.put_item(TableName="orders", Item=typed({"pk": "acme#1"}))
    with dualwrite.tenant("globex"):
        wrapped.put_item(TableName="orders", Item=typed({"pk": "globex#1"}))
        wrapped.update_item(
            TableName="orders",
            Key=typed({"pk": "globex#1"}),
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues=typed({":v": 1}),
        )
        wrapped.execute_statement(Statement="UPDATE orders SET w = 'two' WHERE pk = 'globex#1'")
        wrapped.transact_write_items(
            TransactItems=[{"Put": {"TableName": "orders", "Item": typed({"pk": "globex#2"})}}]
        )
    assert shadow_calls == ["PutItem"]
    assert [i["pk"]["S"] for i in ddb.scan("shadow")] == ["acme#1"]
    assert [i["pk"]["S"] for i in ddb.scan("primary")] == ["acme#1", "globex#1", "globex#2"]


def test_flag_off_leaves_the_call_exactly_as_it_was(ddb: DynamoEnv) -> None:
    wrapped = ddb.wrap(flag=False)
    primary_bodies = record_bodies(ddb.primary)
    wrapped.update_item(
        TableName="orders",
        Key=typed({"pk": "a"}),
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues=typed({":v": 1}),
    )
    assert primary_bodies[0]["body"].get("ReturnValues") is None
    assert ddb.scan("shadow") == []


# -- shadow failures, events, secrets --------------------------------------------------------------


def test_a_shadow_failure_never_reaches_the_caller_unless_asked(aws: Accounts) -> None:
    p_raw = aws.client("primary", "dynamodb")
    create_table(p_raw, "orders")  # no shadow table
    rec = RecordingHook()
    wrapped = dualwrite.wrap(
        aws.client("primary", "dynamodb"),
        shadow=aws.client("shadow", "dynamodb"),
        flag=True,
        hooks=[rec],
    )
    wrapped.put_item(TableName="orders", Item=typed({"pk": "a", "secret": "s3cr3t"}))
    (event,) = rec.events
    assert isinstance(event, ShadowFailed)
    assert event.error_code == "ResourceNotFoundException"
    assert event.write.key == typed({"pk": "a"})
    raising = dualwrite.wrap(
        aws.client("primary", "dynamodb"),
        shadow=aws.client("shadow", "dynamodb"),
        flag=True,
        on_shadow_error="raise",
    )
    with pytest.raises(ShadowWriteError):
        raising.put_item(TableName="orders", Item=typed({"pk": "b"}))
    assert p_raw.get_item(TableName="orders", Key=typed({"pk": "b"}))["Item"] == typed({"pk": "b"})


def test_no_event_holds_item_data(aws: Accounts) -> None:
    env = DynamoEnv(aws)
    # A shadow table with another key schema: every shadow write fails validation.
    env.s_raw.delete_table(TableName="orders")
    env.s_raw.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    rec = RecordingHook()
    wrapped = env.wrap(hooks=[rec])
    secret = {"secret": "s3cr3t-v4lue", "blob": b"s3cr3t-bytes"}
    wrapped.put_item(TableName="orders", Item=typed({"pk": "a", **secret}))
    wrapped.update_item(
        TableName="orders",
        Key=typed({"pk": "a"}),
        UpdateExpression="SET copied = :s",
        ExpressionAttributeValues=typed({":s": "s3cr3t-v4lue"}),
    )
    wrapped.batch_write_item(
        RequestItems={"orders": [{"PutRequest": {"Item": typed({"pk": "b", **secret})}}]}
    )
    wrapped.transact_write_items(
        TransactItems=[{"Put": {"TableName": "orders", "Item": typed({"pk": "c", **secret})}}]
    )
    wrapped.execute_statement(
        Statement="INSERT INTO orders VALUE {'pk': 'd', 'secret': 's3cr3t-v4lue'}"
    )
    assert len(rec.of_kind("shadow_failed")) == 5
    for event in rec.events:
        assert "s3cr3t" not in repr(event)


# -- unsupported and unclassified operations -------------------------------------------------------


def _canned(operation: str, body: dict[str, Any]) -> Callable[..., Any]:
    def answer(params: dict[str, Any], **_: Any) -> Any:
        parsed = {**body, "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": {}}}
        return AWSResponse(params["url"], 200, {}, None), parsed

    return answer


def test_a_bulk_load_is_reported_unsupported_with_its_table(ddb: DynamoEnv) -> None:
    ddb.primary.meta.events.register(
        "before-call.dynamodb.StartBulkPutItems",
        _canned("StartBulkPutItems", {"BulkOperationArn": "arn:bulk"}),
        unique_id="canned-bulk",
    )
    rec = RecordingHook()
    wrapped = ddb.wrap(hooks=[rec], flag=lambda w: w.tenant == "acme")
    params = {
        "TableName": "orders",
        "InputS3Configuration": {"S3Bucket": "b", "S3KeyPrefix": "p", "InputFormat": "CSV"},
        "OutputS3Configuration": {"S3Bucket": "b", "OutputType": ["ERROR"]},
    }
    with dualwrite.tenant("globex"):
        wrapped.start_bulk_put_items(**params)
    with dualwrite.tenant("acme"):
        response = wrapped.start_bulk_put_items(**params)
    assert response["BulkOperationArn"] == "arn:bulk"
    (event,) = rec.events
    assert isinstance(event, Unsupported)
    assert (event.reason, event.write.resource, event.write.tenant) == (
        "not-mirrorable",
        "orders",
        "acme",
    )


def test_an_unknown_write_operation_is_reported_and_an_unknown_read_passes(
    ddb: DynamoEnv,
) -> None:
    assert _operations.unclassified("DescribeSomethingNew", "POST") is None
    assert _operations.unclassified("ListThings", "POST") is None
    assert _operations.unclassified("GetItem", "POST") is None
    handler = _operations.unclassified("PurgeItems", "POST")
    assert handler is not None
    rec = RecordingHook()
    wrapped = ddb.wrap(hooks=[rec])
    calls: list[dict[str, Any]] = []

    def primary_call(**params: Any) -> dict[str, Any]:
        calls.append(params)
        return {"ok": True}

    result = handler(wrapped._self_mirror, primary_call, {"TableName": "orders"}, None)
    assert result == {"ok": True}
    assert calls == [{"TableName": "orders"}]
    (event,) = rec.events
    assert isinstance(event, Unsupported)
    assert (event.reason, event.write.operation, event.write.resource) == (
        "unclassified",
        "PurgeItems",
        "orders",
    )


def test_reads_pass_through_untouched(ddb: DynamoEnv) -> None:
    ddb.p_raw.put_item(TableName="orders", Item=typed({"pk": "a"}))
    wrapped = ddb.wrap()
    shadow_calls = record_requests(ddb.shadow)
    assert wrapped.get_item(TableName="orders", Key=typed({"pk": "a"}))["Item"] == typed(
        {"pk": "a"}
    )
    assert wrapped.scan(TableName="orders")["Count"] == 1
    pages = wrapped.get_paginator("query").paginate(
        TableName="orders",
        KeyConditionExpression="pk = :a",
        ExpressionAttributeValues=typed({":a": "a"}),
    )
    assert sum(p["Count"] for p in pages) == 1
    wrapped.get_waiter("table_exists").wait(TableName="orders")
    assert shadow_calls == []


# -- background mode, ordering ---------------------------------------------------------------------


def test_background_mode_converges_after_flush(aws: Accounts) -> None:
    env = DynamoEnv(aws, level="resource")
    env.p_raw.put_item(TableName="orders", Item=typed({"pk": "a", "n": 10}))
    rec = RecordingHook()
    with dualwrite.DualWriter(flag=True, hooks=[rec], mode="background") as writer:
        table = writer.wrap(env.primary, shadow=env.shadow).Table("orders")
        for _ in range(5):
            table.update_item(
                Key={"pk": "a"},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": 1},
            )
        with table.batch_writer() as batch:
            for n in range(10):
                batch.put_item(Item={"pk": f"b{n}", "n": Decimal(n)})
        assert writer.flush(timeout=30)
    assert env.scan("shadow") == env.scan("primary")
    assert env.get("shadow", typed({"pk": "a"})) == typed({"pk": "a", "n": 15})
    assert set(rec.kinds()) == {"shadow_written"}, rec.of_kind("shadow_failed")


def test_same_key_writes_reach_the_shadow_in_the_primarys_order(ddb: DynamoEnv) -> None:
    """Sixteen threads overwrite one key; the shadow ends with the primary's last item."""
    wrapped = ddb.wrap()
    barrier = threading.Barrier(16)

    def writer(n: int) -> None:
        barrier.wait()
        for i in range(10):
            wrapped.put_item(TableName="orders", Item=typed({"pk": "hot", "by": n, "i": i}))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ddb.get("shadow", typed({"pk": "hot"})) == ddb.get("primary", typed({"pk": "hot"}))


# -- the PartiQL reader ----------------------------------------------------------------------------


P = [{"S": "p0"}, {"S": "p1"}]


@pytest.mark.parametrize(
    ("statement", "parameters", "verb", "table", "key"),
    [
        ("SELECT * FROM orders", [], "SELECT", None, None),
        ('  select pk from "orders"."byDate" where pk = \'a\'', [], "SELECT", None, None),
        ("EXISTS(SELECT * FROM t WHERE pk = 'a')", [], "EXISTS", None, None),
        (
            "INSERT INTO orders VALUE {'pk': 'a', 'sk': 2, 'm': {'x': [1, ?]}}",
            P,
            "INSERT",
            "orders",
            {"pk": {"S": "a"}, "sk": {"N": "2"}},
        ),
        (
            'insert into "my ""t""" value {\'sk\': ?, \'pk\': ?}',
            P,
            "INSERT",
            'my "t"',
            {"pk": {"S": "p1"}, "sk": {"S": "p0"}},
        ),
        (
            "UPDATE orders SET n = n + ? WHERE pk = ? AND sk = -3",
            P,
            "UPDATE",
            "orders",
            {"pk": {"S": "p1"}, "sk": {"N": "-3"}},
        ),
        (
            (
                "UPDATE orders SET a = 'WHERE pk = 1' REMOVE b WHERE \"pk\" = 'it''s' AND sk = 1 "
                "AND attribute_exists(n) RETURNING ALL NEW *"
            ),
            [],
            "UPDATE",
            "orders",
            {"pk": {"S": "it's"}, "sk": {"N": "1"}},
        ),
        (
            "DELETE FROM orders WHERE sk = 1 AND pk = 'a' AND n BETWEEN 1 AND 3",
            [],
            "DELETE",
            "orders",
            None,
        ),
        ("DELETE FROM orders WHERE pk = 'a' OR sk = 1", [], "DELETE", "orders", None),
        ("DELETE FROM orders WHERE pk = 'a' AND pk = 'b' AND sk = 1", [], "DELETE", "orders", None),
        ("DELETE FROM orders WHERE (pk = 'a' AND sk = 1)", [], "DELETE", "orders", None),
        ("DELETE FROM orders WHERE pk = 'a' -- AND sk = 2\n AND sk = 1", [], "", None, None),
        ("UPDATE orders SET x = 1", [], "UPDATE", "orders", None),
        ("UPDATE orders SET x = 1 WHERE pk = 'a' AND sk = ?", [], "UPDATE", "orders", None),
        (
            "UPDATE orders SET x = 1 WHERE pk = 'a' AND sk = ?",
            P,
            "UPDATE",
            "orders",
            {"pk": {"S": "a"}, "sk": {"S": "p0"}},
        ),
        ("UPSERT INTO orders VALUE {'pk': 'a'}", [], "UPSERT", None, None),
    ],
)
def test_partiql_reader(
    statement: str, parameters: list[Any], verb: str, table: str | None, key: Any
) -> None:
    parsed = _partiql.parse_statement(statement)
    assert (parsed.verb, parsed.table) == (verb, table)
    assert parsed.key(("pk", "sk"), parameters, "client") == key
    assert parsed.is_read == (verb in ("SELECT", "EXISTS"))


def test_partiql_reader_at_resource_level() -> None:
    parsed = _partiql.parse_statement("UPDATE t SET v = ? WHERE pk = 'a' AND sk = 1.50")
    assert parsed.key(("pk", "sk"), ["v"], "resource") == {"pk": "a", "sk": Decimal("1.50")}
    assert parsed.key(None, ["v"], "resource") is None


def test_canonical_values_agree_across_levels() -> None:
    python = {"s": "x", "n": 1, "b": b"\x00", "l": [True, None], "m": {"ss": {"a", "b"}}}
    as_map = _keys.canonical({"M": typed(python)}, "client")
    assert as_map == _keys.canonical(python, "resource")
    assert _keys.canonical({"N": "1.0"}, "client") == _keys.canonical(1, "resource")
    assert _keys.canonical({"BOOL": True}, "client") != _keys.canonical(1, "resource")
