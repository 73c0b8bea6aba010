"""dualwrite.testing.moto_accounts and the pytest fixtures users get from the pytest11 plugin."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

import dualwrite
from dualwrite.testing import MotoAccounts, moto_accounts

pytest_plugins = ["pytester"]


def _plugin_args() -> list[str]:
    """Load the plugin by name unless its entry point is installed (then pytest loads it)."""
    installed = any(
        ep.value == "dualwrite.pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )
    return [] if installed else ["-p", "dualwrite.pytest_plugin"]


def _body(accounts: MotoAccounts, side: str, bucket: str, key: str) -> bytes:
    client = accounts.primary_client("s3") if side == "primary" else accounts.shadow_client("s3")
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]


def test_two_accounts_and_a_wrapped_client_in_one_line() -> None:
    with moto_accounts() as accounts:
        s3 = accounts.wrap("s3", buckets=["photos"])
        with dualwrite.tenant("acme"):
            s3.put_object(Bucket="photos", Key="acme/cat.jpg", Body=b"meow")
        assert _body(accounts, "primary", "photos", "acme/cat.jpg") == b"meow"
        assert _body(accounts, "shadow", "photos-shadow", "acme/cat.jpg") == b"meow"
        # Each bucket lives in its own account.
        assert [b["Name"] for b in accounts.primary_client("s3").list_buckets()["Buckets"]] == [
            "photos"
        ]
        assert [b["Name"] for b in accounts.shadow_client("s3").list_buckets()["Buckets"]] == [
            "photos-shadow"
        ]
        assert accounts.recorder.kinds() == ["shadow_written"]
        identity = accounts.shadow_client("sts").get_caller_identity()
        assert identity["Account"] == accounts.shadow_account == "111111111111"


def test_options_reach_the_writer() -> None:
    with moto_accounts(region="eu-west-1", shadow_account="222222222222") as accounts:
        s3 = accounts.wrap("s3", buckets=["photos"], names={"photos": "photos-2"}, flag=False)
        s3.put_object(Bucket="photos", Key="k", Body=b"x")
        assert (
            accounts.shadow_client("s3").list_objects_v2(Bucket="photos-2").get("Contents") is None
        )
        assert accounts.recorder.events == []
        assert accounts.shadow_client("s3").get_bucket_location(Bucket="photos-2")[
            "LocationConstraint"
        ] == ("eu-west-1")
        assert accounts.shadow_client("sts").get_caller_identity()["Account"] == "222222222222"


def test_dynamodb_keeps_table_names() -> None:
    with moto_accounts() as accounts:
        schema: dict[str, Any] = {
            "TableName": "orders",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        }
        accounts.primary_client("dynamodb").create_table(**schema)
        accounts.shadow_client("dynamodb").create_table(**schema)
        ddb = accounts.wrap("dynamodb", names={})
        ddb.put_item(TableName="orders", Item={"pk": {"S": "acme#1"}, "n": {"N": "1"}})
        item = accounts.shadow_client("dynamodb").get_item(
            TableName="orders", Key={"pk": {"S": "acme#1"}}
        )["Item"]
        assert item == {"pk": {"S": "acme#1"}, "n": {"N": "1"}}


@pytest.mark.parametrize(
    ("service", "kwargs"),
    [("sqs", {}), ("dynamodb", {"buckets": ["photos"]})],
    ids=["unknown-service", "buckets-for-dynamodb"],
)
def test_wrap_refuses_what_it_cannot_build(service: str, kwargs: dict[str, Any]) -> None:
    with moto_accounts() as accounts, pytest.raises(ValueError, match=r"(?i)s3"):
        accounts.wrap(service, **kwargs)


def test_the_fixtures_in_a_user_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        import dualwrite

        def test_mirrored(dualwrite_s3, dualwrite_accounts, dualwrite_recorder):
            with dualwrite.tenant("acme"):
                dualwrite_s3.put_object(Bucket="photos", Key="acme/1", Body=b"one")
            shadow = dualwrite_accounts.shadow_client("s3")
            assert shadow.get_object(Bucket="photos-shadow", Key="acme/1")["Body"].read() == b"one"
            assert dualwrite_recorder.kinds() == ["shadow_written"]

        def test_dynamodb(dualwrite_dynamodb, dualwrite_accounts):
            assert dualwrite_dynamodb.list_tables()["TableNames"] == []

        def test_isolated(dualwrite_accounts):
            # A new moto state per test: the previous test's bucket is gone.
            assert dualwrite_accounts.primary_client("s3").list_buckets()["Buckets"] == []
        """
    )
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_failing_user_test_fails(pytester: pytest.Pytester) -> None:
    """The fixtures do not swallow the user's assertion (a test of the test helper)."""
    pytester.makepyfile(
        test_user="""
        def test_not_mirrored(dualwrite_s3, dualwrite_accounts):
            dualwrite_s3.put_object(Bucket="photos", Key="k", Body=b"x")
            shadow = dualwrite_accounts.shadow_client("s3")
            assert "Contents" not in shadow.list_objects_v2(Bucket="photos-shadow")
        """
    )
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
