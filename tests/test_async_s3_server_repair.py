"""``arepair(server_side=True)`` with aiobotocore clients: S3 copies the objects, as with boto3.

Two accounts on a ThreadedMotoServer; skipped where aiobotocore is not installed (CI runs it in
its async virtualenv).
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.aio import AioAccounts, require
from _support.servers import MotoServer

import dualwrite
from dualwrite.journal import Entry, SQLiteJournal

aiobotocore = require("aiobotocore")
importlib.import_module("aiobotocore.session")

NAMES = {"photos": "photos-acct2"}
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    srv = MotoServer()
    yield srv
    srv.stop()


def record_operations(client: Any) -> list[str]:
    """The operation of every request an aiobotocore client builds."""
    calls: list[str] = []

    def on_build(model: Any, **_: Any) -> None:
        calls.append(model.name)

    client.meta.events.register("before-parameter-build.s3.*", on_build)
    return calls


def test_arepair_server_side_copies_inside_s3(server: MotoServer, tmp_path: Path) -> None:
    server.reset()
    accounts = AioAccounts(server.url)
    p, s = accounts.admin("primary", "s3"), accounts.admin("shadow", "s3")
    p.create_bucket(Bucket="photos")
    s.create_bucket(Bucket="photos-acct2")
    p.put_object(Bucket="photos", Key="small", Body=b"small", Metadata={"n": "1"})
    data = os.urandom(5 * MiB + 7)
    upload = p.create_multipart_upload(Bucket="photos", Key="big")["UploadId"]
    parts = [
        {
            "PartNumber": n,
            "ETag": p.upload_part(
                Bucket="photos", Key="big", UploadId=upload, PartNumber=n, Body=chunk
            )["ETag"],
        }
        for n, chunk in ((1, data[: 5 * MiB]), (2, data[5 * MiB :]))
    ]
    p.complete_multipart_upload(
        Bucket="photos", Key="big", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    s.put_object(Bucket="photos-acct2", Key="gone", Body=b"x", ACL="bucket-owner-full-control")
    path = tmp_path / "journal.db"
    store = SQLiteJournal(path)
    store.add(
        [
            Entry(service="s3", resource="photos", key=k, reason="shadow_failed")
            for k in ("small", "big", "gone")
        ]
    )
    store.close()

    async def main() -> dualwrite.RepairReport:
        async with accounts.clients("s3") as (primary, shadow):
            sent = record_operations(primary)
            async with dualwrite.DualWriter(flag=False, journal=str(path)) as writer:
                writer.wrap(primary, shadow=shadow, names=NAMES)
                report = await writer.arepair(server_side=True)
            assert "GetObject" not in sent
            return report

    report = asyncio.run(main())
    assert (report.copied, report.deleted, report.failed, report.remaining) == (2, 1, 0, 0)
    assert (report.copied_in_s3, report.copied_through_host) == (2, 0)
    assert s.get_object(Bucket="photos-acct2", Key="small")["Body"].read() == b"small"
    assert s.get_object(Bucket="photos-acct2", Key="big")["Body"].read() == data
    for key in ("small", "big"):
        assert (
            s.head_object(Bucket="photos-acct2", Key=key)["ETag"]
            == p.head_object(Bucket="photos", Key=key)["ETag"]
        )
    keys = sorted(o["Key"] for o in s.list_objects_v2(Bucket="photos-acct2")["Contents"])
    assert keys == ["big", "small"]
