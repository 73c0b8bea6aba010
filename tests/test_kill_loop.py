"""SIGKILL at any instant: after one repair in a fresh process, the shadow equals the primary.

A child process (``_support/kill_child.py``) dual-writes a mixed S3/DynamoDB burst through
wrapped clients, with an SQLite journal at a path the test gives, to a ``ThreadedMotoServer``
holding two accounts. The test kills it, then runs one ``repair()`` over that journal in another
fresh process, and compares EVERY object and item of the primary with the shadow (bodies,
metadata, content types, tags, items), not only keys the child reported as acknowledged: a write
the primary holds but the child never got to report is exactly what a crash loses.

Two kinds of kill:

- at a random instant of a random burst (seeded: the kill point and the burst are reproducible,
  the instant within the child's work is not), 3 per mode by default, 20 per mode with -m slow;
- right after the primary's ack, from an ``after-call`` handler of the primary client, for an S3
  put, a DynamoDB update and a 25-item batch: the primary holds the write, the wrapper never saw
  its answer.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.kill_world import (
    CHILD_TIMEOUT,
    SUPPORT,
    World,
    assert_equal_or_repaired,
    child_env,
)
from _support.servers import MotoServer

CHILD = SUPPORT / "kill_child.py"
MODES = ["sync", "background"]


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    moto = MotoServer()
    yield moto
    moto.stop()


def start_child(config: dict[str, Any], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, str(CHILD), json.dumps(config)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=child_env(),
        )


def run_child(
    config: dict[str, Any], log: Path, *, kill_after: int | None = None, delay: float = 0.0
) -> list[str]:
    """Run the child; with ``kill_after``, SIGKILL it ``delay`` s after its ``kill_after``-th op.

    Returns the lines it printed. A watchdog kills a child that hangs, so a test never does.
    """
    child = start_child(config, log)
    watchdog = threading.Timer(CHILD_TIMEOUT, child.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        assert child.stdout is not None
        for raw in child.stdout:
            line = raw.strip()
            lines.append(line)
            ops = sum(1 for seen in lines if seen.startswith("op "))
            if kill_after is not None and ops >= kill_after:
                time.sleep(delay)
                child.send_signal(signal.SIGKILL)
                break
        lines.extend(raw.strip() for raw in child.stdout)
        # Reaped before anyone repairs: a zombie's pid still answers kill(pid, 0), so its
        # pending intents would look like a live writer's.
        child.wait(CHILD_TIMEOUT)
    finally:
        watchdog.cancel()
        child.kill()
        child.wait(CHILD_TIMEOUT)
        assert child.stdout is not None
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL, f"{lines[-5:]}\n{log.read_text()}"
    assert "ready" in lines, log.read_text()
    return lines


def random_kill(server: MotoServer, tmp_path: Path, mode: str, seed: int) -> None:
    world = World.fresh(server.url, "kill")
    world.create()
    journal = tmp_path / "journal.db"
    rng = random.Random(seed)
    config = {
        "world": world.to_json(),
        "journal": str(journal),
        "mode": mode,
        "seed": seed,
        "script": "random",
        "shadow_delay": 0.02,  # shadow writes lag, and queue up in background mode
    }
    run_child(
        config, tmp_path / "child.log", kill_after=rng.randint(1, 40), delay=rng.uniform(0, 0.05)
    )
    assert_equal_or_repaired(world, journal, when="after the kill", repair_anyway=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
def test_random_kill_then_one_repair_converges(
    server: MotoServer, tmp_path: Path, mode: str, seed: int
) -> None:
    random_kill(server, tmp_path, mode, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
@pytest.mark.parametrize("mode", MODES)
def test_twenty_random_kills_per_mode(
    server: MotoServer, tmp_path: Path, mode: str, seed: int
) -> None:
    random_kill(server, tmp_path, mode, seed)


def primary_holds(world: World, script: str, kill_on: int) -> bool:
    """Whether the primary holds the write during which the child was killed."""
    c = world.clients()
    if script == "put":  # the kill_on-th put, of d0 or d1
        key = ["d0", "d1", "d0", "d1", "d0"][kill_on - 1]
        got = c["s3"].get_object(Bucket=world.bucket, Key=key)["Body"].read()
        return bool(got == f"version {kill_on}".encode())
    if script == "delete":
        listed = c["s3"].list_objects_v2(Bucket=world.bucket).get("Contents", [])
        return not any(o["Key"] == "d0" for o in listed)
    if script in ("update", "transact"):  # one ADD per call
        keys = ["u0"] if script == "update" else ["t0", "t1", "t2"]
        found = [
            c["ddb"].get_item(TableName=world.table, Key={"pk": {"S": k}}, ConsistentRead=True)
            for k in keys
        ]
        return all(f["Item"]["n"] == {"N": str(kill_on)} for f in found)
    items = c["ddb"].scan(TableName=world.table, ConsistentRead=True)["Items"]
    return len(items) == 25 and all(item["v"] == {"N": str(kill_on)} for item in items)


def scripted_kill(
    server: MotoServer, tmp_path: Path, mode: str, script: str, kill_on: int, kill_at: str
) -> None:
    world = World.fresh(server.url, "ack")
    world.create()
    journal = tmp_path / "journal.db"
    config = {
        "world": world.to_json(),
        "journal": str(journal),
        "mode": mode,
        "seed": 0,
        "script": script,
        "kill_on": kill_on,
        "kill_at": kill_at,
    }
    lines = run_child(config, tmp_path / "child.log")
    ops = [line for line in lines if line.startswith("op ")]
    before = [f"op {n} {script}" for n in range(1, kill_on)]
    if kill_at == "primary-ack" or mode == "sync":
        # Killed inside the kill_on-th call: the earlier calls returned, that one never did.
        assert ops == before
    else:  # a background worker was killed: the caller may have returned
        assert ops in (before, [*before, f"op {kill_on} {script}"])
    assert primary_holds(world, script, kill_on)
    assert_equal_or_repaired(world, journal, when="after the kill", repair_anyway=True)


SCRIPTS = {"put": 3, "update": 3, "batch": 2, "delete": 3, "transact": 2}


@pytest.mark.parametrize(
    "script",
    [
        pytest.param("put", id="s3-put"),
        pytest.param("update", id="dynamodb-update"),
        pytest.param("batch", id="dynamodb-batch-25"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_kill_right_after_primary_ack(
    server: MotoServer, tmp_path: Path, mode: str, script: str
) -> None:
    scripted_kill(server, tmp_path, mode, script, SCRIPTS[script], "primary-ack")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "kill_at"),
    [
        *[pytest.param(s, "primary-ack", id=f"{s}-primary-ack") for s in ("delete", "transact")],
        *[
            pytest.param(s, point, id=f"{s}-{point}")
            for point in ("shadow-send", "shadow-ack")
            for s in SCRIPTS
        ],
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_kill_at_every_point_of_a_write(
    server: MotoServer, tmp_path: Path, mode: str, script: str, kill_at: str
) -> None:
    scripted_kill(server, tmp_path, mode, script, SCRIPTS[script], kill_at)
