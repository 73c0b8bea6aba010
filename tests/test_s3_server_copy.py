"""``copy --server-side``: the shadow's client asks S3 to copy the primary's objects.

moto serves a cross-account ``CopyObject`` whatever the primary's bucket policy says (it does
not evaluate policies across accounts), and it ignores ``IfNoneMatch``/``IfMatch`` on
``CopyObject`` and ``CopySourceIfMatch``; :func:`enforce_copy_conditions` enforces these
conditions as S3 documents them, and a refusal of read is simulated with ``AccessDenied``. What
moto does prove: the bytes, attributes and tags that land in the shadow account, the part layout
(equal ETags), and which requests each client sent (no ``GetObject`` through the host).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from _support.cli import OWNER_ACL, Accounts, enforce_owner_acl
from _support.proxy import FaultProxy
from _support.servers import MotoServer
from botocore.exceptions import ClientError
from conftest import PRIMARY_ACCOUNT, SHADOW_ACCOUNT, S3Env, record_requests

from dualwrite._core.errors import RepairError, ShadowChanged
from dualwrite._s3.backfill import converge_object
from dualwrite._s3.server_copy import ServerSideCopy, server_copy_object_state

_COPY_INPUT = (
    botocore.session.get_session()
    .get_service_model("s3")
    .operation_model("CopyObject")
    .input_shape.members
)
CONDITIONAL_COPY = {"IfNoneMatch", "IfMatch"} <= set(_COPY_INPUT)
needs_conditional_copy = pytest.mark.skipif(
    not CONDITIONAL_COPY,
    reason="this botocore has no IfNoneMatch/IfMatch on CopyObject: --server-side copies "
    "through the host (test_without_a_conditional_copy_every_object_goes_through_the_host)",
)

MiB = 1024 * 1024


def _precondition(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "PreconditionFailed", "Message": "At least one precondition failed"}},
        operation,
    )


def enforce_copy_conditions(s3: S3Env) -> None:
    """Make the shadow's copies honour the conditions S3 evaluates and moto ignores."""
    primary = s3.accounts.client("primary", "s3")  # plain readers, not the clients under test
    shadow = s3.accounts.client("shadow", "s3")

    def etag(client: Any, bucket: str, key: str) -> str | None:
        try:
            return str(client.head_object(Bucket=bucket, Key=key)["ETag"])
        except ClientError:
            return None

    def check(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name not in ("CopyObject", "UploadPartCopy"):
            return
        source = params["CopySource"]
        match = params.get("CopySourceIfMatch")
        if match is not None and etag(primary, source["Bucket"], source["Key"]) != match:
            raise _precondition(model.name)
        if model.name == "CopyObject":
            current = etag(shadow, params["Bucket"], params["Key"])
            if params.get("IfNoneMatch") == "*" and current is not None:
                raise _precondition(model.name)
            if "IfMatch" in params and current != params["IfMatch"]:
                raise _precondition(model.name)

    # Last: a test's own handlers (a write to the primary "meanwhile") run before the check.
    for operation in ("CopyObject", "UploadPartCopy"):
        s3.shadow.meta.events.register_last(f"provide-client-params.s3.{operation}", check)


def grant_shadow_read(s3: S3Env) -> None:
    """The primary bucket's policy that ``--server-side`` needs (moto stores, not enforces it)."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{SHADOW_ACCOUNT}:root"},
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": "arn:aws:s3:::photos/*",
            }
        ],
    }
    s3.primary.put_bucket_policy(Bucket="photos", Policy=json.dumps(policy))


@pytest.fixture
def env(s3: S3Env) -> S3Env:
    grant_shadow_read(s3)
    enforce_copy_conditions(s3)
    return s3


def _state(client: Any, bucket: str, key: str) -> dict[str, Any]:
    head = client.head_object(Bucket=bucket, Key=key)
    tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    fields = ("ETag", "ContentLength", "ContentType", "Metadata", "CacheControl")
    fields += ("ContentDisposition", "ContentLanguage", "ContentEncoding")
    return {
        **{f: head.get(f) for f in fields},
        "tags": sorted((t["Key"], t["Value"]) for t in tags),
    }


@needs_conditional_copy
def test_an_object_is_copied_inside_s3_with_its_attributes_and_tags(env: S3Env) -> None:
    env.primary.put_object(
        Bucket="photos",
        Key="a/cat.txt",
        Body=b"meow" * 100,
        ContentType="text/plain",
        Metadata={"owner": "acme", "n": "1"},
        CacheControl="max-age=60",
        ContentDisposition="inline",
        ContentLanguage="en",
        Tagging="tier=gold&team=cats",
        ACL="public-read",  # never carried
    )
    primary_sent, shadow_sent = record_requests(env.primary), record_requests(env.shadow)
    copied = server_copy_object_state(
        env.primary,
        env.shadow,
        "photos",
        "a/cat.txt",
        "photos-acct2",
        owner={"ExpectedBucketOwner": SHADOW_ACCOUNT},
        condition={"IfNoneMatch": "*"},
    )
    assert copied is not None
    assert copied.size == 400
    assert copied.tagged
    assert copied.shadow_etag == copied.primary_etag
    # The primary is only read for its state; the bytes never pass through this process.
    assert "GetObject" not in primary_sent
    assert sorted(set(primary_sent)) == ["GetObjectTagging", "HeadObject"]
    assert shadow_sent == ["CopyObject"]
    sent = [c["params"] for c in env.shadow_calls if c["operation"] == "CopyObject"]
    assert sent[0]["CopySource"] == {"Bucket": "photos", "Key": "a/cat.txt"}
    assert sent[0]["CopySourceIfMatch"] == copied.primary_etag
    assert sent[0]["ACL"] == OWNER_ACL
    assert sent[0]["ExpectedBucketOwner"] == SHADOW_ACCOUNT
    assert (sent[0]["MetadataDirective"], sent[0]["TaggingDirective"]) == ("REPLACE", "REPLACE")
    assert _state(env.shadow, "photos-acct2", "a/cat.txt") == _state(
        env.primary, "photos", "a/cat.txt"
    )
    assert env.shadow_body("a/cat.txt") == b"meow" * 100
    grants = env.shadow.get_object_acl(Bucket="photos-acct2", Key="a/cat.txt")["Grants"]
    assert all("URI" not in g["Grantee"] for g in grants)  # no public-read on the shadow


def test_a_multipart_object_is_copied_part_by_part_in_the_primary_layout(env: S3Env) -> None:
    data = os.urandom(5 * MiB + 1024)
    upload = env.primary.create_multipart_upload(
        Bucket="photos", Key="big", ContentType="video/mp4", Metadata={"k": "v"}
    )["UploadId"]
    parts = []
    for number, (start, end) in enumerate(((0, 5 * MiB), (5 * MiB, len(data))), 1):
        part = env.primary.upload_part(
            Bucket="photos", Key="big", UploadId=upload, PartNumber=number, Body=data[start:end]
        )
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    env.primary.complete_multipart_upload(
        Bucket="photos", Key="big", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    primary_sent, shadow_sent = record_requests(env.primary), record_requests(env.shadow)
    copied = server_copy_object_state(
        env.primary, env.shadow, "photos", "big", "photos-acct2", condition={"IfNoneMatch": "*"}
    )
    assert copied is not None
    assert "GetObject" not in primary_sent
    assert shadow_sent == [
        "CreateMultipartUpload",
        "UploadPartCopy",
        "UploadPartCopy",
        "CompleteMultipartUpload",
    ]
    ranges = [
        c["params"]["CopySourceRange"]
        for c in env.shadow_calls
        if c["operation"] == "UploadPartCopy"
    ]
    assert ranges == [f"bytes=0-{5 * MiB - 1}", f"bytes={5 * MiB}-{len(data) - 1}"]
    assert _state(env.shadow, "photos-acct2", "big") == _state(env.primary, "photos", "big")
    assert str(copied.shadow_etag).endswith('-2"')
    assert env.shadow_body("big") == data


def test_a_shadow_key_written_meanwhile_is_left_alone(env: S3Env) -> None:
    env.primary.put_object(Bucket="photos", Key="k", Body=b"from the backfill")
    env.shadow.put_object(Bucket="photos-acct2", Key="k", Body=b"live write", ACL=OWNER_ACL)
    with pytest.raises(ShadowChanged):
        converge_object(
            env.primary,
            env.shadow,
            "photos",
            "photos-acct2",
            "k",
            seen=None,  # listed as missing: the live write landed after the listing
            owner={},
            copy=server_copy_object_state,
        )
    assert env.shadow_body("k") == b"live write"


@needs_conditional_copy
def test_a_primary_change_under_the_copy_is_read_again(env: S3Env) -> None:
    env.primary.put_object(Bucket="photos", Key="k", Body=b"v1", Metadata={"v": "1"})
    changed = []

    def overwrite(model: Any, **_: Any) -> None:
        if model.name == "CopyObject" and not changed:  # after the HEAD, before the copy
            changed.append(True)
            env.primary.put_object(Bucket="photos", Key="k", Body=b"v2", Metadata={"v": "2"})

    env.shadow.meta.events.register_first("provide-client-params.s3.CopyObject", overwrite)
    outcome, size = converge_object(
        env.primary,
        env.shadow,
        "photos",
        "photos-acct2",
        "k",
        seen=None,
        owner={},
        copy=server_copy_object_state,
    )
    assert (outcome, size) == ("copied", 2)
    assert changed
    # Never v2's bytes with v1's metadata: the copy was pinned to the version it read.
    assert env.shadow_body("k") == b"v2"
    assert env.shadow.head_object(Bucket="photos-acct2", Key="k")["Metadata"] == {"v": "2"}


def test_a_primary_that_never_settles_is_an_error_not_a_skip(env: S3Env) -> None:
    env.primary.put_object(Bucket="photos", Key="k", Body=b"v0")
    count = [0]

    def overwrite(model: Any, **_: Any) -> None:
        if model.name == "CopyObject":
            count[0] += 1
            env.primary.put_object(Bucket="photos", Key="k", Body=f"v{count[0]}".encode())

    env.shadow.meta.events.register_first("provide-client-params.s3.CopyObject", overwrite)
    with pytest.raises(RepairError, match="kept changing"):
        server_copy_object_state(env.primary, env.shadow, "photos", "k", "photos-acct2")
    assert env.keys("shadow") == []


def test_a_missing_primary_object_copies_nothing(env: S3Env) -> None:
    assert (
        server_copy_object_state(env.primary, env.shadow, "photos", "gone", "photos-acct2") is None
    )
    assert env.keys("shadow") == []


def test_an_object_the_shadow_may_not_read_is_copied_through_the_host(env: S3Env) -> None:
    env.primary.put_object(Bucket="photos", Key="open/a", Body=b"a", ContentType="text/a")
    env.primary.put_object(Bucket="photos", Key="closed/b", Body=b"b", ContentType="text/b")

    def deny(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "CopyObject" and params["CopySource"]["Key"].startswith("closed/"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, model.name)

    env.shadow.meta.events.register_first("provide-client-params.s3.CopyObject", deny)
    primary_sent = record_requests(env.primary)
    copier = ServerSideCopy()
    for key in ("open/a", "closed/b"):
        assert copier(env.primary, env.shadow, "photos", key, "photos-acct2") is not None
    assert (copier.server_side, copier.through_host) == (1, 1)
    assert primary_sent.count("GetObject") == 1  # the denied key only
    for key in ("open/a", "closed/b"):
        assert _state(env.shadow, "photos-acct2", key) == _state(env.primary, "photos", key)


def test_the_conditional_copy_check_reads_the_installed_model(env: S3Env) -> None:
    copier = ServerSideCopy()
    assert copier._can_copy_conditionally(env.shadow) is CONDITIONAL_COPY


def test_without_a_conditional_copy_every_object_goes_through_the_host(env: S3Env) -> None:
    """A botocore without IfNoneMatch/IfMatch on CopyObject (1.39) cannot keep a copy inside S3
    from overwriting a newer live write: the copier uses the host's conditional PutObject."""
    env.primary.put_object(Bucket="photos", Key="a", Body=b"a", ContentType="text/a")
    shadow_sent = record_requests(env.shadow)
    copier = ServerSideCopy()
    copier._conditional = False  # as botocore 1.39's model says
    copied = copier(
        env.primary, env.shadow, "photos", "a", "photos-acct2", condition={"IfNoneMatch": "*"}
    )
    assert copied is not None
    assert (copier.server_side, copier.through_host) == (0, 1)
    assert "CopyObject" not in shadow_sent
    assert _state(env.shadow, "photos-acct2", "a") == _state(env.primary, "photos", "a")


def test_a_denied_primary_read_is_not_retried_through_the_host(env: S3Env) -> None:
    env.primary.put_object(Bucket="photos", Key="k", Body=b"k")

    def deny(model: Any, **_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, model.name)

    env.primary.meta.events.register_first("provide-client-params.s3.HeadObject", deny)
    primary_sent = record_requests(env.primary)
    copier = ServerSideCopy()
    with pytest.raises(ClientError, match="AccessDenied"):
        copier(env.primary, env.shadow, "photos", "k", "photos-acct2")
    assert (copier.server_side, copier.through_host) == (0, 0)
    assert "GetObject" not in primary_sent


def test_other_copy_errors_are_not_retried_through_the_host(env: S3Env) -> None:
    env.primary.put_object(Bucket="photos", Key="k", Body=b"k")

    def fail(model: Any, **_: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalError", "Message": "x"}}, model.name)

    env.shadow.meta.events.register_first("provide-client-params.s3.CopyObject", fail)
    copier = ServerSideCopy()
    with pytest.raises(ClientError, match="InternalError"):
        copier(env.primary, env.shadow, "photos", "k", "photos-acct2")
    assert (copier.server_side, copier.through_host) == (0, 0)


# -- the command line, over HTTP ------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    moto = MotoServer()
    try:
        yield moto
    finally:
        moto.stop()


@pytest.fixture
def cli_env(server: MotoServer, tmp_path: Path) -> Accounts:
    return Accounts(server, tmp_path, {"s3": {"photos": "photos-acct2"}})


@needs_conditional_copy
def test_copy_server_side_copies_every_object_without_reading_a_body(cli_env: Accounts) -> None:
    p, s = cli_env.p_s3, cli_env.s_s3
    p.create_bucket(Bucket="photos")
    s.create_bucket(Bucket="photos-acct2")
    for i in range(6):
        p.put_object(
            Bucket="photos",
            Key=f"acme/{i}",
            Body=f"object {i}".encode(),
            Metadata={"n": str(i)},
            Tagging="tier=gold" if i % 2 else "",
        )
    proxy = FaultProxy((cli_env.server.host, cli_env.server.port))
    try:
        proxy.set(enforce_owner_acl())
        result = cli_env.cli.run(
            "copy", "s3", "--bucket", "photos", "--server-side", "--json", shadow_url=proxy.url
        )
        assert proxy.requests["error"] == 0  # every create carried the owner ACL
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["copied"] == 6
    assert report["server_side"] == {"copied_in_s3": 6, "copied_through_host": 0}
    assert report["requests"]["shadow"].get("CopyObject") == 6
    assert "PutObject" not in report["requests"]["shadow"]
    assert "GetObject" not in report["requests"]["primary"]
    diff = cli_env.cli.run("diff", "s3", "--bucket", "photos", "--metadata")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert PRIMARY_ACCOUNT != SHADOW_ACCOUNT


def test_server_side_is_an_s3_option_only(cli_env: Accounts) -> None:
    result = cli_env.cli.run("copy", "dynamodb", "--table", "orders", "--server-side")
    assert result.returncode == 2
    assert "--server-side" in result.stderr
