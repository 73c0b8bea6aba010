"""A wrapped client is a drop-in: everything but a mirrored write is the primary's own."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from boto3.resources.base import ServiceResource
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from conftest import S3Env, record_requests

import dualwrite
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")


@pytest.fixture
def seeded(s3: S3Env) -> S3Env:
    s3.primary.put_object(Bucket="photos", Key="a/1", Body=b"one", Tagging="t=1")
    s3.primary.put_object(Bucket="photos", Key="a/2", Body=b"two")
    return s3


def test_isinstance_and_identity_of_primary_attributes(s3: S3Env) -> None:
    client = s3.wrap()
    assert isinstance(client, type(s3.primary))
    assert isinstance(client, BaseClient)
    assert type(client) is not type(s3.primary)  # a proxy, yet passes the checks
    assert client.meta is s3.primary.meta
    assert client.exceptions is s3.primary.exceptions
    assert client.meta.events is s3.primary.meta.events
    assert client.meta.region_name == "us-east-1"
    assert client.can_paginate("list_objects_v2") is True
    assert client.can_paginate("put_object") is False
    assert "dualwrite proxy" in repr(client)


def test_exceptions_catchable_through_the_proxy(s3: S3Env) -> None:
    client = s3.wrap()
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket="photos", Key="absent")
    with pytest.raises(client.exceptions.NoSuchBucket):
        client.put_object(Bucket="ghost", Key="k", Body=b"x")


def test_reads_never_reach_the_shadow(seeded: S3Env, tmp_path: Path) -> None:
    s3 = seeded
    rec = RecordingHook()
    client = s3.wrap(hooks=[rec])
    shadow_sent = record_requests(s3.shadow)
    primary_sent = record_requests(s3.primary)

    assert client.get_object(Bucket="photos", Key="a/1")["Body"].read() == b"one"
    assert client.head_object(Bucket="photos", Key="a/2")["ContentLength"] == 3
    assert client.list_objects_v2(Bucket="photos")["KeyCount"] == 2
    client.list_objects(Bucket="photos")
    client.list_object_versions(Bucket="photos")
    assert client.get_object_tagging(Bucket="photos", Key="a/1")["TagSet"] == [
        {"Key": "t", "Value": "1"}
    ]
    client.get_object_acl(Bucket="photos", Key="a/1")
    client.head_bucket(Bucket="photos")
    client.get_bucket_location(Bucket="photos")
    client.list_buckets()
    client.list_multipart_uploads(Bucket="photos")
    client.get_bucket_versioning(Bucket="photos")
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket="photos", PaginationConfig={"PageSize": 1}
    )
    assert [o["Key"] for page in pages for o in page.get("Contents", [])] == ["a/1", "a/2"]
    client.get_waiter("object_exists").wait(Bucket="photos", Key="a/1")
    client.download_file("photos", "a/1", str(tmp_path / "a1"))
    buffer = io.BytesIO()
    client.download_fileobj("photos", "a/2", buffer)
    assert (tmp_path / "a1").read_bytes() == b"one"
    assert buffer.getvalue() == b"two"

    assert shadow_sent == []
    assert rec.events == []
    assert "GetObject" in primary_sent
    assert "ListObjectsV2" in primary_sent


def test_control_plane_goes_to_the_primary_only(s3: S3Env) -> None:
    rec = RecordingHook()
    client = s3.wrap(hooks=[rec])
    shadow_sent = record_requests(s3.shadow)
    client.create_bucket(Bucket="audit-logs")
    client.put_bucket_versioning(Bucket="photos", VersioningConfiguration={"Status": "Enabled"})
    client.put_bucket_tagging(Bucket="photos", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    client.delete_bucket(Bucket="audit-logs")
    assert shadow_sent == []
    assert rec.events == []
    assert s3.primary.get_bucket_versioning(Bucket="photos")["Status"] == "Enabled"
    assert "Status" not in s3.shadow.get_bucket_versioning(Bucket="photos-acct2")


def test_paginators_and_waiters_are_the_primarys(seeded: S3Env) -> None:
    s3 = seeded
    client = s3.wrap()
    paginator = client.get_paginator("list_objects_v2")
    assert type(paginator).__name__ == type(s3.primary.get_paginator("list_objects_v2")).__name__
    # The paginator calls the primary client's own method.
    assert paginator._method.__self__ is s3.primary
    waiter = client.get_waiter("object_not_exists")
    with pytest.raises(Exception, match="Max attempts exceeded"):
        waiter.wait(Bucket="photos", Key="a/1", WaiterConfig={"Delay": 0, "MaxAttempts": 1})


def test_generate_presigned_url_and_post_are_the_primarys(s3: S3Env) -> None:
    client = s3.wrap()
    shadow_key = s3.shadow._request_signer._credentials.access_key
    primary_key = s3.primary._request_signer._credentials.access_key
    assert shadow_key != primary_key
    url = client.generate_presigned_url(
        "put_object", Params={"Bucket": "photos", "Key": "k"}, ExpiresIn=60
    )
    parsed = urlparse(url)
    assert parsed.hostname is not None
    assert "photos" in parsed.hostname + parsed.path
    assert parsed.path.endswith("/k")
    query = parse_qs(parsed.query)
    assert query["AWSAccessKeyId"] == [primary_key]
    assert "photos-acct2" not in url
    # Same as the primary's own (the signature covers the expiry, so pin it to one second).
    expires = query["Expires"][0]
    plain = s3.primary.generate_presigned_url(
        "put_object", Params={"Bucket": "photos", "Key": "k"}, ExpiresIn=60
    )
    if parse_qs(urlparse(plain).query)["Expires"][0] == expires:
        assert plain == url
    post = client.generate_presigned_post("photos", "k")
    assert post["fields"]["AWSAccessKeyId"] == primary_key
    assert "photos-acct2" not in post["url"]


# -- wrap accepts a client, a service resource, a Bucket ------------------------------------------


def test_wrap_service_resource(s3: S3Env) -> None:
    rec = RecordingHook()
    original = s3.accounts.resource("primary", "s3")
    original_client = original.meta.client
    resource = dualwrite.wrap(original, shadow=s3.shadow, names=s3.names, flag=True, hooks=[rec])
    assert isinstance(resource, type(original))
    assert isinstance(resource, ServiceResource)
    assert resource is not original
    resource.Object("photos", "k").put(Body=b"via resource")
    assert s3.shadow_body("k") == b"via resource"
    # The caller's own resource is unchanged, and writes through it are not mirrored.
    assert original.meta.client is original_client
    assert original.meta.client is not resource.meta.client
    assert "dualwrite" not in repr(original.meta.client)
    original.Object("photos", "plain").put(Body=b"not mirrored")
    assert s3.keys("shadow") == ["k"]
    assert rec.kinds() == ["shadow_written"]
    # Sub-resources and collections read through the primary.
    assert [o.key for o in resource.Bucket("photos").objects.all()] == ["k", "plain"]


def test_wrap_bucket_pair_names_itself(s3: S3Env) -> None:
    original = s3.accounts.resource("primary", "s3").Bucket("photos")
    original_client = original.meta.client
    shadow_bucket = s3.accounts.resource("shadow", "s3").Bucket("photos-acct2")
    bucket = dualwrite.wrap(original, shadow=shadow_bucket, flag=True)
    assert type(bucket) is type(original)
    assert bucket.name == "photos"
    bucket.put_object(Key="k", Body=b"via bucket")
    assert s3.shadow_body("k") == b"via bucket"
    assert original.meta.client is original_client
    original.put_object(Key="plain", Body=b"x")
    assert s3.keys("shadow") == ["k"]


def test_wrap_bucket_with_a_shadow_client_needs_names(s3: S3Env) -> None:
    rec = RecordingHook()
    original = s3.accounts.resource("primary", "s3").Bucket("photos")
    bucket = dualwrite.wrap(original, shadow=s3.shadow, names=s3.names, flag=True, hooks=[rec])
    bucket.Object("k").put(Body=b"x")
    assert s3.shadow_body("k") == b"x"


def test_wrap_object_resource(s3: S3Env, tmp_path: Path) -> None:
    original = s3.accounts.resource("primary", "s3").Object("photos", "k")
    obj = dualwrite.wrap(original, shadow=s3.shadow, names=s3.names, flag=True)
    assert type(obj) is type(original)
    obj.put(Body=b"via object")
    assert s3.shadow_body("k") == b"via object"
    path = tmp_path / "f"
    path.write_bytes(b"uploaded")
    obj.upload_file(str(path))
    assert s3.shadow_body("k") == b"uploaded"
    original.put(Body=b"plain")  # the caller's own object is not wrapped
    assert s3.shadow_body("k") == b"uploaded"


def test_wrapped_client_from_a_resource_rebinds_sub_resources(s3: S3Env) -> None:
    resource = dualwrite.wrap(
        s3.accounts.resource("primary", "s3"), shadow=s3.shadow, names=s3.names, flag=True
    )
    bucket = resource.Bucket("photos")
    obj = bucket.Object("k")
    assert bucket.meta.client is resource.meta.client
    assert obj.meta.client is resource.meta.client
    obj.put(Body=b"x")
    obj.reload()
    assert obj.content_length == 1
    assert s3.shadow_body("k") == b"x"


def test_errors_through_resources_are_the_primarys(s3: S3Env) -> None:
    resource = dualwrite.wrap(
        s3.accounts.resource("primary", "s3"), shadow=s3.shadow, names=s3.names, flag=True
    )
    with pytest.raises(ClientError) as info:
        resource.Object("ghost", "k").put(Body=b"x")
    assert info.value.response["Error"]["Code"] == "NoSuchBucket"


def test_wrapping_twice_gives_independent_wrappers(s3: S3Env) -> None:
    on = s3.wrap(flag=True)
    off = s3.wrap(flag=False)
    off.put_object(Bucket="photos", Key="off", Body=b"x")
    on.put_object(Bucket="photos", Key="on", Body=b"x")
    assert s3.keys("shadow") == ["on"]


def test_unknown_attributes_raise_like_the_client(s3: S3Env) -> None:
    client = s3.wrap()
    with pytest.raises(AttributeError):
        client.no_such_method  # noqa: B018
    assert hasattr(client, "put_object")
    original: Any = s3.primary
    assert set(dir(original)) <= set(dir(client))


# -- asynchronous clients: an async side needs an async other side (tests/test_async_*.py) ----


class AioBaseClient:
    """A stand-in for aiobotocore's client class: only what the check looks at."""

    __module__ = "aiobotocore.client"

    async def _make_api_call(self, operation_name: str, api_params: dict[str, Any]) -> Any:
        return {}


class CoroutineClient:
    """An async client from a package the check does not know by name."""

    async def _make_api_call(self, operation_name: str, api_params: dict[str, Any]) -> Any:
        return {}


@pytest.mark.parametrize("async_client", [AioBaseClient, CoroutineClient])
@pytest.mark.parametrize("side", ["primary", "shadow"])
def test_an_async_client_beside_a_boto3_one_is_refused(
    s3: S3Env, async_client: type, side: str
) -> None:
    primary = async_client() if side == "primary" else s3.primary
    shadow = async_client() if side == "shadow" else s3.shadow
    with pytest.raises(dualwrite.exceptions.ConfigurationError) as info:
        dualwrite.wrap(primary, shadow=shadow, names=s3.names, flag=True)
    assert isinstance(info.value, ValueError)
    assert f"the {side} is an asynchronous" in str(info.value)


@pytest.mark.parametrize("async_client", [AioBaseClient, CoroutineClient])
def test_an_async_object_that_is_no_client_is_refused(s3: S3Env, async_client: type) -> None:
    with pytest.raises(dualwrite.exceptions.ConfigurationError, match="wrap\\(\\) takes"):
        dualwrite.wrap(async_client(), shadow=async_client(), names=s3.names, flag=True)
