"""S3 and DynamoDB stand-ins that cost (almost) no CPU: canned answers after an injected delay.

A real boto3 client keeps all of botocore's work (validation, serialisation, the body's
checksum, SigV4 signing, response parsing); a ``before-send`` handler then answers instead of the
HTTP layer: it reads the request body to its end (as the socket would; that is when botocore's
aws-chunked wrapper computes its checksum), sleeps the injected delay (a round trip: the thread
waits, the CPU is free, the GIL released), and returns a canned
:class:`botocore.awsrequest.AWSResponse`. No server process, no socket, no proxy: what the
client process spends is botocore's work and the library's, which is what a benchmark of the
library must show; against moto, moto's CPU (3-5 ms a request) and the proxy's took most of a
2-core machine at 200 writes/s.

Each stand-in keeps what was written (an ETag per S3 key, the item per DynamoDB key), so the
wrapper's read-back (``HeadObject``, a consistent ``GetItem``) finds what it mirrored, as on a
bucket or table written by one process. Answered: S3 ``PutObject``, ``HeadObject``,
``GetObjectTagging``, ``DeleteObject``, ``CreateBucket``; DynamoDB ``PutItem``, ``GetItem``,
``UpdateItem`` (answers the stored item: the update expression is not evaluated),
``DeleteItem``, ``BatchWriteItem``, ``BatchGetItem``, ``CreateTable``, ``DescribeTable``.
Anything else raises, so a benchmark cannot silently measure something else. Conditions are not
evaluated.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSResponse

_DATE = "Mon, 07 Dec 2026 12:00:00 GMT"


class _Raw:
    """The ``raw`` of a canned response: a fixed body."""

    def __init__(self, body: bytes = b"") -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        return iter((self.body,) if self.body else ())

    def read(self, *_: Any) -> bytes:
        return self.body


def _drain(body: Any) -> bytes:
    """Read a request body to its end, as the HTTP layer would; return what was read."""
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    chunks = []
    while True:
        chunk = body.read(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class FakeS3:
    """One account's S3: ETags by bucket and key, answered after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.objects: dict[tuple[str, str], tuple[str, int]] = {}
        self.requests = 0
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        """Answer every S3 request of ``client`` (built with path-style addressing)."""
        client.meta.events.register("before-send.s3", self._answer)

    def _answer(self, request: Any, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        parts = urlsplit(request.url)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        body = _drain(request.body)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.requests += 1
        headers = {"x-amz-request-id": "0123456789ABCDEF", "Date": _DATE, "Server": "AmazonS3"}
        if operation == "PutObject":
            etag = f'"{hashlib.md5(body).hexdigest()}"'
            with self._lock:
                self.objects[bucket, key] = (etag, len(body))
            headers |= {"ETag": etag, "Content-Length": "0"}
            return AWSResponse(request.url, 200, headers, _Raw())
        if operation == "HeadObject":
            with self._lock:
                found = self.objects.get((bucket, key))
            if found is None:
                return AWSResponse(request.url, 404, headers | {"Content-Length": "0"}, _Raw())
            headers |= {
                "ETag": found[0],
                "Content-Length": str(found[1]),
                "Content-Type": "binary/octet-stream",
                "Last-Modified": _DATE,
                "Accept-Ranges": "bytes",
            }
            return AWSResponse(request.url, 200, headers, _Raw())
        if operation == "GetObjectTagging":
            xml = b'<?xml version="1.0" encoding="UTF-8"?><Tagging><TagSet></TagSet></Tagging>'
            headers |= {"Content-Type": "application/xml", "Content-Length": str(len(xml))}
            return AWSResponse(request.url, 200, headers, _Raw(xml))
        if operation == "DeleteObject":
            with self._lock:
                self.objects.pop((bucket, key), None)
            return AWSResponse(request.url, 204, headers | {"Content-Length": "0"}, _Raw())
        if operation == "CreateBucket":
            headers |= {"Location": f"/{bucket}", "Content-Length": "0"}
            return AWSResponse(request.url, 200, headers, _Raw())
        msg = f"the zero-CPU S3 does not answer {operation}"
        raise NotImplementedError(msg)


def _ident(table: str, key: dict[str, Any]) -> str:
    return table + json.dumps(key, sort_keys=True)


class FakeDynamoDB:
    """One account's DynamoDB: items by table and key, answered after ``delay`` seconds.

    Args:
        key_names: the key attributes of every table (the partition key, then the sort key).
    """

    def __init__(self, delay: float = 0.0, key_names: tuple[str, ...] = ("pk",)) -> None:
        self.delay = delay
        self.key_names = key_names
        self.items: dict[str, dict[str, Any]] = {}
        self.requests = 0
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        """Answer every DynamoDB request of ``client``."""
        client.meta.events.register("before-send.dynamodb", self._answer)

    def _key(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.key_names if name in item}

    def _answer(self, request: Any, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        asked = json.loads(_drain(request.body) or b"{}")
        if self.delay:
            time.sleep(self.delay)
        handler = getattr(self, f"_{operation}", None)
        if handler is None:
            msg = f"the zero-CPU DynamoDB does not answer {operation}"
            raise NotImplementedError(msg)
        with self._lock:
            self.requests += 1
            answer = handler(asked)
        body = json.dumps(answer).encode()
        headers = {
            "x-amzn-RequestId": "0" * 52,
            "Content-Type": "application/x-amz-json-1.0",
            "Content-Length": str(len(body)),
            "x-amz-crc32": str(zlib.crc32(body)),
        }
        return AWSResponse(request.url, 200, headers, _Raw(body))

    def _PutItem(self, asked: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        item = asked["Item"]
        self.items[_ident(asked["TableName"], self._key(item))] = item
        return {}

    def _GetItem(self, asked: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        item = self.items.get(_ident(asked["TableName"], asked["Key"]))
        return {"Item": item} if item is not None else {}

    def _UpdateItem(self, asked: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        ident = _ident(asked["TableName"], asked["Key"])
        item = self.items.setdefault(ident, dict(asked["Key"]))
        return {"Attributes": item} if asked.get("ReturnValues", "NONE") != "NONE" else {}

    def _DeleteItem(self, asked: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        self.items.pop(_ident(asked["TableName"], asked["Key"]), None)
        return {}

    def _BatchWriteItem(self, asked: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        for table, requests in asked["RequestItems"].items():
            for one in requests:
                if "PutRequest" in one:
                    item = one["PutRequest"]["Item"]
                    self.items[_ident(table, self._key(item))] = item
                else:
                    self.items.pop(_ident(table, one["DeleteRequest"]["Key"]), None)
        return {"UnprocessedItems": {}}

    def _BatchGetItem(self, asked: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        found: dict[str, list[dict[str, Any]]] = {}
        for table, request in asked["RequestItems"].items():
            items = (self.items.get(_ident(table, key)) for key in request["Keys"])
            found[table] = [item for item in items if item is not None]
        return {"Responses": found, "UnprocessedKeys": {}}

    def _CreateTable(self, asked: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {"TableDescription": self._DescribeTable(asked)["Table"]}

    def _DescribeTable(self, asked: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        """Every table has the key ``key_names`` (strings): what the wrapper asks once."""
        kinds = ("HASH", "RANGE")
        return {
            "Table": {
                "TableName": asked["TableName"],
                "TableStatus": "ACTIVE",
                "KeySchema": [
                    {"AttributeName": name, "KeyType": kind}
                    for name, kind in zip(self.key_names, kinds, strict=False)
                ],
                "AttributeDefinitions": [
                    {"AttributeName": name, "AttributeType": "S"} for name in self.key_names
                ],
            }
        }
