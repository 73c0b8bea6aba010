"""``dualwrite copy`` through its real entry point, against moto over HTTP with two accounts.

The shadow is reached through a proxy that refuses object creates without the owner ACL (as a
BucketOwnerEnforced bucket of another account would), or that holds chosen writes back so that a
live dual-write lands first.
"""

from __future__ import annotations

import io
import json
import os
import pty
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.cli import OWNER_ACL, Accounts, delay_matching, enforce_owner_acl, jsonl
from _support.proxy import FaultProxy
from _support.servers import MotoServer

import dualwrite

NAMES = {"s3": {"photos": "photos-acct2"}}


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    moto = MotoServer()
    try:
        yield moto
    finally:
        moto.stop()


@pytest.fixture
def env(server: MotoServer, tmp_path: Path) -> Accounts:
    return Accounts(server, tmp_path, NAMES)


@pytest.fixture
def proxy(server: MotoServer) -> Iterator[FaultProxy]:
    front = FaultProxy((server.host, server.port))
    try:
        yield front
    finally:
        front.close()


def _buckets(env: Accounts) -> None:
    env.p_s3.create_bucket(Bucket="photos")
    env.s_s3.create_bucket(Bucket="photos-acct2")


def _keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _body(client: Any, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]


def _report(text: str) -> dict[str, Any]:
    return json.loads(text.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_copy_s3_then_diff_finds_nothing(env: Accounts, proxy: FaultProxy) -> None:
    _buckets(env)
    p, s = env.p_s3, env.s_s3
    for i in range(12):
        p.put_object(
            Bucket="photos",
            Key=f"acme/{i:02d}",
            Body=f"object {i}".encode(),
            ContentType="text/plain",
            Metadata={"n": str(i)},
            Tagging="tier=gold" if i % 3 == 0 else "",
            ACL="public-read",  # never carried to the shadow
        )
    # A multipart object of two parts (5 MiB + 1 KiB): its ETag is "...-2".
    upload = p.create_multipart_upload(Bucket="photos", Key="acme/big")["UploadId"]
    parts = []
    for number, size in ((1, 5 * 1024 * 1024), (2, 1024)):
        etag = p.upload_part(
            Bucket="photos",
            Key="acme/big",
            UploadId=upload,
            PartNumber=number,
            Body=os.urandom(size),
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    p.complete_multipart_upload(
        Bucket="photos", Key="acme/big", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    s.put_object(Bucket="photos-acct2", Key="acme/00", Body=b"stale", ACL=OWNER_ACL)
    s.put_object(Bucket="photos-acct2", Key="acme/zz", Body=b"extra", ACL=OWNER_ACL)
    proxy.set(enforce_owner_acl())
    before = _keys(s, "photos-acct2")

    actions = env.tmp / "plan.jsonl"
    plan = env.cli.run(
        "copy", "s3", "--bucket", "photos", "--delete-extra", "--dry-run",
        "--output", str(actions), shadow_url=proxy.url,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    outcomes = {r["key"]: r["outcome"] for r in jsonl(actions.read_text())}
    assert outcomes["acme/zz"] == "would_delete"
    assert outcomes["acme/00"] == "would_copy"
    assert len(outcomes) == 14
    assert _keys(s, "photos-acct2") == before  # a dry run writes nothing

    result = env.cli.run(
        "copy", "s3", "--bucket", "photos", "--delete-extra", "--workers", "4", "--json",
        shadow_url=proxy.url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = _report(result.stdout)
    assert (report["copied"], report["deleted"], report["failed"]) == (13, 1, 0), report
    assert report["requests"]["shadow"]["CompleteMultipartUpload"] == 1
    assert proxy.requests["error"] == 0  # every create carried the owner ACL

    diff = env.cli.run("diff", "s3", "--bucket", "photos", "--metadata")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert _keys(s, "photos-acct2") == _keys(p, "photos")
    big = [
        c.head_object(Bucket=b, Key="acme/big")["ETag"]
        for c, b in ((p, "photos"), (s, "photos-acct2"))
    ]
    assert big[0] == big[1]
    assert big[0].endswith('-2"')
    head = s.head_object(Bucket="photos-acct2", Key="acme/03")
    assert (head["ContentType"], head["Metadata"]) == ("text/plain", {"n": "3"})
    grants = s.get_object_acl(Bucket="photos-acct2", Key="acme/03")["Grants"]
    assert all("URI" not in g["Grantee"] for g in grants)  # no public-read on the shadow


def _orders(client: Any, name: str = "orders") -> None:
    client.create_table(
        TableName=name,
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


def _item(tenant: str, n: int, value: str = "v1") -> dict[str, Any]:
    return {
        "pk": {"S": tenant},
        "sk": {"N": str(n)},
        "v": {"S": value},
        "doc": {"M": {"l": {"L": [{"N": str(n)}, {"B": b"\x00\x01"}]}}},
    }


def _scan(client: Any, table: str = "orders") -> list[dict[str, Any]]:
    pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    items = [item for page in pages for item in page["Items"]]
    return sorted(items, key=lambda i: (i["pk"]["S"], int(i["sk"]["N"])))


def test_copy_dynamodb_then_diff_finds_nothing(env: Accounts) -> None:
    _orders(env.p_ddb)
    _orders(env.s_ddb)
    for tenant in ("acme", "globex"):
        for n in range(15):
            env.p_ddb.put_item(TableName="orders", Item=_item(tenant, n))
    env.s_ddb.put_item(TableName="orders", Item=_item("acme", 0, "stale"))
    env.s_ddb.put_item(TableName="orders", Item=_item("initech", 1))
    result = env.cli.run(
        "copy", "dynamodb", "--table", "orders", "--delete-extra", "--total-segments", "3",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = _report(result.stdout)
    assert (report["copied"], report["deleted"], report["failed"]) == (30, 1, 0), report
    assert report["requests"]["shadow"]["PutItem"] == 30
    diff = env.cli.run("diff", "dynamodb", "--table", "orders")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert _scan(env.s_ddb) == _scan(env.p_ddb)


def _wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _state_after(path: Path, stream: str) -> Any:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data["streams"].get(stream, {}).get("after")


def test_an_interrupted_s3_copy_resumes_where_it_stopped(env: Accounts) -> None:
    _buckets(env)
    total = 100
    for i in range(total):
        env.p_s3.put_object(Bucket="photos", Key=f"k{i:03d}", Body=f"v{i}".encode())
    state = env.tmp / "copy.state"
    args = ("copy", "s3", "--bucket", "photos", "--state", str(state), "--json")

    # 1: killed outright (SIGKILL) once 15 keys are done.
    first = env.cli.start(*args, "--workers", "2", "--max-rps", "60")
    _wait_for(lambda: (_state_after(state, "prefix:") or "") >= "k015")
    first.kill()
    first.communicate()
    watermark = _state_after(state, "prefix:")
    copied = set(_keys(env.s_s3, "photos-acct2"))
    assert {f"k{i:03d}" for i in range(total) if f"k{i:03d}" <= watermark} <= copied
    assert len(copied) < total

    # 2: stopped with SIGTERM (as ECS or Batch stop a task): exit 130, state written.
    second = env.cli.start(*args, "--workers", "2", "--max-rps", "60")
    _wait_for(lambda: (_state_after(state, "prefix:") or "") >= f"k{int(watermark[1:]) + 15:03d}")
    second.send_signal(signal.SIGTERM)
    out, err = second.communicate(timeout=30)
    assert second.returncode == 130, err
    report = _report(out)
    assert report["interrupted"] is True
    assert report["resumed"] is True
    # It did not start over: the keys below the first run's watermark were not even listed,
    # and only keys the shadow lacked were read from the primary.
    below = sum(1 for i in range(total) if f"k{i:03d}" <= watermark)
    assert report["compared"] <= total - below
    assert report["requests"]["primary"]["GetObject"] == report["copied"]
    assert report["copied"] <= total - len(copied)

    # 3: runs to the end.
    on_shadow = len(_keys(env.s_s3, "photos-acct2"))
    third = env.cli.run(*args, "--workers", "4")
    assert third.returncode == 0, third.stderr
    report = _report(third.stdout)
    assert report["resumed"] is True
    assert report["copied"] == total - on_shadow
    assert report["requests"]["primary"]["GetObject"] == total - on_shadow
    assert json.loads(state.read_text())["streams"] == {"prefix:": {"done": True}}
    assert _keys(env.s_s3, "photos-acct2") == _keys(env.p_s3, "photos")
    # A finished job has nothing left: the rerun lists nothing.
    again = env.cli.run(*args)
    assert _report(again.stdout)["requests"] == {}


def test_an_interrupted_dynamodb_copy_resumes_from_its_last_page(env: Accounts) -> None:
    _orders(env.p_ddb)
    _orders(env.s_ddb)
    total = 100
    for n in range(total):
        env.p_ddb.put_item(TableName="orders", Item=_item("acme", n))
    state = env.tmp / "copy.state"
    args = (
        "copy", "dynamodb", "--table", "orders", "--total-segments", "1", "--page-size", "10",
        "--state", str(state), "--json",
    )  # fmt: skip
    first = env.cli.start(*args, "--workers", "1", "--max-rps", "40")
    _wait_for(lambda: _state_after(state, "scan:0/1") is not None)
    first.kill()
    first.communicate()
    resumed_at = _state_after(state, "scan:0/1")
    on_shadow = len(_scan(env.s_ddb))
    assert 10 <= on_shadow < total

    second = env.cli.run(*args)
    assert second.returncode == 0, second.stderr
    report = _report(second.stdout)
    assert report["resumed"] is True
    assert report["compared"] <= total - 10  # the first pages were not read again
    assert report["copied"] == total - on_shadow
    assert report["requests"]["shadow"]["PutItem"] == total - on_shadow
    assert resumed_at["pk"] == {"S": "acme"}
    assert _scan(env.s_ddb) == _scan(env.p_ddb)


def _held(arrivals: threading.Semaphore) -> Callable[[], None]:
    return arrivals.release


def test_a_copy_racing_live_s3_dual_writes_leaves_the_newer_values(
    env: Accounts, proxy: FaultProxy
) -> None:
    _buckets(env)
    env.p_s3.put_object(Bucket="photos", Key="acme/new", Body=b"old")  # shadow lacks it
    env.p_s3.put_object(Bucket="photos", Key="acme/changed", Body=b"old")
    env.s_s3.put_object(Bucket="photos-acct2", Key="acme/changed", Body=b"older", ACL=OWNER_ACL)
    arrivals = threading.Semaphore(0)
    # The copy's shadow writes are held 2 s at the proxy, after it read "old" from the primary.
    proxy.set(
        delay_matching(
            2.0,
            lambda method, path, headers: (
                method == "PUT" and path.startswith("/photos-acct2/acme/")
            ),
            _held(arrivals),
        )
    )
    copy = env.cli.start(
        "copy", "s3", "--bucket", "photos", "--workers", "2", "--json", shadow_url=proxy.url
    )
    for _ in range(2):
        assert arrivals.acquire(timeout=20)
    # Meanwhile the service dual-writes newer values to both accounts.
    live = dualwrite.wrap(env.p_s3, shadow=env.s_s3, names=NAMES["s3"], flag=True)
    for key in ("acme/new", "acme/changed"):
        live.put_object(Bucket="photos", Key=key, Body=b"newest")
    out, err = copy.communicate(timeout=30)
    assert copy.returncode == 0, err
    report = _report(out)
    assert (report["skipped_changed"], report["copied"], report["failed"]) == (2, 0, 0), report
    assert report["requests"]["shadow"]["PutObject"] == 2  # refused, not retried over
    for key in ("acme/new", "acme/changed"):
        assert _body(env.s_s3, "photos-acct2", key) == b"newest"
        assert _body(env.p_s3, "photos", key) == b"newest"


def test_a_copy_racing_live_dynamodb_dual_writes_leaves_the_newer_items(
    env: Accounts, proxy: FaultProxy
) -> None:
    _orders(env.p_ddb)
    _orders(env.s_ddb)
    env.p_ddb.put_item(TableName="orders", Item=_item("acme", 1))  # shadow lacks it
    env.p_ddb.put_item(TableName="orders", Item=_item("acme", 2))
    env.s_ddb.put_item(TableName="orders", Item=_item("acme", 2, "v0"))
    arrivals = threading.Semaphore(0)
    held: list[str] = []

    def first_put(method: str, path: str, headers: Any) -> bool:
        # Both items are in one chunk, written one after the other: holding the first put
        # holds both, after the copy read them.
        if str(headers.get("X-Amz-Target", "")).endswith(".PutItem") and not held:
            held.append(path)
            return True
        return False

    proxy.set(delay_matching(2.0, first_put, _held(arrivals)))
    copy = env.cli.start(
        "copy", "dynamodb", "--table", "orders", "--workers", "2", "--json", shadow_url=proxy.url
    )
    assert arrivals.acquire(timeout=20)
    live = dualwrite.wrap(env.p_ddb, shadow=env.s_ddb, flag=True)
    for n in (1, 2):
        live.update_item(
            TableName="orders",
            Key={"pk": {"S": "acme"}, "sk": {"N": str(n)}},
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues={":v": {"S": "newest"}},
        )
    out, err = copy.communicate(timeout=30)
    assert copy.returncode == 0, err
    report = _report(out)
    assert (report["skipped_changed"], report["copied"], report["failed"]) == (2, 0, 0), report
    assert report["requests"]["shadow"]["PutItem"] == 2  # refused by their conditions
    assert [i["v"]["S"] for i in _scan(env.s_ddb)] == ["newest", "newest"]
    assert _scan(env.s_ddb) == _scan(env.p_ddb)


def test_segments_and_prefix_shards_split_the_work_without_overlap_or_gap(env: Accounts) -> None:
    _orders(env.p_ddb)
    _orders(env.s_ddb)
    _buckets(env)
    expected = set()
    for tenant in ("acme", "globex", "initech", "umbrella"):
        for n in range(15):
            env.p_ddb.put_item(TableName="orders", Item=_item(tenant, n))
            expected.add((tenant, n))
        env.p_s3.put_object(Bucket="photos", Key=f"{tenant}/cat", Body=b"meow")
    shards = [env.tmp / "shard-0.txt", env.tmp / "shard-1.txt"]
    shards[0].write_text("acme/\nglobex/\n")
    shards[1].write_text("# the other tenants\ninitech/\numbrella/\n")
    workers = [
        env.cli.start(
            "copy",
            "dynamodb",
            "--table",
            "orders",
            "--segment",
            str(i),
            "--total-segments",
            "3",
            "--output",
            str(env.tmp / f"segment-{i}.jsonl"),
        )
        for i in range(3)
    ] + [
        env.cli.start(
            "copy",
            "s3",
            "--bucket",
            "photos",
            "--prefixes-from",
            str(shard),
            "--output",
            str(env.tmp / f"{shard.stem}.jsonl"),
        )
        for shard in shards
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
    segments = [
        {
            (r["key"]["pk"]["S"], int(r["key"]["sk"]["N"]))
            for r in jsonl((env.tmp / f"segment-{i}.jsonl").read_text())
        }
        for i in range(3)
    ]
    assert all(segments)
    assert sum(len(s) for s in segments) == len(expected)  # no overlap...
    assert set().union(*segments) == expected  # ...and no gap
    copied = [{r["key"] for r in jsonl((env.tmp / f"{s.stem}.jsonl").read_text())} for s in shards]
    assert copied == [{"acme/cat", "globex/cat"}, {"initech/cat", "umbrella/cat"}]
    assert env.cli.run("diff", "dynamodb", "--table", "orders").returncode == 0
    assert env.cli.run("diff", "s3", "--bucket", "photos").returncode == 0


def test_progress_bar_with_eta_on_a_terminal_only(env: Accounts) -> None:
    _buckets(env)
    for i in range(30):
        env.p_s3.put_object(Bucket="photos", Key=f"k{i:02d}", Body=b"x")
    leader, follower = pty.openpty()
    try:
        copy = env.cli.start("copy", "s3", "--bucket", "photos", "--max-rps", "60", stderr=follower)
        os.close(follower)
        seen = io.BytesIO()
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen.write(chunk)
        out, _ = copy.communicate(timeout=30)
    finally:
        os.close(leader)
    assert copy.returncode == 0
    text = seen.getvalue().decode()
    assert "copy s3 [" in text
    assert "/30" in text
    assert "ETA" in text
    assert "copy s3 photos -> photos-acct2" in out
    # Not a terminal: no bar on standard error.
    quiet = env.cli.run("diff", "s3", "--bucket", "photos")
    assert "ETA" not in quiet.stderr


def test_only_a_complete_copy_of_the_whole_bucket_settles_its_resource_level_entries(
    env: Accounts,
) -> None:
    from dualwrite.journal import Entry, SQLiteJournal  # noqa: PLC0415

    _buckets(env)
    env.p_s3.put_object(Bucket="photos", Key="acme/a", Body=b"a")
    path = env.tmp / "journal.db"
    journal = SQLiteJournal(path)
    before = time.time() - 3600
    journal.add(
        [
            Entry(service="s3", resource="photos", key="", reason="unsupported", at=before),
            # Journaled after the copy started: the copy may have passed its key already.
            Entry(service="s3", resource="photos", key="", reason="unsupported", at=2e9),
            Entry(service="s3", resource="other", key="", reason="unsupported", at=before),
            Entry(service="s3", resource="photos", key="acme/a", reason="shadow_failed"),
        ]
    )
    journal.close()

    def entries() -> list[tuple[str, str, float]]:
        j = SQLiteJournal(path)
        try:
            return sorted((e.resource, str(e.key), e.at) for e in j.entries())
        finally:
            j.close()

    everything = entries()
    scoped = env.cli.run(
        "copy",
        "s3",
        "--bucket",
        "photos",
        "--prefix",
        "acme/",
        "--delete-extra",
        "--journal",
        str(path),
    )
    assert scoped.returncode == 0, scoped.stderr
    no_delete = env.cli.run("copy", "s3", "--bucket", "photos", "--journal", str(path))
    assert no_delete.returncode == 0, no_delete.stderr
    assert entries() == everything  # neither covers every key the unknown write may have touched

    whole = env.cli.run(
        "copy", "s3", "--bucket", "photos", "--delete-extra", "--journal", str(path)
    )
    assert whole.returncode == 0, whole.stderr
    assert "1 resource-level entr(ies) of photos removed" in whole.stdout
    assert entries() == [
        e for e in everything if not (e[0] == "photos" and e[1] == "" and e[2] == before)
    ]


def test_copy_refuses_a_journal_path_that_does_not_exist(env: Accounts) -> None:
    _buckets(env)
    env.p_s3.put_object(Bucket="photos", Key="k", Body=b"k")
    result = env.cli.run("copy", "s3", "--bucket", "photos", "--journal", str(env.tmp / "typo.db"))
    assert result.returncode == 2
    assert "no journal at" in result.stderr
    assert _keys(env.s_s3, "photos-acct2") == []  # refused before copying anything
    assert not (env.tmp / "typo.db").exists()


def test_copy_exits_2_on_a_names_file_it_cannot_read(env: Accounts) -> None:
    env.cli.names.write_text("not json")
    result = env.cli.run("copy", "s3", "--bucket", "photos")
    assert result.returncode == 2
    assert "cannot read names file" in result.stderr
    assert "Traceback" not in result.stderr
