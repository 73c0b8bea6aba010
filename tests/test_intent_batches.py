"""Background mode removes settled write-ahead intents in batches.

Every flag-on write journals a ``pending`` intent before its primary call and removes it once
the shadow holds the state. On a worker that removal was a journal transaction per write, in the
way of the callers' adds on the journal's one writer connection (``benchmarks/journal_cpu.py``).
A removal is not on any write's path to safety (an intent left by a crash is repaired, and
repair leaves a live process's intents alone), so in background mode the workers' removals are
collected: removed once ``SETTLED_BATCH`` wait or the oldest has waited ``SETTLED_AGE``, once
the pool has been idle that long, and at ``flush()`` and ``close()``. Sync mode removes each
intent before the call returns, as before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import S3Env

import dualwrite
import dualwrite._core.runtime as runtime_module
from dualwrite.events import JournalFailed
from dualwrite.exceptions import JournalError
from dualwrite.journal import MemoryJournal, process_token
from dualwrite.testing import RecordingHook


class CountingJournal(MemoryJournal):
    """A memory journal that counts its removes (calls and ids), and can fail them."""

    def __init__(self) -> None:
        super().__init__()
        self.removes: list[int] = []
        self.fail_removes = False

    def remove(self, ids: Sequence[str]) -> None:
        self.removes.append(len(ids))
        if self.fail_removes:
            raise JournalError("the journal's disk is full", problem="full")
        super().remove(ids)


def test_background_removes_intents_in_batches_and_all_of_them_at_flush(
    s3: S3Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Neither the age nor the idle pool may trigger a removal here: batches of 64, then flush.
    monkeypatch.setattr(runtime_module, "SETTLED_AGE", 3600.0)
    journal = CountingJournal()
    writer = dualwrite.DualWriter(flag=True, mode="background", journal=journal)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    for i in range(130):
        client.put_object(Bucket="photos", Key=f"k{i % 50}", Body=f"{i}".encode())
    assert writer.flush()
    assert journal.count() == 0
    assert sum(journal.removes) == 130
    # Batches of 64 (two workers may both add before either takes them: 65 and 63), then the
    # rest at flush().
    assert len(journal.removes) == 3
    assert min(journal.removes[:2]) >= 63
    assert s3.shadow_body("k29") == b"129"
    writer.close()


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_the_timer_removes_a_lone_settled_intent_without_a_flush(s3: S3Env) -> None:
    journal = CountingJournal()
    writer = dualwrite.DualWriter(flag=True, mode="background", journal=journal)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="k", Body=b"x")
    wait_until(lambda: writer.pending == 0, "the shadow write ran")
    # No other write settles, no flush(), no close(): only the workers' timer is left.
    wait_until(lambda: journal.count() == 0, "the timer removed the intent")
    assert journal.removes == [1]
    writer.close()


def test_the_timer_removes_an_intent_settled_in_the_callers_thread(s3: S3Env) -> None:
    """A definite primary failure settles the intent in the caller's thread; no job runs."""
    journal = CountingJournal()
    writer = dualwrite.DualWriter(flag=True, mode="background", journal=journal)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names={"nowhere": "nowhere-acct2"})
    with pytest.raises(ClientError):
        client.put_object(Bucket="nowhere", Key="k", Body=b"x")
    wait_until(lambda: journal.count() == 0, "the timer removed the intent")
    assert journal.removes == [1]
    writer.close()


def test_sync_mode_removes_each_intent_before_the_call_returns(s3: S3Env) -> None:
    journal = CountingJournal()
    writer = dualwrite.DualWriter(flag=True, journal=journal)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    for i in range(3):
        client.put_object(Bucket="photos", Key=f"k{i}", Body=b"x")
        assert journal.count() == 0
    assert journal.removes == [1, 1, 1]
    writer.close()


def test_close_removes_what_is_settled(s3: S3Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "SETTLED_AGE", 3600.0)
    journal = CountingJournal()
    writer = dualwrite.DualWriter(flag=True, mode="background", journal=journal)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="k", Body=b"x")
    wait_until(lambda: writer.pending == 0, "the shadow write ran")
    assert journal.count() == 1  # settled, waiting for its batch
    assert writer.close()
    assert journal.count() == 0
    assert journal.removes == [1]


def test_a_failed_batch_is_reported_and_its_intents_stay_for_repair(
    s3: S3Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "SETTLED_AGE", 3600.0)
    journal = CountingJournal()
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, mode="background", journal=journal, hooks=[recorder])
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    for i in range(5):
        client.put_object(Bucket="photos", Key=f"k{i}", Body=b"x")
    journal.fail_removes = True
    assert writer.flush()
    failed: list[Any] = [e for e in recorder.events if isinstance(e, JournalFailed)]
    assert [(e.action, e.entries, e.problem, e.reason) for e in failed] == [
        ("remove", 5, "full", "pending")
    ]
    assert sorted(e.key for e in journal.entries()) == [f"k{i}" for i in range(5)]
    assert {e.reason for e in journal.entries()} == {"pending"}
    # Left as this live process's intents: repair settles them once the process has ended.
    assert {e.owner for e in journal.entries()} == {process_token()}
    writer.close()
