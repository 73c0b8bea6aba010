"""The command line, through its real entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
