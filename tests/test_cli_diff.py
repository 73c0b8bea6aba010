"""``dualwrite diff`` through its real entry point, against moto over HTTP with two accounts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.cli import OWNER_ACL, Accounts, jsonl
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


def _kinds(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for record in records:
        found.setdefault(record["kind"], []).append(record["key"])
    return {kind: sorted(keys, key=json.dumps) for kind, keys in found.items()}


def _s3_accounts(env: Accounts) -> None:
    p, s = env.p_s3, env.s_s3
    p.create_bucket(Bucket="photos")
    s.create_bucket(Bucket="photos-acct2")
    for key in ("acme/equal", "acme/missing", "acme/different", "globex/missing"):
        p.put_object(Bucket="photos", Key=key, Body=f"primary {key}".encode())
    s.put_object(Bucket="photos-acct2", Key="acme/equal", Body=b"primary acme/equal", ACL=OWNER_ACL)
    s.put_object(Bucket="photos-acct2", Key="acme/different", Body=b"stale", ACL=OWNER_ACL)
    s.put_object(Bucket="photos-acct2", Key="acme/extra", Body=b"extra", ACL=OWNER_ACL)


def test_diff_s3_finds_each_kind_of_difference_in_a_tenant(env: Accounts) -> None:
    _s3_accounts(env)
    out = env.tmp / "diff.jsonl"
    result = env.cli.run(
        "diff", "s3", "--bucket", "photos", "--prefix", "acme/", "--output", str(out)
    )
    assert result.returncode == 1, result.stderr
    records = jsonl(out.read_text())
    assert _kinds(records) == {
        "missing_in_shadow": ["acme/missing"],
        "extra_in_shadow": ["acme/extra"],
        "different": ["acme/different"],
    }
    (different,) = [r for r in records if r["kind"] == "different"]
    assert different["fields"] == ["size", "etag"]
    assert different["primary"]["size"] == len(b"primary acme/different")
    assert different["shadow"]["size"] == len(b"stale")
    assert all(
        r["resource"] == "photos" and r["shadow_resource"] == "photos-acct2" for r in records
    )
    # The summary goes to standard output when the differences go to a file.
    assert "3 compared, 1 equal, 1 missing_in_shadow, 1 extra_in_shadow, 1 different" in (
        result.stdout
    )


def test_diff_s3_whole_bucket_to_stdout_with_a_json_summary(env: Accounts) -> None:
    _s3_accounts(env)
    result = env.cli.run("diff", "s3", "--bucket", "photos", "--json")
    assert result.returncode == 1, result.stderr
    assert _kinds(jsonl(result.stdout))["missing_in_shadow"] == ["acme/missing", "globex/missing"]
    summary = json.loads(result.stderr.splitlines()[-1])
    assert (summary["compared"], summary["differences"], summary["failed"]) == (4, 4, 0)
    assert summary["requests"]["primary"] == {"ListObjectsV2": 1}


def test_diff_s3_metadata_and_equal_exit_zero(env: Accounts) -> None:
    p, s = env.p_s3, env.s_s3
    p.create_bucket(Bucket="photos")
    s.create_bucket(Bucket="photos-acct2")
    for bucket, client, content_type, tags in (
        ("photos", p, "image/jpeg", "tier=gold"),
        ("photos-acct2", s, "image/png", "tier=silver"),
    ):
        client.put_object(Bucket=bucket, Key="cat", Body=b"meow", ContentType=content_type)
        client.put_object(Bucket=bucket, Key="dog", Body=b"woof", Tagging=tags)
    equal = env.cli.run("diff", "s3", "--bucket", "photos")
    assert equal.returncode == 0, equal.stderr
    assert equal.stdout == ""
    deep = env.cli.run("diff", "s3", "--bucket", "photos", "--metadata")
    assert deep.returncode == 1, deep.stderr
    fields = {r["key"]: r["fields"] for r in jsonl(deep.stdout)}
    assert fields == {"cat": ["ContentType"], "dog": ["tags"]}


def test_diff_s3_error_exits_two(env: Accounts) -> None:
    env.p_s3.create_bucket(Bucket="photos")  # the shadow bucket does not exist
    result = env.cli.run("diff", "s3", "--bucket", "photos")
    assert result.returncode == 2
    assert "NoSuchBucket" in result.stderr


def _table(client: Any) -> None:
    client.create_table(
        TableName="orders",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def _item(tenant: str, n: int, **attributes: Any) -> dict[str, Any]:
    return {"pk": {"S": tenant}, "sk": {"N": str(n)}, **attributes}


def test_diff_dynamodb_by_full_item_whole_table_and_by_partition(env: Accounts) -> None:
    p, s = env.p_ddb, env.s_ddb
    _table(p)
    _table(s)
    doc = {"M": {"tags": {"SS": ["a", "b"]}, "n": {"N": "1.50"}}}
    for tenant in ("acme", "globex"):
        for n in range(4):
            p.put_item(TableName="orders", Item=_item(tenant, n, doc=doc, v={"S": "one"}))
    # Equal: same values written differently (number format, set order).
    same = {"M": {"n": {"N": "1.5"}, "tags": {"SS": ["b", "a"]}}}
    s.put_item(TableName="orders", Item=_item("acme", 0, doc=same, v={"S": "one"}))
    s.put_item(TableName="orders", Item=_item("acme", 1, doc=doc, v={"S": "two"}))
    s.put_item(TableName="orders", Item=_item("acme", 2, doc=doc, v={"S": "one"}, x={"N": "1"}))
    s.put_item(TableName="orders", Item=_item("acme", 9, v={"S": "extra"}))
    s.put_item(TableName="orders", Item=_item("initech", 1))

    scoped = env.cli.run(
        "diff", "dynamodb", "--table", "orders", "--partition-value", "acme", "--json"
    )
    assert scoped.returncode == 1, scoped.stderr
    records = jsonl(scoped.stdout)
    assert _kinds(records) == {
        "missing_in_shadow": [{"pk": {"S": "acme"}, "sk": {"N": "3"}}],
        "extra_in_shadow": [{"pk": {"S": "acme"}, "sk": {"N": "9"}}],
        "different": [
            {"pk": {"S": "acme"}, "sk": {"N": "1"}},
            {"pk": {"S": "acme"}, "sk": {"N": "2"}},
        ],
    }
    assert sorted(r["fields"] for r in records if r["kind"] == "different") == [["v"], ["x"]]
    assert json.loads(scoped.stderr.splitlines()[-1])["compared"] == 4

    whole = env.cli.run("diff", "dynamodb", "--table", "orders", "--total-segments", "3")
    assert whole.returncode == 1, whole.stderr
    kinds = _kinds(jsonl(whole.stdout))
    assert len(kinds["missing_in_shadow"]) == 5  # acme 3 and globex 0..3
    assert {k["pk"]["S"] for k in kinds["extra_in_shadow"]} == {"acme", "initech"}

    filtered = env.cli.run(
        "diff",
        "dynamodb",
        "--table",
        "orders",
        "--filter",
        "#v = :v",
        "--filter-names",
        '{"#v": "v"}',
        "--filter-values",
        '{":v": {"S": "extra"}}',
    )
    # The filter applies to the reads of both sides: only acme/9 matches, on the shadow.
    assert filtered.returncode == 1, filtered.stderr
    assert _kinds(jsonl(filtered.stdout)) == {
        "extra_in_shadow": [{"pk": {"S": "acme"}, "sk": {"N": "9"}}]
    }


@pytest.mark.parametrize("lines", [3, 2000])
def test_diff_into_a_reader_that_goes_away_exits_quietly(env: Accounts, lines: int) -> None:
    """``diff ... | head``: the reader closes the pipe; no traceback, no failures, exit 141.

    3 differences fit the output buffer (the closed pipe is found at the final flush); 2,000
    fill it (found by a worker's write).
    """
    env.p_s3.create_bucket(Bucket="photos")
    env.s_s3.create_bucket(Bucket="photos-acct2")
    for i in range(lines):
        env.p_s3.put_object(Bucket="photos", Key=f"k{i:05d}", Body=b"x")
    child = env.cli.start("diff", "s3", "--bucket", "photos", "--no-progress")
    assert child.stdout is not None
    assert child.stderr is not None
    child.stdout.close()  # the reader is gone before the first difference is written
    stderr = child.stderr.read()
    child.stderr.close()
    assert child.wait(120) == 141, stderr
    assert "BrokenPipeError" not in stderr
    assert "Traceback" not in stderr
    assert "failed" not in stderr


def test_diff_exits_2_on_a_names_file_it_cannot_read(env: Accounts) -> None:
    env.cli.names.write_text("[1, 2]")
    result = env.cli.run("diff", "s3", "--bucket", "photos")
    assert result.returncode == 2
    assert "must hold a JSON object" in result.stderr
    assert "Traceback" not in result.stderr
