"""SSE-C keys reach the shadow but never an event, a log line or a repr; bodies neither."""

from __future__ import annotations

import base64
import hashlib
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from conftest import S3Env

import dualwrite
from dualwrite.exceptions import ShadowWriteError
from dualwrite.hooks import LoggingHook
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")

MiB = 1024 * 1024
# A realistic SSE-C key is 32 random bytes, most of them not printable.
KEY = random.Random(1).randbytes(32)
STR_KEY = "0123456789abcdefghijklmnopqrstuv"
BODY = b"TOP-SECRET-BODY-" + random.Random(2).randbytes(16).hex().encode()


def forms(key: bytes | str) -> list[str]:
    """Every way a key can show up in text: raw, escaped (repr), base64 (its HTTP header)."""
    raw = key.encode() if isinstance(key, str) else key
    out = [raw.decode("latin-1"), repr(raw)[2:-1], base64.b64encode(raw).decode()]
    if isinstance(key, str):
        out.append(key)
    return out


def sse(key: bytes | str) -> dict[str, Any]:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def dualwrite_text(rec: RecordingHook, logs: pytest.LogCaptureFixture, *extra: object) -> str:
    """Everything dualwrite produced that a human or a log pipeline could see."""
    parts = [repr(e) for e in rec.events]
    parts += [repr(attrs.asdict(e)) for e in rec.events]
    lines = [r for r in logs.records if r.name.startswith("dualwrite")]
    parts += [r.getMessage() for r in lines]
    parts += [repr(r.args) for r in lines]
    parts += [repr(x) for x in extra]
    return "\n".join(parts)


def assert_hidden(text: str, *secrets: bytes | str) -> None:
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, f"{form!r} leaked"


# -- SSE-C keys reach the shadow --------------------------------------------------------------


@pytest.mark.parametrize("key", [KEY, STR_KEY], ids=["bytes-key", "str-key"])
def test_sse_c_put_reaches_the_shadow_but_no_event_or_log(
    s3: S3Env, logs: pytest.LogCaptureFixture, key: bytes | str
) -> None:
    rec = RecordingHook()
    headers: list[Any] = []
    s3.shadow.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: headers.append(dict(request.headers))
    )
    client = s3.wrap(hooks=[rec, LoggingHook()])
    client.put_object(Bucket="photos", Key="k", Body=BODY, **sse(key))

    (params,) = [c["params"] for c in s3.shadow_calls if c["operation"] == "PutObject"]
    assert params["SSECustomerKey"] == key
    assert params["SSECustomerAlgorithm"] == "AES256"
    # moto does not demand the key on reads; read with it anyway, as AWS would require.
    got = s3.shadow.get_object(Bucket="photos-acct2", Key="k", **sse(key))
    assert got["Body"].read() == BODY
    # moto echoes no SSE-C fields: check the headers the shadow request carried instead.
    raw = key.encode() if isinstance(key, str) else key
    (sent,) = headers
    prefix = "x-amz-server-side-encryption-customer-"
    assert sent[prefix + "key"] in (base64.b64encode(raw), base64.b64encode(raw).decode())
    md5 = base64.b64encode(hashlib.md5(raw).digest())
    assert sent[prefix + "key-MD5"] in (md5, md5.decode())

    assert rec.kinds() == ["shadow_written"]
    assert any(r.name == "dualwrite" for r in logs.records)  # the hook did log, at DEBUG
    assert_hidden(dualwrite_text(rec, logs, client, client._self_mirror), key, BODY)


def test_sse_c_copy_and_multipart(s3: S3Env, logs: pytest.LogCaptureFixture) -> None:
    rec = RecordingHook()
    client = s3.wrap(hooks=[rec, LoggingHook()])
    client.put_object(Bucket="photos", Key="src", Body=BODY, **sse(KEY))
    client.copy_object(
        Bucket="photos",
        Key="copy",
        CopySource="photos/src",
        CopySourceSSECustomerAlgorithm="AES256",
        CopySourceSSECustomerKey=KEY,
        **sse(STR_KEY),
    )
    upload_id = client.create_multipart_upload(Bucket="photos", Key="mpu", **sse(KEY))["UploadId"]
    etag = client.upload_part(
        Bucket="photos", Key="mpu", UploadId=upload_id, PartNumber=1, Body=BODY, **sse(KEY)
    )["ETag"]
    client.complete_multipart_upload(
        Bucket="photos",
        Key="mpu",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        **sse(KEY),
    )
    assert set(rec.kinds()) == {"shadow_written"}
    copy = next(c["params"] for c in s3.shadow_calls if c["operation"] == "CopyObject")
    assert copy["CopySourceSSECustomerKey"] == KEY
    assert copy["SSECustomerKey"] == STR_KEY
    part = next(c["params"] for c in s3.shadow_calls if c["operation"] == "UploadPart")
    assert part["SSECustomerKey"] == KEY
    for key, name in ((STR_KEY, "copy"), (KEY, "mpu")):
        body = s3.shadow.get_object(Bucket="photos-acct2", Key=name, **sse(key))["Body"].read()
        assert body == BODY
    assert_hidden(dualwrite_text(rec, logs, client), KEY, STR_KEY, BODY)


def test_sse_c_upload_file(s3: S3Env, tmp_path: Path, logs: pytest.LogCaptureFixture) -> None:
    rec = RecordingHook()
    path = tmp_path / "f.bin"
    data = random.Random(3).randbytes(6 * MiB)
    path.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    client = s3.wrap(hooks=[rec, LoggingHook()])
    client.upload_file(str(path), "photos", "k", ExtraArgs=sse(KEY), Config=config)
    parts = [c["params"] for c in s3.shadow_calls if c["operation"] == "UploadPart"]
    assert len(parts) == 2
    assert all(p["SSECustomerKey"] == KEY for p in parts)
    assert s3.shadow.get_object(Bucket="photos-acct2", Key="k", **sse(KEY))["Body"].read() == data
    assert set(rec.kinds()) == {"shadow_written"}
    assert_hidden(dualwrite_text(rec, logs, client), KEY)


# -- a shadow failure that quotes the key or the body is scrubbed ---------------------------------


def _shadow_raises_quoting(s3: S3Env, operation: str) -> None:
    """The shadow fails with a message quoting the request's key in every form, and its body."""

    def fail(params: dict[str, Any], **_: Any) -> None:
        key = params.get("SSECustomerKey", b"")
        raw = key.encode() if isinstance(key, str) else key
        body = params.get("Body", b"")
        body = body if isinstance(body, bytes) else b""
        message = (
            f"rejected {params!r}; key={key!s} header={base64.b64encode(raw).decode()} "
            f"raw={raw.decode('latin-1')} body={body.decode('latin-1')}"
        )
        raise ClientError({"Error": {"Code": "InvalidRequest", "Message": message}}, operation)

    s3.shadow.meta.events.register(f"provide-client-params.s3.{operation}", fail)


@pytest.mark.parametrize("key", [KEY, STR_KEY], ids=["bytes-key", "str-key"])
def test_shadow_error_quoting_the_key_is_scrubbed(
    s3: S3Env, logs: pytest.LogCaptureFixture, key: bytes | str
) -> None:
    _shadow_raises_quoting(s3, "PutObject")
    rec = RecordingHook()
    client = s3.wrap(hooks=[rec, LoggingHook()])
    client.put_object(Bucket="photos", Key="k", Body=b"small", **sse(key))
    assert rec.kinds() == ["shadow_failed"]
    event = rec.events[0]
    assert event.error_code == "InvalidRequest"  # type: ignore[attr-defined]
    assert "rejected" in event.error_message  # type: ignore[attr-defined]
    assert_hidden(dualwrite_text(rec, logs), key)


def test_shadow_write_error_message_is_scrubbed(s3: S3Env) -> None:
    _shadow_raises_quoting(s3, "PutObject")
    client = s3.wrap(on_shadow_error="raise")
    with pytest.raises(ShadowWriteError) as info:
        client.put_object(Bucket="photos", Key="k", Body=b"small", **sse(KEY))
    assert "InvalidRequest" in str(info.value)
    assert_hidden(str(info.value), KEY)
    assert_hidden(repr(info.value.event), KEY)


def test_multipart_part_failure_quoting_the_key_is_scrubbed_at_complete(
    s3: S3Env, logs: pytest.LogCaptureFixture
) -> None:
    """The part's error is remembered and reported again at Complete, which has no SSE-C key."""
    _shadow_raises_quoting(s3, "UploadPart")
    rec = RecordingHook()
    client = s3.wrap(hooks=[rec, LoggingHook()])
    upload_id = client.create_multipart_upload(Bucket="photos", Key="k", **sse(KEY))["UploadId"]
    etag = client.upload_part(
        Bucket="photos", Key="k", UploadId=upload_id, PartNumber=1, Body=BODY, **sse(KEY)
    )["ETag"]
    client.complete_multipart_upload(
        Bucket="photos",
        Key="k",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert rec.kinds() == ["shadow_written", "shadow_failed", "shadow_failed"]
    assert rec.events[-1].write.operation == "CompleteMultipartUpload"
    assert_hidden(dualwrite_text(rec, logs), KEY)


def test_param_validation_error_quoting_the_body_is_scrubbed(
    s3: S3Env, logs: pytest.LogCaptureFixture
) -> None:
    def corrupt(params: dict[str, Any], **_: Any) -> None:
        params["Body"] = [params["Body"]]  # an invalid type: botocore quotes the value

    s3.shadow.meta.events.register("provide-client-params.s3.PutObject", corrupt)
    rec = RecordingHook()
    client = s3.wrap(hooks=[rec, LoggingHook()])
    client.put_object(Bucket="photos", Key="k", Body=BODY)
    assert rec.kinds() == ["shadow_failed"]
    event = rec.events[0]
    assert event.error_type == "ParamValidationError"  # type: ignore[attr-defined]
    assert "Body" in event.error_message  # type: ignore[attr-defined]
    assert BODY.decode() not in dualwrite_text(rec, logs)
    assert s3.primary_body("k") == BODY


def test_hook_failure_quoting_nothing_secret(s3: S3Env, logs: pytest.LogCaptureFixture) -> None:
    """A failing hook is logged with its error, never with the request."""

    def bad_hook(event: Any) -> None:
        raise RuntimeError("hook broke")

    client = s3.wrap(hooks=[bad_hook])
    client.put_object(Bucket="photos", Key="k", Body=BODY, **sse(KEY))
    text = dualwrite_text(RecordingHook(), logs)
    assert "hook broke" in text
    assert_hidden(text, KEY)
    assert BODY.decode() not in text


def test_writer_and_client_reprs_hold_no_secret(s3: S3Env) -> None:
    writer = dualwrite.DualWriter(flag=True, hooks=[LoggingHook()])
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="k", Body=BODY, **sse(KEY))
    text = repr(writer) + repr(client) + str(client)
    assert_hidden(text, KEY)
    assert "testing" not in text  # the access key of the primary's credentials
