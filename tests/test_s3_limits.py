"""SSE-KMS copies (ETags that are no digests) and the bounded multipart-upload table."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from _support.shadow import Gate
from conftest import S3Env

import dualwrite
from dualwrite._s3 import multipart as _s3
from dualwrite.events import Unsupported
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")


def kms_etags(client: Any, account: str, *, checksums: bool) -> None:
    """Make ``client`` see SSE-KMS ETags as AWS shows them: not an MD5 of the bytes, and not
    the same in two accounts for the same bytes (moto returns the MD5). Without ``checksums``,
    copy results carry no checksum either, so nothing in them digests the content."""

    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        if parsed.get("ServerSideEncryption") != "aws:kms":
            return
        for holder in (parsed, parsed.get("CopyObjectResult")):
            if isinstance(holder, dict) and "ETag" in holder:
                digest = hashlib.sha256(f"{account}{holder['ETag']}".encode()).hexdigest()
                holder["ETag"] = f'"{digest[:32]}"'
                if not checksums:
                    for name in [n for n in holder if n.startswith("Checksum")]:
                        del holder[name]

    client.meta.events.register("after-call.s3.*", rewrite, unique_id=f"kms-etags-{account}")


KMS = {"ServerSideEncryption": "aws:kms"}


@pytest.mark.parametrize("checksums", [True, False], ids=["checksums", "no-checksums"])
def test_kms_copy_reports_no_false_mismatch(s3: S3Env, checksums: bool) -> None:
    kms_etags(s3.primary, "primary", checksums=checksums)
    kms_etags(s3.shadow, "shadow", checksums=checksums)
    rec = RecordingHook()
    client = s3.wrap(hooks=[rec])
    client.put_object(Bucket="photos", Key="src", Body=b"secret", **KMS)
    client.copy_object(Bucket="photos", Key="dst", CopySource="photos/src", **KMS)
    assert rec.kinds() == ["shadow_written", "shadow_written"]
    assert s3.shadow_body("dst") == b"secret"


def shard_apart(key: str, workers: int) -> str:
    """A key whose background queue is not ``key``'s (dualwrite._core.entries.shard's hash)."""
    mine = hash(("s3", "photos", key)) % workers
    return next(
        f"dst-{i}" for i in range(100) if hash(("s3", "photos", f"dst-{i}")) % workers != mine
    )


@pytest.mark.parametrize("checksums", [True, False], ids=["checksums", "no-checksums"])
def test_background_kms_copy_of_a_stale_source_converges(s3: S3Env, checksums: bool) -> None:
    """The source's newer shadow write waits in another queue when the copy runs: the shadow
    would copy its older source. With KMS ETags nothing but a checksum can tell; without one
    the copy converges from the primary (no stale data, no mismatch)."""
    kms_etags(s3.primary, "primary", checksums=checksums)
    kms_etags(s3.shadow, "shadow", checksums=checksums)
    s3.primary.put_object(Bucket="photos", Key="src", Body=b"old", **KMS)
    s3.shadow.put_object(
        Bucket="photos-acct2", Key="src", Body=b"old", ACL="bucket-owner-full-control", **KMS
    )
    rec = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, mode="background", hooks=[rec], workers=8)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    gate = Gate(s3.shadow, "PutObject")
    client.put_object(Bucket="photos", Key="src", Body=b"new", **KMS)
    assert gate.wait_arrivals(1)  # the source's shadow write is held
    dst = shard_apart("src", 8)
    client.copy_object(Bucket="photos", Key=dst, CopySource="photos/src", **KMS)
    # The copy's shadow side runs while the shadow's source is still old: it cannot trust a
    # server-side copy, and converges from the primary, whose PutObject waits at the gate too.
    assert gate.wait_arrivals(2)
    gate.open()
    assert writer.flush(timeout=30)
    writer.close()
    assert s3.primary_body(dst) == b"new"
    assert s3.shadow_body(dst) == b"new"
    assert "mismatch" not in rec.kinds()


# -- the multipart table is bounded ---------------------------------------------------------------


def test_abandoned_uploads_are_evicted_and_journaled(
    s3: S3Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_s3, "_MAX_UPLOADS", 2)
    rec = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, hooks=[rec], journal=str(tmp_path / "j.sqlite3"))
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    ids = [
        client.create_multipart_upload(Bucket="photos", Key=f"m{i}")["UploadId"] for i in range(3)
    ]
    table = client._self_mirror.state.uploads
    assert len(table.on) == 2  # bounded
    evicted = [e for e in rec.events if isinstance(e, Unsupported)]
    assert [(e.reason, e.write.key) for e in evicted] == [("upload-evicted", "m0")]
    assert writer.journal is not None
    assert [e.key for e in writer.journal.entries()] == ["m0"]

    # The evicted upload still completes on the primary, quietly part by part; its completion
    # is journaled again (a repair that ran meanwhile could not have copied it).
    rec.events.clear()
    part = client.upload_part(Bucket="photos", Key="m0", UploadId=ids[0], PartNumber=1, Body=b"p")
    assert rec.events == []
    client.complete_multipart_upload(
        Bucket="photos",
        Key="m0",
        UploadId=ids[0],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert [(e.kind, e.write.key) for e in rec.events] == [("unsupported", "m0")]
    report = writer.repair()
    assert report.copied == 1
    assert s3.shadow_body("m0") == b"p"
    writer.close()


def test_uploads_older_than_the_age_limit_are_evicted(
    s3: S3Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = RecordingHook()
    client = s3.wrap(hooks=[rec])
    client.create_multipart_upload(Bucket="photos", Key="old")
    monkeypatch.setattr(_s3, "_MAX_UPLOAD_AGE", 0.0)
    client.create_multipart_upload(Bucket="photos", Key="new")
    table = client._self_mirror.state.uploads
    assert [u.write.key for u in table.on.values()] == ["new"]
    assert [(e.kind, e.write.key) for e in rec.events if e.kind == "unsupported"] == [
        ("unsupported", "old")
    ]
