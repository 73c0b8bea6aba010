"""BatchWriteItem's ``UnprocessedItems``: which of a call's requests the primary left undone.

DynamoDB answers the requests it did not process back as ``UnprocessedItems``, parsed from JSON:
nothing promises the attributes of an echoed put come back in the order the caller wrote them
(nor a set's elements). A put is identified by its item's value, so an echo in another order is
still the request the primary left undone: it is neither mirrored nor read back, and the
caller's retry of it is mirrored once it succeeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from conftest import Accounts, DynamoEnv, drop_tables, record_requests

import dualwrite
from dualwrite.testing import RecordingHook


@pytest.fixture
def aws(shared_accounts: Accounts) -> Iterator[Accounts]:
    """The module's two moto accounts, with no table left over from the previous test."""
    yield shared_accounts
    drop_tables(shared_accounts)


def _reordered(value: Any) -> Any:
    """``value`` (typed, as on the wire) with every map's names and every set in reverse order."""
    if isinstance(value, dict):
        return {
            k: list(reversed(v)) if k in ("SS", "NS", "BS") else _reordered(v)
            for k, v in reversed(value.items())
        }
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


class EchoReordered:
    """Make a client's BatchWriteItem leave the puts of chosen keys unprocessed, echoing each
    one back with its attributes (and set elements) in reverse order; the other requests are
    written for real through ``raw`` (an unwrapped client of the same account)."""

    def __init__(self, client: Any, raw: Any, left_keys: set[str]) -> None:
        self.raw = raw
        self.left_keys = left_keys
        client.meta.events.register(
            "before-call.dynamodb.BatchWriteItem",
            self._handle,
            unique_id=f"dualwrite-tests-echo-reordered-{id(self)}",
        )

    def _handle(self, params: dict[str, Any], **_: Any) -> Any:
        body = json.loads(params["body"])
        keep: dict[str, list[Any]] = {}
        leave: dict[str, list[Any]] = {}
        for table, requests in body["RequestItems"].items():
            for request in requests:
                put = request.get("PutRequest")
                if put is not None and put["Item"]["pk"]["S"] in self.left_keys:
                    leave.setdefault(table, []).append(_reordered(request))
                else:
                    keep.setdefault(table, []).append(request)
        if not leave:
            return None  # the real call goes through
        if keep:
            self.raw.batch_write_item(RequestItems=keep)
        parsed = {
            "UnprocessedItems": leave,
            "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0},
        }
        return AWSResponse(params["url"], 200, {}, None), parsed


def _shadow_keys(client: Any) -> list[str]:
    """Record the ``pk`` of every item or key each request ``client`` sends names."""
    seen: list[str] = []

    def on_call(params: dict[str, Any], **_: Any) -> None:
        body = json.loads(params["body"] or b"{}")
        for requests in (body.get("RequestItems") or {}).values():
            for request in requests:
                named = (request.get("PutRequest") or {}).get("Item") or (
                    request.get("DeleteRequest") or {}
                ).get("Key")
                seen.append(named["pk"]["S"])
        for part in ("Item", "Key"):
            if part in body:
                seen.append(body[part]["pk"]["S"])

    client.meta.events.register(
        "before-call.dynamodb", on_call, unique_id=f"dualwrite-tests-shadow-keys-{id(seen)}"
    )
    return seen


@pytest.mark.parametrize("level", ["client", "resource"])
@pytest.mark.parametrize(
    ("mode", "single_writer"),
    [
        pytest.param("sync", False, id="sync"),
        # No fleet check after the shadow write, which would have deleted a wrongly mirrored
        # item again: the request identity alone keeps it off the shadow.
        pytest.param("sync", True, id="sync-single_writer"),
        pytest.param("background", False, id="background"),
        pytest.param("background", True, id="background-single_writer"),
    ],
)
def test_an_unprocessed_put_echoed_in_another_order_is_not_mirrored(
    aws: Accounts, level: str, mode: str, single_writer: bool
) -> None:
    env = DynamoEnv(aws, level=level)
    primary_client = env.primary if level == "client" else env.primary.meta.client
    shadow_client = env.shadow if level == "client" else env.shadow.meta.client
    echo = EchoReordered(primary_client, env.p_raw, {"b"})
    sent_to_shadow = _shadow_keys(shadow_client)
    rec = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=True, hooks=[rec], mode=mode, journal=None, single_writer=single_writer
    )
    wrapped_pair = writer.wrap(env.primary, shadow=env.shadow)
    wrapped = wrapped_pair if level == "client" else wrapped_pair.meta.client
    items = [
        {
            "pk": {"S": pk},
            "n": {"N": "1"},
            "note": {"S": f"order {pk}"},
            "tags": {"SS": ["gift", "express", "fragile"]},
        }
        for pk in "abc"
    ]
    if level == "resource":
        items = [
            {"pk": i["pk"]["S"], "n": 1, "note": i["note"]["S"], "tags": set(i["tags"]["SS"])}
            for i in items
        ]
    response = wrapped.batch_write_item(
        RequestItems={"orders": [{"PutRequest": {"Item": item}} for item in items]}
    )
    writer.flush()
    (left,) = response["UnprocessedItems"]["orders"]
    assert list(left["PutRequest"]["Item"]) == list(reversed(list(items[1])))  # another order
    # The primary left "b" undone: the shadow neither holds it nor was asked anything about it.
    assert env.get("primary", {"pk": {"S": "b"}}) is None
    assert env.get("shadow", {"pk": {"S": "b"}}) is None
    assert "b" not in sent_to_shadow
    assert [i["pk"]["S"] for i in env.scan("shadow")] == ["a", "c"]
    assert env.scan("shadow") == env.scan("primary")
    # The caller retries the echo as it came back: mirrored once the primary processed it.
    echo.left_keys.clear()
    wrapped.batch_write_item(RequestItems=response["UnprocessedItems"])
    writer.flush()
    assert [i["pk"]["S"] for i in env.scan("shadow")] == ["a", "b", "c"]
    assert env.scan("shadow") == env.scan("primary")
    assert "shadow_failed" not in rec.kinds()
    writer.close()


@pytest.mark.parametrize("mode", ["sync", "background"])
def test_a_batch_of_deletes_only_never_asks_for_the_key_schema(aws: Accounts, mode: str) -> None:
    """A delete names its key: only a put needs the table's key schema to find its key, so a
    batch of deletes sends no DescribeTable to either account (an IAM policy without
    ``dynamodb:DescribeTable`` then costs nothing, and logs nothing)."""
    env = DynamoEnv(aws)
    for raw in (env.p_raw, env.s_raw):
        raw.put_item(TableName="orders", Item={"pk": {"S": "a"}})
    sent_p, sent_s = record_requests(env.primary), record_requests(env.shadow)
    writer = dualwrite.DualWriter(flag=True, mode=mode, journal=None)
    ddb = writer.wrap(env.primary, shadow=env.shadow)
    ddb.batch_write_item(RequestItems={"orders": [{"DeleteRequest": {"Key": {"pk": {"S": "a"}}}}]})
    assert writer.flush(timeout=30)
    writer.close()
    assert "DescribeTable" not in sent_p + sent_s
    assert env.scan("primary") == env.scan("shadow") == []
