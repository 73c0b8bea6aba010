"""``dualwrite repair`` through its real entry point, against moto over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

import dualwrite
import dualwrite.journal
from dualwrite.journal import Entry

SHADOW_ROLE = "arn:aws:iam::111111111111:role/dualwrite-repair"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server() -> Iterator[str]:
    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        moto.stop()


def _sessions(url: str) -> tuple[boto3.Session, boto3.Session]:
    primary = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    creds = primary.client("sts", endpoint_url=url).assume_role(
        RoleArn=SHADOW_ROLE, RoleSessionName="tests"
    )["Credentials"]
    shadow = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    )
    return primary, shadow


def test_repair_command_restores_what_an_outage_missed(server: str, tmp_path: Path) -> None:
    primary, shadow = _sessions(server)
    p_s3 = primary.client("s3", endpoint_url=server)
    s_s3 = shadow.client("s3", endpoint_url=server)
    p_s3.create_bucket(Bucket="photos")
    journal = tmp_path / "journal.db"

    # The shadow bucket does not exist yet: every shadow write fails and is journaled.
    with dualwrite.DualWriter(flag=True, journal=str(journal), circuit_breaker=None) as writer:
        s3 = writer.wrap(p_s3, shadow=s_s3, names={"photos": "photos-acct2"})
        for i in range(5):
            s3.put_object(Bucket="photos", Key=f"k{i}", Body=f"v{i}".encode(), ContentType="a/b")
        s3.delete_object(Bucket="photos", Key="k4")
    s_s3.create_bucket(Bucket="photos-acct2")
    s_s3.put_object(Bucket="photos-acct2", Key="k4", Body=b"stale")  # deleted on the primary

    names = tmp_path / "names.json"
    names.write_text(json.dumps({"s3": {"photos": "photos-acct2"}}))
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    args = [
        sys.executable,
        "-m",
        "dualwrite",
        "repair",
        "--journal",
        str(journal),
        "--json",
        "--names",
        str(names),
        "--primary-endpoint-url",
        server,
        "--shadow-endpoint-url",
        server,
        "--shadow-role-arn",
        SHADOW_ROLE,
        "--shadow-sts-endpoint-url",
        server,
    ]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["keys"] == 5
    assert report["copied"] == 4
    assert report["deleted"] == 1
    assert report["remaining"] == 0

    shadow_keys = sorted(o["Key"] for o in s_s3.list_objects_v2(Bucket="photos-acct2")["Contents"])
    assert shadow_keys == ["k0", "k1", "k2", "k3"]
    for i in range(4):
        got = s_s3.get_object(Bucket="photos-acct2", Key=f"k{i}")
        assert got["Body"].read() == f"v{i}".encode()
        assert got["ContentType"] == "a/b"

    # A second run finds nothing to do.
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["keys"] == 0


def test_repair_command_rejects_a_bad_names_file(tmp_path: Path) -> None:
    names = tmp_path / "names.json"
    names.write_text("[1, 2]")
    dualwrite.journal.SQLiteJournal(tmp_path / "j.db").close()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dualwrite",
            "repair",
            "--journal",
            str(tmp_path / "j.db"),
            "--names",
            str(names),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2  # a usage error, as docs/migration.md says
    assert "must hold a JSON object" in result.stderr


def test_repair_copies_a_write_made_at_cutover_new_to_old(server: str, tmp_path: Path) -> None:
    primary, shadow = _sessions(server)
    p_s3 = primary.client("s3", endpoint_url=server)
    s_s3 = shadow.client("s3", endpoint_url=server)
    # Bucket names of their own: the in-process servers of this module share moto's state.
    s_s3.create_bucket(Bucket="album-acct2")
    journal = tmp_path / "journal.db"
    cutover = dualwrite.DualWriter(
        stage=lambda write: dualwrite.Stage.CUTOVER, journal=str(journal), circuit_breaker=None
    )
    with cutover as writer:
        # The old account's bucket is gone for a while: its mirrored writes fail, journaled
        # under the old bucket's name.
        s3 = writer.wrap(p_s3, shadow=s_s3, names={"album": "album-acct2"})
        for i in range(3):
            s3.put_object(Bucket="album", Key=f"k{i}", Body=f"new{i}".encode())
    p_s3.create_bucket(Bucket="album")
    p_s3.put_object(Bucket="album", Key="k0", Body=b"stale")

    names = tmp_path / "names.json"
    names.write_text(json.dumps({"s3": {"album": "album-acct2"}}))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dualwrite",
            "repair",
            "--journal",
            str(journal),
            "--json",
            "--names",
            str(names),
            "--primary-endpoint-url",
            server,
            "--shadow-endpoint-url",
            server,
            "--shadow-role-arn",
            SHADOW_ROLE,
            "--shadow-sts-endpoint-url",
            server,
            "--primary-region",
            "us-east-1",
            "--shadow-region",
            "us-east-1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["copied"], report["remaining"]) == (3, 0), report
    for i in range(3):
        assert p_s3.get_object(Bucket="album", Key=f"k{i}")["Body"].read() == f"new{i}".encode()
        assert s_s3.get_object(Bucket="album-acct2", Key=f"k{i}")["Body"].read() == (
            f"new{i}".encode()
        )


def _repair(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dualwrite", "repair", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("kind", ["missing", "not-a-journal"])
def test_repair_refuses_a_journal_path_that_is_not_a_journal(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "typo.db"
    if kind == "not-a-journal":
        path.write_text("not sqlite at all, but some notes")
    result = _repair("--journal", str(path))
    assert result.returncode == 2, result.stderr
    message = "no journal at" if kind == "missing" else "is not a dualwrite journal"
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    # Nothing was created: the playbook's "journal is empty" gate cannot pass on a typo.
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if kind == "missing" else ["typo.db"])


def test_repair_exits_1_while_resource_level_entries_remain(server: str, tmp_path: Path) -> None:
    primary, shadow = _sessions(server)
    p_s3 = primary.client("s3", endpoint_url=server)
    s_s3 = shadow.client("s3", endpoint_url=server)
    p_s3.create_bucket(Bucket="docs")
    s_s3.create_bucket(Bucket="docs-acct2")
    p_s3.put_object(Bucket="docs", Key="known", Body=b"k")
    journal_path = tmp_path / "journal.db"
    journal = dualwrite.journal.SQLiteJournal(journal_path)
    journal.add(
        [
            Entry(service="s3", resource="docs", key="known", reason="shadow_failed"),
            Entry(service="s3", resource="docs", key="", reason="unsupported", detail="x"),
        ]
    )
    journal.close()
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"s3": {"docs": "docs-acct2"}}))
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    common = [
        "--names",
        str(names),
        "--primary-endpoint-url",
        server,
        "--shadow-endpoint-url",
        server,
        "--shadow-role-arn",
        SHADOW_ROLE,
        "--shadow-sts-endpoint-url",
        server,
        "--primary-region",
        "us-east-1",
        "--shadow-region",
        "us-east-1",
    ]
    result = _repair("--journal", str(journal_path), *common, env=env)
    assert result.returncode == 1, result.stderr
    assert "1 copied" in result.stdout
    assert "1 resource-level" in result.stdout
    assert "dualwrite copy s3 --bucket docs --delete-extra --journal" in result.stderr
    assert s_s3.get_object(Bucket="docs-acct2", Key="known")["Body"].read() == b"k"

    # A complete copy of the bucket settles the entry; repair then exits 0.
    copy = subprocess.run(
        [
            sys.executable,
            "-m",
            "dualwrite",
            "copy",
            "s3",
            "--bucket",
            "docs",
            "--delete-extra",
            "--journal",
            str(journal_path),
            *common,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert copy.returncode == 0, copy.stderr
    assert "1 resource-level entr(ies) of docs removed" in copy.stdout
    again = _repair("--journal", str(journal_path), "--json", *common, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["remaining"] == 0
