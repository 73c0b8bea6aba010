"""A journal that is locked, deleted or full is an event and a log line, never a stall or silence.

The write itself always goes on: the caller gets the primary's response and the shadow is
written; what the journal could not hold is said loudly.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest
from _support.shadow import Breakdown
from conftest import S3Env

import dualwrite
from dualwrite.events import JournalFailed
from dualwrite.exceptions import JournalError
from dualwrite.journal import Entry, SQLiteJournal
from dualwrite.testing import RecordingHook


def journal_failures(recorder: RecordingHook) -> list[tuple[str, str, str]]:
    return [
        (e.problem, e.action, e.reason) for e in recorder.events if isinstance(e, JournalFailed)
    ]


def test_a_journal_locked_by_another_process_fails_fast_and_loudly(
    s3: S3Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.db"
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, journal=path, hooks=[recorder])
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    # Another process's long write transaction (a connection of its own, as another process's).
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.ERROR, logger="dualwrite"):
            response = client.put_object(Bucket="photos", Key="k", Body=b"x")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.shadow_body("k") == b"x"  # the write went on
    assert journal_failures(recorder) == [("locked", "add", "pending")]
    assert "journal locked" in caplog.text
    assert "busy timeout" in caplog.text
    writer.close()


def test_the_busy_timeout_is_short() -> None:
    # One second, not sqlite3's 5 s nor the 30 s of earlier releases: another process's group
    # commit takes well under a millisecond, and a caller must not wait longer than that.
    assert SQLiteJournal.__init__.__kwdefaults__ == {"timeout": 1.0}


def test_a_deleted_journal_is_recreated_and_reported(
    s3: S3Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.db"
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, journal=path, hooks=[recorder], circuit_breaker=None)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="before", Body=b"x")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    Breakdown(s3.shadow).broken = True
    with caplog.at_level(logging.ERROR, logger="dualwrite"):
        client.put_object(Bucket="photos", Key="after", Body=b"y")
    writer.close()
    assert ("deleted", "recreate", "") in journal_failures(recorder)
    assert "was deleted while in use; recreated" in caplog.text
    # The failure is in the new file, where repair will look.
    fresh = SQLiteJournal(path)
    assert [(e.key, e.reason) for e in fresh.entries()] == [("after", "shadow_failed")]
    fresh.close()


def test_a_full_disk_is_reported_as_a_full_disk(
    s3: S3Env, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.db"
    journal = SQLiteJournal(path)
    journal.remove(journal.add([Entry(service="s3", resource="photos", key="warm", reason="x")]))
    # SQLite's own "disk is full" (SQLITE_FULL), as a full file system gives it: the file may
    # not grow by one more page.
    assert journal._writer is not None
    pages = journal._writer.execute("PRAGMA page_count").fetchone()[0]
    journal._writer.execute(f"PRAGMA max_page_count = {pages}")

    def fill() -> None:  # every free byte of the last page
        for _ in range(10_000):
            journal.add([Entry(service="s3", resource="photos", key="k" * 100, reason="x")])

    with pytest.raises(JournalError) as raised:
        fill()
    assert raised.value.problem == "full"
    assert "cannot rollback" not in str(raised.value)

    recorder = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, journal=journal, hooks=[recorder])
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    with caplog.at_level(logging.ERROR, logger="dualwrite"):
        client.put_object(Bucket="photos", Key="k" * 900, Body=b"x")
    assert s3.shadow_body("k" * 900) == b"x"
    assert journal_failures(recorder)[0] == ("full", "add", "pending")
    assert "journal full" in caplog.text
    assert "disk holding it is full" in caplog.text
    assert "cannot rollback" not in caplog.text
    writer.close()
    journal.close()
