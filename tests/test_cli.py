"""The command line, through its real entry point."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _support.cli import Accounts
from _support.proxy import Fault, FaultProxy
from _support.servers import MotoServer

from dualwrite._offline.progress import Progress
from dualwrite.cli import main


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dualwrite", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_runs_on_embedded_moto_and_shows_placement() -> None:
    result = _run("demo", "--no-dynamodb", "--migrating", "acme")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    row = {line.split()[0]: line for line in lines if line.startswith("  ") and "/" in line}
    # acme is migrating: both accounts hold its objects, byte for byte.
    assert row["acme/cat.jpg"].split()[-1] == "yes"
    assert "absent" not in row["acme/video.bin"]
    # globex is not: the shadow never saw it.
    assert "absent" in row["globex/cat.jpg"]
    assert "absent" in row["initech/video.bin"]
    # The unmapped bucket is reported, not silently skipped.
    assert any("unsupported" in line and "(unmapped)" in line for line in lines)
    assert "shadow_failed" not in result.stdout


def test_version_and_usage_errors() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("dualwrite ")
    with pytest.raises(SystemExit) as excinfo:
        main([])
    assert excinfo.value.code == 2
    with pytest.raises(SystemExit) as excinfo:
        main(["no-such-command"])
    assert excinfo.value.code == 2


# -- interrupting a long copy -------------------------------------------------------------------


@pytest.fixture
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    try:
        yield server
    finally:
        server.stop()


def test_a_second_sigint_exits_at_once(moto_server: MotoServer, tmp_path: Path) -> None:
    """The first SIGINT waits for the running requests; a second one does not wait for them."""
    env = Accounts(moto_server, tmp_path, {"s3": {"photos": "photos-acct2"}})
    env.p_s3.create_bucket(Bucket="photos")
    env.s_s3.create_bucket(Bucket="photos-acct2")
    for i in range(20):
        env.p_s3.put_object(Bucket="photos", Key=f"k{i:02d}", Body=b"x")
    proxy = FaultProxy((moto_server.host, moto_server.port))
    arrived = threading.Event()
    # Every shadow write is held for a long time: only a second SIGINT can end the run soon.
    proxy.set(
        Fault(
            "pass",
            delay=60,
            when=lambda method, path, headers: method == "PUT" and not arrived.set(),
        )
    )
    copy = env.cli.start("copy", "s3", "--bucket", "photos", shadow_url=proxy.url)
    try:
        assert arrived.wait(60)
        copy.send_signal(signal.SIGINT)
        # Two signals sent at once may reach the handler once (CPython keeps one pending flag
        # per signal): send the second after the first was handled.
        assert copy.stderr is not None
        first = ""
        while "stopping" not in first:
            first = copy.stderr.readline()
            assert first, "the command ended before handling the first SIGINT"
        copy.send_signal(signal.SIGINT)
        _, err = copy.communicate(timeout=50)  # well below the held request's 60 s
    finally:
        if copy.poll() is None:
            copy.kill()
            copy.communicate()
        proxy.close()
    assert copy.returncode == 130, err
    assert "interrupted again: exiting now" in err


@pytest.mark.parametrize("columns", [30, 60, 200])
def test_the_progress_bar_fits_the_terminal(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    """A line wider than the terminal wraps and each redraw then scrolls the screen."""
    monkeypatch.setenv("COLUMNS", str(columns))  # shutil.get_terminal_size reads it first
    out = io.StringIO()
    bar = Progress("copy dynamodb orders-with-a-long-name", out)
    bar.set_total(1_000_000)
    bar.step(12_345)
    bar.close()
    lines = [line for line in out.getvalue().replace("\n", "\r").split("\r") if line]
    assert lines
    assert all(len(line) == columns - 1 for line in lines)
    assert lines[-1].startswith("copy dynamodb orders-with-a-long"[: columns - 1])
