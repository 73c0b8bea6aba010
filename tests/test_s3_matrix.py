"""flag on/off x primary ok/fails x shadow ok/fails, and a primary error identical to boto3's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import S3Env, record_requests

from dualwrite.events import ShadowFailed
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")


def capture_responses(client: Any) -> list[Any]:
    """Keep every parsed response botocore hands back (or raises inside a ClientError)."""
    parsed: list[Any] = []

    def after_call(**kwargs: Any) -> None:
        parsed.append(kwargs["parsed"])

    client.meta.events.register("after-call.s3", after_call, unique_id="tests-capture")
    return parsed


@pytest.mark.parametrize(
    ("flag", "primary_ok", "shadow_ok"),
    [
        pytest.param(True, True, True, id="flag-on-primary-ok-shadow-ok"),
        pytest.param(True, True, False, id="flag-on-primary-ok-shadow-fails"),
        pytest.param(True, False, True, id="flag-on-primary-fails-shadow-ok"),
        pytest.param(True, False, False, id="flag-on-primary-fails-shadow-fails"),
        pytest.param(False, True, True, id="flag-off-primary-ok-shadow-ok"),
        pytest.param(False, True, False, id="flag-off-primary-ok-shadow-fails"),
        pytest.param(False, False, True, id="flag-off-primary-fails-shadow-ok"),
        pytest.param(False, False, False, id="flag-off-primary-fails-shadow-fails"),
    ],
)
def test_matrix(s3: S3Env, flag: bool, primary_ok: bool, shadow_ok: bool) -> None:
    # "ghost" does not exist in the primary account, "missing-acct2" not in the shadow's.
    target = "photos-acct2" if shadow_ok else "missing-acct2"
    s3.names.update({"photos": target, "ghost": target})
    bucket = "photos" if primary_ok else "ghost"
    flag_calls: list[str] = []

    def flag_fn(write: Any) -> bool:
        flag_calls.append(write.operation)
        return flag

    rec = RecordingHook()
    client = s3.wrap(flag=flag_fn, hooks=[rec])
    parsed = capture_responses(s3.primary)
    primary_sent = record_requests(s3.primary)
    shadow_sent = record_requests(s3.shadow)

    if primary_ok:
        response = client.put_object(Bucket=bucket, Key="k", Body=b"payload")
        assert response is parsed[0]  # the very object botocore returned
        assert s3.primary_body("k") == b"payload"
    else:
        with pytest.raises(ClientError) as info:
            client.put_object(Bucket=bucket, Key="k", Body=b"payload")
        assert info.value.response is parsed[0]
        assert info.value.response["Error"]["Code"] == "NoSuchBucket"
    assert primary_sent[0] == "PutObject"
    assert flag_calls == ["PutObject"]  # evaluated once, even when the primary then fails

    if not primary_ok or not flag:
        assert shadow_sent == []
        assert rec.events == []
        assert s3.keys("shadow") == []
    elif shadow_ok:
        assert shadow_sent == ["PutObject"]
        # The fleet check: one HeadObject of the primary after the shadow write (docs/s3.md).
        assert primary_sent[:2] == ["PutObject", "HeadObject"]
        assert rec.kinds() == ["shadow_written"]
        assert s3.shadow_body("k") == b"payload"
    else:
        assert shadow_sent == ["PutObject"]
        assert rec.kinds() == ["shadow_failed"]
        event = rec.events[0]
        assert isinstance(event, ShadowFailed)
        assert event.error_code == "NoSuchBucket"
        assert event.write.shadow_resource == "missing-acct2"
        assert s3.keys("shadow") == []


def test_flag_off_response_identical_and_one_primary_request(s3: S3Env) -> None:
    client = s3.wrap(flag=False)
    parsed = capture_responses(s3.primary)
    primary_sent = record_requests(s3.primary)
    shadow_sent = record_requests(s3.shadow)
    put = client.put_object(Bucket="photos", Key="k", Body=b"x", ACL="private")
    copy = client.copy_object(Bucket="photos", Key="c", CopySource="photos/k")
    mpu = client.create_multipart_upload(Bucket="photos", Key="m")
    part = client.upload_part(
        Bucket="photos", Key="m", UploadId=mpu["UploadId"], PartNumber=1, Body=b"p"
    )
    done = client.complete_multipart_upload(
        Bucket="photos",
        Key="m",
        UploadId=mpu["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    delete = client.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "c"}]})
    assert [put, copy, mpu, part, done, delete] == parsed
    assert all(a is b for a, b in zip([put, copy, mpu, part, done, delete], parsed, strict=True))
    assert primary_sent == [
        "PutObject",
        "CopyObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "DeleteObjects",
    ]
    assert shadow_sent == []


# -- a primary error is the one plain boto3 raises ----------------------------------------------

_IGNORED = {"RequestId", "HostId", "x-amz-request-id", "x-amzn-requestid", "x-amz-id-2", "date"}


def _normalise(value: Any) -> Any:
    """Drop per-request identifiers and dates, which differ between any two calls."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items() if k not in _IGNORED}
    return value


Call = Callable[[Any], Any]

_PRIMARY_FAILURES: list[Any] = [
    pytest.param(
        lambda c: c.put_object(Bucket="ghost", Key="k", Body=b"x"), id="put-no-such-bucket"
    ),
    pytest.param(
        lambda c: c.copy_object(Bucket="photos", Key="k", CopySource="photos/absent"),
        id="copy-no-such-key",
    ),
    pytest.param(lambda c: c.delete_object(Bucket="ghost", Key="k"), id="delete-no-such-bucket"),
    pytest.param(
        lambda c: c.delete_objects(Bucket="ghost", Delete={"Objects": [{"Key": "k"}]}),
        id="delete-objects-no-such-bucket",
    ),
    pytest.param(
        lambda c: c.put_object_tagging(
            Bucket="photos", Key="absent", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}
        ),
        id="tagging-no-such-key",
    ),
    pytest.param(
        lambda c: c.delete_object_tagging(Bucket="photos", Key="absent"),
        id="delete-tagging-no-such-key",
    ),
    pytest.param(
        lambda c: c.put_object_acl(Bucket="photos", Key="absent", ACL="private"),
        id="acl-no-such-key",
    ),
    pytest.param(
        lambda c: c.create_multipart_upload(Bucket="ghost", Key="k"), id="create-mpu-no-bucket"
    ),
    pytest.param(
        lambda c: c.upload_part(
            Bucket="photos", Key="k", UploadId="bogus", PartNumber=1, Body=b"x"
        ),
        id="upload-part-no-such-upload",
    ),
    pytest.param(
        lambda c: c.complete_multipart_upload(
            Bucket="photos",
            Key="k",
            UploadId="bogus",
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]},
        ),
        id="complete-no-such-upload",
    ),
    pytest.param(
        lambda c: c.abort_multipart_upload(Bucket="photos", Key="k", UploadId="bogus"),
        id="abort-no-such-upload",
    ),
    pytest.param(lambda c: c.put_object(Bucket="photos", Body=b"x"), id="missing-key-param"),
    pytest.param(lambda c: c.put_object(Bucket="photos", Key="k", Bodyy=b"x"), id="unknown-param"),
    pytest.param(lambda c: c.put_object({"Bucket": "photos"}), id="positional-args"),
]


@pytest.mark.parametrize("call", _PRIMARY_FAILURES)
def test_primary_error_identical_to_plain_boto3(s3: S3Env, call: Call) -> None:
    plain = s3.accounts.client("primary", "s3")
    with pytest.raises(Exception) as expected:
        call(plain)

    rec = RecordingHook()
    client = s3.wrap(hooks=[rec])
    shadow_sent = record_requests(s3.shadow)
    with pytest.raises(Exception) as actual:
        call(client)

    assert type(actual.value) is type(expected.value)
    assert str(actual.value) == str(expected.value)
    assert actual.value.args == expected.value.args
    if isinstance(expected.value, ClientError):
        assert isinstance(actual.value, ClientError)
        assert _normalise(actual.value.response) == _normalise(expected.value.response)
        assert actual.value.operation_name == expected.value.operation_name
    # Otherwise a ParamValidationError, a TypeError, or one of moto's raw exceptions (KeyError,
    # AttributeError on an unknown UploadId or key): whatever it is, it is passed through as is.
    assert shadow_sent == []
    assert rec.events == []
    assert s3.keys("shadow") == []


def test_primary_error_is_botocores_own_object(s3: S3Env) -> None:
    client = s3.wrap()
    parsed = capture_responses(s3.primary)
    with pytest.raises(ClientError) as info:
        client.put_object(Bucket="ghost", Key="k", Body=b"x")
    assert info.value.response is parsed[-1]
    # Not wrapped, not chained: exactly what botocore raised.
    assert info.value.__cause__ is None
    assert type(info.value).__module__ == "botocore.errorfactory"
