"""Issue 16, S3: malformed requests reach the primary as given; the caller sees what boto3 gives.

A client built with ``Config(parameter_validation=False)`` sends whatever it is handed, and the
service (here moto) answers, or botocore's serializer fails, as it would without the wrapper.
Every handler of ``dualwrite._s3.HANDLERS`` gets requests with wrong types in its parameters
(keys, bucket, metadata, tags, copy sources, delete lists, bodies, part lists, upload ids); the
outcome through the wrapper (flag on, sync mode, a journal) must be the unwrapped client's: the
same exception class, error code and message, or the same response. Nothing the wrapper derives
may raise; the shadow side reports instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from conftest import Accounts, enforce_owner_acl

import dualwrite
from dualwrite._s3 import operations as _s3
from dualwrite.events import Unsupported
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")

NO_VALIDATION = Config(parameter_validation=False)
B = "photos"

Params = Callable[[dict[str, Any]], dict[str, Any]]
"""Builds a request from what the setup made (``upload``: an UploadId, ``etag``: a part ETag)."""


def base(**extra: Any) -> Params:
    return lambda made: {"Bucket": B, "Key": "k", **extra}


def upload(**extra: Any) -> Params:
    return lambda made: {"Bucket": B, "Key": "m", "UploadId": made["upload"], **extra}


CASES: dict[str, list[tuple[str, Params]]] = {
    "PutObject": [
        ("key-int", lambda made: {"Bucket": B, "Key": 123, "Body": b"x"}),
        ("key-list", lambda made: {"Bucket": B, "Key": ["a"], "Body": b"x"}),
        ("bucket-int", lambda made: {"Bucket": 123, "Key": "k", "Body": b"x"}),
        ("metadata-str", base(Body=b"x", Metadata="x")),
        ("metadata-int-value", base(Body=b"x", Metadata={"a": 1})),
        ("tagging-int", base(Body=b"x", Tagging=123)),
        ("tagging-dict", base(Body=b"x", Tagging={"a": "b"})),
        ("body-int", base(Body=123)),
        ("content-type-int", base(Body=b"x", ContentType=5)),
    ],
    "CopyObject": [
        ("source-int", base(CopySource=123)),
        ("source-bucket-int", base(CopySource={"Bucket": 1, "Key": "src"})),
        ("source-no-bucket", base(CopySource={"Key": "src"})),
        ("key-list", lambda made: {"Bucket": B, "Key": ["k"], "CopySource": f"{B}/src"}),
        ("metadata-list", base(CopySource=f"{B}/src", Metadata=[1], MetadataDirective="REPLACE")),
    ],
    "DeleteObject": [
        ("key-int", lambda made: {"Bucket": B, "Key": 123}),
        ("key-dict", lambda made: {"Bucket": B, "Key": {"a": 1}}),
        ("version-int", base(VersionId=123)),
    ],
    "DeleteObjects": [
        ("delete-str", lambda made: {"Bucket": B, "Delete": "x"}),
        ("objects-str", lambda made: {"Bucket": B, "Delete": {"Objects": "x"}}),
        ("objects-int", lambda made: {"Bucket": B, "Delete": {"Objects": 5}}),
        ("object-int", lambda made: {"Bucket": B, "Delete": {"Objects": [1]}}),
        ("key-int", lambda made: {"Bucket": B, "Delete": {"Objects": [{"Key": 1}]}}),
        ("quiet-int", lambda m: {"Bucket": B, "Delete": {"Objects": [{"Key": "k"}], "Quiet": 1}}),
        ("bucket-int", lambda made: {"Bucket": 5, "Delete": {"Objects": [{"Key": "k"}]}}),
    ],
    "PutObjectTagging": [
        ("tagging-str", base(Tagging="x")),
        ("tagset-str", base(Tagging={"TagSet": "x"})),
        ("tag-ints", base(Tagging={"TagSet": [{"Key": 1, "Value": 2}]})),
        ("key-int", lambda made: {"Bucket": B, "Key": 1, "Tagging": {"TagSet": []}}),
    ],
    "DeleteObjectTagging": [
        ("key-int", lambda made: {"Bucket": B, "Key": 1}),
        ("version-list", base(VersionId=[1])),
    ],
    "PutObjectAcl": [
        ("acl-int", base(ACL=1)),
        ("policy-str", base(AccessControlPolicy="x")),
        ("key-int", lambda made: {"Bucket": B, "Key": 1, "ACL": "private"}),
    ],
    "PutObjectRetention": [
        ("retention-str", base(Retention="x")),
        ("mode-int", base(Retention={"Mode": 1})),
    ],
    "PutObjectLegalHold": [
        ("hold-str", base(LegalHold="x")),
        ("status-int", base(LegalHold={"Status": 1})),
    ],
    "PutObjectAnnotation": [
        ("name-int", base(AnnotationName=1, AnnotationPayload=b"x")),
        ("key-int", lambda made: {"Bucket": B, "Key": 1, "AnnotationName": "a"}),
    ],
    "DeleteObjectAnnotation": [
        ("name-int", base(AnnotationName=1)),
        ("key-int", lambda made: {"Bucket": B, "Key": 1, "AnnotationName": "a"}),
    ],
    "CreateMultipartUpload": [
        ("key-int", lambda made: {"Bucket": B, "Key": 1}),
        ("metadata-str", base(Metadata="x")),
        ("bucket-list", lambda made: {"Bucket": [B], "Key": "k"}),
    ],
    "UploadPart": [
        ("upload-id-dict", upload(UploadId={"a": 1}, PartNumber=1, Body=b"p")),
        ("upload-id-int", upload(UploadId=123, PartNumber=1, Body=b"p")),
        ("part-number-str", upload(PartNumber="x", Body=b"p")),
        ("part-number-list", upload(PartNumber=[1], Body=b"p")),
        ("body-int", upload(PartNumber=1, Body=123)),
        ("key-int", upload(Key=1, PartNumber=1, Body=b"p")),
    ],
    "UploadPartCopy": [
        ("source-int", upload(PartNumber=1, CopySource=123)),
        ("upload-id-list", upload(UploadId=[1], PartNumber=1, CopySource=f"{B}/src")),
        ("part-number-str", upload(PartNumber="x", CopySource=f"{B}/src")),
    ],
    "CompleteMultipartUpload": [
        ("upload-str", upload(MultipartUpload="x")),
        ("parts-str", upload(MultipartUpload={"Parts": "x"})),
        ("part-int", upload(MultipartUpload={"Parts": [1]})),
        ("part-number-str", upload(MultipartUpload={"Parts": [{"PartNumber": "x"}]})),
        (
            "part-number-list",
            lambda made: {
                "Bucket": B,
                "Key": "m",
                "UploadId": made["upload"],
                "MultipartUpload": {"Parts": [{"PartNumber": [1], "ETag": made["etag"]}]},
            },
        ),
        ("upload-id-list", upload(UploadId=[1], MultipartUpload={"Parts": []})),
        ("key-int", upload(Key=1, MultipartUpload={"Parts": []})),
    ],
    "AbortMultipartUpload": [
        ("upload-id-dict", upload(UploadId={"a": 1})),
        ("key-int", upload(Key=1)),
    ],
    "RenameObject": [
        ("source-int", base(RenameSource=1)),
        ("key-int", lambda made: {"Bucket": B, "Key": 1, "RenameSource": "src"}),
    ],
    "UpdateObjectEncryption": [
        ("encryption-str", base(ObjectEncryption="x")),
        ("key-int", lambda made: {"Bucket": B, "Key": 1, "ObjectEncryption": {}}),
    ],
}


KEYED = frozenset(CASES) - {
    "DeleteObjects",  # names its keys in Delete
    "UploadPart",  # a part of a mirrored upload: reported when the upload completes
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
}
"""Operations whose key is their ``Key`` parameter, reported at once when it cannot be read."""


def test_every_handler_has_malformed_cases() -> None:
    assert sorted(CASES) == sorted(_s3.HANDLERS)


def prepare(client: Any) -> dict[str, Any]:
    """The state every case starts from: objects ``k`` and ``src``, an upload of ``m``."""
    client.put_object(Bucket=B, Key="k", Body=b"old")
    client.put_object(Bucket=B, Key="src", Body=b"source")
    made = {"upload": client.create_multipart_upload(Bucket=B, Key="m")["UploadId"]}
    part = client.upload_part(Bucket=B, Key="m", UploadId=made["upload"], PartNumber=1, Body=b"p")
    made["etag"] = part["ETag"]
    return made


def reset(client: Any) -> None:
    for item in client.list_objects_v2(Bucket=B).get("Contents", []):
        client.delete_object(Bucket=B, Key=item["Key"])
    for item in client.list_multipart_uploads(Bucket=B).get("Uploads", []):
        client.abort_multipart_upload(Bucket=B, Key=item["Key"], UploadId=item["UploadId"])


_VOLATILE = ("ResponseMetadata", "UploadId", "VersionId", "LastModified", "Location")


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """What the caller sees: the exception (class, code, message) or the response's content."""
    try:
        response = call()
    except Exception as exc:
        error = getattr(exc, "response", {}).get("Error", {})
        return ("raised", type(exc).__name__, error.get("Code"), str(exc))
    if not isinstance(response, dict):
        return ("returned", repr(response))
    kept = {
        k: v.get("ETag") if k == "CopyObjectResult" else v
        for k, v in response.items()
        if k not in _VOLATILE
    }
    return ("returned", sorted(kept.items(), key=str))


def method_of(operation: str) -> str:
    from botocore import xform_name  # noqa: PLC0415

    return xform_name(operation)


@pytest.mark.parametrize(
    ("operation", "case"),
    [pytest.param(op, name, id=f"{op}-{name}") for op, cases in CASES.items() for name, _ in cases],
)
def test_malformed_request_gives_the_unwrapped_outcome(
    aws: Accounts, tmp_path: Path, operation: str, case: str
) -> None:
    params = dict(CASES[operation])[case]
    primary = aws.client("primary", "s3", config=NO_VALIDATION)
    shadow = aws.client("shadow", "s3")
    enforce_owner_acl(shadow)
    primary.create_bucket(Bucket=B)
    shadow.create_bucket(Bucket="photos-acct2")
    method = method_of(operation)

    made = prepare(primary)
    plain = outcome(lambda: getattr(primary, method)(**params(made)))
    reset(primary)

    rec = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, hooks=[rec], journal=str(tmp_path / "j.sqlite3"))
    wrapped = writer.wrap(primary, shadow=shadow, names={B: "photos-acct2"})
    made = prepare(wrapped)
    rec.events.clear()
    assert outcome(lambda: getattr(wrapped, method)(**params(made))) == plain
    writer.flush()
    # Whatever the shadow side made of it, it reported it, never raised it.
    assert set(rec.kinds()) <= {"shadow_written", "shadow_failed", "unsupported", "mismatch"}
    request = params(made)
    unreadable = not isinstance(request.get("Bucket"), str) or (
        operation in KEYED and not isinstance(request.get("Key"), str)
    )
    if plain[0] == "returned" and unreadable:
        # The primary stored a write whose key cannot be known for sure: reported, with no key.
        # (RenameObject and UpdateObjectEncryption are reported as not mirrorable anyway.)
        reports = [e for e in rec.events if isinstance(e, Unsupported) and e.write.key is None]
        assert reports, rec.kinds()
        if operation not in _s3.UNSUPPORTED:
            assert {e.reason for e in reports} == {"malformed"}
    writer.close()
