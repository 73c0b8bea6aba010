"""``shadow_written``'s ``latency`` and ``lag`` end at the shadow's acknowledgement.

With the fleet check (the default) the primary is read back after the shadow write. That read is
not the shadow's: ``latency`` is the shadow call's duration and ``lag`` runs from the primary's
acknowledgement to the shadow's (design.md's event table, ``dualwrite.events.ShadowWritten``).
Here the primary's read-back is made slow (0.4 s) and the shadow's write a little slow (0.05 s):
both figures must cover the shadow's delay and stay below the read-back's.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import DynamoEnv, S3Env

import dualwrite
from dualwrite.events import ShadowWritten
from dualwrite.testing import RecordingHook

SHADOW_DELAY = 0.05
READ_BACK_DELAY = 0.4
WRITES = {"s3": {"PutObject"}, "dynamodb": {"PutItem"}}
READ_BACKS = {"s3": {"HeadObject", "GetObject"}, "dynamodb": {"GetItem", "BatchGetItem"}}
MODES: dict[str, dict[str, Any]] = {
    "sync": {"shadow_timeout": None},
    "sync, shadow_timeout": {"shadow_timeout": 5.0},
    "background": {"mode": "background"},
}


def _slow(client: Any, service: str, names: set[str], delay: float, seen: list[str]) -> None:
    """Delay every call of ``client`` to one of the operations ``names``."""

    def handler(model: Any, **_: Any) -> None:
        if model.name in names:
            seen.append(model.name)
            time.sleep(delay)

    client.meta.events.register(f"before-call.{service}", handler, unique_id="tests-slow")


def _write(service: str, s3: S3Env | None, ddb: DynamoEnv | None, **options: Any) -> Any:
    rec = RecordingHook()
    reads: list[str] = []
    if service == "s3":
        assert s3 is not None
        primary, shadow = s3.primary, s3.shadow
        writer = dualwrite.DualWriter(flag=True, hooks=[rec], **options)
        client = writer.wrap(primary, shadow=shadow, names=s3.names)
    else:
        assert ddb is not None
        primary, shadow = ddb.primary, ddb.shadow
        writer = dualwrite.DualWriter(flag=True, hooks=[rec], **options)
        client = writer.wrap(primary, shadow=shadow)
    _slow(primary, service, READ_BACKS[service], READ_BACK_DELAY, reads)
    _slow(shadow, service, WRITES[service], SHADOW_DELAY, [])
    started = time.perf_counter()
    if service == "s3":
        client.put_object(Bucket="photos", Key="k", Body=b"v")
    else:
        client.put_item(TableName="orders", Item={"pk": {"S": "k"}, "v": {"S": "v"}})
    writer.flush()
    whole = time.perf_counter() - started
    writer.close()
    written = [e for e in rec.events if isinstance(e, ShadowWritten)]
    assert [e.kind for e in rec.events] == ["shadow_written"], rec.events
    return written[0], reads, whole


@pytest.mark.parametrize("service", ["s3", "dynamodb"])
@pytest.mark.parametrize("mode", MODES)
def test_lag_and_latency_stop_at_the_shadows_ack_not_the_read_back(
    service: str, mode: str, aws: Any
) -> None:
    s3 = S3Env(aws) if service == "s3" else None
    ddb = DynamoEnv(aws) if service == "dynamodb" else None
    event, reads, whole = _write(service, s3, ddb, **MODES[mode])
    assert reads, "the fleet check read the primary back"
    assert whole >= SHADOW_DELAY + READ_BACK_DELAY
    assert SHADOW_DELAY <= event.latency < READ_BACK_DELAY
    assert SHADOW_DELAY <= event.lag < READ_BACK_DELAY


@pytest.mark.parametrize("service", ["s3", "dynamodb"])
def test_without_a_read_back_they_cover_the_whole_shadow_call(service: str, aws: Any) -> None:
    s3 = S3Env(aws) if service == "s3" else None
    ddb = DynamoEnv(aws) if service == "dynamodb" else None
    event, reads, _ = _write(service, s3, ddb, single_writer=True, shadow_timeout=None)
    assert reads == []
    assert event.latency >= SHADOW_DELAY
    assert event.lag >= event.latency
