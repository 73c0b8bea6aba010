"""``dualwrite follow dynamodb``: a table's stream converges writes made outside the wrapper.

Where moto's streams stop: one shard per table, never split nor closed (``NextShardIterator``
is always there). The order of shards after a split is tested on shard lists
(:func:`ordered_shards`); reading to a closed shard's end is the same loop, unexercised here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.cli import Accounts as CliAccounts
from _support.servers import MotoServer
from botocore.config import Config
from conftest import Accounts, record_requests

import dualwrite
from dualwrite._offline.follow_dynamodb import Checkpoint, follow_stream, ordered_shards
from dualwrite.exceptions import ConfigurationError

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")


def streams_client(accounts: Accounts) -> Any:
    """A DynamoDB Streams client moto's in-process mock can route: botocore sends a StreamArn's
    calls to the account endpoint ``{account}.streams-ddb.{region}.amazonaws.com``, which moto
    does not serve."""
    return accounts.primary.client(
        "dynamodbstreams", config=Config(account_id_endpoint_mode="disabled")
    )


def create(client: Any, name: str, *, stream: str | None) -> None:
    params: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        params["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream}
    client.create_table(**params)


class Tables:
    def __init__(self, accounts: Accounts, stream: str = "KEYS_ONLY") -> None:
        self.p = accounts.client("primary", "dynamodb")
        self.s = accounts.client("shadow", "dynamodb")
        self.streams = streams_client(accounts)
        create(self.p, "orders", stream=stream)
        create(self.s, "orders", stream=None)

    def shadow_items(self) -> dict[str, Any]:
        items = self.s.scan(TableName="orders")["Items"]
        return {item["pk"]["S"]: item for item in items}


@pytest.fixture
def tables(aws: Accounts) -> Tables:
    return Tables(aws)


def _follow(tables: Tables, checkpoint: Path, **options: Any) -> Any:
    with dualwrite.DualWriter(flag=True, journal=None, **options) as writer:
        writer.wrap(tables.p, shadow=tables.s)
        return follow_stream(
            writer, tables.p, tables.streams, "orders", checkpoint=checkpoint, once=True
        )


@pytest.mark.parametrize("view", ["KEYS_ONLY", "NEW_AND_OLD_IMAGES"])
def test_follow_converges_unwrapped_writes_then_resumes(
    aws: Accounts, tmp_path: Path, view: str
) -> None:
    tables = Tables(aws, stream=view)
    checkpoint = tmp_path / "checkpoint.json"
    tables.s.put_item(TableName="orders", Item={"pk": {"S": "b"}, "v": {"N": "0"}})
    tables.p.put_item(TableName="orders", Item={"pk": {"S": "a"}, "v": {"N": "1"}})
    tables.p.put_item(TableName="orders", Item={"pk": {"S": "b"}, "v": {"N": "2"}})
    tables.p.update_item(
        TableName="orders",
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"N": "3"}},
    )
    tables.p.delete_item(TableName="orders", Key={"pk": {"S": "b"}})

    report = _follow(tables, checkpoint)
    assert report.records == 4
    assert report.shards == 1
    assert report.keys.keys == 2  # a and b, each converged once from its current state
    assert (report.keys.copied, report.keys.deleted) == (1, 1)
    assert tables.shadow_items() == {"a": {"pk": {"S": "a"}, "v": {"N": "3"}}}
    saved = json.loads(checkpoint.read_text())
    assert saved["stream"] == report.stream
    [position] = saved["shards"].values()
    assert position["after"] is not None

    # A restart resumes after the checkpoint: only the new record is read.
    tables.p.put_item(TableName="orders", Item={"pk": {"S": "c"}, "v": {"N": "4"}})
    again = _follow(tables, checkpoint)
    assert again.records == 1
    assert again.keys.copied == 1
    assert set(tables.shadow_items()) == {"a", "c"}


def test_item_the_wrapper_mirrored_costs_one_read_per_side(tables: Tables, tmp_path: Path) -> None:
    with dualwrite.DualWriter(flag=True, journal=None) as writer:
        wrapped = writer.wrap(tables.p, shadow=tables.s)
        wrapped.put_item(TableName="orders", Item={"pk": {"S": "m"}, "v": {"N": "1"}})
    sent = record_requests(tables.s)
    report = _follow(tables, tmp_path / "c.json")
    assert report.keys.equal == 1
    assert sent == ["GetItem"]  # no PutItem, no DeleteItem


def test_table_without_stream_is_a_configuration_error(aws: Accounts, tmp_path: Path) -> None:
    p = aws.client("primary", "dynamodb")
    create(p, "plain", stream=None)
    with dualwrite.DualWriter(flag=True, journal=None) as writer:
        writer.wrap(p, shadow=aws.client("shadow", "dynamodb"))
        with pytest.raises(ConfigurationError, match="no stream"):
            follow_stream(
                writer,
                p,
                streams_client(aws),
                "plain",
                checkpoint=tmp_path / "c.json",
                once=True,
            )


def test_flag_off_keys_are_skipped(tables: Tables, tmp_path: Path) -> None:
    tables.p.put_item(TableName="orders", Item={"pk": {"S": "acme#1"}})
    tables.p.put_item(TableName="orders", Item={"pk": {"S": "globex#1"}})
    report = _follow(tables, tmp_path / "c.json")
    assert report.keys.copied == 2
    tables.p.put_item(TableName="orders", Item={"pk": {"S": "globex#2"}})
    with dualwrite.DualWriter(
        flag=lambda w: str(w.key["pk"]["S"]).startswith("acme"), journal=None
    ) as writer:
        writer.wrap(tables.p, shadow=tables.s)
        skipped = follow_stream(
            writer, tables.p, tables.streams, "orders", checkpoint=tmp_path / "c.json", once=True
        )
    assert skipped.keys.skipped == 1
    assert "globex#2" not in tables.shadow_items()


def test_shards_are_read_parents_first() -> None:
    shards = [
        {"ShardId": "child-2", "ParentShardId": "child-1"},
        {"ShardId": "child-1", "ParentShardId": "root"},
        {"ShardId": "orphan", "ParentShardId": "trimmed-away"},
        {"ShardId": "root"},
    ]
    assert [s["ShardId"] for s in ordered_shards(shards)] == [
        "root",
        "child-1",
        "child-2",
        "orphan",
    ]


def test_checkpoint_of_another_stream_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    first = Checkpoint(path, "arn:stream/1")
    first.advance("shard-a", "100")
    assert Checkpoint(path, "arn:stream/1").after("shard-a") == "100"
    assert Checkpoint(path, "arn:stream/2").after("shard-a") is None
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        Checkpoint(path, "arn:stream/1")


# -- the command line, on a moto server ---------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    srv = MotoServer()
    yield srv
    srv.stop()


def test_cli_follow_dynamodb_once(server: MotoServer, tmp_path: Path) -> None:
    accounts = CliAccounts(server, tmp_path, {"s3": {}, "dynamodb": {}})
    create(accounts.p_ddb, "orders", stream="KEYS_ONLY")
    create(accounts.s_ddb, "orders", stream=None)
    accounts.p_ddb.put_item(TableName="orders", Item={"pk": {"S": "x y"}, "n": {"N": "1"}})
    checkpoint = tmp_path / "follow.json"
    args = ("follow", "dynamodb", "--table", "orders", "--once", "--json")
    result = accounts.cli.run(*args, "--checkpoint", str(checkpoint))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["keys"]["copied"] == 1
    assert accounts.s_ddb.get_item(TableName="orders", Key={"pk": {"S": "x y"}})["Item"] == {
        "pk": {"S": "x y"},
        "n": {"N": "1"},
    }
    again = json.loads(accounts.cli.run(*args, "--checkpoint", str(checkpoint)).stdout)
    assert again["records"] == 0
