"""Shadow outages over HTTP: the primary never notices, the journal misses nothing, repair heals.

Both accounts live on one ``ThreadedMotoServer`` (moto keeps them apart by the credentials STS
handed out); the shadow client reaches it through :class:`FaultProxy`, which the test switches
between passing requests through and failing them the way AWS fails.
"""

from __future__ import annotations

import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.proxy import DYNAMODB_FAULTS, FAULTS, PASS, FaultProxy
from _support.servers import MotoServer
from botocore.config import Config
from conftest import Accounts, create_table, enforce_owner_acl

import dualwrite
from dualwrite._core import breaker as _breaker
from dualwrite.events import ShadowFailed
from dualwrite.testing import RecordingHook

# The shadow client the writer uses: small timeouts and one retry, so that each failing call
# costs a few seconds at most. The read timeout also bounds the healthy calls (a repair once
# the fault is lifted): 0.3 s failed one in a CI run on a loaded machine, where a moto request
# took longer than that twice in a row.
SHADOW_CONFIG = Config(
    retries={"total_max_attempts": 2, "mode": "standard"},
    connect_timeout=0.3,
    read_timeout=1.0,
)


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    moto = MotoServer()
    yield moto
    moto.stop()


@pytest.fixture(scope="module")
def accounts(server: MotoServer) -> Accounts:
    return Accounts(endpoint_url=server.url)


class HttpEnv:
    """A primary client straight to the server, a shadow client through the proxy.

    ``shadow_reader`` reaches the shadow account directly, to check what landed there.
    """

    def __init__(self, server: MotoServer, accounts: Accounts) -> None:
        self.proxy = FaultProxy((server.host, server.port))
        self.primary = accounts.client("primary", "s3")
        self.shadow = accounts.shadow.client(
            "s3", endpoint_url=self.proxy.url, config=SHADOW_CONFIG
        )
        self.shadow_reader = accounts.client("shadow", "s3")
        enforce_owner_acl(self.shadow)
        suffix = uuid.uuid4().hex[:10]
        self.bucket, self.shadow_bucket = f"p-{suffix}", f"s-{suffix}"
        self.primary.create_bucket(Bucket=self.bucket)
        self.shadow_reader.create_bucket(Bucket=self.shadow_bucket)

    def objects(self, side: str) -> dict[str, tuple[bytes, str, dict[str, str], list[Any]]]:
        """Every object of one side: body, content type, metadata, tags."""
        client = self.primary if side == "primary" else self.shadow_reader
        bucket = self.bucket if side == "primary" else self.shadow_bucket
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                got = client.get_object(Bucket=bucket, Key=obj["Key"])
                tags = client.get_object_tagging(Bucket=bucket, Key=obj["Key"])["TagSet"]
                found[obj["Key"]] = (
                    got["Body"].read(),
                    got["ContentType"],
                    got["Metadata"],
                    sorted((t["Key"], t["Value"]) for t in tags),
                )
        return found


@pytest.fixture
def env(server: MotoServer, accounts: Accounts) -> Iterator[HttpEnv]:
    result = HttpEnv(server, accounts)
    yield result
    result.proxy.close()


def ok(response: dict[str, Any]) -> None:
    assert response["ResponseMetadata"]["HTTPStatusCode"] in (200, 204)


OUTAGE_MODES = [
    *(pytest.param(name, "sync", id=f"{name}-sync") for name in FAULTS),
    *(
        pytest.param(name, "background", id=f"{name}-background")
        for name in ("refused", "read-timeout")
    ),
]


@pytest.mark.parametrize(("fault", "mode"), OUTAGE_MODES)
def test_outage_loses_nothing(env: HttpEnv, tmp_path: Path, fault: str, mode: str) -> None:
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=True,
        mode=mode,
        hooks=[recorder],
        journal=tmp_path / "j.db",
        circuit_breaker=dualwrite.CircuitBreaker(failures=2, reset_after=3600),
        # The shadow's own failure is what is tested: on a loaded machine a slow fault could
        # outlast the default shadow_timeout and be journaled as "timeout" instead
        # (tests/test_shadow_timeout.py covers that path).
        shadow_timeout=None,
    )
    s3 = writer.wrap(env.primary, shadow=env.shadow, names={env.bucket: env.shadow_bucket})
    bucket = env.bucket
    # Before the outage: two objects reach both accounts.
    ok(s3.put_object(Bucket=bucket, Key="keep", Body=b"v1", Tagging="v=1"))
    ok(s3.put_object(Bucket=bucket, Key="gone", Body=b"doomed"))
    assert writer.flush(timeout=30)
    assert env.objects("shadow") == env.objects("primary")

    env.proxy.set(FAULTS[fault])
    written = ["keep", "gone", "copy"]
    for i in range(6):
        key = f"new-{i}"
        written.append(key)
        ok(
            s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=f"body {i}".encode(),
                ContentType="text/plain",
                Metadata={"n": str(i)},
            )
        )
    ok(s3.put_object(Bucket=bucket, Key="keep", Body=b"v2", Tagging="v=2"))
    ok(
        s3.put_object_tagging(
            Bucket=bucket, Key="keep", Tagging={"TagSet": [{"Key": "v", "Value": "3"}]}
        )
    )
    ok(s3.delete_object(Bucket=bucket, Key="gone"))
    ok(s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "new-0"}))
    assert writer.flush(timeout=60)
    assert writer.journal is not None
    entries = list(writer.journal.entries())
    assert {e.key for e in entries} == set(written)
    assert {e.reason for e in entries} <= {"shadow_failed", "circuit_open"}
    assert "circuit_opened" in recorder.kinds()
    assert recorder.kinds().count("shadow_failed") == 10
    # The shadow was really called, and failed, until the circuit opened (background workers
    # may have had more calls in flight by then).
    errors = [e.error_type for e in recorder.events if isinstance(e, ShadowFailed)]
    assert len([t for t in errors if t != "CircuitOpen"]) >= 2

    env.proxy.set(PASS)
    # What the shadow is missing right now is exactly what the journal names.
    primary, shadow = env.objects("primary"), env.objects("shadow")
    differing = {k for k in primary.keys() | shadow.keys() if primary.get(k) != shadow.get(k)}
    assert differing == set(written)
    report = writer.repair()
    assert (report.failed, report.skipped, report.remaining) == (0, 0, 0)
    assert (report.copied, report.deleted) == (len(written) - 1, 1)
    assert env.objects("shadow") == env.objects("primary")
    assert len(env.objects("primary")) == len(written) - 1
    writer.close()


def test_outage_without_a_breaker_journals_every_write(env: HttpEnv, tmp_path: Path) -> None:
    writer = dualwrite.DualWriter(flag=True, journal=tmp_path / "j.db", circuit_breaker=None)
    s3 = writer.wrap(env.primary, shadow=env.shadow, names={env.bucket: env.shadow_bucket})
    env.proxy.set(FAULTS["http-500"])
    for i in range(8):
        ok(s3.put_object(Bucket=env.bucket, Key=f"k{i}", Body=b"x"))
    # Every write tried the shadow, with its one retry.
    assert env.proxy.requests["error"] == 16
    assert writer.journal is not None
    assert writer.journal.count() == 8
    env.proxy.set(PASS)
    assert writer.repair().copied == 8
    assert env.objects("shadow") == env.objects("primary")
    writer.close()


def test_shadow_recovers_during_background_outage(
    env: HttpEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes made while the shadow is down are journaled; after the probe, writes reach the
    shadow directly again."""
    now = [1000.0]
    monkeypatch.setattr(_breaker, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=True,
        mode="background",
        workers=1,  # one shadow write at a time: no write races the probe
        hooks=[recorder],
        journal=tmp_path / "j.db",
        circuit_breaker=dualwrite.CircuitBreaker(failures=2, reset_after=60),
    )
    s3 = writer.wrap(env.primary, shadow=env.shadow, names={env.bucket: env.shadow_bucket})
    env.proxy.set(FAULTS["refused"])
    for i in range(5):
        ok(s3.put_object(Bucket=env.bucket, Key=f"down-{i}", Body=b"x"))
    assert writer.flush(timeout=30)
    env.proxy.set(PASS)
    now[0] += 60
    for i in range(5):
        ok(s3.put_object(Bucket=env.bucket, Key=f"up-{i}", Body=b"y"))
    assert writer.flush(timeout=30)
    assert recorder.kinds().count("circuit_closed") == 1
    assert recorder.kinds().count("shadow_written") == 5
    assert writer.journal is not None
    assert {e.key for e in writer.journal.entries()} == {f"down-{i}" for i in range(5)}
    assert writer.repair().copied == 5
    assert env.objects("shadow") == env.objects("primary")
    writer.close()


@pytest.mark.parametrize("fault", list(DYNAMODB_FAULTS))
def test_dynamodb_outage_loses_nothing(
    server: MotoServer, accounts: Accounts, tmp_path: Path, fault: str
) -> None:
    proxy = FaultProxy((server.host, server.port))
    primary = accounts.client("primary", "dynamodb")
    shadow = accounts.shadow.client("dynamodb", endpoint_url=proxy.url, config=SHADOW_CONFIG)
    shadow_reader = accounts.client("shadow", "dynamodb")
    table = f"orders-{uuid.uuid4().hex[:10]}"
    create_table(primary, table)
    create_table(shadow_reader, table)

    def scan(client: Any) -> list[Any]:
        items = client.scan(TableName=table, ConsistentRead=True)["Items"]
        return sorted(items, key=lambda item: item["pk"]["S"])

    recorder = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=True,
        hooks=[recorder],
        journal=tmp_path / "j.db",
        circuit_breaker=dualwrite.CircuitBreaker(failures=2, reset_after=3600),
        # The shadow's own failure is what is tested: on a loaded machine a slow fault could
        # outlast the default shadow_timeout and be journaled as "timeout" instead
        # (tests/test_shadow_timeout.py covers that path).
        shadow_timeout=None,
    )
    ddb = writer.wrap(primary, shadow=shadow)

    def key(name: str) -> dict[str, Any]:
        return {"pk": {"S": name}}

    ok(ddb.put_item(TableName=table, Item={**key("keep"), "n": {"N": "1"}}))
    ok(ddb.put_item(TableName=table, Item={**key("gone"), "n": {"N": "1"}}))
    assert scan(shadow_reader) == scan(primary)

    proxy.set(DYNAMODB_FAULTS[fault])
    written = {"keep", "gone"}
    for i in range(4):
        written.add(f"new-{i}")
        ok(ddb.put_item(TableName=table, Item={**key(f"new-{i}"), "n": {"N": str(i)}}))
    ok(
        ddb.update_item(
            TableName=table,
            Key=key("keep"),
            UpdateExpression="ADD n :five",
            ExpressionAttributeValues={":five": {"N": "5"}},
        )
    )
    ok(ddb.delete_item(TableName=table, Key=key("gone")))
    assert writer.journal is not None
    assert {e.key["pk"]["S"] for e in writer.journal.entries()} == written  # type: ignore[index]
    assert "circuit_opened" in recorder.kinds()

    proxy.set(PASS)
    report = writer.repair()
    assert (report.copied, report.deleted, report.failed, report.remaining) == (5, 1, 0, 0)
    assert scan(shadow_reader) == scan(primary)
    assert len(scan(primary)) == 5
    writer.close()
    proxy.close()
