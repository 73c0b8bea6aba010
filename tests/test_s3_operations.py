"""Every mirrored S3 object write, on two moto accounts, with data placement read from each."""

from __future__ import annotations

import datetime
import io
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from conftest import SHADOW_ACCOUNT, S3Env, enforce_owner_acl, record_requests

import dualwrite
from dualwrite._s3 import operations as _s3
from dualwrite.events import Mismatch, ShadowFailed, Unsupported
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")

MiB = 1024 * 1024
OWNER = "bucket-owner-full-control"


def data_of(size: int, seed: int = 11) -> bytes:
    return random.Random(seed).randbytes(size)


def shadow_calls(s3: S3Env) -> list[dict[str, Any]]:
    """Every call the shadow clients received: the S3Env's and those of shadow resources."""
    extra = getattr(s3, "extra_shadow_calls", [])
    return s3.shadow_calls + [call for calls in extra for call in calls]


def shadow_resource(s3: S3Env) -> Any:
    """A shadow-account resource whose client enforces the owner ACL like ``s3.shadow``."""
    resource = s3.accounts.resource("shadow", "s3")
    if not hasattr(s3, "extra_shadow_calls"):
        s3.extra_shadow_calls = []  # type: ignore[attr-defined]
    s3.extra_shadow_calls.append(enforce_owner_acl(resource.meta.client))  # type: ignore[attr-defined]
    return resource


def sent(s3: S3Env, operation: str, key: str | None = None) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` call the shadow received (for ``key``, if given)."""
    return [
        c["params"]
        for c in shadow_calls(s3)
        if c["operation"] == operation and (key is None or c["params"].get("Key") == key)
    ]


def writes(s3: S3Env) -> list[str]:
    return [
        c["operation"]
        for c in shadow_calls(s3)
        if not c["operation"].startswith(("Get", "Head", "List", "CreateBucket"))
    ]


def reasons(rec: RecordingHook) -> list[tuple[str, str | None]]:
    return [(e.kind, getattr(e, "reason", None)) for e in rec.events]


def seed_both(s3: S3Env, key: str, data: bytes, bucket: str = "photos") -> None:
    s3.primary.put_object(Bucket=bucket, Key=key, Body=data)
    s3.shadow.put_object(Bucket=s3.names[bucket], Key=key, Body=data, ACL=OWNER)


def tags(client: Any, bucket: str, key: str) -> dict[str, str]:
    tag_set = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return {t["Key"]: t["Value"] for t in tag_set}


def uploads(client: Any, bucket: str) -> list[Any]:
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])  # type: ignore[no-any-return]


@pytest.fixture
def rec() -> RecordingHook:
    return RecordingHook()


# -- CopyObject -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("photos/src", id="str"),
        pytest.param("/photos/src", id="str-leading-slash"),
        pytest.param({"Bucket": "photos", "Key": "src"}, id="dict"),
    ],
)
def test_copy_object_maps_copy_source(s3: S3Env, rec: RecordingHook, source: Any) -> None:
    seed_both(s3, "src", b"source bytes")
    s3.wrap(hooks=[rec]).copy_object(Bucket="photos", Key="dst", CopySource=source)
    assert s3.primary_body("dst") == s3.shadow_body("dst") == b"source bytes"
    (params,) = sent(s3, "CopyObject")
    assert params["CopySource"] == {"Bucket": "photos-acct2", "Key": "src"}
    assert params["ACL"] == OWNER
    assert rec.kinds() == ["shadow_written"]


@pytest.mark.parametrize(
    ("key", "source"),
    [
        pytest.param("a b/ü.txt", "photos/a b/ü.txt", id="str-unquoted"),
        pytest.param("a b/ü.txt", {"Bucket": "photos", "Key": "a b/ü.txt"}, id="dict-unquoted"),
        # botocore quotes a str CopySource itself: "%20" names a key with a literal "%20".
        pytest.param("a%20b", "photos/a%20b", id="str-percent-is-literal"),
        pytest.param("a+b", "photos/a+b", id="str-plus"),
    ],
)
def test_copy_object_source_key_means_what_botocore_sends(
    s3: S3Env, rec: RecordingHook, key: str, source: Any
) -> None:
    # Decoys: keys a wrong (un)quoting of the source would hit instead.
    for decoy in ("a b", "a%2520b", "a b/%C3%BC.txt", "a%20b/ü.txt"):
        seed_both(s3, decoy, b"decoy")
    seed_both(s3, key, b"the right object")
    s3.wrap(hooks=[rec]).copy_object(Bucket="photos", Key="dst", CopySource=source)
    assert s3.primary_body("dst") == b"the right object"
    assert s3.shadow_body("dst") == b"the right object"
    assert rec.kinds() == ["shadow_written"]


def test_copy_object_between_mapped_buckets(s3: S3Env, rec: RecordingHook) -> None:
    s3.primary.create_bucket(Bucket="archive")
    s3.shadow.create_bucket(Bucket="archive-acct2")
    s3.names["archive"] = "archive-acct2"
    seed_both(s3, "old", b"archived", bucket="archive")
    s3.wrap(hooks=[rec]).copy_object(Bucket="photos", Key="new", CopySource="archive/old")
    assert s3.primary_body("new") == s3.shadow_body("new") == b"archived"
    assert sent(s3, "CopyObject")[0]["CopySource"] == {"Bucket": "archive-acct2", "Key": "old"}


def test_copy_object_from_unmapped_source_is_unsupported(s3: S3Env, rec: RecordingHook) -> None:
    s3.primary.create_bucket(Bucket="elsewhere")
    s3.primary.put_object(Bucket="elsewhere", Key="src", Body=b"x")
    shadow_sent = record_requests(s3.shadow)
    s3.wrap(hooks=[rec]).copy_object(Bucket="photos", Key="dst", CopySource="elsewhere/src")
    assert s3.primary_body("dst") == b"x"
    assert reasons(rec) == [("unsupported", "unmapped")]
    assert "elsewhere" in rec.events[0].detail  # type: ignore[attr-defined]
    assert shadow_sent == []
    assert s3.keys("shadow") == []


def test_copy_object_from_a_version_is_unsupported(s3: S3Env, rec: RecordingHook) -> None:
    s3.primary.put_bucket_versioning(Bucket="photos", VersioningConfiguration={"Status": "Enabled"})
    version = s3.primary.put_object(Bucket="photos", Key="src", Body=b"v1")["VersionId"]
    s3.primary.put_object(Bucket="photos", Key="src", Body=b"v2")
    shadow_sent = record_requests(s3.shadow)
    client = s3.wrap(hooks=[rec])
    client.copy_object(Bucket="photos", Key="dst", CopySource=f"photos/src?versionId={version}")
    client.copy_object(
        Bucket="photos",
        Key="dst2",
        CopySource={"Bucket": "photos", "Key": "src", "VersionId": version},
    )
    assert s3.primary_body("dst") == s3.primary_body("dst2") == b"v1"
    assert reasons(rec) == [("unsupported", "version-specific")] * 2
    assert shadow_sent == []


def test_copy_object_metadata_replace_is_mirrored(s3: S3Env) -> None:
    seed_both(s3, "src", b"x")
    s3.wrap().copy_object(
        Bucket="photos",
        Key="dst",
        CopySource="photos/src",
        MetadataDirective="REPLACE",
        Metadata={"owner": "acme"},
        ContentType="image/png",
    )
    head = s3.shadow.head_object(Bucket="photos-acct2", Key="dst")
    assert head["Metadata"] == {"owner": "acme"}
    assert head["ContentType"] == "image/png"


# -- DeleteObject / DeleteObjects ------------------------------------------------------------


def test_delete_object(s3: S3Env, rec: RecordingHook) -> None:
    seed_both(s3, "k", b"x")
    seed_both(s3, "keep", b"x")
    s3.wrap(hooks=[rec]).delete_object(Bucket="photos", Key="k")
    assert s3.keys("primary") == s3.keys("shadow") == ["keep"]
    assert rec.kinds() == ["shadow_written"]


def test_delete_object_by_version_is_unsupported(s3: S3Env, rec: RecordingHook) -> None:
    s3.primary.put_bucket_versioning(Bucket="photos", VersioningConfiguration={"Status": "Enabled"})
    version = s3.primary.put_object(Bucket="photos", Key="k", Body=b"x")["VersionId"]
    s3.shadow.put_object(Bucket="photos-acct2", Key="k", Body=b"x", ACL=OWNER)
    shadow_sent = record_requests(s3.shadow)
    s3.wrap(hooks=[rec]).delete_object(Bucket="photos", Key="k", VersionId=version)
    assert shadow_sent == []
    assert s3.keys("primary") == []
    assert s3.keys("shadow") == ["k"]  # never replayed: the shadow's versions differ
    assert reasons(rec) == [("unsupported", "version-specific")]
    assert rec.events[0].write.key == "k"


def _seed_abc(s3: S3Env) -> None:
    for key in ("a", "b", "c", "d"):
        seed_both(s3, key, key.encode())


@pytest.mark.parametrize("quiet", [False, True], ids=["verbose", "quiet"])
def test_delete_objects(s3: S3Env, rec: RecordingHook, quiet: bool) -> None:
    _seed_abc(s3)
    s3.wrap(hooks=[rec]).delete_objects(
        Bucket="photos", Delete={"Objects": [{"Key": "a"}, {"Key": "b"}], "Quiet": quiet}
    )
    assert s3.keys("primary") == s3.keys("shadow") == ["c", "d"]
    assert rec.kinds() == ["shadow_written"]
    (params,) = sent(s3, "DeleteObjects")
    assert sorted(o["Key"] for o in params["Delete"]["Objects"]) == ["a", "b"]


def _primary_reports_error_for(s3: S3Env, key: str) -> None:
    """Make the primary's DeleteObjects response report ``key`` as failed (as AWS may)."""

    def after_call(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Deleted"] = [d for d in parsed.get("Deleted", []) if d.get("Key") != key]
        if not parsed["Deleted"]:
            del parsed["Deleted"]
        parsed["Errors"] = [{"Key": key, "Code": "AccessDenied", "Message": "Access Denied"}]

    s3.primary.meta.events.register("after-call.s3.DeleteObjects", after_call)


@pytest.mark.parametrize("quiet", [False, True], ids=["verbose", "quiet"])
def test_delete_objects_mirrors_only_what_the_primary_deleted(
    s3: S3Env, rec: RecordingHook, quiet: bool
) -> None:
    _seed_abc(s3)
    _primary_reports_error_for(s3, "b")
    s3.wrap(hooks=[rec]).delete_objects(
        Bucket="photos",
        Delete={"Objects": [{"Key": "a"}, {"Key": "b"}, {"Key": "c"}], "Quiet": quiet},
    )
    (params,) = sent(s3, "DeleteObjects")
    assert sorted(o["Key"] for o in params["Delete"]["Objects"]) == ["a", "c"]
    assert s3.keys("shadow") == ["b", "d"]
    assert rec.kinds() == ["shadow_written"]


def test_delete_objects_versioned_entries_are_unsupported(s3: S3Env, rec: RecordingHook) -> None:
    s3.primary.put_bucket_versioning(Bucket="photos", VersioningConfiguration={"Status": "Enabled"})
    _seed_abc(s3)
    version = s3.primary.head_object(Bucket="photos", Key="a")["VersionId"]
    for quiet in (False, True):
        rec.clear()
        s3.wrap(hooks=[rec]).delete_objects(
            Bucket="photos",
            Delete={"Objects": [{"Key": "a", "VersionId": version}, {"Key": "b"}], "Quiet": quiet},
        )
        unsupported = [e for e in rec.events if isinstance(e, Unsupported)]
        assert [(e.write.key, e.reason) for e in unsupported] == [("a", "version-specific")]
        assert "shadow_written" in rec.kinds()
        version = s3.primary.put_object(Bucket="photos", Key="a", Body=b"a")["VersionId"]
    assert [o["Key"] for p in sent(s3, "DeleteObjects") for o in p["Delete"]["Objects"]] == [
        "b",
        "b",
    ]
    assert "a" in s3.keys("shadow")
    assert "b" not in s3.keys("shadow")


def test_delete_objects_shadow_errors_become_per_key_failures(
    s3: S3Env, rec: RecordingHook
) -> None:
    _seed_abc(s3)

    def shadow_after_call(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Errors"] = [{"Key": "b", "Code": "AccessDenied", "Message": "Access Denied"}]

    s3.shadow.meta.events.register("after-call.s3.DeleteObjects", shadow_after_call)
    s3.wrap(hooks=[rec]).delete_objects(
        Bucket="photos", Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]}
    )
    assert rec.kinds() == ["shadow_failed"]
    event = rec.events[0]
    assert isinstance(event, ShadowFailed)
    assert event.write.key == "b"
    assert event.error_code == "AccessDenied"


# -- tagging, ACL, retention, legal hold ---------------------------------------------------


def test_tagging_put_and_delete(s3: S3Env, rec: RecordingHook) -> None:
    seed_both(s3, "k", b"x")
    client = s3.wrap(hooks=[rec])
    client.put_object_tagging(
        Bucket="photos", Key="k", Tagging={"TagSet": [{"Key": "tenant", "Value": "acme"}]}
    )
    assert (
        tags(s3.primary, "photos", "k")
        == tags(s3.shadow, "photos-acct2", "k")
        == {"tenant": "acme"}
    )
    client.delete_object_tagging(Bucket="photos", Key="k")
    assert tags(s3.primary, "photos", "k") == tags(s3.shadow, "photos-acct2", "k") == {}
    assert rec.kinds() == ["shadow_written", "shadow_written"]


def test_tagging_by_version_is_unsupported(s3: S3Env, rec: RecordingHook) -> None:
    s3.primary.put_bucket_versioning(Bucket="photos", VersioningConfiguration={"Status": "Enabled"})
    version = s3.primary.put_object(Bucket="photos", Key="k", Body=b"x")["VersionId"]
    s3.shadow.put_object(Bucket="photos-acct2", Key="k", Body=b"x", ACL=OWNER)
    s3.wrap(hooks=[rec]).put_object_tagging(
        Bucket="photos",
        Key="k",
        VersionId=version,
        Tagging={"TagSet": [{"Key": "a", "Value": "b"}]},
    )
    assert reasons(rec) == [("unsupported", "version-specific")]
    assert tags(s3.shadow, "photos-acct2", "k") == {}


@pytest.mark.parametrize(
    "acl_args",
    [
        pytest.param({"ACL": "public-read"}, id="canned"),
        pytest.param(
            {"GrantRead": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'}, id="grant"
        ),
        pytest.param(
            {
                "AccessControlPolicy": {
                    "Owner": {"ID": "primary-owner"},
                    "Grants": [
                        {
                            "Grantee": {"Type": "CanonicalUser", "ID": "primary-owner"},
                            "Permission": "FULL_CONTROL",
                        }
                    ],
                }
            },
            id="policy",
        ),
    ],
)
def test_put_object_acl_keeps_owner_full_control(
    s3: S3Env, rec: RecordingHook, acl_args: dict[str, Any]
) -> None:
    seed_both(s3, "k", b"x")
    s3.wrap(hooks=[rec]).put_object_acl(Bucket="photos", Key="k", **acl_args)
    (params,) = sent(s3, "PutObjectAcl")
    assert params == {"Bucket": "photos-acct2", "Key": "k", "ACL": OWNER}
    assert rec.kinds() == ["shadow_written"]


@pytest.fixture
def locked(s3: S3Env) -> S3Env:
    s3.primary.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    s3.shadow.create_bucket(Bucket="locked-acct2", ObjectLockEnabledForBucket=True)
    s3.names["locked"] = "locked-acct2"
    seed_both(s3, "k", b"x", bucket="locked")
    return s3


def test_retention_and_legal_hold(locked: S3Env, rec: RecordingHook) -> None:
    s3 = locked
    until = datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc)
    client = s3.wrap(hooks=[rec])
    client.put_object_retention(
        Bucket="locked", Key="k", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}
    )
    client.put_object_legal_hold(Bucket="locked", Key="k", LegalHold={"Status": "ON"})
    assert rec.kinds() == ["shadow_written", "shadow_written"]
    # moto's GetObjectRetention fails with a 500; HeadObject carries the same fields.
    for client_, bucket in ((s3.primary, "locked"), (s3.shadow, "locked-acct2")):
        head = client_.head_object(Bucket=bucket, Key="k")
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ObjectLockRetainUntilDate"].year == 2099
        hold = client_.get_object_legal_hold(Bucket=bucket, Key="k")["LegalHold"]
        assert hold == {"Status": "ON"}


def test_retention_shadow_failure(s3: S3Env, rec: RecordingHook) -> None:
    """A shadow bucket without object lock refuses retention: shadow_failed, caller unaffected."""
    s3.primary.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    s3.shadow.create_bucket(Bucket="locked-acct2")
    s3.names["locked"] = "locked-acct2"
    seed_both(s3, "k", b"x", bucket="locked")
    until = datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc)
    s3.wrap(hooks=[rec]).put_object_retention(
        Bucket="locked", Key="k", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}
    )
    assert rec.kinds() == ["shadow_failed"]
    assert s3.primary.head_object(Bucket="locked", Key="k")["ObjectLockMode"] == "GOVERNANCE"


def test_put_object_append_is_unsupported(s3: S3Env, rec: RecordingHook) -> None:
    shadow_sent = record_requests(s3.shadow)
    s3.wrap(hooks=[rec]).put_object(Bucket="photos", Key="k", Body=b"x", WriteOffsetBytes=0)
    assert reasons(rec) == [("unsupported", "append")]
    assert shadow_sent == []


# -- low-level multipart ----------------------------------------------------------------------


def _multipart(client: Any, key: str, parts: list[bytes], **create: Any) -> dict[str, Any]:
    upload_id = client.create_multipart_upload(Bucket="photos", Key=key, **create)["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        etag = client.upload_part(
            Bucket="photos", Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )["ETag"]
        done.append({"PartNumber": number, "ETag": etag})
    return client.complete_multipart_upload(  # type: ignore[no-any-return]
        Bucket="photos", Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
    )


def test_multipart_maps_upload_ids(s3: S3Env, rec: RecordingHook) -> None:
    parts = [data_of(5 * MiB, 1), data_of(5 * MiB, 2), b"tail"]
    response = _multipart(s3.wrap(hooks=[rec]), "big", parts)
    assert s3.primary_body("big") == s3.shadow_body("big") == b"".join(parts)
    shadow_etag = s3.shadow.head_object(Bucket="photos-acct2", Key="big")["ETag"]
    assert response["ETag"] == shadow_etag
    assert response["ETag"].endswith('-3"')
    primary_id = {p["UploadId"] for p in sent(s3, "UploadPart")}
    assert len(primary_id) == 1
    assert sent(s3, "CompleteMultipartUpload")[0]["UploadId"] in primary_id
    assert rec.kinds() == ["shadow_written"] * 5
    assert uploads(s3.shadow, "photos-acct2") == []


def test_multipart_shadow_uses_its_own_upload_id(s3: S3Env) -> None:
    client = s3.wrap()
    primary_id = client.create_multipart_upload(Bucket="photos", Key="k")["UploadId"]
    client.upload_part(Bucket="photos", Key="k", UploadId=primary_id, PartNumber=1, Body=b"x")
    (shadow_upload,) = uploads(s3.shadow, "photos-acct2")
    assert shadow_upload["UploadId"] != primary_id
    assert sent(s3, "UploadPart")[0]["UploadId"] == shadow_upload["UploadId"]
    client.abort_multipart_upload(Bucket="photos", Key="k", UploadId=primary_id)


def test_upload_part_copy(s3: S3Env, rec: RecordingHook) -> None:
    source = data_of(6 * MiB)
    seed_both(s3, "src", source)
    client = s3.wrap(hooks=[rec])
    upload_id = client.create_multipart_upload(Bucket="photos", Key="dst")["UploadId"]
    first = client.upload_part_copy(
        Bucket="photos",
        Key="dst",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": "photos", "Key": "src"},
        CopySourceRange=f"bytes=0-{5 * MiB - 1}",
    )["CopyPartResult"]["ETag"]
    second = client.upload_part(
        Bucket="photos", Key="dst", UploadId=upload_id, PartNumber=2, Body=b"end"
    )["ETag"]
    client.complete_multipart_upload(
        Bucket="photos",
        Key="dst",
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": second}]
        },
    )
    expected = source[: 5 * MiB] + b"end"
    assert s3.primary_body("dst") == s3.shadow_body("dst") == expected
    assert sent(s3, "UploadPartCopy")[0]["CopySource"] == {"Bucket": "photos-acct2", "Key": "src"}
    assert set(rec.kinds()) == {"shadow_written"}


def test_upload_part_copy_from_unmapped_source(s3: S3Env, rec: RecordingHook) -> None:
    s3.primary.create_bucket(Bucket="elsewhere")
    s3.primary.put_object(Bucket="elsewhere", Key="src", Body=b"s")
    client = s3.wrap(hooks=[rec])
    upload_id = client.create_multipart_upload(Bucket="photos", Key="dst")["UploadId"]
    etag = client.upload_part_copy(
        Bucket="photos", Key="dst", UploadId=upload_id, PartNumber=1, CopySource="elsewhere/src"
    )["CopyPartResult"]["ETag"]
    # The object cannot be completed on the shadow: its upload is aborted at once.
    assert uploads(s3.shadow, "photos-acct2") == []
    client.complete_multipart_upload(
        Bucket="photos",
        Key="dst",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert s3.primary_body("dst") == b"s"
    assert ("unsupported", "unmapped") in reasons(rec)
    assert rec.kinds()[-1] == "shadow_failed"  # the object never reached the shadow
    assert s3.keys("shadow") == []
    assert uploads(s3.shadow, "photos-acct2") == []


def test_abort_is_mirrored(s3: S3Env, rec: RecordingHook) -> None:
    client = s3.wrap(hooks=[rec])
    upload_id = client.create_multipart_upload(Bucket="photos", Key="k")["UploadId"]
    client.upload_part(Bucket="photos", Key="k", UploadId=upload_id, PartNumber=1, Body=b"x")
    assert len(uploads(s3.shadow, "photos-acct2")) == 1
    client.abort_multipart_upload(Bucket="photos", Key="k", UploadId=upload_id)
    assert uploads(s3.primary, "photos") == []
    assert uploads(s3.shadow, "photos-acct2") == []
    assert rec.kinds() == ["shadow_written"] * 3


def _fail_shadow_part(s3: S3Env, number: int) -> None:
    def fail(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == number:
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate"}},
                "UploadPart",
            )

    s3.shadow.meta.events.register("provide-client-params.s3.UploadPart", fail)


def test_failed_shadow_part_leaves_no_orphaned_upload(s3: S3Env, rec: RecordingHook) -> None:
    _fail_shadow_part(s3, 2)
    client = s3.wrap(hooks=[rec])
    parts = [data_of(5 * MiB, 1), data_of(5 * MiB, 2), b"three"]
    upload_id = client.create_multipart_upload(Bucket="photos", Key="k")["UploadId"]
    done = []
    for number, data in enumerate(parts, start=1):
        etag = client.upload_part(
            Bucket="photos", Key="k", UploadId=upload_id, PartNumber=number, Body=data
        )["ETag"]
        done.append({"PartNumber": number, "ETag": etag})
        if number == 2:
            # Aborted at once: nothing billed in the shadow account, whatever the caller does.
            assert uploads(s3.shadow, "photos-acct2") == []
    client.complete_multipart_upload(
        Bucket="photos", Key="k", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert s3.primary_body("k") == b"".join(parts)
    assert s3.keys("shadow") == []
    assert uploads(s3.shadow, "photos-acct2") == []
    kinds = rec.kinds()
    assert kinds[:3] == ["shadow_written", "shadow_written", "shadow_failed"]
    assert kinds[-1] == "shadow_failed"
    last = rec.events[-1]
    assert isinstance(last, ShadowFailed)
    assert last.write.operation == "CompleteMultipartUpload"
    assert last.error_type == "IncompleteShadowUpload"
    assert writes(s3).count("UploadPart") == 2  # part 3 was not sent to a broken upload


def test_failed_shadow_create_is_reported_and_parts_skip_the_shadow(
    s3: S3Env, rec: RecordingHook
) -> None:
    s3.names["photos"] = "missing-acct2"
    client = s3.wrap(hooks=[rec])
    _multipart(client, "k", [b"one"])
    assert s3.primary_body("k") == b"one"
    assert writes(s3) == ["CreateMultipartUpload"]
    assert rec.kinds()[0] == "shadow_failed"
    assert rec.kinds()[-1] == "shadow_failed"
    assert rec.events[-1].write.operation == "CompleteMultipartUpload"


def test_multipart_keeps_the_decision_taken_at_create(s3: S3Env, rec: RecordingHook) -> None:
    switch = {"on": True}
    calls: list[str] = []

    def flag(write: Any) -> bool:
        calls.append(write.operation)
        return switch["on"] and write.tenant == "acme"

    client = s3.wrap(flag=flag, hooks=[rec])
    with dualwrite.tenant("acme"):
        upload_id = client.create_multipart_upload(Bucket="photos", Key="k")["UploadId"]
    switch["on"] = False  # the flag flips mid-upload ...
    etags: dict[int, str] = {}

    def upload(number: int, data: bytes) -> None:  # ... and the parts run elsewhere
        etags[number] = client.upload_part(
            Bucket="photos", Key="k", UploadId=upload_id, PartNumber=number, Body=data
        )["ETag"]

    first = threading.Thread(target=upload, args=(1, data_of(5 * MiB)))
    first.start()
    first.join()
    with dualwrite.tenant("globex"):
        upload(2, b"two")
        client.complete_multipart_upload(
            Bucket="photos",
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
        )
    assert s3.shadow_body("k") == s3.primary_body("k") == data_of(5 * MiB) + b"two"
    assert calls == ["CreateMultipartUpload"]
    assert [e.write.tenant for e in rec.events] == ["acme"] * 4
    assert [e.write.operation for e in rec.events] == [
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "CompleteMultipartUpload",
    ]


def test_multipart_started_flag_off_stays_off(s3: S3Env, rec: RecordingHook) -> None:
    switch = {"on": False}
    client = s3.wrap(flag=lambda write: switch["on"], hooks=[rec])
    upload_id = client.create_multipart_upload(Bucket="photos", Key="k")["UploadId"]
    switch["on"] = True
    etag = client.upload_part(
        Bucket="photos", Key="k", UploadId=upload_id, PartNumber=1, Body=b"x"
    )["ETag"]
    client.complete_multipart_upload(
        Bucket="photos",
        Key="k",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert s3.primary_body("k") == b"x"
    assert writes(s3) == []
    assert rec.events == []  # not "unknown upload": the decision was off, and remembered


def test_multipart_unknown_to_the_wrapper_is_reported(s3: S3Env, rec: RecordingHook) -> None:
    upload_id = s3.primary.create_multipart_upload(Bucket="photos", Key="k")["UploadId"]
    client = s3.wrap(hooks=[rec])
    etag = client.upload_part(
        Bucket="photos", Key="k", UploadId=upload_id, PartNumber=1, Body=b"x"
    )["ETag"]
    client.complete_multipart_upload(
        Bucket="photos",
        Key="k",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert reasons(rec) == [("unsupported", "unknown-upload")] * 2
    assert writes(s3) == []


def _registered_uploads(client: Any) -> dict[str, Any]:
    return dict(client._self_mirror.state.uploads.on)


def test_finished_uploads_are_forgotten(s3: S3Env, rec: RecordingHook) -> None:
    """The UploadId table does not grow: completed and aborted uploads leave it, mapped or not."""
    s3.primary.create_bucket(Bucket="other")  # no shadow name
    client = s3.wrap(hooks=[rec])
    for bucket in ("photos", "other"):
        upload_id = client.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
        etag = client.upload_part(
            Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"x"
        )["ETag"]
        client.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        )
        aborted = client.create_multipart_upload(Bucket=bucket, Key="a")["UploadId"]
        client.abort_multipart_upload(Bucket=bucket, Key="a", UploadId=aborted)
        assert _registered_uploads(client) == {}, bucket
    assert s3.keys("shadow") == ["k"]


def test_failed_primary_complete_keeps_the_upload_for_a_retry(
    s3: S3Env, rec: RecordingHook
) -> None:
    client = s3.wrap(hooks=[rec])
    upload_id = client.create_multipart_upload(Bucket="photos", Key="k")["UploadId"]
    etag = client.upload_part(
        Bucket="photos", Key="k", UploadId=upload_id, PartNumber=1, Body=b"x"
    )["ETag"]
    with pytest.raises(ClientError):
        client.complete_multipart_upload(
            Bucket="photos",
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]},
        )
    assert list(_registered_uploads(client)) == [upload_id]
    client.complete_multipart_upload(
        Bucket="photos",
        Key="k",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert s3.primary_body("k") == s3.shadow_body("k") == b"x"
    assert _registered_uploads(client) == {}
    assert rec.kinds() == ["shadow_written"] * 3


def test_multipart_through_resources(s3: S3Env, rec: RecordingHook) -> None:
    resource = dualwrite.wrap(
        s3.accounts.resource("primary", "s3"),
        shadow=s3.shadow,
        names=s3.names,
        flag=True,
        hooks=[rec],
    )
    upload = resource.Object("photos", "k").initiate_multipart_upload()
    part = upload.Part(1).upload(Body=b"resource part")
    upload.complete(MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert s3.primary_body("k") == s3.shadow_body("k") == b"resource part"
    assert rec.kinds() == ["shadow_written"] * 3


# -- managed transfers on the client and on resources --------------------------------------------


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.bin"
    path.write_bytes(data_of(2000))
    return path


@pytest.fixture
def mp_config() -> TransferConfig:
    return TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)


def _transfer_targets(s3: S3Env, rec: RecordingHook) -> dict[str, Any]:
    # shadow_timeout=None: the tests read the shadow right after the call, and a multipart
    # copy on a loaded machine can outlast the default bound (timing is not their subject).
    client = s3.wrap(hooks=[rec], shadow_timeout=None)
    resource = dualwrite.wrap(
        s3.accounts.resource("primary", "s3"),
        shadow=shadow_resource(s3),
        names=s3.names,
        flag=True,
        hooks=[rec],
        shadow_timeout=None,
    )
    bucket = dualwrite.wrap(
        s3.accounts.resource("primary", "s3").Bucket("photos"),
        shadow=shadow_resource(s3).Bucket("photos-acct2"),
        flag=True,
        hooks=[rec],
        shadow_timeout=None,
    )
    return {"client": client, "resource": resource, "bucket": bucket}


@pytest.mark.parametrize("via", ["client", "resource-bucket", "resource-object", "bucket"])
def test_managed_upload_file(s3: S3Env, rec: RecordingHook, small_file: Path, via: str) -> None:
    targets = _transfer_targets(s3, rec)
    if via == "client":
        targets["client"].upload_file(str(small_file), "photos", "k")
    elif via == "resource-bucket":
        targets["resource"].Bucket("photos").upload_file(str(small_file), "k")
    elif via == "resource-object":
        targets["resource"].Object("photos", "k").upload_file(str(small_file))
    else:
        targets["bucket"].Object("k").upload_file(str(small_file))
    assert s3.primary_body("k") == s3.shadow_body("k") == small_file.read_bytes()
    assert rec.kinds() == ["shadow_written"]


@pytest.mark.parametrize("via", ["client", "resource-bucket", "resource-object", "bucket"])
def test_managed_upload_fileobj_multipart(
    s3: S3Env, rec: RecordingHook, mp_config: TransferConfig, via: str
) -> None:
    data = data_of(6 * MiB)
    targets = _transfer_targets(s3, rec)
    body = io.BytesIO(data)
    if via == "client":
        targets["client"].upload_fileobj(body, "photos", "k", Config=mp_config)
    elif via == "resource-bucket":
        targets["resource"].Bucket("photos").upload_fileobj(body, "k", Config=mp_config)
    elif via == "resource-object":
        targets["resource"].Object("photos", "k").upload_fileobj(body, Config=mp_config)
    else:
        targets["bucket"].upload_fileobj(body, "k", Config=mp_config)
    assert s3.primary_body("k") == s3.shadow_body("k") == data
    assert writes(s3).count("UploadPart") == 2
    assert set(rec.kinds()) == {"shadow_written"}


@pytest.mark.parametrize(
    "size", [pytest.param(3000, id="copy-object"), pytest.param(6 * MiB, id="multipart")]
)
@pytest.mark.parametrize("via", ["client", "resource-bucket", "resource-object", "bucket"])
def test_managed_copy(
    s3: S3Env, rec: RecordingHook, mp_config: TransferConfig, via: str, size: int
) -> None:
    data = data_of(size)
    seed_both(s3, "src", data)
    targets = _transfer_targets(s3, rec)
    source = {"Bucket": "photos", "Key": "src"}
    if via == "client":
        targets["client"].copy(source, "photos", "dst", Config=mp_config)
    elif via == "resource-bucket":
        targets["resource"].Bucket("photos").copy(source, "dst", Config=mp_config)
    elif via == "resource-object":
        targets["resource"].Object("photos", "dst").copy(source, Config=mp_config)
    else:
        targets["bucket"].copy(source, "dst", Config=mp_config)
    assert s3.primary_body("dst") == s3.shadow_body("dst") == data
    expected = "UploadPartCopy" if size > 5 * MiB else "CopyObject"
    assert expected in writes(s3)
    assert set(rec.kinds()) == {"shadow_written"}


def test_resource_object_actions(s3: S3Env, rec: RecordingHook) -> None:
    resource = _transfer_targets(s3, rec)["resource"]
    resource.Object("photos", "a").put(Body=b"a")
    resource.Bucket("photos").put_object(Key="b", Body=b"b")
    resource.Object("photos", "c").copy_from(CopySource="photos/a")
    assert s3.keys("shadow") == ["a", "b", "c"]
    resource.Object("photos", "a").delete()
    resource.Bucket("photos").objects.filter(Prefix="b").delete()
    assert s3.keys("primary") == s3.keys("shadow") == ["c"]
    assert set(rec.kinds()) == {"shadow_written"}


def test_managed_transfer_flag_off_uses_the_plain_client(
    s3: S3Env, rec: RecordingHook, small_file: Path
) -> None:
    shadow_sent = record_requests(s3.shadow)
    client = s3.wrap(flag=False, hooks=[rec])
    client.upload_file(str(small_file), "photos", "k")
    client.copy({"Bucket": "photos", "Key": "k"}, "photos", "k2")
    assert s3.keys("primary") == ["k", "k2"]
    assert shadow_sent == []
    assert rec.events == []


def test_managed_transfer_decides_in_the_callers_thread(
    s3: S3Env, rec: RecordingHook, mp_config: TransferConfig
) -> None:
    # Parts run on s3transfer's threads, where the tenant context is not set.
    calls: list[Any] = []

    def flag(write: Any) -> bool:
        calls.append((write.operation, write.tenant, threading.current_thread().name))
        return write.tenant == "acme"

    client = s3.wrap(flag=flag, hooks=[rec])
    with dualwrite.tenant("acme"):
        client.upload_fileobj(io.BytesIO(data_of(6 * MiB)), "photos", "k", Config=mp_config)
    assert calls == [("PutObject", "acme", threading.current_thread().name)]
    assert s3.shadow_body("k") == data_of(6 * MiB)
    assert {e.write.tenant for e in rec.events} == {"acme"}


# -- account-specific parameters -----------------------------------------------------------------


def test_expected_bucket_owner_translated(s3: S3Env) -> None:
    seed_both(s3, "src", b"x")
    client = dualwrite.wrap(
        s3.primary, shadow=s3.shadow, names=s3.names, flag=True, shadow_account=SHADOW_ACCOUNT
    )
    owner = {"ExpectedBucketOwner": "123456789012"}
    client.put_object(Bucket="photos", Key="k", Body=b"x", **owner)
    client.copy_object(
        Bucket="photos",
        Key="c",
        CopySource="photos/src",
        ExpectedSourceBucketOwner="123456789012",
        **owner,
    )
    client.delete_object(Bucket="photos", Key="c", **owner)
    for operation, key in (("PutObject", "k"), ("CopyObject", "c"), ("DeleteObject", "c")):
        (params,) = sent(s3, operation, key)
        assert params["ExpectedBucketOwner"] == SHADOW_ACCOUNT, operation
    assert sent(s3, "CopyObject")[0]["ExpectedSourceBucketOwner"] == SHADOW_ACCOUNT


def test_expected_bucket_owner_dropped_without_shadow_account(s3: S3Env) -> None:
    seed_both(s3, "src", b"x")
    client = s3.wrap()
    owner = {"ExpectedBucketOwner": "123456789012"}
    client.put_object(Bucket="photos", Key="k", Body=b"x", **owner)
    client.copy_object(
        Bucket="photos",
        Key="c",
        CopySource="photos/src",
        ExpectedSourceBucketOwner="123456789012",
        **owner,
    )
    client.put_object_tagging(
        Bucket="photos", Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}, **owner
    )
    for operation in ("PutObject", "CopyObject", "PutObjectTagging"):
        (params,) = sent(s3, operation, "k" if operation != "CopyObject" else "c")
        assert "ExpectedBucketOwner" not in params, operation
        assert "ExpectedSourceBucketOwner" not in params, operation
    assert s3.keys("shadow") == ["c", "k", "src"]


PRIMARY_KEY = "arn:aws:kms:us-east-1:123456789012:key/primary"
SHADOW_KEY = "arn:aws:kms:us-east-1:111111111111:key/shadow"


@pytest.mark.parametrize(
    "kms_keys",
    [
        pytest.param({PRIMARY_KEY: SHADOW_KEY}, id="dict"),
        pytest.param(lambda key: SHADOW_KEY if key == PRIMARY_KEY else None, id="callable"),
    ],
)
def test_sse_kms_key_mapped(s3: S3Env, kms_keys: Any) -> None:
    client = dualwrite.wrap(
        s3.primary, shadow=s3.shadow, names=s3.names, flag=True, kms_keys=kms_keys
    )
    kms = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": PRIMARY_KEY}
    client.put_object(Bucket="photos", Key="k", Body=b"x", **kms)
    client.create_multipart_upload(Bucket="photos", Key="m", **kms)
    for operation in ("PutObject", "CreateMultipartUpload"):
        (params,) = sent(s3, operation)
        assert params["SSEKMSKeyId"] == SHADOW_KEY
        assert params["ServerSideEncryption"] == "aws:kms"
    head = s3.shadow.head_object(Bucket="photos-acct2", Key="k")
    assert head["SSEKMSKeyId"] == SHADOW_KEY


@pytest.mark.parametrize(
    "kms_keys",
    [
        pytest.param(None, id="no-map"),
        pytest.param({"other": SHADOW_KEY}, id="not-in-map"),
        pytest.param(lambda key: 1 / 0, id="failing-callable"),
    ],
)
def test_sse_kms_key_dropped_when_unmapped(s3: S3Env, kms_keys: Any) -> None:
    client = dualwrite.wrap(
        s3.primary, shadow=s3.shadow, names=s3.names, flag=True, kms_keys=kms_keys
    )
    client.put_object(
        Bucket="photos",
        Key="k",
        Body=b"x",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=PRIMARY_KEY,
        SSEKMSEncryptionContext="eyJhIjoiYiJ9",
        BucketKeyEnabled=True,
    )
    (params,) = sent(s3, "PutObject")
    for name in (
        "SSEKMSKeyId",
        "ServerSideEncryption",
        "SSEKMSEncryptionContext",
        "BucketKeyEnabled",
    ):
        assert name not in params
    assert s3.shadow_body("k") == b"x"
    assert "SSEKMSKeyId" not in s3.shadow.head_object(Bucket="photos-acct2", Key="k")


def test_preconditions_are_decided_by_the_primary(s3: S3Env) -> None:
    seed_both(s3, "k", b"old")
    etag = s3.primary.head_object(Bucket="photos", Key="k")["ETag"]
    s3.wrap().put_object(Bucket="photos", Key="k", Body=b"new", IfMatch=etag)
    last = sent(s3, "PutObject", "k")[-1]
    assert last["Body"] == b"new"
    assert "IfMatch" not in last
    assert s3.shadow_body("k") == b"new"


# -- unmapped buckets -----------------------------------------------------------------------------


def test_unmapped_bucket_is_unsupported_and_never_written(
    s3: S3Env, rec: RecordingHook, small_file: Path
) -> None:
    s3.primary.create_bucket(Bucket="other")
    shadow_sent = record_requests(s3.shadow)
    client = s3.wrap(hooks=[rec])
    client.put_object(Bucket="other", Key="a", Body=b"a")
    client.copy_object(Bucket="other", Key="b", CopySource="other/a")
    client.put_object_tagging(
        Bucket="other", Key="a", Tagging={"TagSet": [{"Key": "t", "Value": "v"}]}
    )
    client.delete_object(Bucket="other", Key="b")
    client.delete_objects(Bucket="other", Delete={"Objects": [{"Key": "zz"}]})
    client.upload_file(str(small_file), "other", "c")
    upload_id = client.create_multipart_upload(Bucket="other", Key="d")["UploadId"]
    etag = client.upload_part(Bucket="other", Key="d", UploadId=upload_id, PartNumber=1, Body=b"d")[
        "ETag"
    ]
    client.complete_multipart_upload(
        Bucket="other",
        Key="d",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert shadow_sent == []
    assert s3.keys("shadow") == []
    assert sorted(
        o["Key"] for o in s3.primary.list_objects_v2(Bucket="other").get("Contents", [])
    ) == ["a", "c", "d"]
    assert {r for _, r in reasons(rec)} == {"unmapped"}
    operations = [e.write.operation for e in rec.events]
    for operation in (
        "PutObject",
        "CopyObject",
        "PutObjectTagging",
        "DeleteObject",
        "DeleteObjects",
    ):
        assert operation in operations
    assert "CreateMultipartUpload" in operations
    assert all(e.write.shadow_resource is None for e in rec.events)


# -- ACL on every create path ---------------------------------------------------------------------

_CREATES = {"PutObject", "CopyObject", "CreateMultipartUpload"}


@pytest.mark.parametrize(
    "caller_acl",
    [
        pytest.param({"ACL": "public-read"}, id="canned"),
        pytest.param({"GrantRead": 'id="someone"', "GrantFullControl": 'id="me"'}, id="grants"),
    ],
)
def test_every_create_path_forces_owner_acl(
    s3: S3Env,
    rec: RecordingHook,
    tmp_path: Path,
    mp_config: TransferConfig,
    caller_acl: dict[str, str],
) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(b"small")
    big = data_of(6 * MiB)
    seed_both(s3, "src", big)
    targets = _transfer_targets(s3, rec)
    client, bucket = targets["client"], targets["bucket"]

    client.put_object(Bucket="photos", Key="put", Body=b"x", **caller_acl)
    client.copy_object(Bucket="photos", Key="copy", CopySource="photos/src", **caller_acl)
    _multipart(client, "mpu", [b"p"], **caller_acl)
    client.upload_file(str(small), "photos", "uf", ExtraArgs=caller_acl)
    client.upload_fileobj(io.BytesIO(big), "photos", "ufo", ExtraArgs=caller_acl, Config=mp_config)
    client.copy({"Bucket": "photos", "Key": "src"}, "photos", "mc", ExtraArgs=caller_acl)
    client.copy(
        {"Bucket": "photos", "Key": "src"}, "photos", "mcp", ExtraArgs=caller_acl, Config=mp_config
    )
    bucket.upload_file(str(small), "buf", ExtraArgs=caller_acl)
    bucket.Object("bo").put(Body=b"x", **caller_acl)

    assert rec.of_kind("shadow_failed") == []
    creates = [c for c in shadow_calls(s3) if c["operation"] in _CREATES]
    assert len(creates) >= 9
    for call in creates:
        params = call["params"]
        assert params["ACL"] == OWNER, call
        assert not [k for k in params if k.startswith("Grant")], call
    assert s3.keys("shadow") == sorted(
        ["bo", "buf", "copy", "mc", "mcp", "mpu", "put", "src", "uf", "ufo"]
    )


def test_enforcer_would_catch_a_missing_acl(s3: S3Env) -> None:
    """The shadow-side enforcer is what makes the ACL tests meaningful: prove that it bites."""
    with pytest.raises(ClientError, match="AccessControlListNotSupported"):
        s3.shadow.put_object(Bucket="photos-acct2", Key="k", Body=b"x")
    with pytest.raises(ClientError, match="AccessControlListNotSupported"):
        s3.shadow.put_object(
            Bucket="photos-acct2", Key="k", Body=b"x", ACL=OWNER, GrantRead='id="x"'
        )


# -- mismatch --------------------------------------------------------------------------------


def _tamper_shadow(s3: S3Env, operation: str) -> None:
    def tamper(params: dict[str, Any], **_: Any) -> None:
        params["Body"] = b"tampered on the way to the shadow"

    s3.shadow.meta.events.register(f"provide-client-params.s3.{operation}", tamper)


def test_mismatch_on_put(s3: S3Env, rec: RecordingHook) -> None:
    _tamper_shadow(s3, "PutObject")
    s3.wrap(hooks=[rec]).put_object(
        Bucket="photos", Key="k", Body=b"original", ChecksumAlgorithm="SHA256"
    )
    assert rec.kinds()[0] == "shadow_written"
    mismatches = [e for e in rec.events if isinstance(e, Mismatch)]
    assert {m.field for m in mismatches} == {"ETag", "ChecksumSHA256"}
    primary_etag = s3.primary.head_object(Bucket="photos", Key="k")["ETag"]
    etag = next(m for m in mismatches if m.field == "ETag")
    assert etag.primary == primary_etag
    assert etag.shadow == s3.shadow.head_object(Bucket="photos-acct2", Key="k")["ETag"]


def test_mismatch_on_multipart(s3: S3Env, rec: RecordingHook) -> None:
    _tamper_shadow(s3, "UploadPart")
    _multipart(s3.wrap(hooks=[rec]), "k", [b"part"])
    fields = [(e.write.operation, e.field) for e in rec.events if isinstance(e, Mismatch)]
    assert ("UploadPart", "ETag") in fields
    assert ("CompleteMultipartUpload", "ETag") in fields


def test_no_mismatch_when_digests_are_not_comparable(s3: S3Env, rec: RecordingHook) -> None:
    # An SSE-KMS ETag is not an MD5 of the content: never compared.
    _tamper_shadow(s3, "PutObject")
    s3.wrap(hooks=[rec]).put_object(
        Bucket="photos", Key="k", Body=b"original", ServerSideEncryption="aws:kms"
    )
    fields = {e.field for e in rec.events if isinstance(e, Mismatch)}
    assert "ETag" not in fields


def test_no_mismatch_for_identical_bytes(s3: S3Env, rec: RecordingHook) -> None:
    client = s3.wrap(hooks=[rec])
    client.put_object(Bucket="photos", Key="k", Body=b"same", ChecksumAlgorithm="SHA256")
    _multipart(client, "m", [data_of(5 * MiB), b"end"])
    client.copy_object(Bucket="photos", Key="c", CopySource="photos/k")
    assert "mismatch" not in rec.kinds()


def test_handlers_table_is_what_the_proxy_installs() -> None:
    from dualwrite._s3.proxy import S3ClientProxy  # noqa: PLC0415

    for operation in _s3.HANDLERS:
        from botocore import xform_name  # noqa: PLC0415

        assert xform_name(operation) in vars(S3ClientProxy), operation
