"""Presigned writes: journaled at signing through a wrapped client, converged by repair().

The uploads go over HTTP with ``requests`` to a ThreadedMotoServer, as a browser's would: never
through the wrapper. Where each object landed is proved by reading each account.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from _support.servers import MotoServer
from conftest import Accounts, enforce_owner_acl
from moto import mock_aws

import dualwrite
from dualwrite.events import PresignedWrite
from dualwrite.hooks import LoggingHook, MetricsHook
from dualwrite.journal import Entry, MemoryJournal, SQLiteJournal, SQSJournal
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")

OWNER_ACL = "bucket-owner-full-control"


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    srv = MotoServer()
    yield srv
    srv.stop()


class Env:
    def __init__(self, server: MotoServer, journal: Path) -> None:
        server.reset()
        self.accounts = Accounts(endpoint_url=server.url)
        self.primary = self.accounts.client("primary", "s3")
        self.shadow = self.accounts.client("shadow", "s3")
        self.shadow_calls = enforce_owner_acl(self.shadow)
        self.admin = self.accounts.client("shadow", "s3")  # unwrapped reader of the shadow
        self.primary.create_bucket(Bucket="photos")
        self.admin.create_bucket(Bucket="photos-acct2")
        self.recorder = RecordingHook()
        self.metrics = MetricsHook()
        self.writer = dualwrite.DualWriter(
            flag=lambda write: write.tenant == "acme",
            journal=str(journal),
            hooks=[self.recorder, self.metrics, LoggingHook()],
        )
        self.s3 = self.writer.wrap(
            self.primary, shadow=self.shadow, names={"photos": "photos-acct2"}
        )

    def entries(self) -> list[Entry]:
        assert self.writer.journal is not None
        return list(self.writer.journal.entries())

    def shadow_keys(self) -> list[str]:
        contents = self.admin.list_objects_v2(Bucket="photos-acct2").get("Contents", [])
        return sorted(o["Key"] for o in contents)

    def shadow_body(self, key: str) -> bytes:
        return self.admin.get_object(Bucket="photos-acct2", Key=key)["Body"].read()  # type: ignore[no-any-return]

    def shadow_puts(self, key: str) -> list[dict[str, Any]]:
        return [
            call["params"]
            for call in self.shadow_calls
            if call["operation"] in ("PutObject", "CreateMultipartUpload")
            and call["params"].get("Key") == key
        ]


@pytest.fixture
def env(server: MotoServer, tmp_path: Path) -> Iterator[Env]:
    environment = Env(server, tmp_path / "journal.sqlite3")
    yield environment
    environment.writer.close()


def test_presigned_put_is_journaled_then_repaired_with_the_owner_acl(env: Env) -> None:
    before = time.time()
    with dualwrite.tenant("acme"):
        url = env.s3.generate_presigned_url(
            "put_object", Params={"Bucket": "photos", "Key": "avatars/1.png"}, ExpiresIn=600
        )
    assert isinstance(url, str)
    assert "avatars/1.png" in url
    [entry] = env.entries()
    assert (entry.reason, entry.resource, entry.key, entry.detail) == (
        "presigned",
        "photos",
        "avatars/1.png",
        "PutObject",
    )
    assert entry.tenant == "acme"
    assert entry.expires is not None
    assert before + 600 <= entry.expires <= time.time() + 600
    [event] = [e for e in env.recorder.of_kind("presigned_write") if isinstance(e, PresignedWrite)]
    assert event.write.key == "avatars/1.png"
    assert event.expires == entry.expires
    assert not event.prefix
    assert event.journaled
    assert env.metrics.snapshot().total("presigned") == 1

    # Before the upload: repair keeps the entry (the URL still works), writes nothing.
    report = env.writer.repair()
    assert report.presigned_waiting == 1
    assert report.copied == 0
    assert report.settled
    assert len(env.entries()) == 1

    response = requests.put(url, data=b"browser bytes", timeout=10)
    assert response.status_code == 200
    assert env.shadow_keys() == []  # the upload bypassed the wrapper

    report = env.writer.repair()
    assert report.copied == 1
    assert report.presigned_waiting == 0
    assert env.shadow_body("avatars/1.png") == b"browser bytes"
    assert [p.get("ACL") for p in env.shadow_puts("avatars/1.png")] == [OWNER_ACL]
    assert env.entries() == []
    # The primary still holds its own copy.
    assert env.primary.get_object(Bucket="photos", Key="avatars/1.png")["Body"].read() == (
        b"browser bytes"
    )


def test_presigned_post_with_filename_converges_every_upload_under_the_prefix(env: Env) -> None:
    with dualwrite.tenant("acme"):
        post = env.s3.generate_presigned_post("photos", "uploads/acme/${filename}", ExpiresIn=900)
    assert set(post) == {"url", "fields"}
    [entry] = env.entries()
    assert (entry.key, entry.detail) == ("uploads/acme/", "prefix")
    [event] = [e for e in env.recorder.of_kind("presigned_write") if isinstance(e, PresignedWrite)]
    assert event.prefix
    assert event.write.operation == "PostObject"
    env.primary.put_object(Bucket="photos", Key="elsewhere.txt", Body=b"not under the prefix")

    for name, body in (("a b.txt", b"first"), ("c+d.txt", b"second")):
        response = requests.post(
            post["url"], data=post["fields"], files={"file": (name, body)}, timeout=10
        )
        assert response.status_code in (200, 201, 204), response.text

    report = env.writer.repair()
    assert report.copied == 2
    assert env.shadow_keys() == ["uploads/acme/a b.txt", "uploads/acme/c+d.txt"]
    assert env.shadow_body("uploads/acme/c+d.txt") == b"second"
    assert all(
        [p.get("ACL") for p in env.shadow_puts(key)] == [OWNER_ACL]
        for key in ("uploads/acme/a b.txt", "uploads/acme/c+d.txt")
    )
    # More uploads may come until the POST expires: the entry stays, and a second run finds
    # both keys equal (no copy).
    assert report.presigned_waiting == 1
    assert len(env.entries()) == 1
    calls = len(env.shadow_calls)
    again = env.writer.repair()
    assert again.copied == 0
    assert again.presigned_waiting == 1
    assert not [c for c in env.shadow_calls[calls:] if c["operation"] == "PutObject"]


def test_presigned_post_of_one_key(env: Env) -> None:
    with dualwrite.tenant("acme"):
        post = env.s3.generate_presigned_post("photos", "docs/report.pdf")
    [entry] = env.entries()
    assert (entry.key, entry.detail) == ("docs/report.pdf", "PostObject")
    assert entry.expires is not None
    assert entry.expires == pytest.approx(time.time() + 3600, abs=60)  # boto3's default
    response = requests.post(
        post["url"], data=post["fields"], files={"file": ("x", b"%PDF")}, timeout=10
    )
    assert response.status_code in (200, 201, 204), response.text
    report = env.writer.repair()
    assert report.copied == 1
    assert env.shadow_body("docs/report.pdf") == b"%PDF"
    assert env.entries() == []


def test_flag_off_tenant_records_nothing(env: Env) -> None:
    with dualwrite.tenant("globex"):
        url = env.s3.generate_presigned_url(
            "put_object", Params={"Bucket": "photos", "Key": "g.txt"}
        )
        env.s3.generate_presigned_post("photos", "g/${filename}")
    assert env.entries() == []
    assert env.recorder.of_kind("presigned_write") == []
    assert requests.put(url, data=b"globex", timeout=10).status_code == 200
    assert env.writer.repair().copied == 0
    assert env.shadow_keys() == []


def test_reads_and_unmapped_buckets_record_nothing(env: Env) -> None:
    env.primary.create_bucket(Bucket="unmapped")
    with dualwrite.tenant("acme"):
        env.s3.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "r"})
        env.s3.generate_presigned_url("head_object", Params={"Bucket": "photos", "Key": "r"})
        env.s3.generate_presigned_url("list_objects_v2", Params={"Bucket": "photos"})
        env.s3.generate_presigned_url("put_object", Params={"Bucket": "unmapped", "Key": "u"})
    assert env.entries() == []
    assert env.recorder.of_kind("presigned_write") == []


def test_return_value_is_boto3s(env: Env) -> None:
    raw = env.primary
    with dualwrite.tenant("acme"):
        post = env.s3.generate_presigned_post(
            "photos", "k", Fields={"Content-Type": "text/plain"}, ExpiresIn=60
        )
        plain = raw.generate_presigned_post(
            "photos", "k", Fields={"Content-Type": "text/plain"}, ExpiresIn=60
        )
    assert post["url"] == plain["url"]
    assert set(post["fields"]) == set(plain["fields"])
    assert type(post) is type(plain)


def test_expired_never_used_presign_is_dropped(env: Env) -> None:
    with dualwrite.tenant("acme"):
        env.s3.generate_presigned_url(
            "put_object", Params={"Bucket": "photos", "Key": "never.txt"}, ExpiresIn=1
        )
    assert len(env.entries()) == 1
    time.sleep(1.1)  # past the expiry
    report = env.writer.repair()
    assert report.presigned_expired == 1
    assert report.presigned_waiting == 0
    assert report.copied == 0
    assert report.settled
    assert env.entries() == []
    assert env.shadow_keys() == []


def test_presigned_delete_converges_once_the_object_is_gone(env: Env) -> None:
    env.s3.put_object(Bucket="photos", Key="old.txt", Body=b"x")  # flag off: primary only
    env.admin.put_object(Bucket="photos-acct2", Key="old.txt", Body=b"x", ACL=OWNER_ACL)
    with dualwrite.tenant("acme"):
        url = env.s3.generate_presigned_url(
            "delete_object", Params={"Bucket": "photos", "Key": "old.txt"}
        )
    [entry] = env.entries()
    assert entry.detail == "DeleteObject"
    assert env.writer.repair().presigned_waiting == 1  # not used yet: the object is there
    assert requests.delete(url, timeout=10).status_code == 204
    report = env.writer.repair()
    assert report.deleted == 1
    assert env.shadow_keys() == []
    assert env.entries() == []


# -- journal backends ---------------------------------------------------------------------------

_OLD_SCHEMA = """
CREATE TABLE entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    resource TEXT NOT NULL,
    key TEXT NOT NULL,
    reason TEXT NOT NULL,
    tenant TEXT,
    detail TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL,
    first TEXT NOT NULL DEFAULT 'primary',
    owner TEXT
)
"""


def test_sqlite_journal_of_the_previous_schema_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute(_OLD_SCHEMA)
        connection.execute(
            "INSERT INTO entries (service, resource, key, reason, detail, at)"
            " VALUES ('s3', 'photos', '\"a\"', 'shadow_failed', 'SlowDown', 1.0)"
        )
    connection.close()
    journal = SQLiteJournal(path)
    try:
        [old] = list(journal.entries())
        assert (old.key, old.reason, old.expires) == ("a", "shadow_failed", None)
        journal.add(
            [Entry(service="s3", resource="photos", key="b", reason="presigned", expires=99.5)]
        )
        assert [e.expires for e in journal.entries()] == [None, 99.5]
    finally:
        journal.close()
    # A second opening (the column is there now) changes nothing.
    again = SQLiteJournal(path)
    try:
        assert [e.expires for e in again.entries()] == [None, 99.5]
    finally:
        again.close()


def test_memory_and_sqs_journals_keep_the_expiry() -> None:
    entry = Entry(service="s3", resource="photos", key="k", reason="presigned", expires=12.25)
    memory = MemoryJournal()
    memory.add([entry])
    assert [e.expires for e in memory.entries()] == [12.25]
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="journal")["QueueUrl"]
        journal = SQSJournal(sqs, url)
        journal.add([entry])
        [back] = list(journal.entries())
        assert (back.reason, back.expires) == ("presigned", 12.25)


def test_at_cutover_the_url_is_for_the_new_account_and_repair_copies_back(
    server: MotoServer, tmp_path: Path
) -> None:
    env = Env(server, tmp_path / "journal.sqlite3")
    env.writer.close()
    with dualwrite.DualWriter(
        stage=lambda write: dualwrite.Stage.CUTOVER, journal=str(tmp_path / "staged.sqlite3")
    ) as writer:
        s3 = writer.wrap(env.primary, shadow=env.shadow, names={"photos": "photos-acct2"})
        with dualwrite.tenant("acme"):
            url = s3.generate_presigned_url(
                "put_object", Params={"Bucket": "photos", "Key": "new.txt"}
            )
        assert "photos-acct2" in url  # signed for the account that owns the tenant now
        assert writer.journal is not None
        [entry] = writer.journal.entries()
        assert (entry.resource, entry.first) == ("photos", "shadow")
        assert requests.put(url, data=b"to the new account", timeout=10).status_code == 200
        assert env.shadow_body("new.txt") == b"to the new account"
        report = writer.repair()
        assert report.copied == 1
    # Copied back to the old account, which keeps every write until DONE.
    assert env.primary.get_object(Bucket="photos", Key="new.txt")["Body"].read() == (
        b"to the new account"
    )
