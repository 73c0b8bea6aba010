"""``repair(server_side=True)`` / ``repair --server-side``: S3 copies each journaled object itself.

The setup is ``copy --server-side``'s (tests/test_s3_server_copy.py): moto serves a cross-account
``CopyObject`` whatever the primary's bucket policy says and ignores ``CopySourceIfMatch``, so the
tests enforce that condition and simulate a refusal of read with ``AccessDenied``. What moto does
prove: the state that lands in the shadow account, the part layout (equal ETags), and which
requests each client sent (no ``GetObject`` of the primary by the repair).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.cli import OWNER_ACL, Accounts, enforce_owner_acl
from _support.proxy import Fault, FaultProxy
from _support.servers import MotoServer
from botocore.exceptions import ClientError
from conftest import S3Env, record_requests
from test_repair import enforce_sse_c_reads
from test_s3_server_copy import enforce_copy_conditions, grant_shadow_read

import dualwrite
from dualwrite.exceptions import ConfigurationError
from dualwrite.journal import Entry, SQLiteJournal

MiB = 1024 * 1024


@pytest.fixture
def env(s3: S3Env) -> S3Env:
    grant_shadow_read(s3)
    enforce_copy_conditions(s3)
    return s3


@pytest.fixture
def writer(env: S3Env, tmp_path: Path) -> Iterator[dualwrite.DualWriter]:
    # flag=False: the test writes each account by hand to make them diverge.
    result = dualwrite.DualWriter(flag=False, journal=tmp_path / "j.db", circuit_breaker=None)
    result.wrap(env.primary, shadow=env.shadow, names=env.names)
    yield result
    result.close()


def journal(writer: dualwrite.DualWriter, *keys: str) -> None:
    assert writer.journal is not None
    writer.journal.add(
        [Entry(service="s3", resource="photos", key=k, reason="shadow_failed") for k in keys]
    )


def state(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """An object's ETag, size, attributes and tags, or ``None`` when there is none."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return None
    tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    fields = ("ETag", "ContentLength", "ContentType", "Metadata", "CacheControl")
    return {
        **{f: head.get(f) for f in fields},
        "tags": sorted((t["Key"], t["Value"]) for t in tags),
    }


def same(env: S3Env, key: str) -> bool:
    return state(env.primary, "photos", key) == state(env.shadow, "photos-acct2", key)


def put_multipart(client: Any, bucket: str, key: str, data: bytes, part: int) -> None:
    upload = client.create_multipart_upload(
        Bucket=bucket, Key=key, ContentType="video/mp4", Metadata={"k": "v"}
    )["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(data), part), 1):
        sent = client.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            PartNumber=number,
            Body=data[start : start + part],
        )
        parts.append({"PartNumber": number, "ETag": sent["ETag"]})
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )


def diverge(env: S3Env) -> bytes:
    """Keys the shadow lacks, holds stale, holds though the primary deleted them; a multipart."""
    env.primary.put_object(
        Bucket="photos",
        Key="missing",
        Body=b"new object",
        ContentType="text/plain",
        Metadata={"owner": "acme"},
        Tagging="tier=gold",
    )
    env.primary.put_object(Bucket="photos", Key="stale", Body=b"v2", Metadata={"v": "2"})
    env.shadow.put_object(
        Bucket="photos-acct2", Key="stale", Body=b"v1", Metadata={"v": "1"}, ACL=OWNER_ACL
    )
    env.shadow.put_object(Bucket="photos-acct2", Key="deleted", Body=b"old", ACL=OWNER_ACL)
    data = os.urandom(5 * MiB + 1024)
    put_multipart(env.primary, "photos", "big", data, 5 * MiB)
    return data


def test_server_side_repair_makes_the_keys_equal_without_reading_a_body(
    env: S3Env, writer: dualwrite.DualWriter
) -> None:
    data = diverge(env)
    journal(writer, "missing", "stale", "deleted", "big")
    primary_sent, shadow_sent = record_requests(env.primary), record_requests(env.shadow)
    report = writer.repair(server_side=True)

    assert (report.keys, report.copied, report.deleted, report.failed) == (4, 3, 1, 0)
    assert report.remaining == 0
    assert (report.copied_in_s3, report.copied_through_host) == (3, 0)
    # The primary is only read for its state; no byte of it passes through this process.
    assert "GetObject" not in primary_sent
    assert "PutObject" not in shadow_sent
    assert "UploadPart" not in shadow_sent
    assert shadow_sent.count("CopyObject") == 2
    assert shadow_sent.count("UploadPartCopy") == 2  # the primary's two parts
    for key in ("missing", "stale", "big"):
        assert same(env, key), key
    assert env.keys("shadow") == ["big", "missing", "stale"]  # "deleted" is deleted
    assert str(state(env.shadow, "photos-acct2", "big")["ETag"]).endswith('-2"')  # type: ignore[index]
    assert env.shadow_body("big") == data
    assert env.shadow_body("stale") == b"v2"
    creates = [
        c["params"]
        for c in env.shadow_calls
        if c["operation"] in ("CopyObject", "CreateMultipartUpload")
    ]
    assert len(creates) == 3
    assert all(p["ACL"] == OWNER_ACL for p in creates)
    copies = [c["params"] for c in env.shadow_calls if c["operation"] == "CopyObject"]
    assert all(p["CopySourceIfMatch"] for p in copies)  # pinned to the version read


def test_repair_through_the_host_reads_the_bodies(env: S3Env, writer: dualwrite.DualWriter) -> None:
    """The contrast that makes the request count above mean something."""
    diverge(env)
    journal(writer, "missing", "stale", "deleted", "big")
    primary_sent, shadow_sent = record_requests(env.primary), record_requests(env.shadow)
    report = writer.repair()
    assert (report.copied, report.deleted, report.copied_in_s3) == (3, 1, 0)
    assert primary_sent.count("GetObject") == 4  # 3 bodies, and "deleted" found missing
    assert "CopyObject" not in shadow_sent
    for key in ("missing", "stale", "big"):
        assert same(env, key), key


def test_objects_the_shadow_may_not_read_are_repaired_through_the_host(
    env: S3Env, writer: dualwrite.DualWriter
) -> None:
    env.primary.put_object(Bucket="photos", Key="open/a", Body=b"a", ContentType="text/a")
    env.primary.put_object(Bucket="photos", Key="closed/b", Body=b"b", ContentType="text/b")
    data = os.urandom(5 * MiB + 10)
    put_multipart(env.primary, "photos", "closed/big", data, 5 * MiB)

    def deny(params: dict[str, Any], model: Any, **_: Any) -> None:
        if params["CopySource"]["Key"].startswith("closed/"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, model.name)

    for operation in ("CopyObject", "UploadPartCopy"):
        env.shadow.meta.events.register_first(f"provide-client-params.s3.{operation}", deny)
    journal(writer, "open/a", "closed/b", "closed/big")
    primary_sent = record_requests(env.primary)
    report = writer.repair(server_side=True)
    assert (report.copied, report.failed, report.remaining) == (3, 0, 0)
    assert (report.copied_in_s3, report.copied_through_host) == (1, 2)
    assert primary_sent.count("GetObject") == 2  # the denied keys only
    for key in ("open/a", "closed/b", "closed/big"):
        assert same(env, key), key
    assert env.shadow_body("closed/big") == data
    # The multipart copy refused at its first part left no upload behind.
    assert not env.shadow.list_multipart_uploads(Bucket="photos-acct2").get("Uploads")


def test_a_live_write_under_the_copy_is_copied_not_mixed(
    env: S3Env, writer: dualwrite.DualWriter
) -> None:
    env.primary.put_object(Bucket="photos", Key="k", Body=b"v1", Metadata={"v": "1"})
    changed: list[bool] = []

    def overwrite(model: Any, **_: Any) -> None:
        if model.name == "CopyObject" and not changed:  # after the HEAD, before the copy
            changed.append(True)
            env.primary.put_object(Bucket="photos", Key="k", Body=b"v2", Metadata={"v": "2"})

    env.shadow.meta.events.register_first("provide-client-params.s3.CopyObject", overwrite)
    journal(writer, "k")
    report = writer.repair(server_side=True)
    assert (report.copied, report.failed, report.remaining) == (1, 0, 0)
    assert changed
    # Never v2's bytes with v1's metadata: the copy was pinned to the version it read.
    assert env.shadow_body("k") == b"v2"
    assert env.shadow.head_object(Bucket="photos-acct2", Key="k")["Metadata"] == {"v": "2"}


def test_a_key_that_fails_stays_journaled(env: S3Env, writer: dualwrite.DualWriter) -> None:
    env.primary.put_object(Bucket="photos", Key="k", Body=b"k")

    def fail(model: Any, **_: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalError", "Message": "x"}}, model.name)

    env.shadow.meta.events.register_first("provide-client-params.s3.CopyObject", fail)
    journal(writer, "k")
    report = writer.repair(server_side=True)
    assert (report.failed, report.remaining, report.copied_through_host) == (1, 1, 0)
    assert report.errors == ("s3 photos k: ClientError InternalError",)
    assert env.keys("shadow") == []


def test_server_side_must_be_a_bool(writer: dualwrite.DualWriter) -> None:
    with pytest.raises(ConfigurationError, match="server_side must be True or False"):
        writer.repair(server_side="yes")  # type: ignore[arg-type]


def test_arepair_passes_server_side_on(env: S3Env, writer: dualwrite.DualWriter) -> None:
    env.primary.put_object(Bucket="photos", Key="k", Body=b"k")
    journal(writer, "k")
    primary_sent = record_requests(env.primary)
    report = asyncio.run(writer.arepair(server_side=True))
    assert (report.copied, report.copied_in_s3) == (1, 1)
    assert "GetObject" not in primary_sent


# -- the command line, over HTTP ------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    moto = MotoServer()
    try:
        yield moto
    finally:
        moto.stop()


@pytest.fixture
def cli_env(server: MotoServer, tmp_path: Path) -> Accounts:
    return Accounts(server, tmp_path, {"s3": {"photos": "photos-acct2"}})


def add_entries(path: Path, *keys: str) -> None:
    store = SQLiteJournal(path)
    try:
        store.add(
            [Entry(service="s3", resource="photos", key=k, reason="shadow_failed") for k in keys]
        )
    finally:
        store.close()


def _get_object(method: str, path: str, _headers: Any) -> bool:
    """A GetObject (path-style ``GET /bucket/key``; not a listing, tagging or ACL read)."""
    resource, _, query = path.partition("?")
    return method == "GET" and resource.strip("/").count("/") >= 1 and not query


def test_repair_server_side_command(cli_env: Accounts) -> None:
    p, s = cli_env.p_s3, cli_env.s_s3
    p.create_bucket(Bucket="photos")
    s.create_bucket(Bucket="photos-acct2")
    for i in range(4):
        p.put_object(Bucket="photos", Key=f"k{i}", Body=f"v{i}".encode(), Tagging="t=1")
    s.put_object(Bucket="photos-acct2", Key="k0", Body=b"stale", ACL=OWNER_ACL)
    s.put_object(Bucket="photos-acct2", Key="gone", Body=b"deleted", ACL=OWNER_ACL)
    path = cli_env.tmp / "journal.db"
    add_entries(path, "k0", "k1", "k2", "k3", "gone")
    target = (cli_env.server.host, cli_env.server.port)
    primary_proxy, shadow_proxy = FaultProxy(target), FaultProxy(target)
    try:
        # Any GetObject of the primary fails the run: it must make none.
        primary_proxy.set(Fault("error", 403, "AccessDenied", when=_get_object))
        shadow_proxy.set(enforce_owner_acl())  # every create carries the owner ACL
        argv = cli_env.cli.argv(
            "repair", "--journal", str(path), "--server-side", "--json", shadow_url=shadow_proxy.url
        )
        argv[argv.index("--primary-endpoint-url") + 1] = primary_proxy.url
        result = subprocess.run(
            argv, capture_output=True, text=True, env=cli_env.cli.env, timeout=120, check=False
        )
        assert primary_proxy.requests["error"] == 0
        assert shadow_proxy.requests["error"] == 0
    finally:
        primary_proxy.close()
        shadow_proxy.close()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["copied"], report["deleted"], report["remaining"]) == (4, 1, 0)
    assert (report["copied_in_s3"], report["copied_through_host"]) == (4, 0)
    assert sorted(o["Key"] for o in s.list_objects_v2(Bucket="photos-acct2")["Contents"]) == [
        f"k{i}" for i in range(4)
    ]
    for i in range(4):
        assert s.get_object(Bucket="photos-acct2", Key=f"k{i}")["Body"].read() == f"v{i}".encode()
        assert s.get_object_tagging(Bucket="photos-acct2", Key=f"k{i}")["TagSet"] == [
            {"Key": "t", "Value": "1"}
        ]


def test_repair_server_side_summary_says_where_the_bytes_went(cli_env: Accounts) -> None:
    p, s = cli_env.p_s3, cli_env.s_s3
    p.create_bucket(Bucket="photos")
    s.create_bucket(Bucket="photos-acct2")
    p.put_object(Bucket="photos", Key="k", Body=b"v")
    path = cli_env.tmp / "journal.db"
    add_entries(path, "k")
    result = cli_env.cli.run("repair", "--journal", str(path), "--server-side")
    assert result.returncode == 0, result.stderr
    assert "server-side: 1 object(s) copied inside S3, 0 through this host" in result.stdout


def test_a_write_made_at_cutover_is_copied_new_to_old_inside_s3(
    env: S3Env, writer: dualwrite.DualWriter
) -> None:
    """The source is the account that took the write first (here the new one, the wrapped
    pair's shadow): the old account's client asks S3 to copy from the new account's bucket."""
    env.shadow.put_object(
        Bucket="photos-acct2", Key="k", Body=b"new", Metadata={"v": "new"}, ACL=OWNER_ACL
    )
    env.primary.put_object(Bucket="photos", Key="k", Body=b"old")
    assert writer.journal is not None
    writer.journal.add(
        [Entry(service="s3", resource="photos", key="k", reason="shadow_failed", first="shadow")]
    )
    primary_sent, shadow_sent = record_requests(env.primary), record_requests(env.shadow)
    report = writer.repair(server_side=True)
    assert (report.copied, report.copied_in_s3, report.remaining) == (1, 1, 0)
    assert "GetObject" not in shadow_sent
    assert "CopyObject" in primary_sent
    assert env.primary_body("k") == b"new"
    assert same(env, "k")


def test_an_sse_c_object_fails_with_its_error_and_stays_journaled(
    env: S3Env, writer: dualwrite.DualWriter
) -> None:
    """As through the host: its key is the caller's, so neither path can read or copy it."""
    env.primary.put_object(
        Bucket="photos",
        Key="secret",
        Body=b"classified",
        SSECustomerAlgorithm="AES256",
        SSECustomerKey=os.urandom(32),
    )
    env.primary.put_object(Bucket="photos", Key="plain", Body=b"ok")
    enforce_sse_c_reads(env.primary, {"secret"})
    journal(writer, "secret", "plain")
    report = writer.repair(server_side=True)
    assert (report.copied, report.failed, report.remaining) == (1, 1, 1)
    assert (report.copied_in_s3, report.copied_through_host) == (1, 0)
    (error,) = report.errors
    assert "secret" in error
    assert "InvalidRequest" in error
    assert env.keys("shadow") == ["plain"]
