"""The request as it was at call time (semantics 10), bodies the queue does not keep, full disks.

In background mode the shadow write runs after the caller's call returned; a gate on the shadow
client holds it until the caller has reused every dict, list and buffer it passed. What the shadow
stores must be what the primary stored.
"""

from __future__ import annotations

import errno
import io
import sys
from pathlib import Path
from typing import Any

import pytest
from _support.shadow import Gate
from botocore.exceptions import ParamValidationError
from conftest import S3Env

import dualwrite
from dualwrite._core import bodies as _bodies
from dualwrite._s3 import requests as _s3
from dualwrite.events import ShadowFailed
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")

MiB = 1024 * 1024


def objects(client: Any, bucket: str) -> dict[str, tuple[Any, ...]]:
    found = {}
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        key = item["Key"]
        obj = client.get_object(Bucket=bucket, Key=key)
        tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        found[key] = (obj["Body"].read(), obj["Metadata"], sorted(map(str, tags)))
    return found


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "no-snapshot"])
def test_caller_reuses_its_dicts_right_after_each_call(
    s3: S3Env, monkeypatch: pytest.MonkeyPatch, snapshot: bool
) -> None:
    if not snapshot:  # proves the test sees the bug the snapshot fixes
        monkeypatch.setattr(_s3, "snapshot", lambda value: value)
    s3.primary.put_object(Bucket="photos", Key="gone-1", Body=b"x")
    s3.primary.put_object(Bucket="photos", Key="gone-2", Body=b"x")
    s3.shadow.put_object(
        Bucket="photos-acct2", Key="gone-1", Body=b"x", ACL="bucket-owner-full-control"
    )
    s3.shadow.put_object(
        Bucket="photos-acct2", Key="gone-2", Body=b"x", ACL="bucket-owner-full-control"
    )
    writer = dualwrite.DualWriter(flag=True, mode="background", workers=1)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    gate = Gate(s3.shadow, "PutObject")

    metadata = {"version": "1"}
    client.put_object(Bucket="photos", Key="held", Body=b"first", Metadata=metadata)
    assert gate.wait_arrivals(1)  # the worker holds the first shadow write at the gate
    metadata["version"] = "2"  # the caller's dict, reused

    body = bytearray(b"buffer-1")
    client.put_object(Bucket="photos", Key="buffer", Body=body, Metadata=metadata)
    body[:] = b"buffer-2"
    metadata.clear()

    source = {"Bucket": "photos", "Key": "held"}
    copy_metadata = {"copy": "1"}
    client.copy_object(
        Bucket="photos",
        Key="copy",
        CopySource=source,
        Metadata=copy_metadata,
        MetadataDirective="REPLACE",
    )
    source["Key"] = "buffer"
    copy_metadata["copy"] = "2"

    tag_set = [{"Key": "t", "Value": "1"}]
    client.put_object_tagging(Bucket="photos", Key="held", Tagging={"TagSet": tag_set})
    tag_set[0]["Value"] = "2"

    delete = {"Objects": [{"Key": "gone-1"}]}
    client.delete_objects(Bucket="photos", Delete=delete)
    delete["Objects"][0]["Key"] = "gone-2"

    upload = client.create_multipart_upload(Bucket="photos", Key="mpu", Metadata=metadata)
    parts: list[dict[str, Any]] = []
    part = client.upload_part(
        Bucket="photos", Key="mpu", UploadId=upload["UploadId"], PartNumber=1, Body=b"part"
    )
    parts.append({"PartNumber": 1, "ETag": part["ETag"]})
    client.complete_multipart_upload(
        Bucket="photos", Key="mpu", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    parts[0]["PartNumber"] = 2

    gate.open()
    assert writer.flush(timeout=30)
    writer.close()
    same = objects(s3.primary, "photos") == objects(s3.shadow, "photos-acct2")
    assert same is snapshot


def test_the_queue_keeps_no_reference_to_the_callers_bytes(s3: S3Env) -> None:
    writer = dualwrite.DualWriter(flag=True, mode="background", workers=1)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    gate = Gate(s3.shadow, "PutObject")
    body = bytes(range(256)) * 4096  # 1 MiB, one object
    before = sys.getrefcount(body)
    client.put_object(Bucket="photos", Key="k", Body=body)
    assert gate.wait_arrivals(1)
    assert sys.getrefcount(body) == before  # queued, yet not holding the caller's object
    gate.open()
    assert writer.flush(timeout=30)
    writer.close()
    assert s3.shadow_body("k") == body


def test_queued_bodies_of_every_type_count_against_the_budget(s3: S3Env) -> None:
    writer = dualwrite.DualWriter(flag=True, mode="background", workers=1, queue_size=100)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    gate = Gate(s3.shadow, "PutObject")
    used = _bodies._BUDGET.used
    bodies: dict[str, Any] = {
        "bytes": b"b" * (3 * MiB),
        "str": "s" * (3 * MiB),
        "bytearray": bytearray(b"a" * (3 * MiB)),
        "bytesio": io.BytesIO(b"i" * (3 * MiB)),
    }
    for i in range(4):
        for name, body in bodies.items():
            if isinstance(body, io.BytesIO):
                body.seek(0)
            client.put_object(Bucket="photos", Key=f"{name}-{i}", Body=body)
    assert gate.wait_arrivals(1)
    # 16 queued bodies of 3 MiB, each of them counted: the budget is full (no room for one
    # more), never over, and the rest is on disk.
    held = _bodies._BUDGET.used - used
    assert _bodies.BACKGROUND_MEMORY - 3 * MiB < held <= _bodies.BACKGROUND_MEMORY
    gate.open()
    assert writer.flush(timeout=60)
    writer.close()
    assert _bodies._BUDGET.used == used
    assert s3.keys("primary") == s3.keys("shadow")
    for key in s3.keys("primary"):
        assert s3.primary_body(key) == s3.shadow_body(key), key


# -- invalid bodies: botocore's own error -------------------------------------------------------


@pytest.mark.parametrize("body", [123, 1.5, object(), ["a"], {"a": 1}])
@pytest.mark.parametrize("mode", ["sync", "background"])
def test_invalid_body_gives_botocores_own_error(s3: S3Env, body: Any, mode: str) -> None:
    with pytest.raises(ParamValidationError) as plain:
        s3.primary.put_object(Bucket="photos", Key="k", Body=body)
    rec = RecordingHook()
    client = s3.wrap(hooks=[rec], mode=mode)
    with pytest.raises(ParamValidationError) as wrapped:
        client.put_object(Bucket="photos", Key="k", Body=body)
    assert str(wrapped.value) == str(plain.value)
    assert rec.events == []
    assert s3.keys("primary") == s3.keys("shadow") == []


# -- a full spool disk --------------------------------------------------------------------------


class FullDisk(io.RawIOBase):
    """A temporary file on a disk with no room left: every non-empty write fails."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return 0

    def readinto(self, buffer: Any) -> int:
        return 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0


class Pipe:
    """A body that can only be read (no tell/seek), like a socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("background", "bytes"),  # detached after the primary stored it
        ("background", "file"),
        ("sync", "pipe"),  # spooled before the primary call
        ("background", "pipe"),
    ],
)
def test_full_spool_disk_journals_the_key_and_never_raises(
    s3: S3Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str, kind: str
) -> None:
    data = bytes(range(256)) * (40 * 4096)  # 40 MiB: past both the spool and the budget
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    monkeypatch.setattr(_bodies, "_temporary_file", FullDisk)
    rec = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=True, mode=mode, hooks=[rec], journal=str(tmp_path / "j.sqlite3"), workers=1
    )
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    with path.open("rb") as handle:
        body: Any = {"bytes": data, "file": handle, "pipe": Pipe(data)}[kind]
        client.put_object(Bucket="photos", Key="k", Body=body)
        assert writer.flush(timeout=60)
    assert s3.primary_body("k") == data  # the caller's write went through, whole
    failed = [e for e in rec.events if isinstance(e, ShadowFailed)]
    assert [e.error_type for e in failed] == ["SpoolError"]
    assert writer.journal is not None
    assert [e.key for e in writer.journal.entries()] == ["k"]
    writer.close()
