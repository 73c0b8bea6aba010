"""Where a queued background body waits: file-backed bodies on disk, in-memory ones in RAM."""

from __future__ import annotations

import io
import os
from pathlib import Path

from _support.shadow import Gate
from boto3.s3.transfer import TransferConfig
from conftest import S3Env

import dualwrite
from dualwrite._core import bodies as _bodies

MiB = 1024 * 1024


def test_upload_file_parts_wait_on_disk_not_in_the_memory_budget(s3: S3Env, tmp_path: Path) -> None:
    data = os.urandom(12 * MiB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    writer = dualwrite.DualWriter(flag=True, mode="background", workers=1, journal=None)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    gate = Gate(s3.shadow, "UploadPart")
    used = _bodies._BUDGET.used
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    client.upload_file(str(path), "photos", "big.bin", Config=config)
    # Every part was read from the caller's file: queued, they hold none of the RAM budget.
    assert gate.wait_arrivals(1)
    assert _bodies._BUDGET.used == used
    gate.open()
    assert writer.flush(timeout=60)
    writer.close()
    assert s3.shadow_body("big.bin") == data
    head = s3.primary.head_object(Bucket="photos", Key="big.bin")
    assert s3.shadow.head_object(Bucket="photos-acct2", Key="big.bin")["ETag"] == head["ETag"]


def test_an_open_file_body_waits_on_disk_a_bytesio_in_memory(s3: S3Env, tmp_path: Path) -> None:
    path = tmp_path / "body.bin"
    path.write_bytes(b"f" * MiB)
    writer = dualwrite.DualWriter(flag=True, mode="background", workers=1, journal=None)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    gate = Gate(s3.shadow, "PutObject")
    client.put_object(Bucket="photos", Key="first", Body=b"x")  # parks the worker at the gate
    assert gate.wait_arrivals(1)
    used = _bodies._BUDGET.used
    with path.open("rb") as handle:
        client.put_object(Bucket="photos", Key="file", Body=handle)
    assert _bodies._BUDGET.used == used  # the file's copy is on disk
    client.put_object(Bucket="photos", Key="memory", Body=io.BytesIO(b"m" * MiB))
    assert _bodies._BUDGET.used == used + MiB  # a BytesIO's copy stays in RAM
    path.write_bytes(b"changed")  # the caller's file changes after the call
    gate.open()
    assert writer.flush(timeout=60)
    writer.close()
    assert _bodies._BUDGET.used == used - 1  # the first body's byte was given back too
    assert s3.shadow_body("file") == b"f" * MiB
    assert s3.shadow_body("memory") == b"m" * MiB


def test_copies_through_the_reused_buffer_keep_every_byte() -> None:
    data = os.urandom(3 * _bodies._COPY_CHUNK + 17)
    for _ in range(3):  # the buffer comes back from the pool for the later copies
        spool = _bodies._spool(io.BytesIO(data), budgeted=True)
        try:
            assert spool.read() == data
        finally:
            spool.close()
    assert _bodies._free_buffers
