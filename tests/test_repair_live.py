"""Repair beside live writers: owners' intents, one pass, limits, bounds, no stripe waits."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Accounts, DynamoEnv, S3Env

import dualwrite
from dualwrite._offline.repair import RepairReport, repair_journal
from dualwrite.journal import Entry, Journal, SQSJournal, process_token

ROOT = Path(__file__).resolve().parent.parent


class Repairer:
    """A writer wrapping the S3 pair, with a journal at ``path``."""

    def __init__(self, s3: S3Env, path: Path, **options: Any) -> None:
        self.s3 = s3
        self.writer = dualwrite.DualWriter(flag=True, journal=path, **options)
        self.client = self.writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
        assert self.writer.journal is not None
        self.journal: Journal = self.writer.journal

    def add(self, key: str, reason: str = "shadow_failed", **fields: Any) -> str:
        entry = Entry(service="s3", resource="photos", key=key, reason=reason, **fields)
        return self.journal.add([entry])[0]

    def repair(self, journal: Journal | None = None, **options: Any) -> RepairReport:
        options.setdefault("limit", None)
        options.setdefault("progress", False)
        return repair_journal(journal or self.journal, self.writer._runtime.mirrors, **options)

    def journaled(self) -> list[str]:
        return sorted(str(e.key) for e in self.journal.entries())


@pytest.fixture
def repairer(s3: S3Env, tmp_path: Path) -> Iterator[Repairer]:
    result = Repairer(s3, tmp_path / "j.db")
    yield result
    result.writer.close()


def _put(s3: S3Env, *keys: str) -> None:
    for key in keys:
        s3.primary.put_object(Bucket="photos", Key=key, Body=key.encode())


_CHILD = (
    "import sys, dualwrite.journal as j; print(j.process_token(), flush=True); sys.stdin.read()"
)


def _before(client: Any, operation: str, handler: Any, unique_id: str) -> None:
    """Call ``handler(params=...)`` with the API parameters of each ``operation`` call."""
    client.meta.events.register(f"before-parameter-build.{operation}", handler, unique_id=unique_id)


class Process:
    """Another writer process on this host, alive until closed; its token as the journal
    records it."""

    def __init__(self) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.child.stdout is not None
        self.token = self.child.stdout.readline().strip()

    def close(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.close()
        self.child.wait(timeout=30)
        assert self.child.stdout is not None
        self.child.stdout.close()


@pytest.fixture
def live() -> Iterator[Process]:
    process = Process()
    yield process
    process.close()


def test_pending_intents_of_live_writers_are_left_to_them(
    s3: S3Env, repairer: Repairer, live: Process
) -> None:
    dead = Process()
    dead.close()
    hour_ago = time.time() - 3600
    _put(s3, "live", "own", "dead", "young", "old", "remote", "failed", "both")
    repairer.add("live", "pending", owner=live.token)
    repairer.add("own", "pending", owner=process_token())  # this process: alive
    repairer.add("dead", "pending", owner=dead.token)
    repairer.add("young", "pending")  # an earlier release: no owner, made just now
    repairer.add("old", "pending", at=hour_ago)  # no owner, an hour old: abandoned
    repairer.add("remote", "pending", owner="another-host/42/7", at=hour_ago)
    repairer.add("failed", "shadow_failed")
    kept = repairer.add("both", "pending", owner=live.token)
    repairer.add("both", "shadow_failed")

    report = repairer.repair()

    # Left: live owners' intents, and an intent of unknown liveness younger than the grace.
    assert report.in_flight == 3
    assert repairer.journaled() == ["both", "live", "own", "young"]
    assert [e.id for e in repairer.journal.entries() if e.key == "both"] == [kept]
    # Repaired: dead owners, old intents of unknown owners, failures; and "both" converged.
    assert (report.copied, report.failed, report.skipped) == (5, 0, 0)
    assert s3.keys("shadow") == ["both", "dead", "failed", "old", "remote"]
    assert report.settled


def test_an_entry_added_for_the_key_while_it_is_repaired_survives(
    s3: S3Env, repairer: Repairer
) -> None:
    _put(s3, "k")
    repairer.add("k")
    added: list[str] = []

    def concurrent_failure(**_: Any) -> None:
        if not added:  # another writer's shadow write of the key fails meanwhile
            added.append(repairer.add("k", "shadow_failed"))

    _before(s3.shadow, "s3.PutObject", concurrent_failure, "x")
    report = repairer.repair()
    assert report.copied == 1
    assert [e.id for e in repairer.journal.entries()] == added


def test_limit_counts_only_entries_repair_acts_on(
    s3: S3Env, repairer: Repairer, live: Process
) -> None:
    # The oldest entries: intents of a live writer, and keys of a bucket nobody wrapped.
    for i in range(4):
        repairer.add(f"busy{i}", "pending", owner=live.token)
    repairer.journal.add(
        [
            Entry(service="s3", resource="elsewhere", key=f"e{i}", reason="shadow_failed")
            for i in "ab"
        ]
    )
    _put(s3, "a", "b", "c")
    for key in "abc":
        repairer.add(key)
    first = repairer.repair(limit=2)
    assert (first.copied, first.in_flight, first.skipped) == (2, 4, 2)
    second = repairer.repair(limit=2)
    assert second.copied == 1
    assert s3.keys("shadow") == ["a", "b", "c"]


def test_an_sqs_backlog_longer_than_the_visibility_timeout_ends_after_one_pass(
    aws: Accounts, s3: S3Env, tmp_path: Path
) -> None:
    sqs = aws.client("primary", "sqs")
    url = sqs.create_queue(QueueName="journal")["QueueUrl"]
    # Visibility 0: every message is visible again at once, as a backlog that takes longer to
    # read than the timeout sees it. Reading until the queue looks empty would never end.
    journal = SQSJournal(sqs, url, visibility_timeout=0)
    keys = [f"k{i:02d}" for i in range(25)]
    _put(s3, *keys)
    journal.add(
        [Entry(service="s3", resource="photos", key=k, reason="shadow_failed") for k in keys]
    )
    repairer = Repairer(s3, tmp_path / "unused.db")
    try:
        runs: list[RepairReport] = []
        done = threading.Event()

        def repair_until_empty() -> None:
            for _ in range(10):
                runs.append(repairer.repair(journal))
                if runs[-1].remaining == 0:
                    break
            done.set()

        threading.Thread(target=repair_until_empty, daemon=True).start()
        assert done.wait(120), "repair did not end"  # a hang guard, not a timing assertion
        assert runs[-1].remaining == 0
        assert sum(r.copied for r in runs) == 25
        assert all(r.entries <= 25 for r in runs)
        assert s3.keys("shadow") == keys
    finally:
        repairer.writer.close()


def test_a_key_that_never_settles_keeps_its_entry_after_bounded_attempts(
    s3: S3Env, aws: Accounts, repairer: Repairer
) -> None:
    _put(s3, "hot", "calm")
    repairer.add("hot")
    repairer.add("calm")
    other = aws.client("primary", "s3")
    versions = iter(range(10**6))
    copies: list[str] = []

    def rewritten(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == "hot":  # another process rewrites it before every re-check
            other.put_object(Bucket="photos", Key="hot", Body=str(next(versions)).encode())

    def counted(params: dict[str, Any], **_: Any) -> None:
        copies.append(params["Key"])

    _before(s3.primary, "s3.HeadObject", rewritten, "hot")
    _before(s3.shadow, "s3.PutObject", counted, "count")
    report = repairer.repair(attempts=4)
    assert (report.failed, report.copied) == (1, 1), report.errors
    assert "changed on the primary during 4" in report.errors[0]
    assert copies.count("hot") == 4
    assert repairer.journaled() == ["hot"]


def test_repair_ends_while_another_thread_rewrites_the_key(
    s3: S3Env, aws: Accounts, repairer: Repairer
) -> None:
    _put(s3, "hot")
    repairer.add("hot")
    other = aws.client("primary", "s3")
    stop = threading.Event()
    writes = [0]

    def rewrite() -> None:
        while not stop.is_set():
            writes[0] += 1
            other.put_object(Bucket="photos", Key="hot", Body=str(writes[0]).encode())

    thread = threading.Thread(target=rewrite, daemon=True)
    thread.start()
    try:
        report = repairer.repair()
    finally:
        stop.set()
        thread.join(30)
    assert report.failed + report.copied == 1
    # The entry stays exactly when the key did not settle.
    assert repairer.journaled() == (["hot"] if report.failed else [])


def _hang(client: Any, key: str) -> tuple[threading.Event, threading.Event]:
    """Make ``client``'s PutObject of ``key`` hang until released."""
    entered, release = threading.Event(), threading.Event()

    def hang(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == key:
            entered.set()
            release.wait(60)

    _before(client, "s3.PutObject", hang, f"hang-{key}")
    return entered, release


def test_a_hung_shadow_ends_the_run_at_its_deadline_and_keeps_the_entries(
    s3: S3Env, repairer: Repairer
) -> None:
    _put(s3, "stuck", "later")
    repairer.add("stuck")
    repairer.add("later")
    entered, release = _hang(s3.shadow, "stuck")
    try:
        report = repairer.repair(deadline=1.0)
    finally:
        assert entered.is_set()
        release.set()
    assert report.timed_out
    assert not report.settled
    assert report.unfinished >= 1
    assert report.unfinished + report.copied == 2
    assert "stuck" in repairer.journaled()


def test_writer_repair_deadline_bounds_the_flush_of_a_hung_background_shadow(
    s3: S3Env, tmp_path: Path
) -> None:
    """DualWriter.repair() flushes queued writes first; a hung shadow must not hold it forever."""
    writer = dualwrite.DualWriter(flag=True, mode="background", journal=tmp_path / "bg.db")
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    entered, release = _hang(s3.shadow, "stuck")
    try:
        client.put_object(Bucket="photos", Key="stuck", Body=b"1")
        assert entered.wait(30)
        report = writer.repair(deadline=1.0)
        assert report.timed_out
        assert not report.settled
        assert report.in_flight == 1  # the queued write's intent, left to its live owner
    finally:
        release.set()
        writer.close()
    # The hung write's intent belongs to this live process: repair left it in the journal.
    assert writer.pending == 0


def test_writer_repair_refuses_a_bad_deadline(repairer: Repairer) -> None:
    with pytest.raises(dualwrite.exceptions.ConfigurationError, match="deadline must be"):
        repairer.writer.repair(deadline=0)


def _sharing_a_stripe(mirror: Any, key: str) -> str:
    lock = mirror.key_lock("photos", key)
    return next(
        f"other-{i}"
        for i in range(100_000)
        if mirror.key_lock("photos", f"other-{i}") is lock and f"other-{i}" != key
    )


def test_an_unrelated_key_does_not_wait_behind_a_repair_on_its_lock_stripe(
    s3: S3Env, repairer: Repairer
) -> None:
    _put(s3, "slow")
    repairer.add("slow")
    neighbour = _sharing_a_stripe(repairer.writer._runtime.mirrors[0], "slow")
    entered, release = _hang(s3.shadow, "slow")
    done = threading.Event()
    repair = threading.Thread(target=lambda: (repairer.repair(), done.set()), daemon=True)
    repair.start()
    try:
        assert entered.wait(30)
        # The repair is inside its shadow write, and stays there until released: a live write
        # of a key on the same stripe must go through meanwhile.
        wrote = threading.Event()

        def live_write() -> None:
            repairer.client.put_object(Bucket="photos", Key=neighbour, Body=b"live")
            wrote.set()

        threading.Thread(target=live_write, daemon=True).start()
        assert wrote.wait(30), "the live write waited for the repair"
        assert not done.is_set()
    finally:
        release.set()
    assert done.wait(30)
    assert s3.shadow_body(neighbour) == b"live"
    assert s3.shadow_body("slow") == b"slow"


@pytest.mark.parametrize("reason", ["mismatch", "flag_failed", "uncertain", "timeout", "closed"])
def test_new_reasons_are_repaired_like_shadow_failed(
    s3: S3Env, repairer: Repairer, reason: str
) -> None:
    _put(s3, "k")
    repairer.add("k", reason)
    report = repairer.repair()
    assert (report.copied, report.remaining) == (1, 0)
    assert s3.shadow_body("k") == b"k"


def test_resource_level_entries_stay_unresolved(
    s3: S3Env, repairer: Repairer, ddb: DynamoEnv
) -> None:
    repairer.writer.wrap(ddb.p_raw, shadow=ddb.s_raw)
    _put(s3, "k")
    repairer.add("", "unsupported", detail="unparsed")
    repairer.journal.add(
        [Entry(service="dynamodb", resource="orders", key={}, reason="unsupported")]
    )
    repairer.add("k")
    report = repairer.repair()
    assert report.copied == 1
    assert report.unresolved == 2
    assert report.unresolved_resources == ("dynamodb orders", "s3 photos")
    assert not report.settled
    assert report.remaining == 2


def test_dynamodb_repair_does_not_hold_the_key_stripe(ddb: DynamoEnv, tmp_path: Path) -> None:
    with dualwrite.DualWriter(flag=True, journal=tmp_path / "j.db") as writer:
        client = writer.wrap(ddb.p_raw, shadow=ddb.s_raw)
        assert writer.journal is not None
        ddb.p_raw.put_item(TableName="orders", Item={"pk": {"S": "slow"}})
        writer.journal.add(
            [
                Entry(
                    service="dynamodb",
                    resource="orders",
                    key={"pk": {"S": "slow"}},
                    reason="shadow_failed",
                )
            ]
        )
        entered, release = threading.Event(), threading.Event()

        def hang(params: dict[str, Any], **_: Any) -> None:
            if params.get("Item", {}).get("pk") == {"S": "slow"}:
                entered.set()
                release.wait(60)

        _before(ddb.s_raw, "dynamodb.PutItem", hang, "hang")
        mirror = writer._runtime.mirrors[0]
        from dualwrite._dynamodb.keys import _canon_key  # noqa: PLC0415

        lock = mirror.key_lock("orders", hash(_canon_key({"pk": {"S": "slow"}}, "client")))
        neighbour = next(
            f"n{i}"
            for i in range(100_000)
            if mirror.key_lock("orders", hash(_canon_key({"pk": {"S": f"n{i}"}}, "client"))) is lock
        )
        repair = threading.Thread(target=writer.repair, daemon=True)
        repair.start()
        try:
            assert entered.wait(30)
            wrote = threading.Event()

            def live_write() -> None:
                client.put_item(TableName="orders", Item={"pk": {"S": neighbour}})
                wrote.set()

            threading.Thread(target=live_write, daemon=True).start()
            assert wrote.wait(30), "the live write waited for the repair"
        finally:
            release.set()
        repair.join(30)
        got = ddb.s_raw.get_item(TableName="orders", Key={"pk": {"S": neighbour}})
        assert "Item" in got


def test_limit_is_not_used_up_by_tenants_at_done(s3: S3Env, tmp_path: Path) -> None:
    stages = {"acme": dualwrite.Stage.DONE, "globex": dualwrite.Stage.DUAL_WRITE}
    writer = dualwrite.DualWriter(
        stage=lambda write: stages.get(write.tenant or "", dualwrite.Stage.OFF),
        journal=tmp_path / "j.db",
    )
    try:
        writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
        assert writer.journal is not None
        _put(s3, "acme/1", "acme/2", "acme/3", "globex/1", "globex/2")
        writer.journal.add(
            [
                Entry(service="s3", resource="photos", key=key, reason="shadow_failed", tenant=t)
                for t, key in [
                    ("acme", "acme/1"),
                    ("acme", "acme/2"),
                    ("acme", "acme/3"),
                    ("globex", "globex/1"),
                    ("globex", "globex/2"),
                ]
            ]
        )
        report = writer.repair(limit=2)
        assert (report.copied, report.skipped, report.remaining) == (2, 3, 3)
        assert s3.keys("shadow") == ["globex/1", "globex/2"]
    finally:
        writer.close()


def test_settling_a_table_removes_only_its_resource_level_entries_made_before(
    tmp_path: Path,
) -> None:
    from dualwrite._offline.backfill import settle_resource_entries  # noqa: PLC0415
    from dualwrite.journal import SQLiteJournal  # noqa: PLC0415

    journal = SQLiteJournal(tmp_path / "j.db")
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/orders"
    started = time.time()
    kept = journal.add(
        [
            Entry(
                service="dynamodb", resource="orders", key={}, reason="unsupported", at=started + 1
            ),
            Entry(
                service="dynamodb",
                resource="orders",
                key={"pk": {"S": "a"}},
                reason="timeout",
                at=0,
            ),
            Entry(service="dynamodb", resource="invoices", key={}, reason="unsupported", at=0),
            Entry(service="s3", resource="orders", key="", reason="unsupported", at=0),
        ]
    )
    journal.add(
        [
            Entry(service="dynamodb", resource="orders", key={}, reason="unsupported", at=0),
            Entry(service="dynamodb", resource=arn, key={}, reason="uncertain", at=started - 1),
        ]
    )
    assert settle_resource_entries(journal, "dynamodb", "orders", started) == 2
    assert sorted(e.id or "" for e in journal.entries()) == sorted(kept)
    journal.close()
