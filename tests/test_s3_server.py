"""Over real HTTP: moto's server with two accounts, a round trip, and a shadow outage."""

from __future__ import annotations

import io
import random
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from conftest import Accounts, enforce_owner_acl
from moto.server import ThreadedMotoServer

import dualwrite
from dualwrite.events import ShadowFailed
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")

MiB = 1024 * 1024
OUTAGE = Config(connect_timeout=0.5, read_timeout=1, retries={"total_max_attempts": 2})


class Server:
    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def stop(self) -> None:
        self._server.stop()
        # ThreadedMotoServer.stop() leaves the listening socket open: close it, so that
        # the port refuses connections like a host that is down.
        self._server._server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.stop()


class HttpEnv:
    def __init__(self, accounts: Accounts, shadow_config: Config | None = None, **shadow: Any):
        self.accounts = accounts
        self.primary = accounts.client("primary", "s3")
        self.shadow = accounts.shadow.client("s3", config=shadow_config, **shadow)
        self.shadow_calls = enforce_owner_acl(self.shadow)
        self.primary.create_bucket(Bucket="photos")
        self.admin = accounts.client("shadow", "s3")  # reaches the shadow account directly
        self.admin.create_bucket(Bucket="photos-acct2")

    def keys(self, client: Any, bucket: str) -> list[str]:
        contents = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted(o["Key"] for o in contents)

    def body(self, client: Any, bucket: str, key: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]


@pytest.fixture
def http(server: Server) -> HttpEnv:
    server.reset()
    accounts = Accounts(endpoint_url=server.url)
    return HttpEnv(accounts, endpoint_url=server.url)


def test_accounts_are_separate_over_http(http: HttpEnv) -> None:
    assert [b["Name"] for b in http.primary.list_buckets()["Buckets"]] == ["photos"]
    assert [b["Name"] for b in http.admin.list_buckets()["Buckets"]] == ["photos-acct2"]


def test_round_trip_over_http(http: HttpEnv) -> None:
    rec = RecordingHook()
    client = dualwrite.wrap(
        http.primary, shadow=http.shadow, names={"photos": "photos-acct2"}, flag=True, hooks=[rec]
    )
    data = random.Random(5).randbytes(5 * MiB)
    body = io.BytesIO(b"xx" + data)
    body.seek(2)
    client.put_object(Bucket="photos", Key="a", Body=body)
    client.copy_object(Bucket="photos", Key="b", CopySource="photos/a")
    upload_id = client.create_multipart_upload(Bucket="photos", Key="m")["UploadId"]
    parts = []
    for number, chunk in enumerate((data, b"tail"), start=1):
        etag = client.upload_part(
            Bucket="photos", Key="m", UploadId=upload_id, PartNumber=number, Body=chunk
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    client.complete_multipart_upload(
        Bucket="photos", Key="m", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    client.delete_object(Bucket="photos", Key="a")

    assert http.keys(http.primary, "photos") == ["b", "m"]
    assert http.keys(http.admin, "photos-acct2") == ["b", "m"]
    for key, expected in (("b", data), ("m", data + b"tail")):
        assert http.body(http.primary, "photos", key) == expected
        assert http.body(http.admin, "photos-acct2", key) == expected
    assert set(rec.kinds()) == {"shadow_written"}
    assert len(rec.events) == 7
    assert http.admin.list_multipart_uploads(Bucket="photos-acct2").get("Uploads", []) == []
    creates = [c for c in http.shadow_calls if c["operation"] in ("PutObject", "CopyObject")]
    assert all(c["params"]["ACL"] == "bucket-owner-full-control" for c in creates)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_shadow_unreachable(server: Server) -> None:
    server.reset()
    accounts = Accounts(endpoint_url=server.url)
    http = HttpEnv(accounts, OUTAGE, endpoint_url=f"http://127.0.0.1:{_closed_port()}")
    rec = RecordingHook()
    client = dualwrite.wrap(
        http.primary, shadow=http.shadow, names={"photos": "photos-acct2"}, flag=True, hooks=[rec]
    )
    response = client.put_object(Bucket="photos", Key="k", Body=b"data")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert http.body(http.primary, "photos", "k") == b"data"
    assert rec.kinds() == ["shadow_failed"]
    event = rec.events[0]
    assert isinstance(event, ShadowFailed)
    assert event.error_type == "EndpointConnectionError"
    assert event.error_code is None
    assert http.keys(http.admin, "photos-acct2") == []


def test_shadow_goes_down_mid_run(server: Server) -> None:
    server.reset()
    shadow_server = Server()  # the same moto state, behind a second endpoint that can fail
    try:
        accounts = Accounts(endpoint_url=server.url)
        http = HttpEnv(accounts, OUTAGE, endpoint_url=shadow_server.url)
        rec = RecordingHook()
        client = dualwrite.wrap(
            http.primary,
            shadow=http.shadow,
            names={"photos": "photos-acct2"},
            flag=True,
            hooks=[rec],
        )
        client.put_object(Bucket="photos", Key="before", Body=b"1")
    finally:
        shadow_server.stop()
    client.put_object(Bucket="photos", Key="during", Body=b"2")
    upload_id = client.create_multipart_upload(Bucket="photos", Key="m")["UploadId"]
    etag = client.upload_part(
        Bucket="photos", Key="m", UploadId=upload_id, PartNumber=1, Body=b"3"
    )["ETag"]
    client.complete_multipart_upload(
        Bucket="photos",
        Key="m",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    client.delete_object(Bucket="photos", Key="before")

    assert http.keys(http.primary, "photos") == ["during", "m"]
    assert http.keys(http.admin, "photos-acct2") == ["before"]
    assert rec.kinds() == ["shadow_written"] + ["shadow_failed"] * 4
    failed = rec.events[1:]
    assert [e.write.operation for e in failed] == [
        "PutObject",
        "CreateMultipartUpload",
        "CompleteMultipartUpload",
        "DeleteObject",
    ]
    assert all(isinstance(e, ShadowFailed) for e in failed)
    assert failed[0].error_type == "EndpointConnectionError"  # type: ignore[attr-defined]
