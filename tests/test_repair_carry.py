"""What repair and copy carry to the shadow besides the body, and the state they settle on.

Object lock (mode and retain-until), legal hold, storage class, the checksum algorithm (and the
single-part checksum value) and the KMS key mapped through ``kms_keys`` come along; tags and
metadata changed under a repair (same ETag) are never overwritten by older ones.
"""

from __future__ import annotations

import datetime
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Accounts, S3Env, enforce_owner_acl

import dualwrite
from dualwrite._offline.backfill import run
from dualwrite._s3.backfill import S3Job
from dualwrite.journal import Entry

UNTIL = datetime.datetime(2035, 1, 1, tzinfo=datetime.timezone.utc)


class Pair:
    """Primary and shadow buckets (created with Object Lock), a writer with a journal."""

    def __init__(self, aws: Accounts, tmp_path: Path, **options: Any) -> None:
        self.primary = aws.client("primary", "s3")
        self.shadow = aws.client("shadow", "s3")
        self.shadow_calls = enforce_owner_acl(self.shadow)
        self.primary.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
        self.shadow.create_bucket(Bucket="vault-acct2", ObjectLockEnabledForBucket=True)
        self.writer = dualwrite.DualWriter(flag=True, journal=tmp_path / "j.db")
        self.client = self.writer.wrap(
            self.primary, shadow=self.shadow, names={"vault": "vault-acct2"}, **options
        )
        assert self.writer.journal is not None
        self.journal = self.writer.journal

    def repair(self, key: str) -> None:
        self.journal.add([Entry(service="s3", resource="vault", key=key, reason="shadow_failed")])
        report = self.writer.repair()
        assert (report.failed, report.repaired, report.remaining) == (0, 1, 0), report.errors

    def copy(self, key: str, kms_keys: Any = None) -> None:
        job = S3Job(
            command="copy",
            primary=self.primary,
            shadow=self.shadow,
            resource="vault",
            shadow_resource="vault-acct2",
            kms_keys=kms_keys,
        )
        report = run(job, workers=1)
        assert (report.failed, report.copied) == (0, 1), report.errors

    def heads(self, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        p = self.primary.head_object(Bucket="vault", Key=key, ChecksumMode="ENABLED")
        s = self.shadow.head_object(Bucket="vault-acct2", Key=key, ChecksumMode="ENABLED")
        return p, s


@pytest.fixture
def pair(aws: Accounts, tmp_path: Path) -> Iterator[Pair]:
    result = Pair(aws, tmp_path)
    yield result
    result.writer.close()


def _by_repair(pair: Pair, key: str) -> None:
    pair.repair(key)


def _by_copy(pair: Pair, key: str) -> None:
    pair.copy(key)


WAYS = [pytest.param(_by_repair, id="repair"), pytest.param(_by_copy, id="copy")]


@pytest.mark.parametrize("settle", WAYS)
def test_object_lock_legal_hold_storage_class_and_checksum_come_along(
    pair: Pair, settle: Callable[[Pair, str], None]
) -> None:
    pair.primary.put_object(
        Bucket="vault",
        Key="contract.pdf",
        Body=b"signed",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=UNTIL,
        ObjectLockLegalHoldStatus="ON",
        StorageClass="STANDARD_IA",
        ChecksumAlgorithm="SHA256",
        Tagging="kind=contract",
    )
    settle(pair, "contract.pdf")
    p, s = pair.heads("contract.pdf")
    assert s["ObjectLockMode"] == "GOVERNANCE"
    assert s["ObjectLockRetainUntilDate"].timestamp() == UNTIL.timestamp()
    assert s["ObjectLockLegalHoldStatus"] == "ON"
    assert s["StorageClass"] == "STANDARD_IA"
    assert s["ChecksumSHA256"] == p["ChecksumSHA256"]
    put = [c["params"] for c in pair.shadow_calls if c["operation"] == "PutObject"]
    # The primary's digest travels with the body, so that the shadow verifies what it stores.
    assert put[-1]["ChecksumSHA256"] == p["ChecksumSHA256"]
    tags = pair.shadow.get_object_tagging(Bucket="vault-acct2", Key="contract.pdf")["TagSet"]
    assert tags == [{"Key": "kind", "Value": "contract"}]


@pytest.mark.parametrize("settle", WAYS)
def test_a_retention_that_ran_out_and_a_hold_that_is_off_are_not_set(
    pair: Pair, settle: Callable[[Pair, str], None]
) -> None:
    pair.primary.put_object(Bucket="vault", Key="old", Body=b"x", ObjectLockLegalHoldStatus="OFF")
    settle(pair, "old")
    _, s = pair.heads("old")
    assert "ObjectLockMode" not in s
    assert s.get("ObjectLockLegalHoldStatus") in (None, "OFF")
    put = [c["params"] for c in pair.shadow_calls if c["operation"] == "PutObject"][-1]
    assert not any(name.startswith("ObjectLock") for name in put)


def test_a_lock_the_shadow_bucket_cannot_hold_fails_the_key_and_keeps_its_entry(
    aws: Accounts, tmp_path: Path
) -> None:
    primary, shadow = aws.client("primary", "s3"), aws.client("shadow", "s3")
    primary.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
    shadow.create_bucket(Bucket="plain-acct2")  # no Object Lock
    primary.put_object(Bucket="vault", Key="k", Body=b"x", ObjectLockLegalHoldStatus="ON")
    with dualwrite.DualWriter(flag=True, journal=tmp_path / "j.db") as writer:
        writer.wrap(primary, shadow=shadow, names={"vault": "plain-acct2"})
        assert writer.journal is not None
        writer.journal.add([Entry(service="s3", resource="vault", key="k", reason="mismatch")])
        report = writer.repair()
        assert (report.failed, report.remaining) == (1, 1)
        assert "InvalidRequest" in report.errors[0]


@pytest.mark.parametrize("way", ["repair", "copy"])
def test_multipart_objects_keep_their_checksum_algorithm(pair: Pair, way: str) -> None:
    body = os.urandom(9 * 1024 * 1024)
    pair.primary.upload_fileobj(
        io.BytesIO(body), "vault", "big.bin", ExtraArgs={"ChecksumAlgorithm": "SHA256"}
    )
    if way == "repair":
        pair.repair("big.bin")
    else:
        pair.copy("big.bin")
    create = [c["params"] for c in pair.shadow_calls if c["operation"] == "CreateMultipartUpload"]
    parts = [c["params"] for c in pair.shadow_calls if c["operation"] == "UploadPart"]
    assert create[-1]["ChecksumAlgorithm"] == "SHA256"
    assert parts
    assert all(p["ChecksumAlgorithm"] == "SHA256" for p in parts)
    got = pair.shadow.get_object(Bucket="vault-acct2", Key="big.bin")["Body"].read()
    assert got == body


class Keys:
    """A KMS key in each account."""

    def __init__(self, aws: Accounts) -> None:
        self.primary = aws.client("primary", "kms").create_key()["KeyMetadata"]
        self.shadow = aws.client("shadow", "kms").create_key()["KeyMetadata"]


@pytest.mark.parametrize("form", ["arn", "key-id"])
@pytest.mark.parametrize("way", ["repair", "copy"])
def test_sse_kms_objects_get_the_mapped_shadow_key(
    aws: Accounts, tmp_path: Path, way: str, form: str
) -> None:
    keys = Keys(aws)
    source = keys.primary["Arn"] if form == "arn" else keys.primary["KeyId"]
    kms_keys = {source: keys.shadow["Arn"]}
    pair = Pair(aws, tmp_path, kms_keys=kms_keys)
    try:
        pair.primary.put_object(
            Bucket="vault",
            Key="secret",
            Body=b"s",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=keys.primary["Arn"],
        )
        if way == "repair":
            pair.repair("secret")
        else:
            pair.copy("secret", kms_keys=kms_keys)
        _, s = pair.heads("secret")
        assert s["ServerSideEncryption"] == "aws:kms"
        assert s["SSEKMSKeyId"] == keys.shadow["Arn"]
    finally:
        pair.writer.close()


def test_an_unmapped_kms_key_is_not_sent_to_the_shadow(aws: Accounts, tmp_path: Path) -> None:
    keys = Keys(aws)
    pair = Pair(aws, tmp_path)
    try:
        pair.primary.put_object(
            Bucket="vault",
            Key="secret",
            Body=b"s",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=keys.primary["Arn"],
        )
        pair.repair("secret")
        put = [c["params"] for c in pair.shadow_calls if c["operation"] == "PutObject"][-1]
        assert "SSEKMSKeyId" not in put  # the primary's key names the primary's account
        _, s = pair.heads("secret")
        assert s.get("SSEKMSKeyId") != keys.primary["Arn"]
    finally:
        pair.writer.close()


# -- the state repair settles on ------------------------------------------------------------------


def _change_tags(client: Any) -> None:
    client.put_object_tagging(
        Bucket="photos", Key="cat.jpg", Tagging={"TagSet": [{"Key": "tier", "Value": "new"}]}
    )


def _change_metadata(client: Any) -> None:
    client.copy_object(
        Bucket="photos",
        Key="cat.jpg",
        CopySource={"Bucket": "photos", "Key": "cat.jpg"},
        Metadata={"owner": "new"},
        MetadataDirective="REPLACE",
        Tagging="tier=old",
        TaggingDirective="REPLACE",
    )


@pytest.mark.parametrize(
    "change", [pytest.param(_change_tags, id="tags"), pytest.param(_change_metadata, id="metadata")]
)
@pytest.mark.parametrize("way", ["repair", "copy"])
def test_newer_tags_or_metadata_with_the_same_etag_are_not_overwritten(
    s3: S3Env, aws: Accounts, tmp_path: Path, change: Callable[[Any], None], way: str
) -> None:
    """A live write changes the primary's tags or metadata (same bytes, same ETag) while the
    copy is on its way: the older state must not stay on the shadow."""
    s3.primary.put_object(
        Bucket="photos", Key="cat.jpg", Body=b"meow", Metadata={"owner": "old"}, Tagging="tier=old"
    )
    etag = s3.primary.head_object(Bucket="photos", Key="cat.jpg")["ETag"]
    other = aws.client("primary", "s3")  # another process's client
    changed: list[bool] = []

    def live_write(**_: Any) -> None:
        if not changed:
            changed.append(True)
            change(other)

    s3.shadow.meta.events.register("before-call.s3.PutObject", live_write, unique_id="live")
    if way == "repair":
        with dualwrite.DualWriter(flag=True, journal=tmp_path / "j.db") as writer:
            writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
            assert writer.journal is not None
            writer.journal.add(
                [Entry(service="s3", resource="photos", key="cat.jpg", reason="shadow_failed")]
            )
            report = writer.repair()
            assert (report.copied, report.failed) == (1, 0)
    else:
        job = S3Job(
            command="copy",
            primary=s3.primary,
            shadow=s3.shadow,
            resource="photos",
            shadow_resource="photos-acct2",
        )
        assert run(job, workers=1).failed == 0
    assert changed
    assert s3.primary.head_object(Bucket="photos", Key="cat.jpg")["ETag"] == etag
    p_head = s3.primary.head_object(Bucket="photos", Key="cat.jpg")
    s_head = s3.shadow.head_object(Bucket="photos-acct2", Key="cat.jpg")
    assert s_head["Metadata"] == p_head["Metadata"]
    p_tags = s3.primary.get_object_tagging(Bucket="photos", Key="cat.jpg")["TagSet"]
    s_tags = s3.shadow.get_object_tagging(Bucket="photos-acct2", Key="cat.jpg")["TagSet"]
    assert s_tags == p_tags


def test_a_tagged_object_settles_on_a_store_whose_head_does_not_count_tags(
    s3: S3Env, tmp_path: Path
) -> None:
    s3.primary.put_object(Bucket="photos", Key="t", Body=b"t", Tagging="a=1")

    def no_tag_count(parsed: dict[str, Any], **_: Any) -> None:
        parsed.pop("TagCount", None)

    s3.primary.meta.events.register("after-call.s3.HeadObject", no_tag_count, unique_id="nocount")
    with dualwrite.DualWriter(flag=True, journal=tmp_path / "j.db") as writer:
        writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
        assert writer.journal is not None
        writer.journal.add([Entry(service="s3", resource="photos", key="t", reason="timeout")])
        report = writer.repair()
    assert (report.copied, report.failed, report.remaining) == (1, 0, 0), report.errors
    tags = s3.shadow.get_object_tagging(Bucket="photos-acct2", Key="t")["TagSet"]
    assert tags == [{"Key": "a", "Value": "1"}]
