"""Migration stages: which account is written first, whether the other gets the write, reads.

Data placement is proved by reading each account with its own unwrapped client. ``primary`` and
``shadow`` name the accounts as wrapped (old and new); under CUTOVER the new account is written
first and the old one gets the mirrored write.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import Accounts, DynamoEnv, LeaveUnprocessed, S3Env, create_table

import dualwrite
from dualwrite import Stage
from dualwrite.events import FlagFailed, ShadowFailed, ShadowWritten
from dualwrite.exceptions import ConfigurationError, DualWriteError
from dualwrite.journal import Entry
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")


class Stages:
    """A tenant -> stage table, as a flag service would hold it; the callback records its calls."""

    def __init__(self, **stages: Stage) -> None:
        self.stages = dict(stages)
        self.asked: list[tuple[str, str | None, Stage]] = []
        self.local = threading.local()

    def __call__(self, write: dualwrite.Write) -> Stage:
        assert write.stage is None  # the callback is asked before anything is decided
        stage = self.stages.get(write.tenant or "", Stage.OFF)
        self.asked.append((write.operation, write.tenant, stage))
        self.local.last = stage
        return stage

    def set(self, tenant: str, stage: Stage) -> None:
        self.stages[tenant] = stage


def s3_keys(env: S3Env) -> tuple[list[str], list[str]]:
    return env.keys("primary"), env.keys("shadow")


def order_of_requests(*clients: Any) -> list[tuple[str, str]]:
    """Record ``(client label, operation)`` of every request the clients send, in one list."""
    seen: list[tuple[str, str]] = []
    for label, client in zip(("old", "new"), clients, strict=True):

        def record(model: Any, label: str = label, **_: Any) -> None:
            seen.append((label, model.name))

        client.meta.events.register("before-call.*.*", record, unique_id=f"order-{label}")
    return seen


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        pytest.param({}, ["flag=", "stage="], id="neither"),
        pytest.param({"flag": True, "stage": lambda w: Stage.OFF}, ["not both"], id="both"),
        pytest.param({"stage": "cutover"}, ["callable", "OFF", "DUAL_WRITE", "DONE"], id="str"),
    ],
)
def test_flag_or_stage_is_checked_at_construction(
    kwargs: dict[str, Any], fragments: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        dualwrite.DualWriter(**kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_stage_values_owners_and_coercion() -> None:
    assert [s.value for s in Stage] == ["off", "dual_write", "cutover", "done"]
    assert [s.owner for s in Stage] == ["primary", "primary", "shadow", "shadow"]
    assert [s.mirrored for s in Stage] == [False, True, True, False]
    assert Stage.coerce("CUTOVER") is Stage.CUTOVER
    assert Stage.coerce(" dual_write ") is Stage.DUAL_WRITE
    assert Stage.coerce(Stage.DONE) is Stage.DONE
    assert Stage.coerce("later") is None
    assert Stage.coerce(2) is None
    assert repr(Stage.OFF) == "Stage.OFF"


# -- S3: placement and order per stage -----------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "old", "new", "first"),
    [
        (Stage.OFF, True, False, "old"),
        (Stage.DUAL_WRITE, True, True, "old"),
        (Stage.CUTOVER, True, True, "new"),
        (Stage.DONE, False, True, "new"),
    ],
)
def test_s3_put_lands_where_the_stage_says(
    s3: S3Env, stage: Stage, old: bool, new: bool, first: str
) -> None:
    stages = Stages(acme=stage)
    recorder = RecordingHook()
    client = s3.wrap(flag=None, stage=stages, hooks=[recorder])
    order = order_of_requests(s3.primary, s3.shadow)
    with dualwrite.tenant("acme"):
        response = client.put_object(Bucket="photos", Key="acme/a", Body=b"v1", ACL="private")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert (["acme/a"] if old else [], ["acme/a"] if new else []) == s3_keys(s3)
    puts = [label for label, op in order if op == "PutObject"]
    assert puts[0] == first
    assert len(puts) == int(old) + int(new)
    # The new account's objects carry the owner ACL whether it is written first or second.
    for call in s3.shadow_calls:
        if call["operation"] == "PutObject":
            assert call["params"]["ACL"] == "bucket-owner-full-control"
    assert stages.asked == [("PutObject", "acme", stage)]
    if stage.mirrored:
        (event,) = recorder.of_kind("shadow_written")
        assert isinstance(event, ShadowWritten)
        assert event.write.stage is stage
        expected = ("photos", "photos-acct2") if first == "old" else ("photos-acct2", "photos")
        assert (event.write.resource, event.write.shadow_resource) == expected
    else:
        assert recorder.events == []


def test_s3_other_tenants_keep_their_own_stage(s3: S3Env) -> None:
    client = s3.wrap(flag=None, stage=Stages(acme=Stage.DONE, globex=Stage.DUAL_WRITE))
    for tenant in ("acme", "globex", "initech"):
        with dualwrite.tenant(tenant):
            client.put_object(Bucket="photos", Key=f"{tenant}/k", Body=b"x")
    assert s3_keys(s3) == (["globex/k", "initech/k"], ["acme/k", "globex/k"])


def test_s3_cutover_failure_of_the_new_account_reaches_the_caller_and_spares_the_old(
    s3: S3Env,
) -> None:
    client = s3.wrap(flag=None, stage=Stages(acme=Stage.CUTOVER))
    s3.shadow.delete_bucket(Bucket="photos-acct2")
    with dualwrite.tenant("acme"), pytest.raises(ClientError) as info:
        client.put_object(Bucket="photos", Key="acme/a", Body=b"v1")
    assert info.value.response["Error"]["Code"] == "NoSuchBucket"
    assert s3.keys("primary") == []


def test_s3_cutover_copy_delete_tagging_and_reads(s3: S3Env) -> None:
    stages = Stages(acme=Stage.CUTOVER)
    client = s3.wrap(flag=None, stage=stages)
    with dualwrite.tenant("acme"):
        client.put_object(Bucket="photos", Key="acme/a", Body=b"alpha", ContentType="text/plain")
        client.copy_object(Bucket="photos", Key="acme/b", CopySource="photos/acme/a")
        client.copy_object(
            Bucket="photos", Key="acme/c", CopySource={"Bucket": "photos", "Key": "acme/a"}
        )
        client.put_object_tagging(
            Bucket="photos", Key="acme/b", Tagging={"TagSet": [{"Key": "t", "Value": "1"}]}
        )
        client.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "acme/c"}]})
        # Reads come from the new account, with the bucket named as the caller named it.
        listing = client.list_objects_v2(Bucket="photos", Prefix="acme/")
        assert listing["Name"] == "photos"
        assert client.get_object(Bucket="photos", Key="acme/b")["Body"].read() == b"alpha"
        assert client.head_object(Bucket="photos", Key="acme/b")["ContentLength"] == 5
        tags = client.get_object_tagging(Bucket="photos", Key="acme/b")["TagSet"]
        assert tags == [{"Key": "t", "Value": "1"}]
    assert s3_keys(s3) == (["acme/a", "acme/b"], ["acme/a", "acme/b"])
    for side, bucket in (("primary", "photos"), ("shadow", "photos-acct2")):
        reader = s3.primary if side == "primary" else s3.shadow
        assert reader.get_object_tagging(Bucket=bucket, Key="acme/b")["TagSet"] == tags


def test_s3_reads_follow_the_stage_paginators_waiters_downloads_presigned(s3: S3Env) -> None:
    stages = Stages(acme=Stage.DUAL_WRITE)
    client = s3.wrap(flag=None, stage=stages)
    s3.primary.put_object(Bucket="photos", Key="acme/only-old", Body=b"old")
    s3.shadow.put_object(
        Bucket="photos-acct2", Key="acme/only-new", Body=b"new", ACL="bucket-owner-full-control"
    )

    def view() -> dict[str, Any]:
        with dualwrite.tenant("acme"):
            pages = client.get_paginator("list_objects_v2").paginate(Bucket="photos")
            keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
            out = io.BytesIO()
            key = keys[0]
            client.download_fileobj("photos", key, out)
            client.get_waiter("object_exists").wait(
                Bucket="photos", Key=key, WaiterConfig={"Delay": 0, "MaxAttempts": 1}
            )
            url = client.generate_presigned_url(
                "get_object", Params={"Bucket": "photos", "Key": key}
            )
            return {"keys": keys, "body": out.getvalue(), "url": url}

    old = view()
    assert old["keys"] == ["acme/only-old"]
    assert old["body"] == b"old"
    assert "/photos/" in old["url"] or "//photos." in old["url"]
    stages.set("acme", Stage.CUTOVER)
    new = view()
    assert new["keys"] == ["acme/only-new"]
    assert new["body"] == b"new"
    assert "photos-acct2" in new["url"]
    # Another tenant, still at OFF, reads the old account.
    with dualwrite.tenant("globex"):
        assert client.list_objects_v2(Bucket="photos")["Name"] == "photos"


def test_s3_resources_follow_the_stage(s3: S3Env, aws: Accounts) -> None:
    stages = Stages(acme=Stage.CUTOVER)
    writer = dualwrite.DualWriter(stage=stages)
    resource = writer.wrap(
        aws.resource("primary", "s3"), shadow=aws.resource("shadow", "s3"), names=s3.names
    )
    bucket = resource.Bucket("photos")
    with dualwrite.tenant("acme"):
        bucket.put_object(Key="acme/r", Body=b"resource")
        assert [o.key for o in bucket.objects.filter(Prefix="acme/")] == ["acme/r"]
        assert resource.Object("photos", "acme/r").get()["Body"].read() == b"resource"
        stages.set("acme", Stage.DONE)
        bucket.put_object(Key="acme/s", Body=b"done")
        assert [o.key for o in bucket.objects.filter(Prefix="acme/")] == ["acme/r", "acme/s"]
    assert s3_keys(s3) == (["acme/r"], ["acme/r", "acme/s"])


def test_s3_multipart_upload_keeps_the_stage_it_started_with(s3: S3Env) -> None:
    stages = Stages(acme=Stage.DUAL_WRITE)
    client = s3.wrap(flag=None, stage=stages)
    part = b"p" * (5 * 1024 * 1024)
    with dualwrite.tenant("acme"):
        old_first = client.create_multipart_upload(Bucket="photos", Key="acme/dual")["UploadId"]
        stages.set("acme", Stage.CUTOVER)
        new_first = client.create_multipart_upload(Bucket="photos", Key="acme/cut")["UploadId"]
        stages.set("acme", Stage.DUAL_WRITE)  # a rollback while both uploads are in flight
        for key, upload in (("acme/dual", old_first), ("acme/cut", new_first)):
            etag = client.upload_part(
                Bucket="photos", Key=key, UploadId=upload, PartNumber=1, Body=part
            )["ETag"]
            assert client.list_parts(Bucket="photos", Key=key, UploadId=upload)["Parts"]
            client.complete_multipart_upload(
                Bucket="photos",
                Key=key,
                UploadId=upload,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
            )
    assert s3_keys(s3) == (["acme/cut", "acme/dual"], ["acme/cut", "acme/dual"])
    assert s3.primary_body("acme/cut") == s3.shadow_body("acme/cut") == part


@pytest.mark.parametrize("stage", [Stage.CUTOVER, Stage.DONE])
def test_s3_managed_transfers_go_to_the_new_account_first(s3: S3Env, stage: Stage) -> None:
    client = s3.wrap(flag=None, stage=Stages(acme=stage))
    big = bytes(range(256)) * (40 * 1024)  # 10 MiB: a multipart upload
    with dualwrite.tenant("acme"):
        client.upload_fileobj(io.BytesIO(big), "photos", "acme/big", ExtraArgs={"ACL": "private"})
        client.copy({"Bucket": "photos", "Key": "acme/big"}, "photos", "acme/big2")
    old, new = s3_keys(s3)
    assert new == ["acme/big", "acme/big2"]
    assert old == (new if stage is Stage.CUTOVER else [])
    assert s3.shadow_body("acme/big") == big
    if stage is Stage.CUTOVER:
        assert s3.primary_body("acme/big2") == big


def test_s3_unmapped_bucket_under_cutover_goes_old_first_and_is_reported(s3: S3Env) -> None:
    s3.primary.create_bucket(Bucket="logs-old")
    recorder = RecordingHook()
    client = s3.wrap(flag=None, stage=Stages(acme=Stage.CUTOVER), hooks=[recorder])
    with dualwrite.tenant("acme"):
        client.put_object(Bucket="logs-old", Key="acme/x", Body=b"x")
        assert client.list_objects_v2(Bucket="logs-old")["KeyCount"] == 1
    assert [e.kind for e in recorder.events] == ["unsupported"]
    assert recorder.events[0].reason == "unmapped"  # type: ignore[attr-defined]


# -- failures of the callback, conflicts -----------------------------------------------------------


def test_a_failing_stage_callback_falls_back_to_dual_write(s3: S3Env) -> None:
    recorder = RecordingHook()

    def broken(write: dualwrite.Write) -> Stage:
        raise RuntimeError("flag service down")

    client = s3.wrap(flag=None, stage=broken, hooks=[recorder])
    with dualwrite.tenant("acme"):
        client.put_object(Bucket="photos", Key="acme/a", Body=b"x")
    assert s3_keys(s3) == (["acme/a"], ["acme/a"])
    failed = recorder.of_kind("flag_failed")[0]
    assert isinstance(failed, FlagFailed)
    assert (failed.source, failed.error_type) == ("stage", "RuntimeError")
    written = recorder.of_kind("shadow_written")[0]
    assert written.write.stage is Stage.DUAL_WRITE


def test_a_stage_callback_returning_garbage_is_reported(s3: S3Env) -> None:
    recorder = RecordingHook()
    client = s3.wrap(flag=None, stage=lambda write: "later", hooks=[recorder])
    client.put_object(Bucket="photos", Key="a", Body=b"x")
    failed = recorder.of_kind("flag_failed")[0]
    assert isinstance(failed, FlagFailed)
    assert "'later'" in failed.error_message
    assert s3_keys(s3) == (["a"], ["a"])


def test_strings_are_accepted_as_stages(s3: S3Env) -> None:
    client = s3.wrap(flag=None, stage=lambda write: "done")
    client.put_object(Bucket="photos", Key="a", Body=b"x")
    assert s3_keys(s3) == ([], ["a"])


# -- DynamoDB ----------------------------------------------------------------------------------


def _item(pk: str, **values: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, **{k: {"N": str(v)} for k, v in values.items()}}


@pytest.mark.parametrize(
    ("stage", "old", "new"),
    [
        (Stage.OFF, True, False),
        (Stage.DUAL_WRITE, True, True),
        (Stage.CUTOVER, True, True),
        (Stage.DONE, False, True),
    ],
)
def test_dynamodb_writes_per_stage_with_renamed_table(
    aws: Accounts, stage: Stage, old: bool, new: bool
) -> None:
    env = DynamoEnv(aws, shadow_table="orders-v2")
    client = env.wrap(flag=None, stage=Stages(acme=stage))
    with dualwrite.tenant("acme"):
        client.put_item(TableName="orders", Item=_item("a", n=1))
        client.update_item(
            TableName="orders",
            Key={"pk": {"S": "a"}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
        client.batch_write_item(
            RequestItems={"orders": [{"PutRequest": {"Item": _item("b", n=5)}}]}
        )
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": "orders", "Item": _item("c", n=7)}},
                {"Delete": {"TableName": "orders", "Key": {"pk": {"S": "b"}}}},
            ]
        )
        got = client.get_item(TableName="orders", Key={"pk": {"S": "a"}}, ConsistentRead=True)
        assert got["Item"] == _item("a", n=2)
        scanned = client.scan(TableName="orders", ConsistentRead=True)["Items"]
        assert sorted(i["pk"]["S"] for i in scanned) == ["a", "c"]
    expected = [_item("a", n=2), _item("c", n=7)]
    assert env.scan("primary") == (expected if old else [])
    assert env.scan("shadow") == (expected if new else [])


def test_dynamodb_table_resource_reads_follow_the_stage(aws: Accounts) -> None:
    env = DynamoEnv(aws, level="resource")
    stages = Stages(acme=Stage.OFF)
    resource = env.wrap(flag=None, stage=stages)
    table = resource.Table("orders")
    env.s_raw.put_item(TableName="orders", Item=_item("only-new"))
    with dualwrite.tenant("acme"):
        table.put_item(Item={"pk": "old", "n": 1})
        assert [i["pk"] for i in table.scan()["Items"]] == ["old"]
        stages.set("acme", Stage.CUTOVER)
        with table.batch_writer() as batch:
            batch.put_item(Item={"pk": "x", "n": 2})
        assert "Item" in table.get_item(Key={"pk": "only-new"})
        assert sorted(i["pk"] for i in table.scan()["Items"]) == ["only-new", "x"]
        assert (
            table.query(KeyConditionExpression="pk = :k", ExpressionAttributeValues={":k": "x"})[
                "Count"
            ]
            == 1
        )
    assert [i["pk"]["S"] for i in env.scan("primary")] == ["old", "x"]
    assert [i["pk"]["S"] for i in env.scan("shadow")] == ["only-new", "x"]


def test_dynamodb_partiql_is_renamed_for_the_new_account(aws: Accounts) -> None:
    env = DynamoEnv(aws)
    create_table(env.p_raw, "events")
    create_table(env.s_raw, "events-v2")
    recorder = RecordingHook()
    stages = Stages(acme=Stage.DONE)
    writer = dualwrite.DualWriter(stage=stages, hooks=[recorder])
    client = writer.wrap(env.primary, shadow=env.shadow, names={"events": "events-v2"})
    with dualwrite.tenant("acme"):
        client.execute_statement(Statement="INSERT INTO \"orders\" VALUE {'pk': 'p1'}")
        client.execute_statement(
            Statement="INSERT INTO events VALUE {'pk': 'e1', 'note': 'FROM events'}"
        )
        rows = client.execute_statement(Statement="SELECT * FROM events WHERE pk = 'e1'")
        assert rows["Items"] == [{"pk": {"S": "e1"}, "note": {"S": "FROM events"}}]
        stages.set("acme", Stage.CUTOVER)
        client.batch_execute_statement(
            Statements=[{"Statement": "UPDATE \"events\" SET note = 'cut' WHERE pk = 'e1'"}]
        )
        # A statement the parser cannot read (a comment) cannot be renamed: it goes to the old
        # account first and is reported, as at DUAL_WRITE.
        client.execute_statement(Statement="INSERT INTO events VALUE {'pk': 'e2'} -- why")
    assert env.scan("primary") == []
    assert env.scan("shadow") == [{"pk": {"S": "p1"}}]
    new_items = env.s_raw.scan(TableName="events-v2")["Items"]
    assert new_items == [{"pk": {"S": "e1"}, "note": {"S": "cut"}}]
    old_items = sorted(env.p_raw.scan(TableName="events")["Items"], key=lambda i: i["pk"]["S"])
    assert old_items == [{**new_items[0]}, {"pk": {"S": "e2"}}]
    assert [e.kind for e in recorder.events] == ["shadow_written", "unsupported"]
    assert recorder.events[0].write.resource == "events-v2"


def test_a_call_spanning_stages_that_disagree_goes_old_first_to_both(aws: Accounts) -> None:
    env = DynamoEnv(aws)
    create_table(env.p_raw, "invoices")
    create_table(env.s_raw, "invoices")
    recorder = RecordingHook()

    def by_table(write: dualwrite.Write) -> Stage:
        return Stage.CUTOVER if write.resource == "orders" else Stage.OFF

    client = env.wrap(flag=None, stage=by_table, hooks=[recorder])
    client.batch_write_item(
        RequestItems={
            "orders": [{"PutRequest": {"Item": _item("o")}}],
            "invoices": [{"PutRequest": {"Item": _item("i")}}],
        }
    )
    conflict = recorder.of_kind("flag_failed")[0]
    assert isinstance(conflict, FlagFailed)
    assert conflict.error_type == "StageConflict"
    assert env.scan("primary") == env.scan("shadow") == [_item("o")]
    assert env.s_raw.scan(TableName="invoices")["Count"] == 1


# -- journal and repair follow the stage -----------------------------------------------------


def _fail_puts(client: Any) -> Callable[[], None]:
    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"}}, "PutObject")

    client.meta.events.register("before-call.s3.PutObject", refuse, unique_id="refuse-puts")
    return lambda: client.meta.events.unregister(
        "before-call.s3.PutObject", unique_id="refuse-puts"
    )


def test_cutover_failures_are_journaled_by_the_old_name_and_repaired_new_to_old(
    s3: S3Env, tmp_path: Path
) -> None:
    recorder = RecordingHook()
    stages = Stages(acme=Stage.CUTOVER)
    writer = dualwrite.DualWriter(stage=stages, journal=tmp_path / "j.db", hooks=[recorder])
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    restore = _fail_puts(s3.primary)  # the old account, the shadow at CUTOVER, refuses puts
    with dualwrite.tenant("acme"):
        client.put_object(Bucket="photos", Key="acme/a", Body=b"new-first")
    restore()
    failed = recorder.of_kind("shadow_failed")[0]
    assert isinstance(failed, ShadowFailed)
    assert failed.write.resource == "photos-acct2"
    assert writer.journal is not None
    (entry,) = writer.journal.entries()
    assert (entry.resource, entry.key, entry.tenant) == ("photos", "acme/a", "acme")
    assert s3_keys(s3) == ([], ["acme/a"])
    # At DONE the old account is not kept: the key is skipped and stays journaled.
    stages.set("acme", Stage.DONE)
    report = writer.repair()
    assert (report.skipped, report.remaining) == (1, 1)
    stages.set("acme", Stage.CUTOVER)
    report = writer.repair()
    assert (report.copied, report.remaining) == (1, 0)
    assert s3.primary_body("acme/a") == b"new-first"
    writer.close()


def test_background_mode_cutover_with_a_journal(s3: S3Env, tmp_path: Path) -> None:
    stages = Stages(acme=Stage.DUAL_WRITE)
    with dualwrite.DualWriter(stage=stages, mode="background", journal=tmp_path / "j.db") as writer:
        client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
        with dualwrite.tenant("acme"):
            for n in range(20):
                if n == 10:
                    stages.set("acme", Stage.CUTOVER)
                client.put_object(Bucket="photos", Key="acme/k", Body=f"v{n}".encode())
        assert writer.flush(timeout=30)
        assert writer.journal is not None
        assert writer.journal.count() == 0
    assert s3.primary_body("acme/k") == s3.shadow_body("acme/k") == b"v19"


# -- the scheduled-job guard ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "runs_in"),
    [
        (Stage.OFF, "primary"),
        (Stage.DUAL_WRITE, "primary"),
        (Stage.CUTOVER, "shadow"),
        (Stage.DONE, "shadow"),
    ],
)
def test_runs_here_says_yes_in_exactly_one_account(stage: Stage, runs_in: str) -> None:
    stages = Stages(acme=stage)
    writer = dualwrite.DualWriter(stage=stages)
    assert writer.runs_here("acme", account="primary") is (runs_in == "primary")
    assert writer.runs_here("acme", account="shadow") is (runs_in == "shadow")
    assert writer.stage_of("acme") is stage
    assert stages.asked[0] == ("RunsHere", "acme", stage)


def test_guard_decorator_takes_the_tenant_from_an_argument_a_callable_or_the_context() -> None:
    stages = Stages(acme=Stage.CUTOVER, globex=Stage.DUAL_WRITE)
    writer = dualwrite.DualWriter(stage=stages)
    ran: list[str] = []

    @writer.guard(account="shadow", tenant="tenant_id")
    def invoice(tenant_id: str, amount: int = 0) -> str:
        ran.append(tenant_id)
        return f"{tenant_id}:{amount}"

    @writer.guard(account="primary", tenant=lambda job: job["tenant"])
    def report(job: dict[str, str]) -> str:
        ran.append(job["tenant"])
        return "done"

    @writer.guard(account="primary")
    def cleanup() -> int:
        ran.append(str(dualwrite.current_tenant()))
        return 1

    assert invoice("acme", amount=3) == "acme:3"
    assert invoice(tenant_id="globex") is None
    assert report({"tenant": "globex"}) == "done"
    assert report({"tenant": "acme"}) is None
    with dualwrite.tenant("globex"):
        assert cleanup() == 1
    with dualwrite.tenant("acme"):
        assert cleanup() is None
    assert ran == ["acme", "globex", "globex"]
    assert invoice.__name__ == "invoice"


def test_guard_runs_nowhere_when_the_stage_is_unknown() -> None:
    recorder = RecordingHook()

    def broken(write: dualwrite.Write) -> Stage:
        raise RuntimeError("down")

    writer = dualwrite.DualWriter(stage=broken, hooks=[recorder])
    assert not writer.runs_here("acme", account="primary")
    assert not writer.runs_here("acme", account="shadow")
    assert [e.kind for e in recorder.events] == ["flag_failed", "flag_failed"]
    with pytest.raises(DualWriteError, match="could not be decided"):
        writer.stage_of("acme")


def test_guard_with_a_flag_writer_runs_in_the_old_account() -> None:
    writer = dualwrite.DualWriter(flag=lambda write: write.tenant == "acme")
    assert writer.runs_here("acme")
    assert writer.runs_here("globex")
    assert not writer.runs_here("acme", account="shadow")
    assert writer.stage_of("acme") is Stage.DUAL_WRITE
    assert writer.stage_of("globex") is Stage.OFF


def test_guard_configuration_errors() -> None:
    writer = dualwrite.DualWriter(stage=Stages())
    with pytest.raises(ConfigurationError, match="'primary', 'shadow'"):
        writer.runs_here("acme", account="old")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="'primary', 'shadow'"):
        writer.guard(account="new")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="tenant"):
        writer.guard(tenant=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="no parameter 'customer'"):
        writer.guard(tenant="customer")(lambda tenant_id: None)


# -- regressions found in review ---------------------------------------------------------------


def test_repair_skips_keys_whose_stage_cannot_be_decided(s3: S3Env, tmp_path: Path) -> None:
    stages = Stages(acme=Stage.CUTOVER)
    writer = dualwrite.DualWriter(stage=stages, journal=tmp_path / "j.db")
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    restore = _fail_puts(s3.primary)
    with dualwrite.tenant("acme"):
        client.put_object(Bucket="photos", Key="acme/a", Body=b"new-latest")
    restore()
    s3.primary.put_object(Bucket="photos", Key="acme/a", Body=b"old-stale")

    def broken(write: dualwrite.Write) -> Stage:
        raise RuntimeError("flag service down")

    writer.stage = broken
    report = writer.repair()
    # Guessing the owner (old, as a write's fallback would) would copy the stale old object over
    # the new account's: the key waits for a repair that knows the stage.
    assert (report.skipped, report.remaining) == (1, 1)
    assert s3.shadow_body("acme/a") == b"new-latest"
    writer.stage = stages
    assert writer.repair().copied == 1
    assert s3.primary_body("acme/a") == b"new-latest"
    writer.close()


def test_batch_responses_name_the_callers_tables(aws: Accounts) -> None:
    env = DynamoEnv(aws, level="resource", shadow_table="orders-v2")
    left = LeaveUnprocessed(env.shadow.meta.client, env.s_raw)
    left.choose = lambda table, request: not left.left  # the new account throttles one put
    table = env.wrap(flag=None, stage=Stages(acme=Stage.CUTOVER)).Table("orders")
    with dualwrite.tenant("acme"):
        with table.batch_writer() as batch:
            batch.put_item(Item={"pk": "a"})
            batch.put_item(Item={"pk": "b"})
        got = table.meta.client.batch_get_item(
            RequestItems={"orders": {"Keys": [{"pk": "a"}]}}, ReturnConsumedCapacity="TOTAL"
        )
    assert left.left  # batch_writer found the unprocessed put under its own table's name
    assert list(got["Responses"]) == ["orders"]
    assert [c["TableName"] for c in got["ConsumedCapacity"]] == ["orders"]
    assert env.scan("primary") == env.scan("shadow") == [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}]


def test_a_table_arn_is_renamed_by_the_tables_name(aws: Accounts) -> None:
    env = DynamoEnv(aws, shadow_table="orders-v2")
    stages = Stages(acme=Stage.DUAL_WRITE)
    client = env.wrap(flag=None, stage=stages)
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/orders"
    with dualwrite.tenant("acme"):
        client.put_item(TableName=arn, Item=_item("dual"))
        stages.set("acme", Stage.CUTOVER)
        client.put_item(TableName=arn, Item=_item("cut"))
    assert env.scan("primary") == env.scan("shadow") == [_item("cut"), _item("dual")]


def test_a_copy_whose_source_is_at_another_stage_goes_to_both_old_first(s3: S3Env) -> None:
    recorder = RecordingHook()
    s3.primary.create_bucket(Bucket="shared")
    s3.shadow.create_bucket(Bucket="shared-acct2")
    s3.primary.put_object(Bucket="shared", Key="logo", Body=b"logo")
    names = {**s3.names, "shared": "shared-acct2"}
    stage = lambda write: Stage.CUTOVER if write.resource == "photos" else Stage.OFF  # noqa: E731
    client = dualwrite.wrap(
        s3.primary, shadow=s3.shadow, names=names, stage=stage, hooks=[recorder]
    )
    client.copy_object(Bucket="photos", Key="acme/logo", CopySource="shared/logo")
    assert s3_keys(s3) == (["acme/logo"], ["acme/logo"])
    assert recorder.kinds()[0] == "flag_failed"


def test_an_upload_this_wrapper_does_not_know_goes_by_the_stage(s3: S3Env) -> None:
    first = s3.wrap(flag=None, stage=Stages(acme=Stage.DONE))
    other = s3.wrap(flag=None, stage=Stages(acme=Stage.DONE))  # another process's wrapper
    with dualwrite.tenant("acme"):
        upload = first.create_multipart_upload(Bucket="photos", Key="acme/big")["UploadId"]
        etag = other.upload_part(
            Bucket="photos", Key="acme/big", UploadId=upload, PartNumber=1, Body=b"x"
        )["ETag"]
        assert len(other.list_parts(Bucket="photos", Key="acme/big", UploadId=upload)["Parts"]) == 1
        other.complete_multipart_upload(
            Bucket="photos",
            Key="acme/big",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        )
    assert s3_keys(s3) == ([], ["acme/big"])


def test_a_download_of_a_version_reads_the_old_account(s3: S3Env) -> None:
    s3.primary.put_bucket_versioning(Bucket="photos", VersioningConfiguration={"Status": "Enabled"})
    version = s3.primary.put_object(Bucket="photos", Key="acme/v", Body=b"v1")["VersionId"]
    s3.primary.put_object(Bucket="photos", Key="acme/v", Body=b"v2")
    client = s3.wrap(flag=None, stage=Stages(acme=Stage.CUTOVER))
    out = io.BytesIO()
    with dualwrite.tenant("acme"):
        client.download_fileobj("photos", "acme/v", out, ExtraArgs={"VersionId": version})
    assert out.getvalue() == b"v1"


def test_guard_uses_the_tenant_parameters_default() -> None:
    writer = dualwrite.DualWriter(stage=Stages(acme=Stage.OFF))

    @writer.guard(tenant="tenant_id")
    def nightly(tenant_id: str = "acme") -> str:
        return tenant_id

    assert nightly() == "acme"


def test_a_hook_writing_through_the_wrapper_does_not_deadlock_a_flip(s3: S3Env) -> None:
    stages = Stages(acme=Stage.DUAL_WRITE)
    holder: dict[str, Any] = {}

    def audit(event: Any) -> None:
        if isinstance(event, ShadowWritten) and event.write.key == "acme/a":
            with dualwrite.tenant("acme"):
                holder["client"].put_object(Bucket="photos", Key="acme/audit", Body=b"hook")

    def slow(**_: Any) -> None:
        threading.Event().wait(0.2)

    s3.shadow.meta.events.register("before-call.s3.PutObject", slow, unique_id="slow")
    writer = dualwrite.DualWriter(stage=stages, mode="background", workers=1, hooks=[audit])
    holder["client"] = client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)

    def main() -> None:
        with dualwrite.tenant("acme"):
            client.put_object(Bucket="photos", Key="acme/a", Body=b"1")
            client.put_object(Bucket="photos", Key="acme/audit", Body=b"2")
            stages.set("acme", Stage.CUTOVER)
            client.put_object(Bucket="photos", Key="acme/audit", Body=b"3")
        holder["done"] = True

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    thread.join(20)
    assert holder.get("done"), "deadlocked"
    assert writer.flush(timeout=20)
    writer.close()
    assert s3.primary_body("acme/audit") == s3.shadow_body("acme/audit")


def _slow(client: Any, event: str, seconds: float) -> None:
    def wait(**_: Any) -> None:
        threading.Event().wait(seconds)

    client.meta.events.register(event, wait, unique_id=f"slow-{event}")


@pytest.mark.parametrize("flip", ["cutover", "rollback"])
def test_background_reads_see_writes_queued_before_a_flip(s3: S3Env, flip: str) -> None:
    before, after = (
        (Stage.DUAL_WRITE, Stage.CUTOVER)
        if flip == "cutover"
        else (Stage.CUTOVER, Stage.DUAL_WRITE)
    )
    stages = Stages(acme=before)
    # The account that gets the mirrored write before the flip is slow: the write is still
    # queued when the tenant's reads move to that account.
    _slow(s3.shadow if flip == "cutover" else s3.primary, "before-call.s3.PutObject", 0.5)
    with dualwrite.DualWriter(stage=stages, mode="background") as writer:
        client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
        with dualwrite.tenant("acme"):
            client.put_object(Bucket="photos", Key="acme/k", Body=b"queued")
            assert writer.pending == 1
            stages.set("acme", after)
            assert client.get_object(Bucket="photos", Key="acme/k")["Body"].read() == b"queued"


def test_background_dynamodb_get_item_sees_a_write_queued_before_cutover(aws: Accounts) -> None:
    env = DynamoEnv(aws, shadow_table="orders-v2")
    stages = Stages(acme=Stage.DUAL_WRITE)
    _slow(env.shadow, "before-call.dynamodb.PutItem", 0.5)
    with dualwrite.DualWriter(stage=stages, mode="background") as writer:
        client = writer.wrap(env.primary, shadow=env.shadow, names=env.names)
        with dualwrite.tenant("acme"):
            client.put_item(TableName="orders", Item=_item("k", n=1))
            stages.set("acme", Stage.CUTOVER)
            got = client.get_item(TableName="orders", Key={"pk": {"S": "k"}})
    assert got["Item"] == _item("k", n=1)


def test_background_batch_after_a_flip_waits_and_lands_in_order(aws: Accounts) -> None:
    env = DynamoEnv(aws, shadow_table="orders-v2")
    stages = Stages(acme=Stage.DUAL_WRITE)
    _slow(env.shadow, "before-call.dynamodb.PutItem", 0.3)
    with dualwrite.DualWriter(stage=stages, mode="background") as writer:
        client = writer.wrap(env.primary, shadow=env.shadow, names=env.names)
        with dualwrite.tenant("acme"):
            client.put_item(TableName="orders", Item=_item("a", n=1))
            client.put_item(TableName="orders", Item=_item("b", n=1))
            stages.set("acme", Stage.CUTOVER)
            # Two keys, so two locks held as one: taken again after the wait for the queued
            # old-first writes of both keys.
            client.batch_write_item(
                RequestItems={
                    "orders": [
                        {"PutRequest": {"Item": _item("a", n=2)}},
                        {"PutRequest": {"Item": _item("b", n=2)}},
                    ]
                }
            )
        assert writer.flush(timeout=30)
    assert env.scan("primary") == env.scan("shadow") == [_item("a", n=2), _item("b", n=2)]


@pytest.mark.parametrize(
    ("before", "after"), [(Stage.DUAL_WRITE, Stage.DONE), (Stage.CUTOVER, Stage.OFF)]
)
@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_background_one_account_write_after_a_flip_is_not_overwritten(
    aws: Accounts, before: Stage, after: Stage, batch: bool
) -> None:
    env = DynamoEnv(aws, shadow_table="orders-v2")
    stages = Stages(acme=before)
    # The account written second before the flip is slow, and it is the only one after it.
    _slow(env.shadow if after is Stage.DONE else env.primary, "before-call.dynamodb.PutItem", 0.3)
    with dualwrite.DualWriter(stage=stages, mode="background") as writer:
        client = writer.wrap(env.primary, shadow=env.shadow, names=env.names)
        with dualwrite.tenant("acme"):
            client.put_item(TableName="orders", Item=_item("a", n=1))
            stages.set("acme", after)
            if batch:
                client.batch_write_item(
                    RequestItems={"orders": [{"PutRequest": {"Item": _item("a", n=2)}}]}
                )
            else:
                client.put_item(TableName="orders", Item=_item("a", n=2))
        assert writer.flush(timeout=30)
    only = "shadow" if after is Stage.DONE else "primary"
    assert env.scan(only) == [_item("a", n=2)]


# -- regressions found in the second review ------------------------------------------------------


def test_background_copy_right_after_a_flip_reads_the_sources_latest(s3: S3Env) -> None:
    stages = Stages(acme=Stage.DUAL_WRITE)
    s3.primary.put_object(Bucket="photos", Key="acme/src", Body=b"v0")
    s3.shadow.put_object(
        Bucket="photos-acct2", Key="acme/src", Body=b"v0", ACL="bucket-owner-full-control"
    )
    _slow(s3.shadow, "before-call.s3.PutObject", 0.4)
    with dualwrite.DualWriter(stage=stages, mode="background") as writer:
        client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
        with dualwrite.tenant("acme"):
            client.put_object(Bucket="photos", Key="acme/src", Body=b"v1")
            stages.set("acme", Stage.CUTOVER)
            client.copy_object(Bucket="photos", Key="acme/dst", CopySource="photos/acme/src")
            assert client.get_object(Bucket="photos", Key="acme/dst")["Body"].read() == b"v1"
        assert writer.flush(timeout=30)
    assert s3.primary_body("acme/dst") == s3.shadow_body("acme/dst") == b"v1"


def test_background_download_right_after_a_flip_reads_the_callers_write(s3: S3Env) -> None:
    stages = Stages(acme=Stage.DUAL_WRITE)
    _slow(s3.shadow, "before-call.s3.PutObject", 0.4)
    with dualwrite.DualWriter(stage=stages, mode="background") as writer:
        client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
        with dualwrite.tenant("acme"):
            client.put_object(Bucket="photos", Key="acme/k", Body=b"v1")
            stages.set("acme", Stage.CUTOVER)
            out = io.BytesIO()
            client.download_fileobj("photos", "acme/k", out)
    assert out.getvalue() == b"v1"


def test_background_arn_and_name_of_one_table_share_a_queue(aws: Accounts) -> None:
    env = DynamoEnv(aws, shadow_table="orders-v2")
    stages = Stages(acme=Stage.DUAL_WRITE)
    _slow(env.shadow, "before-call.dynamodb.PutItem", 0.3)
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/orders"
    with dualwrite.DualWriter(stage=stages, mode="background") as writer:
        client = writer.wrap(env.primary, shadow=env.shadow, names=env.names)
        with dualwrite.tenant("acme"):
            client.put_item(TableName=arn, Item=_item("a", n=1))
            stages.set("acme", Stage.CUTOVER)
            client.put_item(TableName="orders", Item=_item("a", n=2))
        assert writer.flush(timeout=30)
    assert env.scan("primary") == env.scan("shadow") == [_item("a", n=2)]


def test_a_one_account_write_of_several_keys_waits_for_its_own_keys_only(s3: S3Env) -> None:
    gate = threading.Event()

    def hold_busy(params: Any, **_: Any) -> None:
        if "busy" in params.get("url_path", ""):
            gate.wait(20)

    s3.primary.put_object(Bucket="photos", Key="idle/a", Body=b"a")
    stages = Stages(busy=Stage.CUTOVER, idle=Stage.OFF)
    # The old account's mirrored writes of tenant "busy" are stuck until the gate opens.
    s3.primary.meta.events.register("before-call.s3.PutObject", hold_busy, unique_id="gate")
    try:
        with dualwrite.DualWriter(stage=stages, mode="background") as writer:
            client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
            with dualwrite.tenant("busy"):
                client.put_object(Bucket="photos", Key="busy/x", Body=b"x")
            done = threading.Event()

            def idle_delete() -> None:
                with dualwrite.tenant("idle"):
                    client.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "idle/a"}]})
                done.set()

            threading.Thread(target=idle_delete, daemon=True).start()
            assert done.wait(10), "an OFF tenant's delete_objects waited for another tenant"
            gate.set()
            assert writer.flush(timeout=30)
    finally:
        gate.set()
    assert s3.keys("primary") == ["busy/x"]


def test_exists_conditions_name_their_table() -> None:
    from dualwrite._dynamodb.partiql import rename_statement, statement_table  # noqa: PLC0415

    statement = 'EXISTS(SELECT * FROM "orders" WHERE pk = ?)'
    assert statement_table(statement) == "orders"
    renamed = rename_statement(statement, lambda name: f"{name}-v2")
    assert renamed == 'EXISTS(SELECT * FROM "orders-v2" WHERE pk = ?)'
    assert rename_statement("select * from orders.byDate where pk = 'a'", str.upper) == (
        """select * from "ORDERS".byDate where pk = 'a'"""
    )


def test_new_first_responses_name_the_callers_resources() -> None:
    from dualwrite._dynamodb import routing as _dynamodb  # noqa: PLC0415
    from dualwrite._s3 import routing as _s3  # noqa: PLC0415

    renamed = {"orders-v2": "orders", "photos-acct2": "photos"}
    batch = {"Responses": [{"TableName": "orders-v2", "Item": {}}, {"Error": {}}]}
    assert _dynamodb.as_called("BatchExecuteStatement", batch, renamed)["Responses"] == [
        {"TableName": "orders", "Item": {}},
        {"Error": {}},
    ]
    assert batch["Responses"][0]["TableName"] == "orders-v2"  # the original is left as it was
    listing = {"Name": "photos-acct2", "KeyCount": 0}
    assert _s3.as_called("ListObjectsV2", listing, renamed)["Name"] == "photos"


def test_paginated_pages_name_the_callers_bucket(s3: S3Env) -> None:
    client = s3.wrap(flag=None, stage=Stages(acme=Stage.CUTOVER))
    with dualwrite.tenant("acme"):
        client.put_object(Bucket="photos", Key="acme/a", Body=b"a")
        pages = list(client.get_paginator("list_objects_v2").paginate(Bucket="photos"))
    assert [p["Name"] for p in pages] == ["photos"]
    assert [o["Key"] for p in pages for o in p["Contents"]] == ["acme/a"]


# -- regressions found in the third review -------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "stage_now"), [("primary", Stage.CUTOVER), ("shadow", Stage.DUAL_WRITE)]
)
def test_repair_after_a_crash_at_a_flip_copies_from_the_account_written_first(
    s3: S3Env, tmp_path: Path, first: str, stage_now: Stage
) -> None:
    # What a crash leaves behind: an intent for a write that only the account written first
    # has; meanwhile the tenant flipped, so the other account owns it now.
    if first == "primary":
        s3.primary.put_object(Bucket="photos", Key="acme/a", Body=b"acknowledged")
    else:
        s3.shadow.put_object(
            Bucket="photos-acct2",
            Key="acme/a",
            Body=b"acknowledged",
            ACL="bucket-owner-full-control",
        )
    writer = dualwrite.DualWriter(stage=Stages(acme=stage_now), journal=tmp_path / "j.db")
    writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    assert writer.journal is not None
    writer.journal.add(
        [
            Entry(
                service="s3",
                resource="photos",
                key="acme/a",
                reason="pending",
                tenant="acme",
                first=first,
                # No owner recorded, made a while ago: an intent repair takes as abandoned.
                at=time.time() - 3600,
            )
        ]
    )
    report = writer.repair()
    assert (report.copied, report.deleted, report.remaining) == (1, 0, 0)
    assert s3.primary_body("acme/a") == s3.shadow_body("acme/a") == b"acknowledged"
    writer.close()


def test_background_intents_record_the_account_written_first(s3: S3Env, tmp_path: Path) -> None:
    stages = Stages(acme=Stage.CUTOVER)
    gate = threading.Event()

    def hold_mirror(**_: Any) -> None:
        if threading.current_thread().name.startswith("dualwrite"):
            gate.wait(10)  # the old account's mirrored write waits on its worker

    s3.primary.meta.events.register("before-call.s3.PutObject", hold_mirror, unique_id="hold")
    writer = dualwrite.DualWriter(stage=stages, mode="background", journal=tmp_path / "j.db")
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    assert writer.journal is not None
    try:
        with dualwrite.tenant("acme"):
            client.put_object(Bucket="photos", Key="acme/cut", Body=b"2")
        (intent,) = writer.journal.entries()
    finally:
        gate.set()
    assert (intent.reason, intent.resource, intent.key, intent.first) == (
        "pending",
        "photos",
        "acme/cut",
        "shadow",
    )
    assert writer.flush(timeout=10)
    assert writer.journal.count() == 0
    writer.close()


def test_put_item_finds_its_key_in_the_new_account_when_the_old_cannot_describe(
    aws: Accounts,
) -> None:
    env = DynamoEnv(aws, shadow_table="orders-v2")

    def deny(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException"}}, "DescribeTable")

    env.primary.meta.events.register("before-call.dynamodb.DescribeTable", deny, unique_id="d")

    def tenant_of(write: dualwrite.Write) -> str | None:
        key = write.key
        return key["pk"]["S"].split("#")[0] if isinstance(key, dict) else None

    client = env.wrap(flag=None, stage=Stages(acme=Stage.CUTOVER), tenant_of=tenant_of)
    client.put_item(TableName="orders", Item=_item("acme#1", n=1))
    assert env.scan("primary") == env.scan("shadow") == [_item("acme#1", n=1)]


# -- regressions found in the fourth review ------------------------------------------------------


@pytest.mark.parametrize("stage", [Stage.CUTOVER, Stage.DONE])
def test_the_new_accounts_errors_are_the_callers_exception_classes(
    aws: Accounts, stage: Stage
) -> None:
    s3 = S3Env(aws)  # the shadow client is another boto3 session: other exception classes
    env = DynamoEnv(aws)
    stages = Stages(acme=stage)
    client = s3.wrap(flag=None, stage=stages)
    table = env.wrap(flag=None, stage=stages)
    with dualwrite.tenant("acme"):
        with pytest.raises(client.exceptions.NoSuchKey):
            client.get_object(Bucket="photos", Key="acme/missing")
        with pytest.raises(table.exceptions.ConditionalCheckFailedException) as info:
            table.put_item(
                TableName="orders",
                Item=_item("a"),
                ConditionExpression="attribute_exists(pk)",
            )
        out = io.BytesIO()
        with pytest.raises(ClientError) as download:
            client.download_fileobj("photos", "acme/missing", out)
    assert info.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert "ConditionalCheckFailed" in str(info.value)
    assert download.value.response["Error"]["Code"] in ("404", "NoSuchKey")


def test_repair_of_one_item_written_by_name_and_by_arn_keeps_the_latest(
    aws: Accounts, tmp_path: Path
) -> None:
    env = DynamoEnv(aws, shadow_table="orders-v2")
    stages = Stages(acme=Stage.DUAL_WRITE)
    writer = dualwrite.DualWriter(stage=stages, journal=tmp_path / "j.db")
    client = writer.wrap(env.primary, shadow=env.shadow, names=env.names)
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/orders"

    def failing(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "ServiceUnavailable"}}, "PutItem")

    with dualwrite.tenant("acme"):
        env.shadow.meta.events.register("before-call.dynamodb.PutItem", failing, unique_id="f")
        client.put_item(TableName="orders", Item=_item("a", n=1))  # the new account misses v1
        env.shadow.meta.events.unregister("before-call.dynamodb.PutItem", unique_id="f")
        stages.set("acme", Stage.CUTOVER)
        env.primary.meta.events.register("before-call.dynamodb.PutItem", failing, unique_id="f")
        client.put_item(TableName=arn, Item=_item("a", n=2))  # the old account misses v2
        env.primary.meta.events.unregister("before-call.dynamodb.PutItem", unique_id="f")
    assert writer.journal is not None
    assert sorted(e.first for e in writer.journal.entries()) == ["primary", "shadow"]
    report = writer.repair()
    assert (report.keys, report.remaining) == (1, 0)
    assert env.scan("primary") == env.scan("shadow") == [_item("a", n=2)]
    writer.close()
