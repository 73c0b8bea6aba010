"""BatchWriteItem in background mode: one shadow job for the whole batch, queued on the queue of
every key it wrote, so that it keeps its place in each key's order; no read-back of the primary
with ``single_writer=True``, one BatchGetItem (the fleet check) without it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from conftest import Accounts, DynamoEnv, drop_tables, record_requests

import dualwrite
from dualwrite.testing import RecordingHook

SERIALIZER = TypeSerializer()


@pytest.fixture
def aws(shared_accounts: Accounts) -> Iterator[Accounts]:
    """The module's two moto accounts, with no table left over from the previous test."""
    yield shared_accounts
    drop_tables(shared_accounts)


def typed(item: dict[str, Any]) -> dict[str, Any]:
    return {k: SERIALIZER.serialize(v) for k, v in item.items()}


def _slow_batches(client: Any, release: threading.Event) -> None:
    """Hold the client's BatchWriteItem calls until ``release`` is set: a slow shadow batch,
    which a later single-key write of one of its keys must not overtake."""

    def hold(**_: Any) -> None:
        release.wait(10)

    client.meta.events.register(
        "before-call.dynamodb.BatchWriteItem", hold, unique_id="dualwrite-tests-slow-batch"
    )


@pytest.mark.parametrize(
    ("single_writer", "primary_reads"),
    [
        pytest.param(True, [], id="single_writer"),
        # The fleet check reads back only "a": "b" and "c" were written again by this process
        # meanwhile, and their own jobs settle them (one key: a GetItem, not a BatchGetItem).
        pytest.param(False, ["GetItem"], id="fleet"),
    ],
)
def test_a_batch_is_one_job_ordered_with_later_writes_of_its_keys(
    aws: Accounts, single_writer: bool, primary_reads: list[str]
) -> None:
    env = DynamoEnv(aws)
    release = threading.Event()
    _slow_batches(env.shadow, release)
    rec = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=True, hooks=[rec], mode="background", journal=None, single_writer=single_writer
    )
    wrapped = writer.wrap(env.primary, shadow=env.shadow)
    wrapped.put_item(TableName="orders", Item=typed({"pk": "x"}))  # describes the table
    writer.flush()
    primary_sent = record_requests(env.primary)
    shadow_sent = record_requests(env.shadow)
    items = [typed({"pk": pk, "n": 1}) for pk in "abc"]
    wrapped.batch_write_item(
        RequestItems={"orders": [{"PutRequest": {"Item": item}} for item in items]}
    )
    # The caller reuses its dicts: the shadow still gets the batch as it was at call time.
    items[0]["n"] = {"N": "99"}
    # A later write of one of the batch's keys, queued while the batch's job is held.
    wrapped.put_item(TableName="orders", Item=typed({"pk": "b", "n": 2}))
    wrapped.delete_item(TableName="orders", Key=typed({"pk": "c"}))
    time.sleep(0.2)  # the later jobs had every chance to overtake (they must not)
    assert "PutItem" not in shadow_sent
    assert "DeleteItem" not in shadow_sent
    release.set()
    assert writer.flush(10)
    assert env.scan("shadow") == env.scan("primary")
    assert env.get("shadow", typed({"pk": "b"})) == typed({"pk": "b", "n": 2})
    assert env.get("shadow", typed({"pk": "a"})) == typed({"pk": "a", "n": 1})
    assert env.get("shadow", typed({"pk": "c"})) is None
    # One shadow call for the batch; the primary is read back once (fleet check) or never.
    # (Each later write's own job then reads its key back, in fleet mode.)
    assert shadow_sent[0] == "BatchWriteItem"
    assert shadow_sent.count("BatchWriteItem") == 1
    batch_reads = [op for op in primary_sent if op in ("GetItem", "BatchGetItem")]
    assert batch_reads[: len(primary_reads)] == primary_reads
    if single_writer:
        assert batch_reads == []
    assert "shadow_failed" not in rec.kinds()
    writer.close()
