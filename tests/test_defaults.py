"""Defaults that lose nothing, and core paths that never harm the caller.

``journal="auto"`` by default (in memory, with one warning, where no state directory can be
written); bounded ``close()`` and exit handling; keys of any shape; hooks that write through a
wrapped client; writes without a tenant.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from _support.shadow import Gate
from conftest import S3Env

import dualwrite
from dualwrite import _services, journal
from dualwrite._core import decide as _decide
from dualwrite._core import keys as _keys
from dualwrite._core.entries import entries
from dualwrite.events import ShadowWritten, Write
from dualwrite.hooks import MetricsHook
from dualwrite.journal import MemoryJournal, SQLiteJournal, default_path
from dualwrite.testing import RecordingHook

# -- journal="auto" ------------------------------------------------------------------------------


def test_the_default_journal_is_the_auto_file(hermetic_journal: str) -> None:
    writer = dualwrite.DualWriter(flag=True)
    assert isinstance(writer.journal, SQLiteJournal)
    assert writer.journal.path == hermetic_journal
    writer.close()


def test_auto_path_falls_back_to_xdg_state_home_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DUALWRITE_JOURNAL")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_path() == str(tmp_path / "state" / "dualwrite" / "journal.sqlite3")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "state" / "dualwrite" / "journal.sqlite3"
    assert default_path() == str(expected)
    writer = dualwrite.DualWriter(flag=True)  # creates the directories
    assert expected.exists()
    writer.close()


def test_an_unwritable_state_directory_journals_in_memory_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DUALWRITE_JOURNAL", str(blocker / "journal.sqlite3"))
    monkeypatch.setattr(journal, "_fallback_warned", False)
    with caplog.at_level(logging.WARNING, logger="dualwrite"):
        first = dualwrite.DualWriter(flag=True)
        second = dualwrite.DualWriter(flag=True)
    assert isinstance(first.journal, MemoryJournal)
    assert isinstance(second.journal, MemoryJournal)
    warnings = [r for r in caplog.records if "journaling in memory" in r.getMessage()]
    assert len(warnings) == 1
    first.close()
    second.close()


def test_none_turns_the_journal_off(s3: S3Env, hermetic_journal: str) -> None:
    writer = dualwrite.DualWriter(flag=True, journal=None)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="k", Body=b"x")
    writer.close()
    assert writer.journal is None
    assert not os.path.exists(hermetic_journal)


# -- bounded close and exit ----------------------------------------------------------------------


def test_close_is_bounded_and_what_is_left_stays_journaled(s3: S3Env, tmp_path: Path) -> None:
    gate = Gate(s3.shadow, "PutObject", timeout=30)
    writer = dualwrite.DualWriter(
        flag=True, mode="background", journal=tmp_path / "j.db", workers=1, close_timeout=0.1
    )
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    for i in range(3):
        client.put_object(Bucket="photos", Key=f"k{i}", Body=b"x")
    assert gate.wait_arrivals(1)
    assert writer.close() is False  # bounded by close_timeout
    left = SQLiteJournal(tmp_path / "j.db")
    assert sorted((e.key, e.reason) for e in left.entries()) == [
        ("k0", "pending"),
        ("k1", "pending"),
        ("k2", "pending"),
    ]
    left.close()
    gate.open()


EXITING_CHILD = textwrap.dedent(
    """
    import logging, sys, threading
    sys.path.insert(0, sys.argv[1])
    from moto import mock_aws
    from conftest import S3Env, Accounts
    import dualwrite

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    hang = threading.Event()
    with mock_aws():
        s3 = S3Env(Accounts())
        s3.shadow.meta.events.register("before-call.s3.PutObject", lambda **_: hang.wait())
        options = dict(flag=True, mode="background", workers=1, close_timeout=float(sys.argv[2]))
        if sys.argv[3] == "writer":
            writer = dualwrite.DualWriter(**options)
            client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
        else:  # the shortcut: nothing but the wrapped client holds the writer's runtime
            client = dualwrite.wrap(s3.primary, shadow=s3.shadow, names=s3.names, **options)
        for i in range(3):
            client.put_object(Bucket="photos", Key=f"k{i}", Body=b"x")
        print("returning without close()", flush=True)
    """
)


@pytest.mark.parametrize("built_by", ["writer", "shortcut"])
def test_exit_without_close_flushes_for_a_bounded_time_and_says_what_is_left(
    hermetic_journal: str, built_by: str
) -> None:
    tests = str(Path(__file__).parent)
    child = subprocess.run(
        [sys.executable, "-c", EXITING_CHILD, tests, "0.2", built_by],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.returncode == 0, child.stderr
    assert "exiting with 3 shadow write(s) still queued after 0.2 s" in child.stderr
    assert "stay journaled (pending intents) for repair()" in child.stderr
    left = SQLiteJournal(hermetic_journal)
    assert sorted((e.key, e.reason) for e in left.entries()) == [
        ("k0", "pending"),
        ("k1", "pending"),
        ("k2", "pending"),
    ]
    assert {journal.owner_alive(e.owner) for e in left.entries()} == {False}
    left.close()


# -- keys of any shape ---------------------------------------------------------------------------

MALFORMED = [
    pytest.param({"pk": {"S": {"S": "asdf"}}}, id="nested-map"),
    pytest.param({"pk": {"SS": [{"a": 1}, {"b": 2}]}}, id="maps-in-a-list"),
    pytest.param({"pk": {"S": {1, 2}}}, id="set"),
    pytest.param({"pk": [[{}]]}, id="lists"),
    pytest.param({("a",): object()}, id="tuple-name"),
    pytest.param(["not", {"a": "map"}], id="list-key"),
    pytest.param(12, id="number"),
]


@pytest.mark.parametrize("key", MALFORMED)
def test_locks_queues_and_entries_never_raise_on_malformed_keys(s3: S3Env, key: Any) -> None:
    writer = dualwrite.DualWriter(flag=True, journal=MemoryJournal())
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    mirror = writer._runtime.mirrors[0]
    with mirror.key_lock("photos", key):
        pass
    write = Write(
        tenant=None,
        service="dynamodb",
        operation="PutItem",
        resource="orders",
        shadow_resource="orders",
        key=key,
    )
    (entry,) = entries(_services.get("dynamodb"), write, None, "pending", "PutItem")
    assert entry.resource_level or isinstance(entry.key, dict)
    assert writer.journal is not None
    writer.journal.add([entry])
    assert client is not None
    writer.close()


def test_a_malformed_key_falls_back_to_the_resources_lock() -> None:
    assert _keys.freeze({"pk": {"S": {1, 2}}}) is not None
    assert _keys.freeze({"pk": {"S": [{1: {}}]}}) is not None
    unhashable = type("Unhashable", (), {"__hash__": None})()
    assert _keys.freeze({"pk": unhashable}) is None


# -- hooks that write through a wrapped client ---------------------------------------------------


def test_hooks_writing_through_the_wrapper_do_not_deadlock_two_threads(s3: S3Env) -> None:
    # Thread 1 writes "x" and its hook writes "y"; thread 2 writes "y" and its hook writes "x".
    # Sent under the key's lock, each hook would wait for the other thread's lock forever.
    both_in_hooks = threading.Barrier(2, timeout=5)
    nested = threading.local()
    client: Any = None

    def hook(event: Any) -> None:
        if not isinstance(event, ShadowWritten) or getattr(nested, "active", False):
            return
        nested.active = True
        try:
            both_in_hooks.wait()
            other = "y" if event.write.key == "x" else "x"
            client.put_object(Bucket="photos", Key=other, Body=b"from a hook")
        finally:
            nested.active = False

    writer = dualwrite.DualWriter(flag=True, journal=MemoryJournal(), hooks=[hook])
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    threads = [
        threading.Thread(
            target=client.put_object, kwargs={"Bucket": "photos", "Key": k, "Body": b"v"}
        )
        for k in ("x", "y")
    ]
    for thread in threads:
        thread.daemon = True  # a deadlocked thread must not hang the test run
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert s3.keys("shadow") == ["x", "y"]
    writer.close()


# -- writes without a tenant ---------------------------------------------------------------------


def test_a_write_without_a_tenant_warns_once_and_is_counted(
    s3: S3Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_decide, "_warned_no_tenant", False)
    metrics = MetricsHook()
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=lambda write: write.tenant == "acme", hooks=[metrics, recorder], journal=None
    )
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    with caplog.at_level(logging.WARNING, logger="dualwrite"):
        for i in range(3):
            client.put_object(Bucket="photos", Key=f"n{i}", Body=b"x")
        with dualwrite.tenant("acme"):
            client.put_object(Bucket="photos", Key="t", Body=b"x")
    assert len([r for r in caplog.records if "has no tenant" in r.getMessage()]) == 1
    assert metrics.snapshot().total("no_tenant") == 3
    assert recorder.kinds() == ["shadow_written"]  # hooks that do not ask see no such event
    writer.close()
