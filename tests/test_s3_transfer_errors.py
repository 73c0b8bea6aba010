"""``on_shadow_error="raise"`` with managed transfers: the primary upload is never aborted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from conftest import S3Env

import dualwrite

MIB = 1024 * 1024


def _fail_shadow_parts(env: S3Env) -> None:
    def boom(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "x"}}, "UploadPart")

    env.shadow.meta.events.register("before-call.s3.UploadPart", boom, unique_id="boom")


def test_raise_mode_defers_a_part_failure_until_the_primary_upload_completed(
    s3: S3Env, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom(12 * MIB)
    path.write_bytes(data)
    _fail_shadow_parts(s3)
    wrapped = s3.wrap(on_shadow_error="raise", circuit_breaker=None)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)

    with pytest.raises(dualwrite.ShadowWriteError) as excinfo:
        wrapped.upload_file(str(path), "photos", "big.bin", Config=config)

    # The primary upload was completed, not aborted by s3transfer.
    assert s3.primary_body("big.bin") == data
    assert excinfo.value.event.error_code == "SlowDown"
    assert "big.bin" not in s3.keys("shadow")
    # No shadow upload is left behind to be billed.
    assert s3.shadow.list_multipart_uploads(Bucket="photos-acct2").get("Uploads", []) == []


def test_record_mode_reports_the_same_failure_without_raising(s3: S3Env, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(12 * MIB))
    _fail_shadow_parts(s3)
    recorder = dualwrite.testing.RecordingHook()
    wrapped = s3.wrap(hooks=[recorder], circuit_breaker=None)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)

    wrapped.upload_file(str(path), "photos", "big.bin", Config=config)

    failed = recorder.of_kind("shadow_failed")
    assert failed
    assert {e.write.operation for e in failed} >= {"UploadPart", "CompleteMultipartUpload"}
    assert "big.bin" in s3.keys("primary")
