"""dualwrite.sessions: shadow sessions whose assumed-role credentials renew; shadow settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from conftest import PRIMARY_ACCOUNT, REGION, SHADOW_ACCOUNT, SHADOW_ROLE, Accounts
from moto import mock_aws

import dualwrite
from dualwrite.exceptions import ConfigurationError
from dualwrite.sessions import assume_role_session, shadow_config

STS_URL = "https://sts.us-east-1.amazonaws.com"


class StsCalls:
    """The AssumeRole requests a base session sends: URL and parameters of each."""

    def __init__(self, base: boto3.Session) -> None:
        self.urls: list[str] = []
        self.params: list[dict[str, Any]] = []
        events = base._session.get_component("event_emitter")
        events.register("before-send.sts.AssumeRole", self._sent)
        events.register("provide-client-params.sts.AssumeRole", self._params)

    def _sent(self, request: Any, **_: Any) -> None:
        self.urls.append(request.url)

    def _params(self, params: dict[str, Any], **_: Any) -> None:
        self.params.append(dict(params))


@pytest.fixture
def base() -> Iterator[boto3.Session]:
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def test_the_session_acts_in_the_role_account(base: boto3.Session) -> None:
    calls = StsCalls(base)
    shadow = assume_role_session(SHADOW_ROLE, base_session=base, session_name="svc-orders")
    assert calls.urls == []  # nothing is assumed before the first request
    assert shadow.client("sts").get_caller_identity()["Account"] == SHADOW_ACCOUNT
    shadow.client("s3").create_bucket(Bucket="photos-acct2")
    # Data placement: the bucket is the shadow account's, not the primary's.
    accounts = Accounts()
    assert [b["Name"] for b in accounts.client("shadow", "s3").list_buckets()["Buckets"]] == [
        "photos-acct2"
    ]
    assert base.client("sts").get_caller_identity()["Account"] == PRIMARY_ACCOUNT
    assert base.client("s3").list_buckets()["Buckets"] == []
    assert [p["RoleSessionName"] for p in calls.params] == ["svc-orders"]
    assert shadow.region_name == REGION


def test_credentials_are_assumed_once_while_fresh(base: boto3.Session) -> None:
    calls = StsCalls(base)
    shadow = assume_role_session(SHADOW_ROLE, base_session=base, duration_seconds=3600)
    client = shadow.client("s3")
    for _ in range(3):
        client.list_buckets()
    assert len(calls.urls) == 1


def test_credentials_renew_before_they_expire(base: boto3.Session) -> None:
    """Credentials within botocore's refresh window are assumed again before the next request.

    900 s credentials are always inside the 15-minute advisory window, so each request renews
    them: a client made once keeps working with new keys, which is what a long copy needs when
    the role's hour runs out.
    """
    calls = StsCalls(base)
    shadow = assume_role_session(SHADOW_ROLE, base_session=base, duration_seconds=900)
    client = shadow.client("s3")
    client.create_bucket(Bucket="photos-acct2")
    first = shadow.get_credentials().get_frozen_credentials().access_key
    client.put_object(Bucket="photos-acct2", Key="k", Body=b"x")
    second = shadow.get_credentials().get_frozen_credentials().access_key
    assert len(calls.urls) >= 2
    assert first != second
    assert [p["DurationSeconds"] for p in calls.params] == [900] * len(calls.params)
    assert client.get_object(Bucket="photos-acct2", Key="k")["Body"].read() == b"x"


def test_sts_has_its_own_endpoint(base: boto3.Session) -> None:
    """The S3/DynamoDB endpoint URL of a client never becomes the STS endpoint."""
    calls = StsCalls(base)
    shadow = assume_role_session(SHADOW_ROLE, base_session=base, sts_endpoint_url=STS_URL)
    s3 = shadow.client("s3", endpoint_url="https://s3.us-east-1.amazonaws.com")
    s3.list_buckets()
    assert calls.urls == [STS_URL + "/"]


def test_default_sts_endpoint_is_regional(base: boto3.Session) -> None:
    calls = StsCalls(base)
    shadow = assume_role_session(SHADOW_ROLE, base_session=base, region="eu-west-1")
    shadow.client("s3", endpoint_url="https://s3.eu-west-1.amazonaws.com").list_buckets()
    assert len(calls.urls) == 1
    assert "sts" in calls.urls[0]
    assert "s3." not in calls.urls[0]
    assert shadow.region_name == "eu-west-1"


def test_external_id_is_sent(base: boto3.Session) -> None:
    calls = StsCalls(base)
    shadow = assume_role_session(SHADOW_ROLE, base_session=base, external_id="xyz")
    shadow.client("s3").list_buckets()
    assert calls.params[0]["ExternalId"] == "xyz"


def test_a_wrapped_client_mirrors_into_the_role_account(base: boto3.Session) -> None:
    shadow = assume_role_session(SHADOW_ROLE, base_session=base)
    primary = base.client("s3")
    primary.create_bucket(Bucket="photos")
    shadow_s3 = shadow.client("s3", config=shadow_config())
    shadow_s3.create_bucket(Bucket="photos-acct2")
    s3 = dualwrite.wrap(
        primary, shadow=shadow_s3, names={"photos": "photos-acct2"}, flag=True, journal=None
    )
    with dualwrite.tenant("acme"):
        for n in range(3):
            s3.put_object(Bucket="photos", Key=f"acme/{n}", Body=b"data")
    listed = Accounts().client("shadow", "s3").list_objects_v2(Bucket="photos-acct2")
    assert [o["Key"] for o in listed["Contents"]] == ["acme/0", "acme/1", "acme/2"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"role_arn": "dualwrite-shadow"}, "IAM role ARN", id="not-an-arn"),
        pytest.param(
            {"role_arn": "arn:aws:iam::111111111111:user/bob"}, "IAM role ARN", id="user-arn"
        ),
        pytest.param({"duration_seconds": 60}, "between 900 and 43200", id="too-short"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    kwargs = {"role_arn": SHADOW_ROLE, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        assume_role_session(**kwargs)


def test_no_base_credentials_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    with pytest.raises(ConfigurationError, match="no credentials to assume"):
        assume_role_session(SHADOW_ROLE, base_session=boto3.Session(region_name=REGION))


def test_shadow_config_is_short_and_bounded() -> None:
    config = shadow_config()
    assert config.connect_timeout == 1.0
    assert config.read_timeout == 5.0
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    tuned = shadow_config(read_timeout=30, max_attempts=1, tcp_keepalive=True)
    assert tuned.read_timeout == 30
    assert tuned.retries == {"mode": "standard", "total_max_attempts": 1}
    assert tuned.tcp_keepalive is True


@pytest.mark.parametrize(
    "kwargs",
    [{"connect_timeout": 0}, {"read_timeout": -1}, {"max_attempts": 0}],
    ids=["connect", "read", "attempts"],
)
def test_shadow_config_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        shadow_config(**kwargs)


def test_shadow_config_bounds_attempts_against_an_unreachable_shadow() -> None:
    """Attempts to a closed port stop at max_attempts: no retry storm."""
    client = boto3.Session(region_name=REGION).client(
        "s3", endpoint_url="http://127.0.0.1:9", config=shadow_config(max_attempts=2)
    )
    attempts: list[str] = []
    client.meta.events.register("before-send", lambda **_: attempts.append("x"))
    with pytest.raises(EndpointConnectionError):
        client.list_buckets()
    assert len(attempts) == 2
