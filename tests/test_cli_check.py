"""``dualwrite check`` through its real entry point, against moto over HTTP with two accounts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.cli import Accounts, reject_acls
from _support.proxy import FaultProxy
from _support.servers import MotoServer


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    moto = MotoServer()
    try:
        yield moto
    finally:
        moto.stop()


@pytest.fixture
def env(server: MotoServer, tmp_path: Path) -> Accounts:
    return Accounts(server, tmp_path, {"s3": {"photos": "photos-acct2"}})


def _lines(stdout: str) -> dict[str, str]:
    """Check name -> its line, for the PASS/FAIL/WARN/INFO lines."""
    found = {}
    for line in stdout.splitlines():
        status, _, rest = line.partition("  ")
        if status in ("PASS", "FAIL", "WARN", "INFO"):
            found[rest.split(":", 1)[0].strip()] = line
    return found


def _buckets(env: Accounts) -> None:
    env.p_s3.create_bucket(Bucket="photos")
    env.p_s3.put_object(Bucket="photos", Key="acme/cat.jpg", Body=b"meow", Tagging="a=b")
    env.s_s3.create_bucket(Bucket="photos-acct2")
    env.s_s3.put_bucket_ownership_controls(
        Bucket="photos-acct2",
        OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    )


def test_check_s3_passes_on_a_good_shadow_and_leaves_nothing_behind(
    env: Accounts,
) -> None:
    _buckets(env)
    result = env.cli.run("check", "s3", "--bucket", "photos")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result.stdout)
    for name in (
        "primary bucket listable",
        "primary objects readable",
        "shadow bucket reachable",
        "shadow Object Ownership",
        "probe object accepted with ACL=bucket-owner-full-control",
        "conditional writes honoured (If-None-Match)",
        "probe readable by the shadow account",
        "probe deleted (conditional delete, If-Match)",
    ):
        assert lines[name].startswith("PASS"), lines.get(name)
    assert "BucketOwnerEnforced" in lines["shadow Object Ownership"]
    assert lines["versioning (primary)"].startswith("INFO")
    assert lines["default encryption (shadow)"].startswith("INFO")
    assert "FAIL" not in result.stdout
    assert result.stdout.strip().endswith("0 failed, 0 warning(s)")
    # The probe was deleted; the primary was only read.
    assert "Contents" not in env.s_s3.list_objects_v2(Bucket="photos-acct2")
    assert [o["Key"] for o in env.p_s3.list_objects_v2(Bucket="photos")["Contents"]] == [
        "acme/cat.jpg"
    ]


def test_check_s3_fails_clearly_on_a_shadow_that_rejects_the_acl(
    env: Accounts, server: MotoServer
) -> None:
    _buckets(env)
    proxy = FaultProxy((server.host, server.port))
    proxy.set(reject_acls())
    try:
        result = env.cli.run("check", "s3", "--bucket", "photos", shadow_url=proxy.url)
    finally:
        proxy.close()
    assert result.returncode == 1, result.stdout + result.stderr
    line = _lines(result.stdout)["probe object accepted with ACL=bucket-owner-full-control"]
    assert line.startswith("FAIL")
    assert "AccessControlListNotSupported" in line
    assert "-- fix: " in line
    assert "BucketOwnerEnforced" in line.split("-- fix: ")[1]
    assert proxy.requests["error"] == 1  # only the probe was refused
    assert "FAILED: " in result.stdout
    assert "Contents" not in env.s_s3.list_objects_v2(Bucket="photos-acct2")


def test_check_s3_names_what_is_missing(env: Accounts) -> None:
    env.p_s3.create_bucket(Bucket="photos")
    env.p_s3.create_bucket(Bucket="videos")
    missing_bucket = env.cli.run("check", "s3", "--bucket", "photos", "--json")
    unmapped = env.cli.run("check", "s3", "--bucket", "videos")
    assert missing_bucket.returncode == 1
    report = json.loads(missing_bucket.stdout)
    assert report["ok"] is False
    (failed,) = [c for c in report["checks"] if c["status"] == "FAIL"]
    assert failed["name"] == "shadow bucket reachable"
    assert failed["fix"] == "create bucket photos-acct2 in the shadow account"
    assert unmapped.returncode == 1
    assert "no shadow name for bucket 'videos'" in _lines(unmapped.stdout)["shadow bucket name"]


def _table(client: Any, name: str, *, key_type: str = "S", index: bool = True) -> None:
    extra: dict[str, Any] = {}
    attributes = [
        {"AttributeName": "pk", "AttributeType": key_type},
        {"AttributeName": "sk", "AttributeType": "N"},
    ]
    if index:
        attributes.append({"AttributeName": "tenant", "AttributeType": "S"})
        extra["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "byTenant",
                "KeySchema": [{"AttributeName": "tenant", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


def test_check_dynamodb_passes_and_deletes_its_probe(env: Accounts) -> None:
    _table(env.p_ddb, "orders")
    _table(env.s_ddb, "orders")
    env.p_ddb.put_item(TableName="orders", Item={"pk": {"S": "acme"}, "sk": {"N": "1"}})
    result = env.cli.run("check", "dynamodb", "--table", "orders")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result.stdout)
    for name in (
        "primary table exists",
        "shadow table exists",
        "same key schema",
        "same secondary indexes",
        "primary table readable",
        "probe item written",
        "probe item read back",
        "probe item deleted",
    ):
        assert lines[name].startswith("PASS"), lines.get(name)
    assert "pk (HASH, S), sk (RANGE, N)" in lines["same key schema"]
    assert "PAY_PER_REQUEST" in lines["billing mode (shadow)"]
    assert env.s_ddb.scan(TableName="orders")["Count"] == 0


def test_check_dynamodb_fails_on_a_different_key_schema_and_a_missing_index(
    env: Accounts,
) -> None:
    _table(env.p_ddb, "orders")
    _table(env.s_ddb, "orders", key_type="N", index=False)
    result = env.cli.run("check", "dynamodb", "--table", "orders")
    assert result.returncode == 1
    lines = _lines(result.stdout)
    assert lines["same key schema"].startswith("FAIL")
    assert "primary pk (HASH, S), sk (RANGE, N); shadow pk (HASH, N)" in lines["same key schema"]
    assert lines["same secondary indexes"].startswith("FAIL")
    assert "missing on the shadow: byTenant" in lines["same secondary indexes"]
    # No probe is written into a table whose keys do not match.
    assert "probe item written" not in lines


# -- what the check says when the accounts cannot be reached ------------------------------------


def _bare_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no AWS credentials anywhere (no profile, no instance role)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "eu-west-3",
    }
    return env


def test_check_without_credentials_says_so_and_names_the_side(
    env: Accounts, tmp_path: Path
) -> None:
    """No "grant s3:ListBucket" when no grant would help; the error names side and region."""
    _buckets(env)
    argv = [sys.executable, "-m", "dualwrite", "check", "s3", "--bucket", "photos"]
    argv += ["--names", str(env.cli.names), "--primary-endpoint-url", env.cli.url]
    argv += ["--shadow-endpoint-url", env.cli.url]
    result = subprocess.run(
        argv, capture_output=True, text=True, env=_bare_env(tmp_path), timeout=60, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    line = _lines(result.stdout)["primary bucket listable"]
    assert line.startswith("FAIL")
    assert "ListBucket" not in line
    assert "credentials are missing, invalid or expired" in line
    assert "--primary-profile" in line
    assert "primary (account unknown: NoCredentialsError, region eu-west-3" in line


def test_check_with_a_role_but_no_base_credentials_exits_two(env: Accounts, tmp_path: Path) -> None:
    argv = env.cli.argv("check", "s3", "--bucket", "photos")
    result = subprocess.run(
        argv, capture_output=True, text=True, env=_bare_env(tmp_path), timeout=60, check=False
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--shadow-role-arn: no credentials to assume" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_ownership_fix_names_the_bucket(env: Accounts) -> None:
    env.p_s3.create_bucket(Bucket="photos")
    env.s_s3.create_bucket(Bucket="photos-acct2")
    env.s_s3.put_bucket_ownership_controls(
        Bucket="photos-acct2",
        OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]},
    )
    result = env.cli.run("check", "s3", "--bucket", "photos")
    line = _lines(result.stdout)["shadow Object Ownership"]
    assert line.startswith("WARN")
    assert "aws s3api put-bucket-ownership-controls --bucket photos-acct2 " in line


def test_check_names_each_side_account_and_region(env: Accounts) -> None:
    """A failing check is read beside the account and region it ran against."""
    env.p_s3.create_bucket(Bucket="photos")
    result = env.cli.run("check", "s3", "--bucket", "photos", "--json")
    report = json.loads(result.stdout)
    assert report["accounts"] == {
        "primary": f"primary (account 123456789012, region us-east-1, endpoint {env.cli.url})",
        "shadow": f"shadow (account 111111111111, region us-east-1, endpoint {env.cli.url})",
    }
    (reach,) = [c for c in report["checks"] if c["name"] == "shadow bucket reachable"]
    assert reach["status"] == "FAIL"
    assert "create bucket photos-acct2 in the shadow account" in reach["fix"]
    text = env.cli.run("check", "s3", "--bucket", "photos").stdout.splitlines()
    assert text[1:3] == [
        f"  primary (account 123456789012, region us-east-1, endpoint {env.cli.url})",
        f"  shadow (account 111111111111, region us-east-1, endpoint {env.cli.url})",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "cannot read names file", id="missing"),
        pytest.param("{not json", "cannot read names file", id="not-json"),
        pytest.param("[1, 2]", "must hold a JSON object", id="not-an-object"),
        pytest.param('{"s3": {"photos": 3}}', "map must be string to string", id="bad-value"),
    ],
)
def test_a_bad_names_file_is_a_usage_error(
    env: Accounts, tmp_path: Path, content: str | None, message: str
) -> None:
    """Exit 2, as the docs say: a shell loop stopping on 2 then stops."""
    names = tmp_path / "bad-names.json"
    if content is not None:
        names.write_text(content)
    argv = env.cli.argv("check", "s3", "--bucket", "photos")
    argv[argv.index("--names") + 1] = str(names)
    result = subprocess.run(argv, capture_output=True, text=True, env=env.cli.env, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.startswith("dualwrite: error: ")
