"""Background mode: per-key order, context carried to the workers, owned bodies, bounded queues."""

from __future__ import annotations

import contextvars
import io
import os
import random
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from _support.shadow import Gate
from botocore.exceptions import ClientError
from conftest import DynamoEnv, S3Env

import dualwrite
from dualwrite import _services
from dualwrite._core import bodies as _bodies
from dualwrite._core.entries import shard
from dualwrite._core.pool import WorkerPool
from dualwrite.events import ShadowFailed, ShadowWritten
from dualwrite.exceptions import ConfigurationError
from dualwrite.journal import SQLiteJournal
from dualwrite.testing import RecordingHook

REQUEST_ID = contextvars.ContextVar("request_id", default="unset")


def background(s3: S3Env, **options: Any) -> tuple[dualwrite.DualWriter, Any]:
    options.setdefault("flag", True)
    writer = dualwrite.DualWriter(mode="background", **options)
    return writer, writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)


def run_threads(count: int, target: Callable[[int], None]) -> None:
    errors: list[str] = []

    def guarded(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:
            errors.append("".join(traceback.format_exception(exc)))

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        pytest.fail("\n".join(errors))


def assert_accounts_equal(s3: S3Env, *, tags: bool = False) -> None:
    keys = s3.keys("primary")
    assert keys == s3.keys("shadow")
    for key in keys:
        assert s3.primary_body(key) == s3.shadow_body(key), key
        if tags:
            primary = s3.primary.get_object_tagging(Bucket="photos", Key=key)["TagSet"]
            shadow = s3.shadow.get_object_tagging(Bucket="photos-acct2", Key=key)["TagSet"]
            assert sorted(map(str, primary)) == sorted(map(str, shadow)), key


# -- ordering and context ---------------------------------------------------------------------


def test_same_key_writes_reach_the_shadow_in_the_primary_order(s3: S3Env) -> None:
    # Random shadow delays make any reordering across workers show up as a stale shadow value.
    rng = random.Random(4)
    rng_lock = threading.Lock()

    def jitter(**_: Any) -> None:
        with rng_lock:
            delay = rng.random() / 500
        threading.Event().wait(delay)

    s3.shadow.meta.events.register("before-call.s3.PutObject", jitter, unique_id="jitter")
    recorder = RecordingHook()
    writer, client = background(s3, workers=8, hooks=[recorder])

    def write(thread: int) -> None:
        for i in range(40):
            client.put_object(Bucket="photos", Key=f"k{i % 4}", Body=f"{thread}-{i}".encode())

    run_threads(8, write)
    assert writer.flush(timeout=60)
    assert_accounts_equal(s3)
    assert recorder.kinds().count("shadow_written") == 8 * 40
    writer.close()


def test_caller_context_reaches_hooks_on_the_worker(s3: S3Env) -> None:
    seen: list[tuple[str, str | None, str, str]] = []

    def hook(event: Any) -> None:
        if isinstance(event, ShadowWritten):
            seen.append(
                (
                    str(event.write.key),
                    dualwrite.current_tenant(),
                    REQUEST_ID.get(),
                    threading.current_thread().name,
                )
            )

    writer, client = background(s3, hooks=[hook], workers=2)

    def write(thread: int) -> None:
        REQUEST_ID.set(f"req-{thread}")
        with dualwrite.tenant(f"tenant-{thread}"):
            client.put_object(Bucket="photos", Key=f"t{thread}", Body=b"x")

    run_threads(4, write)
    assert writer.flush(timeout=30)
    caller = threading.current_thread().name
    assert sorted(s[0] for s in seen) == ["t0", "t1", "t2", "t3"]
    for key, tenant, request, thread_name in seen:
        assert tenant == f"tenant-{key[1:]}"
        assert request == f"req-{key[1:]}"
        assert thread_name.startswith("dualwrite-")
        assert thread_name != caller
    writer.close()


# -- the library owns the bytes it sends later --------------------------------------------------


def test_caller_may_close_and_delete_its_file_right_after_the_call(
    s3: S3Env, tmp_path: Path
) -> None:
    writer, client = background(s3)
    gate = Gate(s3.shadow, "PutObject", "UploadPart")
    path = tmp_path / "body.bin"
    path.write_bytes(b"from a file, at an offset")
    with path.open("rb") as handle:
        handle.seek(5)
        client.put_object(Bucket="photos", Key="file", Body=handle)
    path.unlink()
    buffer = bytearray(b"mutable buffer")
    client.put_object(Bucket="photos", Key="buffer", Body=buffer)
    buffer[:] = b"overwritten!!!"
    stream = io.BytesIO(b"a stream the caller reuses")
    client.put_object(Bucket="photos", Key="stream", Body=stream)
    stream.seek(0)
    stream.write(b"XXXXXXXX")
    stream.close()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024))  # over the 8 MiB multipart threshold
    client.upload_file(str(big), "photos", "big")
    expected_big = big.read_bytes()
    big.unlink()
    gate.open()  # the shadow writes run only now, after every source is gone or changed
    assert writer.flush(timeout=60)
    assert s3.shadow_body("file") == b"a file, at an offset"
    assert s3.shadow_body("buffer") == b"mutable buffer"
    assert s3.shadow_body("stream") == b"a stream the caller reuses"
    assert s3.shadow_body("big") == expected_big
    assert_accounts_equal(s3)
    writer.close()
    # Every spool gave its share of the in-memory budget back.
    assert _bodies._BUDGET.used == 0


def test_queued_bodies_share_a_bounded_memory_budget(s3: S3Env) -> None:
    budget = _bodies._BUDGET
    assert budget.used == 0
    writer, client = background(s3)
    gate = Gate(s3.shadow, "PutObject")
    for i in range(20):  # small bodies cost what they weigh
        client.put_object(Bucket="photos", Key=f"small-{i}", Body=io.BytesIO(b"s" * 1024))
    assert budget.used == 20 * 1024
    big = os.urandom(_bodies.SPOOL_MEMORY + 1)
    client.put_object(Bucket="photos", Key="big", Body=io.BytesIO(big))  # over 8 MiB: on disk
    assert budget.used == 20 * 1024
    six = 6 * 1024 * 1024
    for i in range(3):  # two fit in the remaining budget, the third goes to disk
        client.put_object(Bucket="photos", Key=f"six-{i}", Body=io.BytesIO(b"6" * six))
    assert budget.used == 20 * 1024 + 2 * six <= _bodies.BACKGROUND_MEMORY
    gate.open()
    assert writer.flush(timeout=60)
    assert budget.used == 0
    assert s3.shadow_body("big") == big
    assert_accounts_equal(s3)
    writer.close()


# -- flush, close, context manager ------------------------------------------------------------


def test_flush_with_timeout_reports_pending_work(s3: S3Env) -> None:
    writer, client = background(s3)
    gate = Gate(s3.shadow, "PutObject")
    client.put_object(Bucket="photos", Key="slow", Body=b"x")
    assert gate.wait_arrivals(1)
    assert writer.flush(timeout=0.05) is False
    assert writer.pending == 1
    gate.open()
    assert writer.flush(timeout=30) is True
    assert writer.pending == 0
    assert s3.shadow_body("slow") == b"x"
    writer.close()


def test_close_flushes_and_later_writes_are_journaled_closed(s3: S3Env) -> None:
    recorder = RecordingHook()
    writer, client = background(s3, hooks=[recorder])
    for i in range(20):
        client.put_object(Bucket="photos", Key=f"c{i}", Body=b"x")
    assert writer.close() is True
    assert writer.pending == 0
    assert len(s3.keys("shadow")) == 20
    with pytest.raises(ConfigurationError):
        writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    recorder.events.clear()
    client.put_object(Bucket="photos", Key="after-close", Body=b"y")
    # The primary has it; the shadow is not called by a closed writer; the key is journaled.
    assert s3.primary_body("after-close") == b"y"
    assert "after-close" not in s3.keys("shadow")
    assert [(e.kind, getattr(e, "error_type", None)) for e in recorder.events] == [
        ("shadow_failed", "WriterClosed")
    ]
    assert writer.journal is not None
    assert [(e.key, e.reason) for e in writer.journal.entries()] == [("after-close", "closed")]
    # A primary refusal after close leaves nothing behind.
    with pytest.raises(ClientError):
        client.put_object(Bucket="no-such-bucket", Key="k", Body=b"z")
    assert writer.journal.count() == 1
    assert writer.repair().copied == 1
    assert s3.shadow_body("after-close") == b"y"
    assert writer.close() is True  # twice is fine


def test_writer_is_a_context_manager(s3: S3Env, tmp_path: Path) -> None:
    with dualwrite.DualWriter(flag=True, mode="background", journal=tmp_path / "j.db") as writer:
        client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
        for i in range(30):
            client.put_object(Bucket="photos", Key=f"m{i}", Body=str(i).encode())
    assert writer.pending == 0
    assert SQLiteJournal(tmp_path / "j.db").count() == 0  # every intent was removed
    assert_accounts_equal(s3)


def test_writes_racing_close_are_neither_lost_nor_raised(s3: S3Env) -> None:
    writer, client = background(s3, workers=2)
    started = threading.Barrier(5)

    def write(thread: int) -> None:
        started.wait()
        for i in range(40):
            client.put_object(Bucket="photos", Key=f"r{thread}-{i}", Body=b"x")

    closer = threading.Thread(target=lambda: (started.wait(), writer.close()))
    closer.start()
    run_threads(4, write)
    closer.join()
    writer.flush()
    # Writes after the close reached the primary only and are journaled ("closed").
    assert writer.journal is not None
    assert {e.reason for e in writer.journal.entries()} <= {"closed"}
    report = writer.repair()
    assert (report.failed, report.remaining) == (0, 0)
    assert_accounts_equal(s3)


# -- a full queue ------------------------------------------------------------------------------


def test_full_queue_blocks_the_caller_and_loses_nothing(s3: S3Env, tmp_path: Path) -> None:
    recorder = RecordingHook()
    writer, client = background(
        s3, workers=1, queue_size=1, on_full="block", hooks=[recorder], journal=tmp_path / "j.db"
    )
    gate = Gate(s3.shadow, "PutObject")
    acked: list[str] = []

    def write(_: int) -> None:
        for i in range(4):
            client.put_object(Bucket="photos", Key=f"q{i}", Body=f"v{i}".encode())
            acked.append(f"q{i}")

    caller = threading.Thread(target=write, args=(0,))
    caller.start()
    assert gate.wait_arrivals(1)  # q0 is on the worker, held by the gate
    # q1 waits in the queue (size 1); q2's primary write is done and its caller blocks.
    while writer.pending < 3:
        threading.Event().wait(0.005)
    assert acked == ["q0", "q1"]
    assert caller.is_alive()
    gate.open()
    caller.join(30)
    assert acked == ["q0", "q1", "q2", "q3"]
    assert writer.flush(timeout=30)
    assert_accounts_equal(s3)
    assert "shadow_failed" not in recorder.kinds()
    assert writer.journal is not None
    assert writer.journal.count() == 0
    writer.close()


def test_full_queue_journals_overflow_and_repair_restores_it(s3: S3Env, tmp_path: Path) -> None:
    recorder = RecordingHook()
    writer, client = background(
        s3, workers=1, queue_size=1, on_full="journal", hooks=[recorder], journal=tmp_path / "j.db"
    )
    gate = Gate(s3.shadow, "PutObject")
    client.put_object(Bucket="photos", Key="q0", Body=b"v0")
    assert gate.wait_arrivals(1)
    for i in range(1, 5):  # q1 fits in the queue; q2..q4 overflow, without blocking
        client.put_object(Bucket="photos", Key=f"q{i}", Body=f"v{i}".encode())
    failed = [e for e in recorder.events if isinstance(e, ShadowFailed)]
    assert [(e.write.key, e.error_type) for e in failed] == [
        ("q2", "QueueFull"),
        ("q3", "QueueFull"),
        ("q4", "QueueFull"),
    ]
    gate.open()
    assert writer.flush(timeout=30)
    assert writer.journal is not None
    journaled = sorted((e.key, e.reason) for e in writer.journal.entries())
    assert journaled == [("q2", "overflow"), ("q3", "overflow"), ("q4", "overflow")]
    assert s3.keys("shadow") == ["q0", "q1"]
    report = writer.repair()
    assert (report.copied, report.failed, report.remaining) == (3, 0, 0)
    assert_accounts_equal(s3)
    writer.close()


def test_on_full_journal_needs_a_journal() -> None:
    with pytest.raises(ConfigurationError, match="needs a journal"):
        dualwrite.DualWriter(flag=True, mode="background", on_full="journal", journal=None)


def test_a_multi_key_delete_keeps_its_place_in_each_key_order(s3: S3Env) -> None:
    # A put waits at the shadow; a DeleteObjects of the same key, later on the primary, must not
    # reach the shadow first (it would delete nothing, then the put would land: a stale key).
    writer, client = background(s3, workers=8)
    batch = dualwrite.Write(
        tenant=None, service="s3", operation="DeleteObjects", resource="photos",
        shadow_resource="photos-acct2", key=None,
    )  # fmt: skip
    s3_service = _services.get("s3")
    key = next(  # a key whose queue is not the one a multi-key write would use
        k
        for k in (f"d{i}" for i in range(100))
        if shard(s3_service, attrs.evolve(batch, key=k)) % 8 != shard(s3_service, batch) % 8
    )
    released = threading.Event()

    def hold_put(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == key:
            released.wait(30)

    s3.shadow.meta.events.register("before-parameter-build.s3.PutObject", hold_put)
    deleted = threading.Event()
    s3.shadow.meta.events.register(
        "after-call.s3.DeleteObjects", lambda **_: deleted.set(), unique_id="tests-deleted"
    )
    client.put_object(Bucket="photos", Key=key, Body=b"x")
    client.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": key}]})
    # Out of order, the delete would reach the shadow now, while the put waits; in order, it
    # waits for the put, and this wait is just a delay.
    deleted.wait(0.5)
    released.set()
    assert writer.flush(timeout=30)
    assert s3.keys("primary") == []
    assert s3.keys("shadow") == []
    writer.close()


def test_pool_keeps_each_queue_in_order_with_multi_queue_jobs() -> None:
    pool = WorkerPool(workers=4, queue_size=10_000)
    expected: dict[int, list[str]] = {q: [] for q in range(4)}
    seen: dict[int, list[str]] = {q: [] for q in range(4)}
    submitting = threading.Lock()

    def job(name: str, queues: set[int]) -> Callable[[], None]:
        def run() -> None:
            for q in queues:
                seen[q].append(name)

        return run

    def work(thread: int) -> None:
        rng = random.Random(thread)
        for i in range(200):
            queues = {rng.randrange(4) for _ in range(rng.choice((1, 1, 2, 3)))}
            name = f"{thread}/{i}"
            with submitting:  # the order each queue is given is the order it must keep
                for q in queues:
                    expected[q].append(name)
                assert pool.submit(sorted(queues), job(name, queues), block=True)

    run_threads(8, work)
    assert pool.close(timeout=60)  # no barrier waits for another forever
    assert seen == expected


# -- intents --------------------------------------------------------------------------------


def test_intent_is_journaled_before_the_caller_returns_and_cleared_after(
    s3: S3Env, tmp_path: Path
) -> None:
    writer, client = background(s3, journal=tmp_path / "j.db")
    gate = Gate(s3.shadow, "PutObject", "DeleteObject")
    client.put_object(Bucket="photos", Key="intent", Body=b"x")
    client.delete_object(Bucket="photos", Key="other")
    # Read by a second connection, as a repair process after a crash would.
    other = SQLiteJournal(tmp_path / "j.db")
    pending = sorted((e.key, e.reason, e.detail) for e in other.entries())
    assert pending == [("intent", "pending", "PutObject"), ("other", "pending", "DeleteObject")]
    gate.open()
    assert writer.flush(timeout=30)
    assert other.count() == 0
    other.close()
    writer.close()


# -- many threads, many kinds of writes ---------------------------------------------------------


def mixed_writes(s3: S3Env, threads: int, per_thread: int, keys: int) -> None:
    writer, client = background(s3, workers=8, queue_size=512)

    def work(thread: int) -> None:
        rng = random.Random(thread)
        for i in range(per_thread):
            key = f"k{rng.randrange(keys)}"
            roll = rng.random()
            try:
                if roll < 0.55:
                    client.put_object(Bucket="photos", Key=key, Body=f"{thread}/{i}".encode())
                elif roll < 0.7:
                    source = f"k{(int(key[1:]) + rng.randrange(1, keys)) % keys}"
                    client.copy_object(
                        Bucket="photos", Key=key, CopySource={"Bucket": "photos", "Key": source}
                    )
                elif roll < 0.8:
                    client.delete_object(Bucket="photos", Key=key)
                elif roll < 0.85:
                    others = {f"k{rng.randrange(keys)}" for _ in range(3)}
                    client.delete_objects(
                        Bucket="photos", Delete={"Objects": [{"Key": k} for k in others | {key}]}
                    )
                else:
                    client.put_object_tagging(
                        Bucket="photos",
                        Key=key,
                        Tagging={"TagSet": [{"Key": "by", "Value": f"{thread}/{i}"}]},
                    )
            except ClientError as exc:  # copy or tag of a key another thread just deleted
                if exc.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                    raise
            except ValueError as exc:
                # moto is not thread-safe here: a copy reading a source that a concurrent put
                # replaces finds the old value's buffer closed. The primary failed; the caller
                # saw its exception, and the shadow must not have been touched.
                if "closed file" not in str(exc):
                    raise

    run_threads(threads, work)
    assert writer.flush(timeout=300)
    assert_accounts_equal(s3, tags=True)
    writer.close()


@pytest.mark.usefixtures("atomic_moto")
def test_many_threads_mixed_writes(s3: S3Env) -> None:
    mixed_writes(s3, threads=16, per_thread=60, keys=40)


@pytest.mark.slow
@pytest.mark.usefixtures("atomic_moto")
def test_many_threads_mixed_writes_full_size(s3: S3Env) -> None:
    mixed_writes(s3, threads=16, per_thread=500, keys=200)


@pytest.mark.usefixtures("atomic_moto")
def test_dynamodb_items_converge_after_flush(ddb: DynamoEnv) -> None:
    writer = dualwrite.DualWriter(flag=True, mode="background", workers=8)
    client = writer.wrap(ddb.primary, shadow=ddb.shadow, names=ddb.names)

    def work(thread: int) -> None:
        rng = random.Random(thread)
        for i in range(30):
            key = {"pk": {"S": f"item-{rng.randrange(5)}"}}
            roll = rng.random()
            if roll < 0.6:
                client.update_item(
                    TableName="orders",
                    Key=key,
                    UpdateExpression="ADD n :one SET lastby = :who",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":who": {"S": f"{thread}/{i}"}},
                )
            elif roll < 0.8:
                client.put_item(TableName="orders", Item={**key, "put": {"S": f"{thread}/{i}"}})
            else:
                client.delete_item(TableName="orders", Key=key)

    run_threads(8, work)
    assert writer.flush(timeout=60)
    assert ddb.scan("shadow") == ddb.scan("primary")
    writer.close()
