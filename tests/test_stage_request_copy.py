"""Stage-routed DynamoDB writes keep the request as it was at call time (semantics 10).

The proxy decides a staged call before its handler runs. The write it decided names the key it
read from the caller's request; the handler copies that key. What reaches events, the journal
and repair must be the copy: the caller may reuse its ``Key`` maps the moment the call returns.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from conftest import Accounts, DynamoEnv

import dualwrite
from dualwrite import Stage
from dualwrite.testing import RecordingHook

ADD_ONE = {"UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}


def test_events_name_the_key_as_it_was_at_call_time(aws: Accounts) -> None:
    env = DynamoEnv(aws)
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(
        stage=lambda w: Stage.DUAL_WRITE, hooks=[recorder], journal=None, shadow_timeout=None
    )
    client = writer.wrap(env.primary, shadow=env.shadow)
    with dualwrite.tenant("acme"):
        for call, params in (
            (client.put_item, {"Item": {"pk": {"S": "p"}}}),
            (client.update_item, {"Key": {"pk": {"S": "u"}}, **ADD_ONE}),
            (client.delete_item, {"Key": {"pk": {"S": "p"}}}),
        ):
            call(TableName="orders", **params)
            mine: Any = params.get("Key") or params["Item"]
            mine["pk"]["S"] = "reused"  # the caller's dicts are its own again
    keys = [event.write.key for event in recorder.events if event.kind == "shadow_written"]
    assert keys == [{"pk": {"S": "p"}}, {"pk": {"S": "u"}}, {"pk": {"S": "p"}}]
    assert env.scan("primary") == env.scan("shadow") == [{"pk": {"S": "u"}, "n": {"N": "1"}}]
    writer.close()


def test_a_journaled_key_is_the_one_written(aws: Accounts, tmp_path: Path) -> None:
    """Background mode, shadow down while the job runs: the journal names the key written, and
    repair converges it (it named the caller's reused key before the fix)."""
    env = DynamoEnv(aws)
    gate, down = threading.Event(), [True]

    def refuse(**_: Any) -> None:
        gate.wait(10)
        if down[0]:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "X")

    env.shadow.meta.events.register("before-call.dynamodb.*", refuse)
    writer = dualwrite.DualWriter(
        stage=lambda w: Stage.DUAL_WRITE, mode="background", journal=tmp_path / "j.db"
    )
    client = writer.wrap(env.primary, shadow=env.shadow)
    with dualwrite.tenant("acme"):
        key = {"pk": {"S": "a"}}
        client.update_item(TableName="orders", Key=key, **ADD_ONE)
        key["pk"]["S"] = "reused"
    gate.set()
    assert writer.flush(timeout=30)
    assert writer.journal is not None
    assert [entry.key for entry in writer.journal.entries()] == [{"pk": {"S": "a"}}]
    down[0] = False
    assert writer.repair().copied == 1
    assert env.scan("primary") == env.scan("shadow") == [{"pk": {"S": "a"}, "n": {"N": "1"}}]
    writer.close()
