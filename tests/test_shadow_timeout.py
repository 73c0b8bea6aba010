"""``shadow_timeout``: in sync mode a hung shadow holds the caller for a bounded time only.

The caller waits for the shadow at most ``shadow_timeout`` plus the primary's own duration;
past it the key is journaled (``timeout``), the caller gets the primary's response, and the
shadow call may finish later without removing the entry.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _support.shadow import Gate
from conftest import S3Env

import dualwrite
from dualwrite.events import ShadowFailed, ShadowWritten
from dualwrite.exceptions import ConfigurationError
from dualwrite.journal import SQLiteJournal
from dualwrite.testing import RecordingHook


def entries(path: Path) -> list[tuple[Any, str]]:
    journal = SQLiteJournal(path)
    try:
        return [(e.key, e.reason) for e in journal.entries()]
    finally:
        journal.close()


def test_a_hung_shadow_releases_the_caller_and_journals_the_key(s3: S3Env, tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    recorder = RecordingHook()
    gate = Gate(s3.shadow, "PutObject")
    writer = dualwrite.DualWriter(
        flag=True, journal=path, hooks=[recorder], shadow_timeout=0.05, circuit_breaker=None
    )
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    response = client.put_object(Bucket="photos", Key="hung", Body=b"v1")
    # The caller is back while the shadow call still waits at the gate.
    assert gate.arrived == 1
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.primary_body("hung") == b"v1"
    (failed,) = [e for e in recorder.events if isinstance(e, ShadowFailed)]
    assert failed.error_type == "ShadowTimeout"
    assert entries(path) == [("hung", "timeout")]  # the intent was replaced, not kept
    # The shadow call finishes later: it is reported, and the entry stays for repair (a late
    # write may have landed after a newer one of the same key).
    gate.open()
    deadline = time.monotonic() + 30
    while not any(isinstance(e, ShadowWritten) for e in recorder.events):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert s3.shadow_body("hung") == b"v1"
    assert entries(path) == [("hung", "timeout")]
    assert writer.repair().copied == 1
    assert entries(path) == []
    writer.close()


@pytest.mark.parametrize("single_writer", [True, False], ids=["no-read-back", "read-back"])
def test_a_late_shadow_write_overtaken_by_a_newer_one_is_repaired(
    s3: S3Env, tmp_path: Path, single_writer: bool
) -> None:
    path = tmp_path / "j.db"
    slow = threading.Event()
    released = threading.Event()
    landed: list[int] = []

    def hold_first(**_: Any) -> None:
        if not slow.is_set():  # the first shadow PutObject only
            slow.set()
            released.wait(30)

    s3.shadow.meta.events.register("before-call.s3.PutObject", hold_first)
    s3.shadow.meta.events.register("after-call.s3.PutObject", lambda **_: landed.append(1))
    writer = dualwrite.DualWriter(
        flag=True,
        journal=path,
        shadow_timeout=0.05,
        circuit_breaker=None,
        single_writer=single_writer,
    )
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="k", Body=b"old")  # times out on the shadow
    client.put_object(Bucket="photos", Key="k", Body=b"new")  # lands first
    released.set()
    # Without the read-back the late write lands over the newer one and stays; with it, the
    # late write's check of the primary converges the key right after it lands.
    wanted = b"old" if single_writer else b"new"
    deadline = time.monotonic() + 30
    while len(landed) < 2 or s3.shadow_body("k") != wanted:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # Either way the timed-out write stays journaled until repair: nothing is left to luck.
    assert ("k", "timeout") in entries(path)
    writer.repair()
    assert s3.shadow_body("k") == s3.primary_body("k") == b"new"
    assert ("k", "timeout") not in entries(path)
    writer.close()


def test_the_deadline_grows_with_the_primarys_duration(s3: S3Env, tmp_path: Path) -> None:
    # A large body takes long on both sides: the shadow gets as long as the primary took, plus
    # shadow_timeout. Here the primary takes 1 s and the shadow 0.3 s, against a 0.1 s timeout.
    s3.primary.meta.events.register("before-call.s3.PutObject", lambda **_: time.sleep(1.0))
    s3.shadow.meta.events.register("before-call.s3.PutObject", lambda **_: time.sleep(0.3))
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=True, journal=tmp_path / "j.db", hooks=[recorder], shadow_timeout=0.1
    )
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="big", Body=b"x" * 1024)
    assert recorder.kinds() == ["shadow_written"]
    assert entries(tmp_path / "j.db") == []
    writer.close()


def test_no_timeout_runs_the_shadow_in_the_callers_thread(s3: S3Env, tmp_path: Path) -> None:
    threads: list[str] = []
    s3.shadow.meta.events.register(
        "before-call.s3.PutObject", lambda **_: threads.append(threading.current_thread().name)
    )
    writer = dualwrite.DualWriter(flag=True, journal=tmp_path / "j.db", shadow_timeout=None)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="k", Body=b"x")
    assert threads == [threading.current_thread().name]
    writer.close()


@pytest.mark.parametrize("bad", [0, -1, "2", True])
def test_shadow_timeout_is_checked_at_construction(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="shadow_timeout"):
        dualwrite.DualWriter(flag=True, shadow_timeout=bad)  # type: ignore[arg-type]


def test_a_forked_child_waits_for_its_own_shadow_calls(s3: S3Env, tmp_path: Path) -> None:
    # The parent's helper threads do not exist in a forked child (a pre-fork server): the
    # child's calls must not be handed to them and time out.
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=True, journal=tmp_path / "j.db", hooks=[recorder], shadow_timeout=5.0
    )
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="parent", Body=b"p")  # starts a helper thread
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            recorder.events.clear()
            client.put_object(Bucket="photos", Key="child", Body=b"c")
            written = recorder.kinds() == ["shadow_written"]
            # In-process moto: the child's accounts are its own copy.
            code = 0 if written and s3.shadow_body("child") == b"c" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.close()
