"""``dualwrite demo --walkthrough``: one tenant through the playbook, with its figures checked."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dualwrite.cli import _walkthrough, main
from dualwrite.cli._walkthrough import run_walkthrough

DOCS = Path(__file__).resolve().parent.parent / "docs"
STEPS = (
    "before",
    "0. check",
    "1. dual-write",
    "2. copy",
    "3. diff",
    "4. cutover",
    "5. rollback drill",
    "6. done",
)


def _sections(text: str) -> dict[str, str]:
    """The output of each step, by step name."""
    parts = re.split(r"^== (.+?) ==$", text, flags=re.MULTILINE)
    sections = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        name = next(step for step in STEPS if heading.startswith(step))
        sections[name] = body
    return sections


@pytest.fixture(scope="module")
def walkthrough() -> tuple[int, str]:
    out = io.StringIO()
    code = run_walkthrough(out=out)
    return code, out.getvalue()


def test_walkthrough_passes_every_step(walkthrough: tuple[int, str]) -> None:
    code, text = walkthrough
    assert code == 0, text
    assert "walkthrough OK" in text
    assert "!!" not in text
    assert list(_sections(text)) == list(STEPS)


def test_check_copy_and_diff_figures(walkthrough: tuple[int, str]) -> None:
    step = _sections(walkthrough[1])
    assert "$ dualwrite check s3 --bucket photos $T" in step["0. check"]
    assert "$ dualwrite check dynamodb --table orders $T" in step["0. check"]
    assert step["0. check"].count("    ready: 8 passed, 0 failed, 0 warning(s)") == 2
    # Written before dual-writes: 3 objects and 4 items exist only in the old account.
    assert (
        "6 compared: 3 copied, 3 equal, 0 skipped (changed meanwhile), 0 failed"
        in (step["2. copy"])
    )
    assert "6 compared: 4 copied, 2 equal" in step["2. copy"]
    diff = step["3. diff"]
    assert "$ dualwrite diff s3 --bucket photos --prefix acme/ $T" in diff
    assert "$ dualwrite diff dynamodb --table orders --partition-value acme $T" in diff
    assert diff.count("    0 difference(s) in 6 compared") == 2
    assert "3 difference(s) (3 missing_in_shadow) in 3 compared\n    (globex is off" in diff


def test_stages_route_writes_reads_and_jobs(walkthrough: tuple[int, str]) -> None:
    step = _sections(walkthrough[1])
    dual = step["1. dual-write"]
    assert "events: 5 shadow_written" in dual
    assert "3 x s3       stage dual_write first photos -> then photos-acct2" in dual
    assert "get_object acme/new-1.txt: old account; get_item acme/visits: old account" in dual
    cutover = step["4. cutover"]
    assert "before the flip: flush() -> True; journal: 0 entries; repair(): 0 keys" in cutover
    assert "3 x s3       stage cutover    first photos-acct2 -> then photos" in cutover
    assert "2 x dynamodb stage cutover    first orders -> then orders" in cutover
    assert "keys (old | new): s3 acme 6 | 6, globex 4 | 0; dynamodb acme 7 | 7" in cutover
    assert "get_object acme/cutover-1.txt: new account; get_item acme/visits: new account" in (
        cutover
    )
    assert "get_object globex/new-2.txt: old account" in cutover
    assert "acme (cutover) primary=False shadow=True; globex (off) primary=True" in cutover
    assert "@guard: the nightly job ran for acme@new, globex@old" in cutover
    drill = step["5. rollback drill"]
    assert "0 difference(s) in 6 compared\n    (the old account has every write" in drill
    assert "get_object acme/cutover-1.txt: old account" in drill
    assert "acme (dual_write) primary=True shadow=False" in drill
    assert "get_object acme/rollback-1.txt: new account" in drill
    done = step["6. done"]
    assert "events: none" in done
    assert "old account, s3: 0 of 8 acme keys changed since done" in done
    assert "old account, dynamodb: 0 of 7 acme keys changed since done" in done
    assert "acme (done) primary=False shadow=True" in done


def test_the_excerpt_in_the_docs_is_what_it_prints(walkthrough: tuple[int, str]) -> None:
    text = (DOCS / "migration.md").read_text(encoding="utf-8")
    playbook = text.split("## Playbook: one tenant through the four steps", 1)[1]
    excerpt = playbook.split("```text\n", 1)[1].split("```", 1)[0]
    assert excerpt.startswith("== 4. cutover")
    assert excerpt in walkthrough[1]


def test_bystander_never_reaches_the_new_account_and_no_body_is_printed(
    walkthrough: tuple[int, str],
) -> None:
    text = walkthrough[1]
    counts = re.findall(r"globex (\d+) \| (\d+)", text)
    assert counts
    assert all(new == "0" for _, new in counts)
    # Bodies are "<key> v<n>"; keys are printed, bodies never.
    assert not re.search(r"\.txt v\d", text)


def test_sync_mode_s3_only() -> None:
    out = io.StringIO()
    assert run_walkthrough(dynamodb=False, mode="sync", out=out) == 0, out.getvalue()
    text = out.getvalue()
    assert "dynamodb" not in text
    assert "writer mode=sync" in text
    assert "walkthrough OK" in text


def test_a_wrong_figure_fails_the_walkthrough(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _walkthrough.build_job

    def copy_does_nothing(args: Any, mirror: Any, command: str) -> Any:
        return real(args, mirror, "diff")  # a "copy" that only compares

    monkeypatch.setattr(_walkthrough, "build_job", copy_does_nothing)
    out = io.StringIO()
    assert run_walkthrough(dynamodb=False, mode="sync", out=out) == 1
    text = out.getvalue()
    assert "    !! copy s3 acme copied: got 0, expected 3" in text
    assert "walkthrough FAILED" in text
    assert re.search(r"^  diff s3 acme: got .*'missing_in_shadow': 3", text, re.MULTILINE)


def test_a_step_that_raises_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any, service: str) -> None:
        msg = "no route to the new account"
        raise RuntimeError(msg)

    monkeypatch.setattr(_walkthrough._Walk, "check", broken)
    out = io.StringIO()
    assert run_walkthrough(dynamodb=False, mode="sync", out=out) == 1
    assert "  0. check: RuntimeError: no route to the new account" in out.getvalue()


def test_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dualwrite", "demo", "--walkthrough", "--no-dynamodb"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "walkthrough OK" in result.stdout
    assert main(["demo", "--walkthrough", "--migrating", "acme"]) == 2


def test_the_playbooks_copy_back_from_the_new_account(tmp_path: Path) -> None:
    # docs/migration.md, at CUTOVER: swap the accounts and the names to copy new -> old.
    from dualwrite.cli._demo import SHADOW_ROLE, embedded_aws  # noqa: PLC0415

    names = tmp_path / "names-back.json"
    names.write_text('{"s3": {"photos-acct2": "photos"}, "dynamodb": {"orders": "orders"}}')
    with embedded_aws() as (primary, shadow):
        old, new = primary.client("s3"), shadow.client("s3")
        old.create_bucket(Bucket="photos")
        new.create_bucket(Bucket="photos-acct2")
        new.put_object(Bucket="photos-acct2", Key="acme/a", Body=b"latest")
        new.put_object(Bucket="photos-acct2", Key="acme/b", Body=b"only new")
        old.put_object(Bucket="photos", Key="acme/a", Body=b"stale")
        argv = ["s3", "--bucket", "photos-acct2", "--prefix", "acme/", "--names", str(names)]
        argv += ["--primary-role-arn", SHADOW_ROLE, "--no-progress"]
        assert main(["copy", *argv]) == 0
        assert main(["diff", *argv, "--output", str(tmp_path / "diff.jsonl")]) == 0
        assert old.get_object(Bucket="photos", Key="acme/a")["Body"].read() == b"latest"
        assert old.get_object(Bucket="photos", Key="acme/b")["Body"].read() == b"only new"
