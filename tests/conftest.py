"""Two AWS accounts on moto, and a shadow that enforces what AWS enforces.

The primary is moto's default account; the shadow is account 111111111111, reached the way a real
service reaches it: STS AssumeRole. moto keeps buckets and tables per account, so where data
landed is proved by reading each account.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

import dualwrite
from dualwrite.testing import RecordingHook

REGION = "us-east-1"
PRIMARY_ACCOUNT = "123456789012"
SHADOW_ACCOUNT = "111111111111"
SHADOW_ROLE = f"arn:aws:iam::{SHADOW_ACCOUNT}:role/dualwrite-shadow"

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
os.environ.pop("AWS_PROFILE", None)


class Accounts:
    """boto3 sessions for the two accounts."""

    def __init__(self, endpoint_url: str | None = None) -> None:
        self.endpoint_url = endpoint_url
        self.primary = boto3.Session(region_name=REGION)
        creds = self.primary.client("sts", endpoint_url=endpoint_url).assume_role(
            RoleArn=SHADOW_ROLE, RoleSessionName="dualwrite-tests"
        )["Credentials"]
        self.shadow = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=REGION,
        )

    def client(self, side: str, service: str, **kwargs: Any) -> Any:
        session = self.primary if side == "primary" else self.shadow
        return session.client(service, endpoint_url=self.endpoint_url, **kwargs)

    def resource(self, side: str, service: str, **kwargs: Any) -> Any:
        session = self.primary if side == "primary" else self.shadow
        return session.resource(service, endpoint_url=self.endpoint_url, **kwargs)


def enforce_owner_acl(client: Any) -> list[dict[str, Any]]:
    """Make ``client`` fail any object-creating request that lacks ``bucket-owner-full-control``.

    AWS rejects other ACLs on a BucketOwnerEnforced bucket, and a cross-account object without
    this ACL is unreadable by the bucket owner; moto enforces neither, so the tests do. Returns
    the list of (operation, params) the shadow received, for assertions.
    """
    seen: list[dict[str, Any]] = []

    def check(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append({"operation": model.name, "params": dict(params)})
        if model.name in ("PutObject", "CopyObject", "CreateMultipartUpload"):
            grants = [k for k in params if k.startswith("Grant")]
            if params.get("ACL") != "bucket-owner-full-control" or grants:
                raise ClientError(
                    {
                        "Error": {
                            "Code": "AccessControlListNotSupported",
                            "Message": "The bucket does not allow ACLs",
                        }
                    },
                    model.name,
                )

    client.meta.events.register(
        "provide-client-params.s3.*", check, unique_id="dualwrite-tests-enforce-acl"
    )
    return seen


@pytest.fixture
def aws() -> Iterator[Accounts]:
    """In-process moto with two accounts."""
    with mock_aws():
        yield Accounts()


@pytest.fixture
def recorder() -> RecordingHook:
    return RecordingHook()


class S3Env:
    """Primary and shadow S3 clients with a bucket pair, the shadow enforcing the owner ACL."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        self.primary = accounts.client("primary", "s3")
        self.shadow = accounts.client("shadow", "s3")
        self.shadow_calls = enforce_owner_acl(self.shadow)
        self.primary.create_bucket(Bucket="photos")
        self.shadow.create_bucket(Bucket="photos-acct2")
        self.names = {"photos": "photos-acct2"}

    def wrap(self, **options: Any) -> Any:
        options.setdefault("flag", True)
        return dualwrite.wrap(self.primary, shadow=self.shadow, names=self.names, **options)

    def primary_body(self, key: str, bucket: str = "photos") -> bytes:
        return self.primary.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]

    def shadow_body(self, key: str, bucket: str = "photos-acct2") -> bytes:
        return self.shadow.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]

    def keys(self, side: str) -> list[str]:
        client = self.primary if side == "primary" else self.shadow
        bucket = "photos" if side == "primary" else "photos-acct2"
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture
def s3(aws: Accounts) -> S3Env:
    return S3Env(aws)


def record_requests(client: Any) -> list[str]:
    """Record the operation name of every HTTP request ``client`` sends (retries included).

    ``before-send`` fires once per attempt, just before the bytes leave, so an empty list proves
    that the client never reached its endpoint.
    """
    sent: list[str] = []

    def on_send(event_name: str, **_: Any) -> None:
        sent.append(event_name.rsplit(".", 1)[-1])

    client.meta.events.register("before-send", on_send, unique_id="dualwrite-tests-requests")
    return sent
