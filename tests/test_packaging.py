"""What the built distributions hold: run by CI on ``python -m build``'s output.

Deselected by default (marker ``packaging``): CI runs
``DUALWRITE_DIST=<dir> python -m pytest -m packaging tests/test_packaging.py`` on the directory
``python -m build --outdir <dir>`` wrote.
"""

from __future__ import annotations

import email.parser
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

# A sample of the suite, run from the unpacked sdist: the model and docs checks read docs/, the
# core tests use conftest.py; tests/_support is checked by presence.
SDIST_TESTS = ("tests/test_docs.py", "tests/test_s3_model.py", "tests/test_core.py")


def _dist() -> Path:
    where = os.environ.get("DUALWRITE_DIST")
    if not where:
        pytest.fail("set DUALWRITE_DIST to the directory python -m build --outdir wrote")
    return Path(where)


def _one(pattern: str) -> Path:
    (found,) = sorted(_dist().glob(pattern))
    return found


def _wheel_names() -> set[str]:
    with zipfile.ZipFile(_one("dualwrite-*.whl")) as wheel:
        return set(wheel.namelist())


def _metadata() -> email.message.Message:
    with zipfile.ZipFile(_one("dualwrite-*.whl")) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(wheel.read(name).decode())


def test_the_wheel_is_typed_and_licensed() -> None:
    names = _wheel_names()
    assert "dualwrite/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "benchmarks/", "examples/", "docs/")) for n in names)
    with zipfile.ZipFile(_one("dualwrite-*.whl")) as wheel:
        (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert b"Apache License" in wheel.read(license_name)
        assert b"Version 2.0, January 2004" in wheel.read(license_name)


def test_the_wheel_metadata_is_complete() -> None:
    meta = _metadata()
    assert meta["License-Expression"] == "Apache-2.0"
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Programming Language :: Python :: 3 :: Only" in classifiers
    # No Project-URL yet: the project has no public home to point at (a made-up address would
    # send users nowhere); add Homepage/Documentation/Source/Issues/Changelog when it has one.
    assert "boto3" in (meta["Keywords"] or "")
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"demo", "test", "dev", "docs", "launchdarkly"} <= extras


def test_the_wheel_registers_the_pytest_plugin() -> None:
    with zipfile.ZipFile(_one("dualwrite-*.whl")) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
        entry_points = wheel.read(name).decode()
    assert "[pytest11]" in entry_points
    assert "dualwrite = dualwrite.pytest_plugin" in entry_points
    assert "dualwrite = dualwrite.cli:main" in entry_points


def test_the_sdist_tests_run(tmp_path: Path) -> None:
    """The sdist carries what its tests need (conftest.py, tests/_support, docs): they run."""
    with tarfile.open(_one("dualwrite-*.tar.gz")) as sdist:
        sdist.extractall(tmp_path, filter="data")
    (root,) = tmp_path.iterdir()
    for needed in ("LICENSE", "constraints.txt", "tests/conftest.py", "tests/_support/cli.py"):
        assert (root / needed).is_file(), needed
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SDIST_TESTS],
        cwd=root,
        env=os.environ | {"PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
