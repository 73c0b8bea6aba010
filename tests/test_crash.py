"""Crash: a process killed with SIGKILL mid-stream loses nothing that repair cannot restore.

A child process dual-writes in background mode, with an SQLite journal, to a moto server (the
shadow behind a proxy that adds latency, so that shadow writes queue up), printing every key
whose call returned. The test kills it midway, checks that the primary holds every key the
child saw acknowledged, that every key whose shadow differs is journaled, then repairs from the
journal in a fresh process and compares every object and item of both accounts.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.kill_world import World, differences, journal_keys, repair_in_fresh_process
from _support.proxy import Fault, FaultProxy
from _support.servers import MotoServer
from conftest import Accounts, create_table

CHILD = Path(__file__).parent / "_support" / "crash_child.py"


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    moto = MotoServer()
    yield moto
    moto.stop()


def etags(client: Any, bucket: str, keys: list[str]) -> dict[str, str | None]:
    """The ETag (the MD5 of a single-part object) of each of ``keys``; ``None`` if absent."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    listed = {o["Key"]: o["ETag"].strip('"') for page in pages for o in page.get("Contents", [])}
    return {key: listed.get(key) for key in keys}


def items(client: Any, table: str, keys: list[str]) -> dict[str, Any]:
    """The item of each of ``keys`` (typed); ``None`` if absent."""
    pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    found = {item["pk"]["S"]: item for page in pages for item in page["Items"]}
    return {key: found.get(key) for key in keys}


def run_and_kill(args: list[str], kill_after: int, log: Path) -> list[str]:
    """Start the child, SIGKILL it after ``kill_after`` acknowledged S3 writes; return its lines."""
    lines: list[str] = []
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, str(CHILD), *args], stdout=subprocess.PIPE, stderr=stderr, text=True
        ) as child,
    ):
        assert child.stdout is not None
        try:
            for line in child.stdout:
                lines.append(line.strip())
                if sum(1 for seen in lines if seen.startswith("s3 ")) >= kill_after:
                    os.kill(child.pid, signal.SIGKILL)
                    break
            # Whatever it printed before it died was acknowledged too.
            lines.extend(line.strip() for line in child.stdout)
        finally:
            child.kill()
            child.wait(30)
    assert child.returncode == -signal.SIGKILL, log.read_text()
    assert "done" not in lines  # killed midway, not finished
    return lines


@pytest.mark.parametrize(
    "total",
    [
        # 500 objects and 500 items, killed after about half of them (CPU-bound on moto: the
        # full size, 2,000 objects and 2,000 items, runs with -m slow).
        pytest.param(500, id="1000-writes"),
        pytest.param(2000, id="4000-writes", marks=pytest.mark.slow),
    ],
)
def test_sigkill_mid_stream_loses_no_acknowledged_write(
    server: MotoServer, tmp_path: Path, total: int
) -> None:
    kill_after = total // 2
    accounts = Accounts(endpoint_url=server.url)
    primary, shadow = accounts.client("primary", "s3"), accounts.client("shadow", "s3")
    suffix = uuid.uuid4().hex[:10]
    bucket, shadow_bucket = f"crash-p-{suffix}", f"crash-s-{suffix}"
    primary.create_bucket(Bucket=bucket)
    shadow.create_bucket(Bucket=shadow_bucket)
    table = f"crash-{suffix}"  # one name in each account: DynamoDB names are per account
    p_ddb, s_ddb = accounts.client("primary", "dynamodb"), accounts.client("shadow", "dynamodb")
    create_table(p_ddb, table)
    create_table(s_ddb, table)
    proxy = FaultProxy((server.host, server.port))
    proxy.set(Fault("pass", delay=0.01))  # the shadow lags: its writes queue up in the child
    journal = tmp_path / "journal.db"
    try:
        lines = run_and_kill(
            [server.url, proxy.url, str(journal), bucket, shadow_bucket, str(total), table],
            kill_after,
            tmp_path / "child.log",
        )
    finally:
        proxy.close()
    acked = sorted(line.split(" ", 1)[1] for line in lines if line.startswith("s3 "))
    acked_items = sorted(line.split(" ", 1)[1] for line in lines if line.startswith("dynamodb "))
    assert kill_after <= len(acked) < total
    assert len(acked_items) >= kill_after - 4  # each thread's last item may not be acked yet
    expected = {key: hashlib.md5(f"body of {key}".encode()).hexdigest() for key in acked}
    assert etags(primary, bucket, acked) == expected
    expected_items = {key: {"pk": {"S": key}, "n": {"N": "1"}} for key in acked_items}
    assert items(p_ddb, table, acked_items) == expected_items

    # Every key of the bucket and the table, not only those the child printed: a write the
    # primary holds whose call had not returned yet (or whose line was not printed) is exactly
    # what a crash loses, and checking acknowledged keys only would hide it.
    world = World(url=server.url, bucket=bucket, shadow_bucket=shadow_bucket, table=table)
    diverged = differences(world)
    assert any(key.startswith("s3:") for key in diverged)  # the crash really lost shadow writes
    journaled = journal_keys(journal)
    assert set(diverged) <= journaled

    # One repair in a fresh process, over the same buckets, table and journal.
    report = repair_in_fresh_process(world, journal)
    assert (report["failed"], report["skipped"], report["remaining"]) == (0, 0, 0)
    assert differences(world) == {}
