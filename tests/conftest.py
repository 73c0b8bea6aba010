"""Two AWS accounts on moto, and a shadow that enforces what AWS enforces.

The primary is moto's default account; the shadow is account 111111111111, reached the way a real
service reaches it: STS AssumeRole. moto keeps buckets and tables per account, so where data
landed is proved by reading each account.
"""

from __future__ import annotations

import contextlib
import os
import threading
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


@pytest.fixture(autouse=True)
def hermetic_journal(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Point ``journal="auto"`` (the default) at a fresh file of this test, never at the user's
    state directory; child processes inherit it."""
    path = str(tmp_path_factory.mktemp("journal") / "journal.sqlite3")
    monkeypatch.setenv("DUALWRITE_JOURNAL", path)
    return path


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


# -- DynamoDB ------------------------------------------------------------------------------------


def create_table(client: Any, name: str, *, sort_key: bool = False) -> None:
    """Create an on-demand table keyed ``pk`` (string), plus ``sk`` (number) if asked."""
    schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
    if sort_key:
        schema.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "sk", "AttributeType": "N"})
    client.create_table(
        TableName=name,
        KeySchema=schema,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
    )


class DynamoEnv:
    """A table in each account, and plain low-level readers to prove what landed where.

    ``primary``/``shadow`` are the objects a test wraps (low-level clients, or service
    resources with ``level="resource"``); ``p_raw``/``s_raw`` are separate low-level clients
    that are never wrapped and never carry test handlers.
    """

    def __init__(
        self,
        accounts: Accounts,
        *,
        level: str = "client",
        table: str = "orders",
        shadow_table: str | None = None,
        sort_key: bool = False,
    ) -> None:
        self.accounts = accounts
        self.level = level
        self.table = table
        self.shadow_table = shadow_table or table
        self.p_raw = accounts.client("primary", "dynamodb")
        self.s_raw = accounts.client("shadow", "dynamodb")
        create_table(self.p_raw, self.table, sort_key=sort_key)
        create_table(self.s_raw, self.shadow_table, sort_key=sort_key)
        if level == "client":
            self.primary = accounts.client("primary", "dynamodb")
            self.shadow = accounts.client("shadow", "dynamodb")
        else:
            self.primary = accounts.resource("primary", "dynamodb")
            self.shadow = accounts.resource("shadow", "dynamodb")

    @property
    def names(self) -> dict[str, str] | None:
        return None if self.shadow_table == self.table else {self.table: self.shadow_table}

    def wrap(self, **options: Any) -> Any:
        options.setdefault("flag", True)
        return dualwrite.wrap(self.primary, shadow=self.shadow, names=self.names, **options)

    def get(self, side: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """The item at ``key`` (typed) on one side, by a consistent read; ``None`` if absent."""
        client = self.p_raw if side == "primary" else self.s_raw
        table = self.table if side == "primary" else self.shadow_table
        return client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")  # type: ignore[no-any-return]

    def scan(self, side: str) -> list[dict[str, Any]]:
        """Every item on one side, typed, sorted by key."""
        client = self.p_raw if side == "primary" else self.s_raw
        table = self.table if side == "primary" else self.shadow_table
        pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
        items = [_sets_sorted(item) for page in pages for item in page["Items"]]
        return sorted(items, key=lambda i: (i["pk"]["S"], i.get("sk", {}).get("N", "")))


def _sets_sorted(value: Any) -> Any:
    """A typed item with its string, number and binary sets sorted: DynamoDB sets have no order
    (moto keeps the order of the request, which a copy of a Python set may change)."""
    if isinstance(value, dict):
        return {
            k: sorted(v) if k in ("SS", "NS", "BS") and isinstance(v, list) else _sets_sorted(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_sets_sorted(v) for v in value]
    return value


@pytest.fixture
def ddb(aws: Accounts) -> DynamoEnv:
    """A low-level client pair over table ``orders`` in each account."""
    return DynamoEnv(aws)


class LeaveUnprocessed:
    """Make a client's BatchWriteItem leave chosen requests unprocessed, as DynamoDB may.

    A ``before-call`` handler on ``client`` splits each request: the requests ``choose`` picks
    are answered back as ``UnprocessedItems`` (typed, as on the wire), the others are written
    for real through ``raw`` (an unwrapped client of the same account). botocore then parses and
    post-processes the canned answer as usual (a resource deserialises it).
    """

    def __init__(self, client: Any, raw: Any) -> None:
        self.raw = raw
        self.choose: Any = lambda table, request: False
        self.left: list[dict[str, Any]] = []
        client.meta.events.register(
            "before-call.dynamodb.BatchWriteItem",
            self._handle,
            unique_id=f"dualwrite-tests-unprocessed-{id(self)}",
        )

    def _handle(self, params: dict[str, Any], **_: Any) -> Any:
        import json  # noqa: PLC0415

        from botocore.awsrequest import AWSResponse  # noqa: PLC0415

        body = json.loads(params["body"])
        keep: dict[str, list[Any]] = {}
        leave: dict[str, list[Any]] = {}
        for table, requests in body["RequestItems"].items():
            for request in requests:
                target = leave if self.choose(table, request) else keep
                target.setdefault(table, []).append(request)
        if not leave:
            return None  # the real call goes through
        if keep:
            self.raw.batch_write_item(RequestItems=keep)
        self.left.extend(r for requests in leave.values() for r in requests)
        parsed = {
            "UnprocessedItems": leave,
            "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0},
        }
        return AWSResponse(params["url"], 200, {}, None), parsed


@pytest.fixture(scope="module")
def shared_accounts() -> Iterator[Accounts]:
    """One in-process moto and one pair of sessions for a whole module (see ``fresh_tables``).

    A boto3 session's first client loads botocore's models (about 0.1 s); sharing the sessions
    keeps a module of DynamoDB tests fast.
    """
    with mock_aws():
        yield Accounts()


def drop_tables(accounts: Accounts, regions: tuple[str, ...] = (REGION, "eu-west-1")) -> None:
    """Delete every table of both accounts in ``regions``: a clean slate for the next test."""
    cache: dict[tuple[str, str], Any] = accounts.__dict__.setdefault("_table_droppers", {})
    for side in ("primary", "shadow"):
        for region in regions:
            if (side, region) not in cache:
                cache[(side, region)] = accounts.client(side, "dynamodb", region_name=region)
            client = cache[(side, region)]
            for name in client.list_tables()["TableNames"]:
                client.delete_table(TableName=name)


_PARSED_MODELS: dict[str, Any] = {}


@pytest.fixture(scope="module")
def parse_botocore_models_once() -> Iterator[None]:
    """Parse each botocore JSON model once per test run, not once per boto3 session.

    Every test builds fresh sessions (a new botocore loader each) and parsing the S3, STS and
    endpoint models again costs about 0.1-0.4 s a test. botocore treats loaded models as
    read-only (its own loader shares them between clients), so sharing them across sessions
    changes nothing but the time. Opt in per module with
    ``pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")``.
    """
    import botocore.loaders  # noqa: PLC0415 - only needed here

    original = botocore.loaders.JSONFileLoader.load_file

    def load_file(self: Any, file_path: str) -> Any:
        if file_path not in _PARSED_MODELS:
            _PARSED_MODELS[file_path] = original(self, file_path)
        return _PARSED_MODELS[file_path]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.loaders.JSONFileLoader, "load_file", load_file)
        yield


@contextlib.contextmanager
def atomic_moto_requests() -> Iterator[None]:
    """Make each request to in-process moto atomic, as each request to AWS is.

    moto's in-process backends take no locks: a copy that reads a key while another thread
    replaces or deletes it can fail inside moto (a closed buffer, a ``KeyError``), and a read
    racing a write can see a half-made change no real service would show. Serialising moto's own
    handling of each request removes those races from concurrency tests, so what they check is
    the wrapper's ordering, with every wrapper thread and background worker still running
    concurrently around the requests.
    """
    from moto.core.botocore_stubber import BotocoreStubber  # noqa: PLC0415

    lock = threading.RLock()
    original = BotocoreStubber.__call__

    def atomic(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = atomic  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.__call__ = original  # type: ignore[method-assign]


@pytest.fixture
def atomic_moto() -> Iterator[None]:
    """:func:`atomic_moto_requests` for one test."""
    with atomic_moto_requests():
        yield


@pytest.fixture(scope="module")
def atomic_moto_module() -> Iterator[None]:
    """:func:`atomic_moto_requests` for a whole module (Hypothesis tests with module fixtures)."""
    with atomic_moto_requests():
        yield
