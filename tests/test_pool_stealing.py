"""The background pool: per-key order kept, while any idle worker takes any other ready key.

Real threads; every wait that a test relies on is an event or a barrier, never a sleep. A wait
with a timeout is only a guard against hanging: the assertion after it holds at once when the
pool is right.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable

import pytest
from conftest import S3Env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dualwrite
from dualwrite._core.pool import PoolClosedError, WorkerPool
from dualwrite.events import ShadowWritten

GUARD = 30  # seconds: only ever reached when the pool is wrong

VALUE = contextvars.ContextVar("value", default="unset")


def blocker(started: threading.Event, release: threading.Event) -> Callable[[], None]:
    def run() -> None:
        started.set()
        assert release.wait(GUARD)

    return run


def closing(pool: WorkerPool) -> None:
    assert pool.close(timeout=GUARD)


# -- per-key order -------------------------------------------------------------------------------

jobs_strategy = st.lists(
    st.lists(st.integers(0, 5), min_size=1, max_size=3), min_size=1, max_size=40
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plans=st.lists(jobs_strategy, min_size=1, max_size=4),
    workers=st.integers(1, 6),
)
def test_each_key_runs_its_jobs_one_at_a_time_in_submission_order(
    plans: list[list[list[int]]], workers: int
) -> None:
    pool = WorkerPool(workers=workers, queue_size=10_000)
    expected: dict[int, list[str]] = {}
    seen: dict[int, list[str]] = {}
    running: set[int] = set()
    overlaps: list[tuple[str, int]] = []
    runs: dict[str, int] = {}
    state = threading.Lock()
    submitting = threading.Lock()

    def job(name: str, keys: list[int]) -> Callable[[], None]:
        def run() -> None:
            with state:
                runs[name] = runs.get(name, 0) + 1
                for key in set(keys):
                    if key in running:
                        overlaps.append((name, key))
                    running.add(key)
                    seen.setdefault(key, []).append(name)
            # Give other workers the interpreter while this job holds its keys.
            threading.Event().wait(0)
            with state:
                running.difference_update(keys)

        return run

    def submit(thread: int) -> None:
        for i, keys in enumerate(plans[thread]):
            name = f"{thread}/{i}"
            with submitting:  # the order each key is given is the order it must keep
                for key in dict.fromkeys(keys):
                    expected.setdefault(key, []).append(name)
                assert pool.submit(keys if len(keys) > 1 else keys[0], job(name, keys), block=True)

    threads = [threading.Thread(target=submit, args=(t,)) for t in range(len(plans))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pool.flush(timeout=GUARD)
    closing(pool)
    assert overlaps == []
    assert seen == expected
    assert set(runs.values()) == {1}  # a job of several keys runs once
    assert pool.pending == 0


# -- any idle worker takes the next ready key ------------------------------------------------------


def test_an_idle_worker_takes_other_keys_while_one_key_runs_a_long_job() -> None:
    # Two workers, one held by key 0's job: every other key's jobs still run, on the other
    # worker, including keys that share key 0's worker in a one-queue-per-worker pool (even
    # shards) and key 0's own next job does not start.
    pool = WorkerPool(workers=2, queue_size=100)
    started, release = threading.Event(), threading.Event()
    assert pool.submit(0, blocker(started, release), block=False)
    assert started.wait(GUARD)
    next_of_zero = threading.Event()
    assert pool.submit(0, next_of_zero.set, block=False)
    done = [threading.Event() for _ in range(20)]
    for i, event in enumerate(done):
        assert pool.submit(2 * (i % 5 + 1), event.set, block=False)
    assert all(event.wait(GUARD) for event in done)
    assert not next_of_zero.is_set()  # key 0 waits for its running job
    assert pool.pending == 2
    release.set()
    assert next_of_zero.wait(GUARD)
    closing(pool)


def test_a_held_shadow_write_delays_only_its_own_key(s3: S3Env) -> None:
    # Through a real writer on moto: the shadow's put of one key is held; with two workers the
    # other keys' shadow writes all land meanwhile, and the held key's next write waits for it.
    written: list[str] = []
    landed = threading.Condition()

    def hook(event: object) -> None:
        if isinstance(event, ShadowWritten):
            with landed:
                written.append(str(event.write.key))
                landed.notify_all()

    writer = dualwrite.DualWriter(
        flag=True, mode="background", workers=2, journal=None, hooks=[hook]
    )
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    held, release = threading.Event(), threading.Event()

    def hold(params: dict[str, object], **_: object) -> None:
        if params.get("Key") == "held" and not held.is_set():
            held.set()
            release.wait(GUARD)

    s3.shadow.meta.events.register("before-parameter-build.s3.PutObject", hold)
    client.put_object(Bucket="photos", Key="held", Body=b"first")
    assert held.wait(GUARD)
    client.put_object(Bucket="photos", Key="held", Body=b"second")
    others = [f"k{i}" for i in range(12)]
    for key in others:
        client.put_object(Bucket="photos", Key=key, Body=key.encode())
    with landed:
        assert landed.wait_for(lambda: len(written) == len(others), GUARD)
    assert sorted(written) == sorted(others)
    assert writer.pending == 2  # only the held key's two writes are left
    assert s3.keys("shadow") == sorted(others)
    release.set()
    assert writer.flush(timeout=GUARD)
    assert s3.shadow_body("held") == b"second"
    writer.close()


def test_jobs_of_one_key_spread_over_workers_but_never_overlap() -> None:
    # Key 1's first job waits until key 2's job runs: with a free worker it does at once.
    pool = WorkerPool(workers=3, queue_size=100)
    other_ran = threading.Event()
    order: list[str] = []

    def first() -> None:
        assert other_ran.wait(GUARD)
        order.append("first")

    assert pool.submit(1, first, block=False)
    assert pool.submit(1, lambda: order.append("second"), block=False)
    assert pool.submit(2, other_ran.set, block=False)
    assert pool.flush(timeout=GUARD)
    assert order == ["first", "second"]
    closing(pool)


# -- jobs of several keys ----------------------------------------------------------------------


def test_a_job_of_several_keys_keeps_its_place_and_holds_no_worker() -> None:
    pool = WorkerPool(workers=2, queue_size=100)
    started, release = threading.Event(), threading.Event()
    order: list[str] = []
    assert pool.submit(1, blocker(started, release), block=False)
    assert started.wait(GUARD)
    two_ran = threading.Event()
    assert pool.submit(2, lambda: (order.append("two"), two_ran.set()), block=False)
    assert pool.submit([1, 2], lambda: order.append("both"), block=False)
    assert pool.submit(2, lambda: order.append("two after"), block=False)
    # The other worker is free: a third key runs although the multi-key job must wait for key 1.
    third = threading.Event()
    assert pool.submit(3, third.set, block=False)
    assert third.wait(GUARD)
    assert two_ran.wait(GUARD)
    assert order == ["two"]  # "both" waits for key 1; "two after" waits for "both"
    release.set()
    assert pool.flush(timeout=GUARD)
    assert order == ["two", "both", "two after"]
    closing(pool)


def test_crossing_jobs_of_several_keys_never_wait_for_each_other() -> None:
    pool = WorkerPool(workers=2, queue_size=10_000)
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def job(name: str) -> Callable[[], None]:
        def run() -> None:
            with lock:
                counts[name] = counts.get(name, 0) + 1

        return run

    def submit(thread: int) -> None:
        for i in range(300):
            keys = [1, 2, 3] if thread % 2 else [3, 2, 1]
            assert pool.submit(keys[: 2 + i % 2], job(f"{thread}/{i}"), block=True)

    threads = [threading.Thread(target=submit, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pool.close(timeout=GUARD)  # no job of several keys waits for another forever
    assert len(counts) == 1200
    assert set(counts.values()) == {1}


# -- a full pool -----------------------------------------------------------------------------------


def test_on_full_journal_refuses_once_the_waiting_jobs_reach_the_capacity() -> None:
    pool = WorkerPool(workers=1, queue_size=2)
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []
    assert pool.submit(0, blocker(started, release), block=False)
    assert started.wait(GUARD)  # running: it does not count against the capacity
    assert pool.submit(1, lambda: ran.append(1), block=False)
    assert pool.submit(2, lambda: ran.append(2), block=False)
    assert not pool.submit(3, lambda: ran.append(3), block=False)
    assert not pool.submit([4, 5], lambda: ran.append(4), block=False)
    assert pool.pending == 3
    release.set()
    assert pool.flush(timeout=GUARD)
    assert sorted(ran) == [1, 2]  # the refused jobs never run
    assert pool.submit(3, lambda: ran.append(3), block=False)  # room again
    closing(pool)
    assert sorted(ran) == [1, 2, 3]


def test_on_full_block_queues_then_waits_until_a_job_starts() -> None:
    pool = WorkerPool(workers=1, queue_size=1)
    started, release = threading.Event(), threading.Event()
    queued_started = threading.Event()
    assert pool.submit(0, blocker(started, release), block=True)
    assert started.wait(GUARD)
    assert pool.submit(1, queued_started.set, block=True)  # fits
    extra = threading.Event()
    assert pool.submit(2, extra.set, block=True)  # over the capacity: queued all the same
    assert pool.pending == 3
    seen_at_return: list[bool] = []

    def caller() -> None:
        pool.wait_for_room(2)
        seen_at_return.append(queued_started.is_set())

    waiter = threading.Thread(target=caller)
    waiter.start()
    release.set()
    waiter.join(GUARD)
    # The caller went on only once a job left the waiting ones (the one queued before its own).
    assert seen_at_return == [True]
    assert extra.wait(GUARD)
    closing(pool)


def test_a_worker_never_waits_for_room_or_directions() -> None:
    # A hook that writes through a wrapped client runs on a worker: it must not wait for the
    # workers (the pool is full and the only worker is itself).
    pool = WorkerPool(workers=1, queue_size=1)
    inner_done = threading.Event()
    results: list[bool] = []

    def hook_like() -> None:
        assert pool.submit(5, lambda: None, block=True, direction=False)
        assert pool.submit(6, lambda: None, block=True, direction=False)
        pool.wait_for_room(6)
        pool.wait_direction(5, True)
        pool.wait_direction_all(True)
        results.append(pool.direction_pending(5, True))
        inner_done.set()

    assert pool.submit(1, hook_like, block=True)
    assert inner_done.wait(GUARD)
    assert results == [False]
    closing(pool)


# -- directions ------------------------------------------------------------------------------------


def test_wait_direction_waits_for_the_key_jobs_of_the_other_direction() -> None:
    pool = WorkerPool(workers=2, queue_size=100)
    started, release = threading.Event(), threading.Event()
    finished = threading.Event()

    def old_first() -> None:
        blocker(started, release)()
        finished.set()

    assert pool.submit(7, old_first, block=False, direction=False)
    assert started.wait(GUARD)
    assert pool.direction_pending(7, True)
    assert pool.direction_pending([8, 7], True)
    assert not pool.direction_pending(7, False)
    assert not pool.direction_pending(8, True)
    seen_at_return: list[bool] = []
    waiter = threading.Thread(
        target=lambda: (pool.wait_direction(7, True), seen_at_return.append(finished.is_set()))
    )
    waiter.start()
    release.set()
    waiter.join(GUARD)
    assert seen_at_return == [True]
    assert not pool.direction_pending(7, True)
    closing(pool)


def test_wait_direction_all_waits_for_an_older_job_outlived_by_newer_ones() -> None:
    # With any worker taking any key, jobs finish out of order: a newer job of the other
    # direction finishing does not stand for an older one still running.
    pool = WorkerPool(workers=2, queue_size=100)
    started, release = threading.Event(), threading.Event()
    finished = threading.Event()

    def older() -> None:
        blocker(started, release)()
        finished.set()

    assert pool.submit(1, older, block=False, direction=False)
    assert started.wait(GUARD)
    newer = threading.Event()
    assert pool.submit(2, newer.set, block=False, direction=False)
    assert newer.wait(GUARD)
    seen_at_return: list[bool] = []
    waiter = threading.Thread(
        target=lambda: (pool.wait_direction_all(True), seen_at_return.append(finished.is_set()))
    )
    waiter.start()
    release.set()
    waiter.join(GUARD)
    assert seen_at_return == [True]
    closing(pool)


def test_wait_direction_all_ignores_jobs_queued_after_the_call() -> None:
    pool = WorkerPool(workers=2, queue_size=100)
    started, release = threading.Event(), threading.Event()
    assert pool.submit(1, blocker(started, release), block=False, direction=False)
    assert started.wait(GUARD)
    pool.wait_direction_all(False)  # nothing of the other direction: at once
    assert pool.direction_pending(1, True)
    release.set()
    closing(pool)


# -- context, flush and close ----------------------------------------------------------------------


def test_the_caller_context_reaches_the_job() -> None:
    pool = WorkerPool(workers=3, queue_size=100)
    seen: list[str] = []
    token = VALUE.set("caller")
    try:
        assert pool.submit([1, 2], lambda: seen.append(VALUE.get()), block=False)
        assert pool.submit(3, lambda: seen.append(VALUE.get()), block=False)
    finally:
        VALUE.reset(token)
    assert pool.flush(timeout=GUARD)
    assert seen == ["caller", "caller"]
    closing(pool)


def test_flush_and_close_time_out_then_the_left_jobs_still_run() -> None:
    pool = WorkerPool(workers=2, queue_size=100)
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []
    assert pool.submit(1, blocker(started, release), block=False)
    assert started.wait(GUARD)
    assert pool.submit(1, lambda: ran.append("same key"), block=False)
    assert pool.submit([1, 2], lambda: ran.append("both"), block=False)
    assert pool.flush(timeout=0.01) is False
    assert pool.close(timeout=0.01) is False
    with pytest.raises(PoolClosedError):
        pool.submit(3, lambda: None, block=True)
    assert pool.pending == 3
    release.set()
    assert pool.flush(timeout=GUARD)  # the stopping workers still drained what was queued
    assert ran == ["same key", "both"]


def test_close_finishes_queued_jobs_and_stops_the_threads() -> None:
    pool = WorkerPool(workers=3, queue_size=100, name="stealing-test")
    ran: list[int] = []
    lock = threading.Lock()
    for i in range(50):
        assert pool.submit(
            i % 7, lambda i=i: (lock.acquire(), ran.append(i), lock.release()), block=True
        )
    assert pool.close() is True
    assert sorted(ran) == list(range(50))
    assert pool.pending == 0
    assert not any(
        t.is_alive() for t in threading.enumerate() if t.name.startswith("stealing-test-")
    )
    with pytest.raises(PoolClosedError):
        pool.submit(1, lambda: None, block=False)
    assert pool.close() is True  # twice is fine
