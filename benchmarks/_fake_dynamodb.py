"""A DynamoDB stand-in for benchmarks: the service's answers without the service's CPU.

Real boto3 clients send their requests through botocore as usual (validation, serialisation,
signing, parsing); a ``before-send`` handler answers them from an in-memory table, as AWS would
answer from elsewhere. Against AWS the service's own work is not on the caller's machine; moto's
is, and on a 2-CPU machine it, not the code under test, decides how far parallel workers scale.

Implemented: ``Scan`` (segments, ``Limit``, ``ExclusiveStartKey``), ``BatchGetItem``,
``PutItem``, ``DeleteItem``. Conditions: ``attribute_not_exists`` only (the copy of an empty
shadow); any other operation raises, so a benchmark cannot silently measure something else.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse

KEY = ("pk", "sk")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        return iter((self.body,))

    def read(self, *_: Any) -> bytes:
        return self.body


def _ident(item: dict[str, Any]) -> tuple[str, ...]:
    return tuple(json.dumps(item[name], sort_keys=True) for name in KEY)


class FakeTables:
    """One account's tables, answering a client's requests."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def seed(self, table: str, items: list[dict[str, Any]]) -> None:
        """Put ``items`` into ``table`` without any request."""
        rows = self.tables.setdefault(table, {})
        for item in items:
            rows[_ident(item)] = item

    def attach(self, client: Any) -> None:
        """Answer every DynamoDB request of ``client`` from these tables."""
        client.meta.events.register("before-send.dynamodb.*", self._answer)

    def _answer(self, request: Any, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        asked = json.loads(request.body or b"{}")
        status, answer = getattr(self, f"_{operation}")(asked)
        body = json.dumps(answer).encode()
        headers = {
            "x-amzn-RequestId": "0" * 52,
            "Content-Type": "application/x-amz-json-1.0",
            "Content-Length": str(len(body)),
            "x-amz-crc32": str(zlib.crc32(body)),
        }
        return AWSResponse(request.url, status, headers, _Raw(body))

    def _Scan(self, asked: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        rows = self.tables.get(asked["TableName"], {})
        total = asked.get("TotalSegments", 1)
        segment = asked.get("Segment", 0)
        with self._lock:
            keys = sorted(k for k in rows if zlib.crc32(k[0].encode()) % total == segment)
        start = asked.get("ExclusiveStartKey")
        if start:
            after = _ident(start)
            keys = [k for k in keys if k > after]
        limit = asked.get("Limit", 1000)
        page = [rows[k] for k in keys[:limit]]
        answer: dict[str, Any] = {"Items": page, "Count": len(page), "ScannedCount": len(page)}
        if len(keys) > limit:
            answer["LastEvaluatedKey"] = {name: page[-1][name] for name in KEY}
        return 200, answer

    def _BatchGetItem(self, asked: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        found: dict[str, list[dict[str, Any]]] = {}
        for table, request in asked["RequestItems"].items():
            rows = self.tables.get(table, {})
            found[table] = [rows[_ident(k)] for k in request["Keys"] if _ident(k) in rows]
        return 200, {"Responses": found, "UnprocessedKeys": {}}

    def _PutItem(self, asked: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        rows = self.tables.setdefault(asked["TableName"], {})
        item = asked["Item"]
        condition = asked.get("ConditionExpression", "")
        with self._lock:
            if condition and not condition.startswith("attribute_not_exists"):
                msg = f"the fake evaluates attribute_not_exists only, not {condition!r}"
                raise NotImplementedError(msg)
            if condition and _ident(item) in rows:
                return 400, {
                    "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                    "message": "The conditional request failed",
                }
            rows[_ident(item)] = item
        return 200, {}

    def _DeleteItem(self, asked: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        with self._lock:
            self.tables.get(asked["TableName"], {}).pop(_ident(asked["Key"]), None)
        return 200, {}
