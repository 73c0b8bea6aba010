"""DynamoDB dual-write through aiobotocore clients and aioboto3 resources, on a moto server.

Each test drives a wrapped async client from ``asyncio.run`` (no pytest-asyncio) and proves
where data landed by reading each account with its own synchronous boto3 client
(``AioAccounts.admin``), by consistent reads.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from _support.aio import REGION, AioAccounts, require

aiobotocore = require("aiobotocore")


from _support.servers import MotoServer  # noqa: E402
from aiobotocore.session import get_session  # noqa: E402
from boto3.dynamodb.types import TypeSerializer  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from conftest import LeaveUnprocessed, create_table  # noqa: E402

import dualwrite  # noqa: E402
from dualwrite.events import ShadowFailed  # noqa: E402
from dualwrite.exceptions import ShadowWriteError  # noqa: E402
from dualwrite.journal import open_journal  # noqa: E402
from dualwrite.testing import RecordingHook  # noqa: E402

# Each test builds fresh boto3 sessions and aiobotocore clients: parse botocore's models once.
pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")

SERIALIZER = TypeSerializer()
TABLE = "orders"
LINES = "lines"  # keyed pk (string) + sk (number)
TWIN_REGION = "eu-west-1"
OUTAGE_CONFIG = Config(connect_timeout=0.5, read_timeout=1, retries={"total_max_attempts": 1})


def typed(item: dict[str, Any]) -> dict[str, Any]:
    return {k: SERIALIZER.serialize(v) for k, v in item.items()}


def key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}}


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    moto = MotoServer()
    yield moto
    moto.stop()


class Env:
    """The two accounts, a table ``orders`` and a table ``lines`` in each, and their readers."""

    def __init__(self, url: str) -> None:
        self.accounts = AioAccounts(url)
        self.raw = {side: self.accounts.admin(side, "dynamodb") for side in ("primary", "shadow")}
        for raw in self.raw.values():
            create_table(raw, TABLE)
            create_table(raw, LINES, sort_key=True)

    def get(self, side: str, pk: str) -> dict[str, Any] | None:
        """The item ``pk`` of ``orders`` on one side (typed), ``None`` if absent."""
        found = self.raw[side].get_item(TableName=TABLE, Key=key(pk), ConsistentRead=True)
        return found.get("Item")  # type: ignore[no-any-return]

    def scan(self, side: str, table: str = TABLE) -> list[dict[str, Any]]:
        """Every item of ``table`` on one side, typed, sorted by key."""
        pages = self.raw[side].get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
        items = [item for page in pages for item in page["Items"]]
        return sorted(items, key=lambda i: (i["pk"]["S"], int(i.get("sk", {}).get("N", "0"))))

    def both(self, table: str = TABLE) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return self.scan("primary", table), self.scan("shadow", table)


@pytest.fixture
def env(server: MotoServer) -> Env:
    server.reset()
    return Env(server.url)


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


def record_sends(client: Any) -> list[str]:
    """The operation of every HTTP request ``client`` sends (``before-send`` of each attempt)."""
    sent: list[str] = []

    def on_send(event_name: str, **_: Any) -> None:
        sent.append(event_name.rsplit(".", 1)[-1])

    client.meta.events.register("before-send", on_send, unique_id=f"dw-async-sends-{id(sent)}")
    return sent


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A response without what differs between any two calls (request id, date, checksum)."""
    out = {k: v for k, v in result.items() if k != "ResponseMetadata"}
    meta = result["ResponseMetadata"]
    out["_status"] = meta["HTTPStatusCode"]
    out["_headers"] = sorted(meta["HTTPHeaders"])
    return out


async def outcome(call: Awaitable[Any]) -> tuple[str, Any]:
    """``("ok", comparable response)`` or ``("error", what the caller can see of the error)``."""
    try:
        return "ok", comparable(await call)
    except ClientError as exc:
        response = {k: v for k, v in exc.response.items() if k != "ResponseMetadata"}
        return "error", (
            type(exc).__name__,
            str(exc),
            exc.operation_name,
            response,
            exc.response["ResponseMetadata"]["HTTPStatusCode"],
        )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- single-item writes: the shadow converges to the primary's item ------------------------------


def test_put_update_delete_leave_the_shadow_equal_to_the_primary(env: Env) -> None:
    recorder = RecordingHook()

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True, hooks=[recorder])
            ddb = writer.wrap(primary, shadow=shadow)

            await ddb.put_item(TableName=TABLE, Item=typed({"pk": "a", "n": 1, "x": 10}))
            assert (
                env.get("shadow", "a")
                == env.get("primary", "a")
                == typed({"pk": "a", "n": 1, "x": 10})
            )
            await ddb.update_item(
                TableName=TABLE,
                Key=key("a"),
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues=typed({":one": 1}),
            )
            await ddb.update_item(
                TableName=TABLE,
                Key=key("a"),
                UpdateExpression="SET x = x + :one",
                ExpressionAttributeValues=typed({":one": 1}),
            )
            await ddb.update_item(
                TableName=TABLE,
                Key=key("a"),
                UpdateExpression="SET tags = list_append(if_not_exists(tags, :empty), :more)",
                ExpressionAttributeValues=typed({":empty": [], ":more": ["p", "q"]}),
            )
            await ddb.update_item(
                TableName=TABLE,
                Key=key("a"),
                UpdateExpression="SET tags = list_append(tags, :more)",
                ExpressionAttributeValues=typed({":more": ["r"]}),
            )
            expected = typed({"pk": "a", "n": 2, "x": 11, "tags": ["p", "q", "r"]})
            assert env.get("primary", "a") == expected
            assert env.get("shadow", "a") == expected

            await ddb.delete_item(TableName=TABLE, Key=key("a"))
            assert env.get("primary", "a") is None
            assert env.get("shadow", "a") is None
            await writer.aclose()
        assert recorder.kinds() == ["shadow_written"] * 6

    run(main)


def test_updates_give_a_shadow_that_lacked_the_item_the_primarys_whole_item(env: Env) -> None:
    # Written before dual-write was on: on the primary only.
    env.raw["primary"].put_item(
        TableName=TABLE, Item=typed({"pk": "old", "n": 41, "x": 1, "tags": ["a"], "note": "hi"})
    )
    env.raw["primary"].put_item(TableName=TABLE, Item=typed({"pk": "gone", "n": 1}))

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True)
            ddb = writer.wrap(primary, shadow=shadow)
            # A replay of the request would give the shadow {n: 1}; it gets the primary's item.
            await ddb.update_item(
                TableName=TABLE,
                Key=key("old"),
                UpdateExpression="ADD n :one SET x = x + :one, tags = list_append(tags, :t)",
                ExpressionAttributeValues=typed({":one": 1, ":t": ["b"]}),
            )
            # A conditional update whose condition holds on the primary only.
            await ddb.update_item(
                TableName=TABLE,
                Key=key("old"),
                UpdateExpression="REMOVE note",
                ConditionExpression="attribute_exists(note)",
            )
            await ddb.delete_item(TableName=TABLE, Key=key("gone"), ReturnValues="ALL_OLD")
            await writer.aclose()

    run(main)
    expected = typed({"pk": "old", "n": 42, "x": 2, "tags": ["a", "b"]})
    assert env.get("primary", "old") == expected
    assert env.get("shadow", "old") == expected
    assert env.get("shadow", "gone") is None
    primary, shadow = env.both()
    assert shadow == primary


def test_a_failed_condition_reaches_the_caller_as_the_primarys_exception_and_spares_the_shadow(
    env: Env,
) -> None:
    env.raw["primary"].put_item(TableName=TABLE, Item=typed({"pk": "a", "n": 5}))
    env.raw["shadow"].put_item(TableName=TABLE, Item=typed({"pk": "a", "n": 5, "mark": "s"}))
    recorder = RecordingHook()

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True, hooks=[recorder])
            ddb = writer.wrap(primary, shadow=shadow)
            shadow_sent = record_sends(shadow)
            request = {
                "TableName": TABLE,
                "Key": key("a"),
                "UpdateExpression": "SET n = :one",
                "ConditionExpression": "n > :ten",
                "ExpressionAttributeValues": typed({":one": 1, ":ten": 10}),
            }
            with pytest.raises(primary.exceptions.ConditionalCheckFailedException) as wrapped:
                await ddb.update_item(**request)
            # The same request on the unwrapped primary client: what plain aiobotocore raises.
            with pytest.raises(ClientError) as plain:
                await primary.update_item(**request)
            assert type(wrapped.value) is type(plain.value)
            assert str(wrapped.value) == str(plain.value)
            assert wrapped.value.operation_name == plain.value.operation_name == "UpdateItem"
            assert wrapped.value.response["Error"] == plain.value.response["Error"]
            assert ddb.exceptions is primary.exceptions
            assert shadow_sent == []
            await writer.aclose()

    run(main)
    assert recorder.events == []
    assert env.get("primary", "a") == typed({"pk": "a", "n": 5})
    assert env.get("shadow", "a") == typed({"pk": "a", "n": 5, "mark": "s"})


# -- the caller gets what plain aiobotocore gives ------------------------------------------------


def _update(o: Any) -> Awaitable[Any]:
    return o.update_item(  # type: ignore[no-any-return]
        TableName=TABLE,
        Key=key("a"),
        UpdateExpression="ADD n :one SET note = :note",
        ExpressionAttributeValues=typed({":one": 1, ":note": "hi"}),
        ReturnValues="UPDATED_OLD",
        ReturnConsumedCapacity="TOTAL",
    )


def _update_no_return_values(o: Any) -> Awaitable[Any]:
    # The wrapper asks the primary for ALL_NEW; the caller must not see it.
    return o.update_item(  # type: ignore[no-any-return]
        TableName=TABLE,
        Key=key("a"),
        UpdateExpression="SET tags = list_append(tags, :t)",
        ExpressionAttributeValues=typed({":t": ["y"]}),
    )


def _put(o: Any) -> Awaitable[Any]:
    return o.put_item(  # type: ignore[no-any-return]
        TableName=TABLE,
        Item=typed({"pk": "a", "n": 1}),
        ConditionExpression="attribute_exists(pk)",
        ReturnValues="ALL_OLD",
    )


def _delete(o: Any) -> Awaitable[Any]:
    return o.delete_item(TableName=TABLE, Key=key("a"), ReturnValues="ALL_OLD")  # type: ignore[no-any-return]


def _batch(o: Any) -> Awaitable[Any]:
    return o.batch_write_item(  # type: ignore[no-any-return]
        RequestItems={
            TABLE: [
                {"PutRequest": {"Item": typed({"pk": "b", "n": 2})}},
                {"DeleteRequest": {"Key": key("a")}},
            ]
        },
        ReturnConsumedCapacity="TOTAL",
    )


def _transaction(o: Any) -> Awaitable[Any]:
    return o.transact_write_items(  # type: ignore[no-any-return]
        TransactItems=[
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": key("a"),
                    "UpdateExpression": "ADD n :one",
                    "ConditionExpression": "n = :five",
                    "ExpressionAttributeValues": typed({":one": 1, ":five": 5}),
                }
            },
            {"Put": {"TableName": TABLE, "Item": typed({"pk": "t", "n": 1})}},
        ]
    )


def _failing_put(o: Any) -> Awaitable[Any]:
    return o.put_item(  # type: ignore[no-any-return]
        TableName=TABLE,
        Item=typed({"pk": "a"}),
        ConditionExpression="attribute_not_exists(pk)",
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )


def _cancelled_transaction(o: Any) -> Awaitable[Any]:
    return o.transact_write_items(  # type: ignore[no-any-return]
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": typed({"pk": "t", "n": 1})}},
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": key("a"),
                    "UpdateExpression": "ADD n :one",
                    "ConditionExpression": "n > :ten",
                    "ExpressionAttributeValues": typed({":one": 1, ":ten": 10}),
                }
            },
        ]
    )


def _validation_error(o: Any) -> Awaitable[Any]:
    return o.update_item(  # type: ignore[no-any-return]
        TableName=TABLE,
        Key=key("a"),
        UpdateExpression="SET missing = missing + :one",
        ExpressionAttributeValues=typed({":one": 1}),
    )


CALLS = [
    pytest.param(_update, "ok", id="update-UPDATED_OLD"),
    pytest.param(_update_no_return_values, "ok", id="update-no-return-values"),
    pytest.param(_put, "ok", id="put-conditional-ALL_OLD"),
    pytest.param(_delete, "ok", id="delete-ALL_OLD"),
    pytest.param(_batch, "ok", id="batch"),
    pytest.param(_transaction, "ok", id="transaction"),
    pytest.param(_failing_put, "error", id="put-condition-failed"),
    pytest.param(_cancelled_transaction, "error", id="transaction-cancelled"),
    pytest.param(_validation_error, "error", id="update-validation-error"),
]


@pytest.mark.parametrize(("call", "expected"), CALLS)
def test_responses_and_errors_are_those_of_plain_aiobotocore(
    env: Env, call: Callable[[Any], Awaitable[Any]], expected: str
) -> None:
    seed = typed({"pk": "a", "n": 5, "tags": ["x"]})
    env.raw["primary"].put_item(TableName=TABLE, Item=seed)
    twin_raw = env.accounts.primary_session.client(
        "dynamodb", region_name=TWIN_REGION, endpoint_url=env.accounts.url
    )
    create_table(twin_raw, TABLE)
    twin_raw.put_item(TableName=TABLE, Item=seed)
    recorder = RecordingHook()

    async def main() -> None:
        async with (
            env.accounts.clients("dynamodb") as (primary, shadow),
            get_session().create_client(
                "dynamodb", region_name=TWIN_REGION, endpoint_url=env.accounts.url
            ) as twin,
        ):
            writer = dualwrite.DualWriter(flag=True, hooks=[recorder])
            ddb = writer.wrap(primary, shadow=shadow)
            shadow_sent = record_sends(shadow)
            wrapped_outcome = await outcome(call(ddb))
            plain_outcome = await outcome(call(twin))
            assert wrapped_outcome == plain_outcome
            assert wrapped_outcome[0] == expected
            if expected == "error":
                assert shadow_sent == []
            await writer.aclose()

    run(main)
    primary, shadow = env.both()
    if expected == "error":
        assert recorder.events == []
        assert shadow == []
        assert primary == [seed]
    else:
        assert recorder.kinds() == ["shadow_written"]
        # The seeded item was on the primary only; every call here wrote it (or deleted it).
        assert shadow == primary


def test_the_response_is_the_primarys_own_dict(env: Env) -> None:
    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            seen: list[Any] = []

            def after_call(parsed: Any = None, **_: Any) -> None:
                seen.append(parsed)

            primary.meta.events.register(
                "after-call.dynamodb.PutItem", after_call, unique_id="dw-async-after-call"
            )
            writer = dualwrite.DualWriter(flag=True)
            ddb = writer.wrap(primary, shadow=shadow)
            response = await ddb.put_item(TableName=TABLE, Item=typed({"pk": "a"}))
            assert len(seen) == 1
            assert response is seen[0]
            await writer.aclose()

    run(main)


def test_reads_never_touch_the_shadow(env: Env) -> None:
    env.raw["primary"].put_item(TableName=TABLE, Item=typed({"pk": "a", "n": 1}))

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True)
            ddb = writer.wrap(primary, shadow=shadow)
            shadow_sent = record_sends(shadow)
            item = await ddb.get_item(TableName=TABLE, Key=key("a"), ConsistentRead=True)
            assert item["Item"] == typed({"pk": "a", "n": 1})
            scanned = await ddb.scan(TableName=TABLE)
            assert scanned["Count"] == 1
            pages = [page async for page in ddb.get_paginator("scan").paginate(TableName=TABLE)]
            assert sum(p["Count"] for p in pages) == 1
            assert isinstance(ddb, type(primary))
            assert shadow_sent == []
            await writer.aclose()

    run(main)


# -- multi-item writes -----------------------------------------------------------------------------


def test_batch_write_item_of_25_items_reaches_the_shadow(env: Env) -> None:
    env.raw["primary"].put_item(TableName=TABLE, Item=typed({"pk": "old-0", "n": 0}))
    env.raw["shadow"].put_item(TableName=TABLE, Item=typed({"pk": "old-0", "n": 0}))
    recorder = RecordingHook()

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True, hooks=[recorder])
            ddb = writer.wrap(primary, shadow=shadow)
            requests: dict[str, list[dict[str, Any]]] = {
                TABLE: [
                    {"PutRequest": {"Item": typed({"pk": f"k{i:02}", "n": i, "v": "x" * i})}}
                    for i in range(20)
                ]
                + [{"DeleteRequest": {"Key": key("old-0")}}],
                LINES: [
                    {"PutRequest": {"Item": typed({"pk": "order", "sk": i, "qty": i})}}
                    for i in range(4)
                ],
            }
            response = await ddb.batch_write_item(RequestItems=requests)
            assert response["UnprocessedItems"] == {}
            await writer.aclose()

    run(main)
    primary, shadow = env.both()
    assert len(primary) == 20
    assert shadow == primary
    primary_lines, shadow_lines = env.both(LINES)
    assert len(primary_lines) == 4
    assert shadow_lines == primary_lines
    assert set(recorder.kinds()) == {"shadow_written"}


def test_transact_write_items_reaches_the_shadow(env: Env) -> None:
    env.raw["primary"].put_item(TableName=TABLE, Item=typed({"pk": "acct", "balance": 100}))
    env.raw["primary"].put_item(TableName=TABLE, Item=typed({"pk": "stale", "n": 1}))
    env.raw["shadow"].put_item(TableName=TABLE, Item=typed({"pk": "stale", "n": 1}))

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True)
            ddb = writer.wrap(primary, shadow=shadow)
            await ddb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": TABLE,
                            "Key": key("acct"),
                            "UpdateExpression": "ADD balance :minus",
                            "ConditionExpression": "balance >= :amount",
                            "ExpressionAttributeValues": typed({":minus": -30, ":amount": 30}),
                        }
                    },
                    {"Put": {"TableName": TABLE, "Item": typed({"pk": "order-1", "total": 30})}},
                    {"Delete": {"TableName": TABLE, "Key": key("stale")}},
                    {
                        "Put": {
                            "TableName": LINES,
                            "Item": typed({"pk": "order-1", "sk": 1, "sku": "cat"}),
                        }
                    },
                ]
            )
            await writer.aclose()

    run(main)
    primary, shadow = env.both()
    assert [i["pk"]["S"] for i in primary] == ["acct", "order-1"]
    assert env.get("primary", "acct") == typed({"pk": "acct", "balance": 70})
    assert shadow == primary
    assert env.scan("shadow", LINES) == env.scan("primary", LINES) != []


# -- per-tenant flag, per asyncio task -------------------------------------------------------------


def test_the_flag_sees_each_tasks_tenant(env: Env) -> None:
    seen: list[tuple[str | None, str]] = []

    def flag(write: dualwrite.Write) -> bool:
        seen.append((write.tenant, write.key["pk"]["S"]))  # type: ignore[index]
        return write.tenant == "acme"

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=flag)
            ddb = writer.wrap(primary, shadow=shadow)

            async def one(tenant: str, i: int) -> None:
                with dualwrite.tenant(tenant):
                    await asyncio.sleep(0)  # let the other tasks enter their own tenant
                    await ddb.put_item(TableName=TABLE, Item=typed({"pk": f"{tenant}#{i}"}))
                    await ddb.update_item(
                        TableName=TABLE,
                        Key=key(f"{tenant}#{i}"),
                        UpdateExpression="ADD n :one",
                        ExpressionAttributeValues=typed({":one": 1}),
                    )
                    assert dualwrite.current_tenant() == tenant

            await asyncio.gather(*(one("acme" if i % 2 else "globex", i) for i in range(20)))
            assert dualwrite.current_tenant() is None
            await writer.aclose()

    run(main)
    primary, shadow = env.both()
    assert len(primary) == 20
    acme = [i for i in primary if i["pk"]["S"].startswith("acme#")]
    assert len(acme) == 10
    assert shadow == acme
    assert len(seen) == 40
    assert all(pk.startswith(f"{tenant}#") for tenant, pk in seen)


# -- background mode -------------------------------------------------------------------------------


def test_background_updates_from_many_tasks_converge_after_aflush(env: Env) -> None:
    recorder = RecordingHook()

    async def main() -> None:
        async with (
            env.accounts.clients("dynamodb") as (primary, shadow),
            dualwrite.DualWriter(flag=True, mode="background", hooks=[recorder]) as writer,
        ):
            ddb = writer.wrap(primary, shadow=shadow)

            async def bump(times: int) -> None:
                for _ in range(times):
                    await ddb.update_item(
                        TableName=TABLE,
                        Key=key("counter"),
                        UpdateExpression="ADD n :one",
                        ExpressionAttributeValues=typed({":one": 1}),
                    )

            await asyncio.gather(*(bump(10) for _ in range(5)))
            assert await writer.aflush() is True
            assert env.get("primary", "counter") == typed({"pk": "counter", "n": 50})
            assert env.get("shadow", "counter") == typed({"pk": "counter", "n": 50})
        assert writer.closed

    run(main)
    assert recorder.kinds().count("shadow_failed") == 0
    assert "shadow_written" in recorder.kinds()


def test_background_the_request_is_the_callers_again_once_the_call_returns(env: Env) -> None:
    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True, mode="background")
            ddb = writer.wrap(primary, shadow=shadow)
            item = typed({"pk": "a", "n": 1})
            values = typed({":v": "first"})
            for i in range(10):
                item["pk"] = {"S": f"k{i}"}
                item["n"] = {"N": str(i)}
                await ddb.put_item(TableName=TABLE, Item=item)
                values[":v"] = {"S": f"v{i}"}
                await ddb.update_item(
                    TableName=TABLE,
                    Key={"pk": {"S": f"k{i}"}},
                    UpdateExpression="SET v = :v",
                    ExpressionAttributeValues=values,
                )
            # Reused and then changed after the last call: the shadow must not see this.
            item["n"] = {"N": "999"}
            values[":v"] = {"S": "changed"}
            assert await writer.aflush()
            await writer.aclose()

    run(main)
    primary, shadow = env.both()
    assert len(primary) == 10
    assert shadow == primary


def test_sync_flush_on_the_event_loop_raises_and_points_to_aflush(env: Env) -> None:
    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True, mode="background")
            ddb = writer.wrap(primary, shadow=shadow)
            await ddb.put_item(TableName=TABLE, Item=typed({"pk": "a"}))
            with pytest.raises(RuntimeError, match="aflush"):
                writer.flush()
            assert await writer.aflush()
            await writer.aclose()

    run(main)
    assert env.get("shadow", "a") == env.get("primary", "a") == typed({"pk": "a"})


# -- shadow outage, journal, repair ----------------------------------------------------------------


def test_a_shadow_outage_is_journaled_and_arepair_converges_it(env: Env, tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite3"
    recorder = RecordingHook()
    env.raw["primary"].put_item(TableName=TABLE, Item=typed({"pk": "keep", "n": 1}))
    env.raw["shadow"].put_item(TableName=TABLE, Item=typed({"pk": "keep", "n": 1}))
    env.raw["primary"].put_item(TableName=TABLE, Item=typed({"pk": "gone", "n": 1}))
    env.raw["shadow"].put_item(TableName=TABLE, Item=typed({"pk": "gone", "n": 1}))

    async def outage() -> None:
        session = get_session()
        async with (
            session.create_client(
                "dynamodb", region_name=REGION, endpoint_url=env.accounts.url
            ) as primary,
            session.create_client(
                "dynamodb",
                region_name=REGION,
                endpoint_url=f"http://127.0.0.1:{_closed_port()}",
                config=OUTAGE_CONFIG,
                **env.accounts.shadow_credentials,
            ) as shadow,
        ):
            writer = dualwrite.DualWriter(
                flag=True, hooks=[recorder], journal=str(journal), shadow_timeout=None
            )
            ddb = writer.wrap(primary, shadow=shadow)
            response = await ddb.put_item(
                TableName=TABLE, Item=typed({"pk": "new", "n": 7}), ReturnValues="ALL_OLD"
            )
            assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
            assert "Attributes" not in response
            updated = await ddb.update_item(
                TableName=TABLE,
                Key=key("keep"),
                UpdateExpression="ADD n :five",
                ExpressionAttributeValues=typed({":five": 5}),
                ReturnValues="UPDATED_NEW",
            )
            assert updated["Attributes"] == {"n": {"N": "6"}}
            await ddb.delete_item(TableName=TABLE, Key=key("gone"))
            assert writer.journal is not None
            keys = {e.key["pk"]["S"] for e in writer.journal.entries()}  # type: ignore[index]
            assert keys == {"new", "keep", "gone"}
            await writer.aclose()

    asyncio.run(outage())
    assert recorder.kinds() == ["shadow_failed"] * 3
    failed = recorder.events[0]
    assert isinstance(failed, ShadowFailed)
    assert failed.write.operation == "PutItem"
    assert failed.write.key == key("new")
    assert env.get("shadow", "new") is None
    assert env.get("shadow", "keep") == typed({"pk": "keep", "n": 1})

    reopened = open_journal(str(journal))
    assert reopened is not None
    assert {e.key["pk"]["S"] for e in reopened.entries()} == {"new", "keep", "gone"}  # type: ignore[index]
    reopened.close()

    async def repair() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True, journal=str(journal))
            writer.wrap(primary, shadow=shadow)
            report = await writer.arepair()
            assert (report.copied, report.deleted, report.failed, report.remaining) == (2, 1, 0, 0)
            assert writer.journal is not None
            assert writer.journal.count() == 0
            await writer.aclose()

    asyncio.run(repair())
    primary, shadow = env.both()
    assert [i["pk"]["S"] for i in primary] == ["keep", "new"]
    assert shadow == primary


# -- aioboto3 resources ----------------------------------------------------------------------------


def test_aioboto3_table_writes_and_batch_writer_reach_the_shadow(env: Env) -> None:
    require("aioboto3")
    recorder = RecordingHook()

    async def main() -> None:
        async with env.accounts.resources("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True, hooks=[recorder])
            resource = writer.wrap(primary, shadow=shadow)
            table = await resource.Table(TABLE)
            await table.put_item(
                Item={"pk": "a", "n": Decimal(1), "price": Decimal("9.99"), "tags": ["x"]}
            )
            response = await table.update_item(
                Key={"pk": "a"},
                UpdateExpression="ADD n :one SET tags = list_append(tags, :t)",
                ExpressionAttributeValues={":one": Decimal(1), ":t": ["y"]},
                ReturnValues="ALL_NEW",
            )
            assert response["Attributes"] == {
                "pk": "a",
                "n": Decimal(2),
                "price": Decimal("9.99"),
                "tags": ["x", "y"],
            }
            async with table.batch_writer() as batch:
                for i in range(30):
                    await batch.put_item(Item={"pk": f"b{i:02}", "n": Decimal(i)})
            await table.delete_item(Key={"pk": "b00"})
            await writer.aclose()

    run(main)
    primary, shadow = env.both()
    assert len(primary) == 30
    assert env.get("primary", "a") == typed(
        {"pk": "a", "n": 2, "price": Decimal("9.99"), "tags": ["x", "y"]}
    )
    assert shadow == primary
    assert recorder.kinds().count("shadow_failed") == 0


def test_aioboto3_table_resources_wrapped_directly(env: Env) -> None:
    require("aioboto3")

    async def main() -> None:
        async with env.accounts.resources("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True)
            table = writer.wrap(await primary.Table(TABLE), shadow=await shadow.Table(TABLE))
            assert table.name == TABLE
            await table.put_item(Item={"pk": "a", "n": Decimal(1)})
            await table.update_item(
                Key={"pk": "a"},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": Decimal(1)},
            )
            async with table.batch_writer(overwrite_by_pkeys=["pk"]) as batch:
                for i in range(5):
                    await batch.put_item(Item={"pk": f"b{i}", "v": "first"})
                    await batch.put_item(Item={"pk": f"b{i}", "v": "second"})
                await batch.delete_item(Key={"pk": "b4"})
            got = await table.get_item(Key={"pk": "a"}, ConsistentRead=True)
            assert got["Item"] == {"pk": "a", "n": Decimal(2)}
            await writer.aclose()

    run(main)
    primary, shadow = env.both()
    assert [i["pk"]["S"] for i in primary] == ["a", "b0", "b1", "b2", "b3"]
    assert {i["v"]["S"] for i in primary if "v" in i} == {"second"}
    assert shadow == primary


# -- more of the engine's guarantees, from an event loop ------------------------------------------


def test_a_batch_mirrors_only_what_the_primary_processed(env: Env) -> None:
    recorder = RecordingHook()

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            leave = LeaveUnprocessed(primary, env.raw["primary"])
            leave.choose = lambda table, request: request["PutRequest"]["Item"]["pk"]["S"] == "b"
            writer = dualwrite.DualWriter(flag=True, hooks=[recorder])
            ddb = writer.wrap(primary, shadow=shadow)
            response = await ddb.batch_write_item(
                RequestItems={TABLE: [{"PutRequest": {"Item": typed({"pk": pk})}} for pk in "abc"]}
            )
            assert response["UnprocessedItems"] == {
                TABLE: [{"PutRequest": {"Item": typed({"pk": "b"})}}]
            }
            assert [i["pk"]["S"] for i in env.scan("shadow")] == ["a", "c"]
            # The caller retries what is left, through the wrapper.
            leave.choose = lambda table, request: False
            await ddb.batch_write_item(RequestItems=response["UnprocessedItems"])
            await writer.aclose()

    run(main)
    primary, shadow = env.both()
    assert [i["pk"]["S"] for i in shadow] == ["a", "b", "c"]
    assert shadow == primary
    assert recorder.kinds() == ["shadow_written", "shadow_written"]


def test_concurrent_tasks_writing_one_key_leave_the_shadow_equal(env: Env) -> None:
    # More tasks than the writer has worker threads for async calls (ASYNC_WORKERS = 64).
    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True)
            ddb = writer.wrap(primary, shadow=shadow)

            async def put(i: int) -> None:
                await ddb.put_item(TableName=TABLE, Item=typed({"pk": "hot", "v": i}))

            async def bump() -> None:
                await ddb.update_item(
                    TableName=TABLE,
                    Key=key("hot"),
                    UpdateExpression="ADD n :one",
                    ExpressionAttributeValues=typed({":one": 1}),
                )

            async def other(i: int) -> None:
                await ddb.put_item(TableName=TABLE, Item=typed({"pk": f"k{i:03}", "v": i}))

            await asyncio.gather(
                *(put(i) for i in range(10)),
                *(bump() for _ in range(30)),
                *(other(i) for i in range(40)),
            )
            await writer.aclose()

    run(main)
    primary, shadow = env.both()
    assert len(primary) == 41
    assert shadow == primary


def test_the_flag_sees_every_contextvar_of_the_calling_task(env: Env) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
    seen: dict[str, str] = {}

    def flag(write: dualwrite.Write) -> bool:
        pk = write.key["pk"]["S"]  # type: ignore[index]
        seen[pk] = request_id.get()
        return pk.endswith("-on")

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=flag)
            ddb = writer.wrap(primary, shadow=shadow)

            async def one(i: int) -> None:
                request_id.set(f"req-{i}")
                await asyncio.sleep(0)
                suffix = "on" if i % 3 == 0 else "off"
                await ddb.put_item(TableName=TABLE, Item=typed({"pk": f"{i}-{suffix}"}))

            await asyncio.gather(*(one(i) for i in range(12)))
            await writer.aclose()

    run(main)
    assert seen == {f"{i}-{'on' if i % 3 == 0 else 'off'}": f"req-{i}" for i in range(12)}
    assert [i["pk"]["S"] for i in env.scan("shadow")] == ["0-on", "3-on", "6-on", "9-on"]


def test_a_flag_that_raises_is_contained_and_the_write_is_flag_off(env: Env) -> None:
    recorder = RecordingHook()

    def flag(write: dualwrite.Write) -> bool:
        raise KeyError("no such tenant")

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=flag, hooks=[recorder])
            ddb = writer.wrap(primary, shadow=shadow)
            response = await ddb.put_item(TableName=TABLE, Item=typed({"pk": "a"}))
            assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
            await writer.aclose()

    run(main)
    assert recorder.kinds() == ["flag_failed"]
    assert env.get("primary", "a") == typed({"pk": "a"})
    assert env.get("shadow", "a") is None


def test_sync_close_and_repair_on_the_event_loop_raise_and_point_to_the_async_methods(
    env: Env,
) -> None:
    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True, mode="background")
            ddb = writer.wrap(primary, shadow=shadow)
            await ddb.put_item(TableName=TABLE, Item=typed({"pk": "a"}))
            with pytest.raises(RuntimeError, match="aclose"):
                writer.close()
            with pytest.raises(RuntimeError, match="arepair"):
                writer.repair()
            assert not writer.closed
            assert await writer.aclose()
            assert writer.closed

    run(main)
    assert env.get("shadow", "a") == env.get("primary", "a") == typed({"pk": "a"})


def test_a_slow_shadow_costs_the_caller_at_most_shadow_timeout(env: Env, tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.sqlite3")
    recorder = RecordingHook()

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            answer = asyncio.Event()

            async def slow(**_: Any) -> None:
                await answer.wait()  # the shadow answers when the test says so

            shadow.meta.events.register("before-send", slow, unique_id="dw-async-slow")
            writer = dualwrite.DualWriter(
                flag=True, hooks=[recorder], journal=journal, shadow_timeout=0.2
            )
            ddb = writer.wrap(primary, shadow=shadow)
            started = time.monotonic()
            response = await ddb.put_item(TableName=TABLE, Item=typed({"pk": "slow", "n": 1}))
            assert time.monotonic() - started < 5
            assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
            assert recorder.kinds() == ["shadow_failed"]
            assert recorder.events[0].error_type == "ShadowTimeout"  # type: ignore[attr-defined]
            assert writer.journal is not None
            assert [(e.key, e.reason) for e in writer.journal.entries()] == [
                (key("slow"), "timeout")
            ]
            assert env.get("shadow", "slow") is None
            # The late shadow call goes on, on the loop, and lands once the shadow answers.
            answer.set()
            for _ in range(100):
                if env.get("shadow", "slow") is not None:
                    break
                await asyncio.sleep(0.05)
            assert env.get("shadow", "slow") == typed({"pk": "slow", "n": 1})
            report = await writer.arepair()
            assert report.remaining == 0
            await writer.aclose()

    run(main)
    assert env.get("shadow", "slow") == env.get("primary", "slow") == typed({"pk": "slow", "n": 1})


def test_on_shadow_error_raise_reaches_the_awaiting_caller(env: Env) -> None:
    async def main() -> None:
        session = get_session()
        async with (
            session.create_client(
                "dynamodb", region_name=REGION, endpoint_url=env.accounts.url
            ) as primary,
            session.create_client(
                "dynamodb",
                region_name=REGION,
                endpoint_url=f"http://127.0.0.1:{_closed_port()}",
                config=OUTAGE_CONFIG,
                **env.accounts.shadow_credentials,
            ) as shadow,
        ):
            writer = dualwrite.DualWriter(
                flag=True, journal=None, on_shadow_error="raise", shadow_timeout=None
            )
            ddb = writer.wrap(primary, shadow=shadow)
            with pytest.raises(ShadowWriteError):
                await ddb.put_item(TableName=TABLE, Item=typed({"pk": "a"}))
            await writer.aclose()

    run(main)
    assert env.get("primary", "a") == typed({"pk": "a"})


def test_a_cancelled_caller_does_not_cancel_the_shadow_write(env: Env, tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.sqlite3")

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            answer = asyncio.Event()

            async def slow(**_: Any) -> None:
                await answer.wait()  # the shadow answers when the test says so

            shadow.meta.events.register("before-send", slow, unique_id="dw-async-slow")
            writer = dualwrite.DualWriter(flag=True, journal=journal, shadow_timeout=None)
            ddb = writer.wrap(primary, shadow=shadow)
            tasks = [
                asyncio.create_task(ddb.put_item(TableName=TABLE, Item=typed({"pk": f"c{i}"})))
                for i in range(10)
            ]
            for _ in range(200):  # every primary write done, every shadow call waiting
                if len(env.scan("primary")) == 10:
                    break
                await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(r, asyncio.CancelledError) for r in results)
            assert env.scan("shadow") == []
            answer.set()
            # The calls go on in the writer's threads: each write-ahead intent stays journaled
            # until its shadow write is done.
            assert writer.journal is not None
            for _ in range(200):
                if writer.journal.count() == 0:
                    break
                await asyncio.sleep(0.05)
            assert writer.journal.count() == 0
            await writer.aclose()

    run(main)
    primary, shadow = env.both()
    assert len(primary) == 10
    assert shadow == primary


class SlowFirstFailure(RecordingHook):
    """Records events; the first ``shadow_failed`` holds its worker thread for a while.

    A background worker whose shadow call the ending loop cancelled takes its next job only
    after the loop is closed: that job then fails at once (``LoopUnavailableError``).
    """

    def __call__(self, event: Any) -> None:
        first = not self.of_kind("shadow_failed")
        super().__call__(event)
        if first and event.kind == "shadow_failed":
            time.sleep(0.5)


def test_background_writes_left_when_the_loop_ends_are_journaled_and_repaired(
    env: Env, tmp_path: Path
) -> None:
    journal = str(tmp_path / "journal.sqlite3")
    recorder = SlowFirstFailure()
    writer = dualwrite.DualWriter(
        flag=True,
        mode="background",
        workers=1,
        hooks=[recorder],
        journal=journal,
        circuit_breaker=None,
    )

    async def write() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            hold = asyncio.Event()

            async def hung(**_: Any) -> None:
                await hold.wait()  # the shadow does not answer while the loop runs

            shadow.meta.events.register("before-send", hung, unique_id="dw-async-hung")
            ddb = writer.wrap(primary, shadow=shadow)
            for i in range(10):
                await ddb.put_item(TableName=TABLE, Item=typed({"pk": f"bg{i:02}"}))
        # No aflush: the loop ends with the first shadow call in flight and the rest queued.

    asyncio.run(write())
    assert writer.close()  # from no loop: what is left fails at once and is journaled
    assert recorder.kinds() == ["shadow_failed"] * 10
    assert {e.error_type for e in recorder.events} == {"LoopUnavailableError"}  # type: ignore[attr-defined]
    assert writer.journal is not None
    journaled = {e.key["pk"]["S"] for e in writer.journal.entries()}  # type: ignore[index]
    primary, shadow = env.both()
    assert len(primary) == 10
    assert shadow == []
    assert journaled == {f"bg{i:02}" for i in range(10)}

    async def repair() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            repairer = dualwrite.DualWriter(flag=True, journal=journal)
            repairer.wrap(primary, shadow=shadow)
            report = await repairer.arepair()
            assert (report.copied, report.remaining) == (10, 0)
            await repairer.aclose()

    asyncio.run(repair())
    primary, shadow = env.both()
    assert shadow == primary


class Messages(logging.Handler):
    """Keeps the messages of the records it handles, never the records (nor their tracebacks)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().splitlines()[0])


def test_an_ending_loop_leaves_no_abandoned_shadow_call(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(repr(u.object)))
    logged = Messages()
    for name in ("asyncio", "concurrent.futures"):
        monkeypatch.setattr(logging.getLogger(name), "propagate", False)
        monkeypatch.setattr(logging.getLogger(name), "handlers", [logged])
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=True, mode="background", workers=1, hooks=[recorder], journal=None
    )
    app_tasks: list[asyncio.Task[None]] = []

    async def write() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):

            async def slow(**_: Any) -> None:
                await asyncio.sleep(5)

            shadow.meta.events.register("before-send", slow, unique_id="dw-async-slow")
            ddb = writer.wrap(primary, shadow=shadow)
            await ddb.put_item(TableName=TABLE, Item=typed({"pk": "k0"}))
            await ddb.put_item(TableName=TABLE, Item=typed({"pk": "k1"}))
            await asyncio.sleep(0.2)  # k0's shadow call is in flight, k1's is queued

        async def graceful() -> None:
            # Another task of the application that cleans up when asyncio.run cancels it.
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                await asyncio.sleep(0.5)
                raise

        app_tasks.append(asyncio.create_task(graceful()))
        await asyncio.sleep(0)

    asyncio.run(write())
    assert writer.close()
    app_tasks.clear()
    for _ in range(3):
        gc.collect()
    # The keys are reported (and journaled, with a journal) either way.
    assert recorder.kinds() == ["shadow_failed", "shadow_failed"]
    assert (logged.messages, unraisable) == ([], [])


def test_partiql_writes_are_mirrored_by_key_and_reads_stay_on_the_primary(env: Env) -> None:
    recorder = RecordingHook()

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            writer = dualwrite.DualWriter(flag=True, hooks=[recorder])
            ddb = writer.wrap(primary, shadow=shadow)
            await ddb.execute_statement(Statement="INSERT INTO orders VALUE {'pk': 'a', 'n': 5}")
            await ddb.execute_statement(
                Statement='UPDATE "orders" SET note = ? WHERE "pk" = ?',
                Parameters=[{"S": "hello"}, {"S": "a"}],
            )
            assert env.get("shadow", "a") == typed({"pk": "a", "n": 5, "note": "hello"})
            shadow_sent = record_sends(shadow)
            selected = await ddb.execute_statement(Statement="SELECT * FROM orders WHERE pk = 'a'")
            assert selected["Items"] == [typed({"pk": "a", "n": 5, "note": "hello"})]
            assert shadow_sent == []
            await ddb.execute_statement(Statement="DELETE FROM orders WHERE pk = 'a'")
            await writer.aclose()

    run(main)
    assert env.both() == ([], [])
    assert recorder.kinds() == ["shadow_written"] * 3
    assert [e.write.key for e in recorder.events] == [key("a")] * 3


def test_one_item_writes_ask_the_flag_once_on_the_loop_and_off_needs_no_thread(env: Env) -> None:
    asked: list[tuple[str | None, str, bool]] = []

    def flag(write: dualwrite.Write) -> bool:
        on_loop = threading.current_thread() is threading.main_thread()
        asked.append((write.tenant, write.operation, on_loop))
        return write.tenant == "acme"

    async def main() -> None:
        async with env.accounts.clients("dynamodb") as (primary, shadow):
            sent = record_sends(shadow)
            async with dualwrite.DualWriter(flag=flag, journal=None, shadow_timeout=None) as w:
                ddb = w.wrap(primary, shadow=shadow)
                with dualwrite.tenant("globex"):
                    # The first PutItem describes the table (on a worker thread); from then on
                    # its key is known without I/O.
                    await ddb.put_item(TableName=TABLE, Item=typed({"pk": "g1", "n": 1}))
                    await ddb.put_item(TableName=TABLE, Item=typed({"pk": "g2", "n": 1}))
                    await ddb.update_item(
                        TableName=TABLE,
                        Key=key("g2"),
                        UpdateExpression="ADD n :one",
                        ExpressionAttributeValues={":one": {"N": "1"}},
                    )
                    await ddb.delete_item(TableName=TABLE, Key=key("g1"))
                with dualwrite.tenant("acme"):
                    await ddb.put_item(TableName=TABLE, Item=typed({"pk": "a1", "n": 7}))
            assert "PutItem" in sent
            assert all(s in ("PutItem", "DescribeTable") for s in sent)

    run(main)
    assert asked == [
        ("globex", "PutItem", False),
        ("globex", "PutItem", True),
        ("globex", "UpdateItem", True),
        ("globex", "DeleteItem", True),
        ("acme", "PutItem", True),
    ]
    assert env.get("shadow", "a1") == env.get("primary", "a1")
    assert env.get("shadow", "g2") is None
    assert env.get("primary", "g2") is not None
