"""The backfill engine's parts, in process: state file, pacing, conditions, listing order."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from conftest import DynamoEnv, S3Env

from dualwrite._core.scan import BackfillError, Sink, StateFile
from dualwrite._dynamodb.backfill import condition_on
from dualwrite._offline.backfill import RequestMeter, run
from dualwrite._s3.backfill import S3Job


def test_state_file_keeps_byte_positions_and_refuses_another_job(tmp_path: Path) -> None:
    path = tmp_path / "job.state"
    job = {"command": "copy", "service": "dynamodb", "table": "orders"}
    state = StateFile(path, job)
    assert not state.resumed
    position = {"pk": {"B": b"\x00\xff tenant"}, "sk": {"N": "7"}}
    state.advance("scan:0/2", position)
    state.finish("scan:1/2")
    state.close()

    again = StateFile(path, job)
    assert again.resumed
    assert again.runs == 1
    assert again.start("scan:0/2") == (False, position)
    assert again.start("scan:1/2") == (True, None)
    assert again.start("scan:9/9") == (False, None)
    with pytest.raises(BackfillError, match="belongs to another job"):
        StateFile(path, {**job, "table": "invoices"})
    path.write_text("[]")
    with pytest.raises(BackfillError, match="not a dualwrite state file"):
        StateFile(path, job)


def test_max_rps_paces_every_request_of_both_sides(s3: S3Env) -> None:
    meter = RequestMeter(max_rps=40)
    meter.attach(s3.primary, "primary")
    meter.attach(s3.shadow, "shadow")
    started = time.perf_counter()
    for _ in range(6):
        s3.primary.list_objects_v2(Bucket="photos")
        s3.shadow.list_objects_v2(Bucket="photos-acct2")
    elapsed = time.perf_counter() - started
    assert elapsed >= 11 / 40  # 12 requests, one slot every 25 ms
    assert meter.counts() == {"primary": {"ListObjectsV2": 6}, "shadow": {"ListObjectsV2": 6}}
    with pytest.raises(ValueError, match="max_rps"):
        RequestMeter(max_rps=0)


def test_a_condition_on_a_wide_item_stays_under_the_4_kb_limit_and_holds(
    ddb: DynamoEnv,
) -> None:
    item = {"pk": {"S": "acme"}, **{f"attribute_{i:03d}": {"N": str(i)} for i in range(400)}}
    ddb.s_raw.put_item(TableName="orders", Item=item)
    condition = condition_on(item, ("pk",), {**item, "added": {"S": "x"}})
    expression = condition["ConditionExpression"]
    assert len(expression) <= 4000
    # Every placeholder is used (DynamoDB rejects unused ones), the first attributes are checked.
    for name in [*condition["ExpressionAttributeNames"], *condition["ExpressionAttributeValues"]]:
        assert name in expression
    assert condition["ExpressionAttributeNames"]["#a0"] == "attribute_000"
    ddb.s_raw.put_item(TableName="orders", Item=item, **condition)  # unchanged: the write goes
    ddb.s_raw.put_item(TableName="orders", Item={**item, "attribute_000": {"N": "-1"}})
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        ddb.s_raw.put_item(TableName="orders", Item=item, **condition)
    assert condition_on(None, ("pk",)) == {
        "ConditionExpression": "attribute_not_exists(#k0)",
        "ExpressionAttributeNames": {"#k0": "pk"},
    }


def test_listings_merge_in_s3_key_order_whatever_the_characters(s3: S3Env) -> None:
    keys = ["a", "a/b", "a-b", "Z", "é", "日本/猫", "\U0001f431", "~"]
    for key in keys:
        s3.primary.put_object(Bucket="photos", Key=key, Body=key.encode())
        if key not in ("é", "~"):
            s3.shadow.put_object(
                Bucket="photos-acct2", Key=key, Body=key.encode(), ACL="bucket-owner-full-control"
            )
    out = io.StringIO()
    job = S3Job(
        command="diff",
        primary=s3.primary,
        shadow=s3.shadow,
        resource="photos",
        shadow_resource="photos-acct2",
    )
    report = run(job, workers=2, sink=Sink(out))
    found = sorted((r["kind"], r["key"]) for r in map(json.loads, out.getvalue().splitlines()))
    assert found == [("missing_in_shadow", "~"), ("missing_in_shadow", "é")]
    assert (report.equal, report.compared) == (6, 8)
