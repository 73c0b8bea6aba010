"""The shadow receives the same bytes as the primary, whatever the body: compared byte for byte.

moto checks no digest (a truncated body or a wrong ContentMD5 is accepted), so every test reads
the object back from both accounts and compares it with what the caller meant to store.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from conftest import S3Env

from dualwrite._core import bodies as _bodies
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")

MiB = 1024 * 1024


def data_of(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


class ReadOnlyStream:
    """A stream that can only be read: no tell(), no seek(), like a socket or a generator."""

    def __init__(self, data: bytes, chunk: int = 64 * 1024) -> None:
        self._chunks = iter([data[i : i + chunk] for i in range(0, len(data), chunk)])
        self._rest = b""

    def read(self, size: int = -1) -> bytes:
        out = self._rest
        while size < 0 or len(out) < size:
            try:
                out += next(self._chunks)
            except StopIteration:
                break
        if size >= 0:
            out, self._rest = out[:size], out[size:]
        else:
            self._rest = b""
        return out


@pytest.fixture
def pipe_reader() -> Iterator[Any]:
    """Return a function making a pipe's read end (tell() raises OSError) fed with some bytes."""
    opened: list[Any] = []

    def make(data: bytes) -> Any:
        read_fd, write_fd = os.pipe()

        def feed() -> None:
            with os.fdopen(write_fd, "wb") as writer:
                writer.write(data)

        threading.Thread(target=feed, daemon=True).start()
        reader = os.fdopen(read_fd, "rb")
        opened.append(reader)
        return reader

    yield make
    for reader in opened:
        reader.close()


def shadow_writes(s3: S3Env) -> list[str]:
    """The write operations the shadow client sent, in order (reads and setup left out)."""
    return [
        c["operation"]
        for c in s3.shadow_calls
        if not c["operation"].startswith(("Get", "Head", "List", "CreateBucket"))
    ]


def assert_both(s3: S3Env, key: str, expected: bytes) -> None:
    primary = s3.primary_body(key)
    shadow = s3.shadow_body(key)
    assert len(primary) == len(expected)
    assert primary == expected
    assert len(shadow) == len(expected)
    assert shadow == expected


def test_bytes(s3: S3Env) -> None:
    rec = RecordingHook()
    data = data_of(1000)
    s3.wrap(hooks=[rec]).put_object(Bucket="photos", Key="k", Body=data)
    assert_both(s3, "k", data)
    assert rec.kinds() == ["shadow_written"]


def test_empty_body_and_no_body(s3: S3Env) -> None:
    client = s3.wrap()
    client.put_object(Bucket="photos", Key="empty", Body=b"")
    client.put_object(Bucket="photos", Key="none")
    assert_both(s3, "empty", b"")
    assert_both(s3, "none", b"")


def test_str(s3: S3Env) -> None:
    text = "héllo wörld ✓ " * 50
    s3.wrap().put_object(Bucket="photos", Key="k", Body=text)
    assert_both(s3, "k", text.encode("utf-8"))


def test_bytearray(s3: S3Env) -> None:
    data = bytearray(data_of(777))
    s3.wrap().put_object(Bucket="photos", Key="k", Body=data)
    assert_both(s3, "k", bytes(data))


def test_bytesio_at_non_zero_offset(s3: S3Env) -> None:
    data = data_of(5000)
    body = io.BytesIO(data)
    body.seek(1234)
    rec = RecordingHook()
    s3.wrap(hooks=[rec]).put_object(Bucket="photos", Key="k", Body=body)
    assert_both(s3, "k", data[1234:])
    assert rec.kinds() == ["shadow_written"]  # no mismatch: same bytes, same checksum
    assert not body.closed  # the caller's object is the caller's


def test_file_at_non_zero_offset(s3: S3Env, tmp_path: Path) -> None:
    data = data_of(300_000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with path.open("rb") as body:
        body.seek(100_001)
        s3.wrap().put_object(Bucket="photos", Key="k", Body=body)
        assert not body.closed
    assert_both(s3, "k", data[100_001:])


def test_non_seekable_stream(s3: S3Env) -> None:
    data = data_of(200_000)
    rec = RecordingHook()
    s3.wrap(hooks=[rec]).put_object(Bucket="photos", Key="k", Body=ReadOnlyStream(data))
    assert_both(s3, "k", data)
    assert rec.kinds() == ["shadow_written"]


def test_pipe(s3: S3Env, pipe_reader: Any) -> None:
    data = data_of(300_000)
    s3.wrap().put_object(Bucket="photos", Key="k", Body=pipe_reader(data))
    assert_both(s3, "k", data)


def test_non_seekable_stream_larger_than_the_memory_spool(s3: S3Env) -> None:
    data = data_of(_bodies.SPOOL_MEMORY + MiB)
    s3.wrap().put_object(Bucket="photos", Key="k", Body=ReadOnlyStream(data, chunk=MiB))
    assert_both(s3, "k", data)


def test_streaming_body_of_a_get(s3: S3Env) -> None:
    """The copy-through-the-service pattern: put what a get returned (tell() but no seek())."""
    data = data_of(100_000)
    s3.primary.put_object(Bucket="photos", Key="src", Body=data)
    streaming = s3.primary.get_object(Bucket="photos", Key="src")["Body"]
    s3.wrap().put_object(Bucket="photos", Key="k", Body=streaming)
    assert_both(s3, "k", data)


def test_content_md5_is_kept(s3: S3Env) -> None:
    data = data_of(4096)
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    body = io.BytesIO(b"prefix" + data)
    body.seek(6)
    s3.wrap().put_object(Bucket="photos", Key="k", Body=body, ContentMD5=md5)
    assert_both(s3, "k", data)
    sent = [c["params"] for c in s3.shadow_calls if c["operation"] == "PutObject"]
    assert len(sent) == 1
    assert sent[0]["ContentMD5"] == md5
    # moto does not verify the digest: verify that the digest and the shadow's bytes agree.
    assert base64.b64encode(hashlib.md5(s3.shadow_body("k")).digest()).decode() == md5


@pytest.mark.parametrize("algorithm", ["SHA256", "CRC32", "SHA1"])
def test_checksum_algorithm_is_kept(s3: S3Env, algorithm: str) -> None:
    data = data_of(10_000)
    body = io.BytesIO(data)
    rec = RecordingHook()
    response = s3.wrap(hooks=[rec]).put_object(
        Bucket="photos", Key="k", Body=body, ChecksumAlgorithm=algorithm
    )
    assert_both(s3, "k", data)
    sent = [c["params"] for c in s3.shadow_calls if c["operation"] == "PutObject"]
    assert sent[0]["ChecksumAlgorithm"] == algorithm
    field = f"Checksum{algorithm}"
    primary_head = s3.primary.head_object(Bucket="photos", Key="k", ChecksumMode="ENABLED")
    shadow_head = s3.shadow.head_object(Bucket="photos-acct2", Key="k", ChecksumMode="ENABLED")
    assert response[field] == primary_head[field] == shadow_head[field]
    assert rec.kinds() == ["shadow_written"]


def test_precomputed_checksum_value_is_kept(s3: S3Env) -> None:
    data = data_of(10_000)
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    s3.wrap().put_object(Bucket="photos", Key="k", Body=io.BytesIO(data), ChecksumSHA256=digest)
    assert_both(s3, "k", data)
    sent = [c["params"] for c in s3.shadow_calls if c["operation"] == "PutObject"]
    assert sent[0]["ChecksumSHA256"] == digest


# -- managed transfers ----------------------------------------------------------------------------


def test_upload_file_20_mib_is_multipart_on_both_sides(s3: S3Env, tmp_path: Path) -> None:
    data = data_of(20 * MiB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    rec = RecordingHook()
    flag_calls: list[str] = []

    def flag(write: Any) -> bool:
        flag_calls.append(write.operation)
        return True

    s3.wrap(flag=flag, hooks=[rec]).upload_file(str(path), "photos", "big")

    assert_both(s3, "big", data)
    primary_etag = s3.primary.head_object(Bucket="photos", Key="big")["ETag"]
    shadow_etag = s3.shadow.head_object(Bucket="photos-acct2", Key="big")["ETag"]
    assert primary_etag.endswith('-3"')  # 8 MiB parts: a real multipart upload
    assert shadow_etag == primary_etag  # same parts on the shadow
    ops = shadow_writes(s3)
    assert ops.count("UploadPart") == 3
    assert ops[0] == "CreateMultipartUpload"
    assert ops[-1] == "CompleteMultipartUpload"
    assert flag_calls == ["PutObject"]  # decided once for the whole transfer
    assert set(rec.kinds()) == {"shadow_written"}
    assert s3.shadow.list_multipart_uploads(Bucket="photos-acct2").get("Uploads", []) == []


def test_upload_file_small_is_one_put(s3: S3Env, tmp_path: Path) -> None:
    data = data_of(1000)
    path = tmp_path / "small.bin"
    path.write_bytes(data)
    s3.wrap().upload_file(str(path), "photos", "small")
    assert_both(s3, "small", data)
    assert shadow_writes(s3) == ["PutObject"]


@pytest.mark.parametrize(
    "size", [pytest.param(300_000, id="single-put"), pytest.param(9 * MiB, id="multipart")]
)
def test_upload_fileobj_non_seekable(s3: S3Env, size: int) -> None:
    data = data_of(size)
    s3.wrap().upload_fileobj(ReadOnlyStream(data, chunk=MiB), "photos", "k")
    assert_both(s3, "k", data)


def test_upload_fileobj_bytesio_at_offset_with_small_parts(s3: S3Env) -> None:
    data = data_of(7 * MiB)
    body = io.BytesIO(data)
    body.seek(MiB)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.wrap().upload_fileobj(body, "photos", "k", Config=config)
    assert_both(s3, "k", data[MiB:])
    assert shadow_writes(s3).count("UploadPart") == 2


def test_upload_file_progress_is_reported_once(s3: S3Env, tmp_path: Path) -> None:
    """Re-reading a part for the shadow must not replay the caller's progress callback."""
    data = data_of(6 * MiB)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    progress: list[int] = []
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.wrap().upload_file(str(path), "photos", "k", Callback=progress.append, Config=config)
    assert_both(s3, "k", data)
    assert all(amount > 0 for amount in progress)
    assert sum(progress) == len(data)
