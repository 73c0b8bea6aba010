"""A local HTTP forwarding proxy that can fail the way AWS fails.

Put it between a shadow client and a moto server (``endpoint_url=proxy.url``) and switch it at
will: pass requests through (optionally after a delay), refuse connections, answer with an AWS
error (500, 503 SlowDown, throttling, 403 AccessDenied, 404 NoSuchBucket), or hold the request
longer than the client's read timeout. It counts the requests it sees, per mode, so a test can
prove that a client did or did not call its endpoint.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


@attrs.frozen
class Fault:
    """What the proxy does with the next requests.

    Attributes:
        kind: ``"pass"``, ``"refuse"``, ``"error"`` or ``"hang"``.
        status: HTTP status of an ``"error"``.
        code: AWS error code of an ``"error"`` (e.g. ``"SlowDown"``).
        delay: seconds added before a ``"pass"`` request is forwarded.
        hang: seconds a ``"hang"`` request is held before the connection is dropped.
        when: if set, the fault applies only to the requests for which
            ``when(method, path, headers)`` is true; the others pass through untouched.
    """

    kind: str = "pass"
    status: int = 200
    code: str = ""
    delay: float = 0.0
    hang: float = 0.0
    when: Any = None


PASS = Fault()
REFUSE = Fault("refuse")
FAULTS = {
    "refused": REFUSE,
    "http-500": Fault("error", 500, "InternalError"),
    "slowdown-503": Fault("error", 503, "SlowDown"),
    "throttling": Fault("error", 400, "ThrottlingException"),
    "read-timeout": Fault("hang", hang=5.0),
    "access-denied": Fault("error", 403, "AccessDenied"),
    "no-such-bucket": Fault("error", 404, "NoSuchBucket"),
}
"""The outages the tests inject, by name."""

DYNAMODB_FAULTS = {
    "refused": REFUSE,
    "throttling": Fault("error", 400, "ThrottlingException"),
    "resource-not-found": Fault("error", 400, "ResourceNotFoundException"),
    "http-500": Fault("error", 500, "InternalServerError"),
}
"""DynamoDB's outages: the same transport failures, and its own error codes."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (a killed process, a timed-out read) is part of the tests.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        fault = proxy.fault
        if fault.when is not None and not fault.when(self.command, self.path, self.headers):
            fault = PASS
        proxy.count(fault.kind)
        if fault.kind == "refuse":
            # The listener is closed too; this drops connections botocore kept alive.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault.kind == "hang":
            proxy.released.wait(fault.hang)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault.kind == "error":
            self._error(fault)
            return
        if fault.delay:
            time.sleep(fault.delay)
        self._forward(body)

    def _error(self, fault: Fault) -> None:
        if self.headers.get("X-Amz-Target"):  # a JSON protocol (DynamoDB, SQS)
            error = {"__type": f"com.amazonaws.dynamodb.v20120810#{fault.code}", "message": "x"}
            payload = json.dumps(error).encode()
            content_type = "application/x-amz-json-1.0"
        else:
            payload = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                "<Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>"
            ).encode()
            content_type = "application/xml"
        self.send_response(fault.status)
        self.send_header("Content-Type", content_type)
        self.send_header("x-amzn-ErrorType", fault.code)
        self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _forward(self, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        # One upstream connection per client connection, kept alive like the client's.
        upstream: http.client.HTTPConnection | None = getattr(self, "_upstream", None)
        host, port = self.server.proxy.target
        for attempt in range(2):
            if upstream is None:
                upstream = http.client.HTTPConnection(host, port, timeout=60)
                self._upstream: http.client.HTTPConnection | None = upstream
            try:
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                break
            except (OSError, http.client.HTTPException):
                upstream.close()
                upstream = self._upstream = None
                if attempt:
                    raise
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def finish(self) -> None:
        upstream = getattr(self, "_upstream", None)
        if upstream is not None:
            upstream.close()
        super().finish()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class FaultProxy:
    """A forwarding proxy on 127.0.0.1 whose behaviour :meth:`set` switches.

    Args:
        target: ``(host, port)`` of the server requests are forwarded to.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.fault = PASS
        self.released = threading.Event()
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, kind: str) -> None:
        with self._lock:
            self.requests[kind] += 1

    def _listen(self) -> None:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.proxy = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _unlisten(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def set(self, fault: Fault) -> None:
        """Switch to ``fault``: closing or reopening the port for ``"refuse"``."""
        previous, self.fault = self.fault, fault
        if fault.kind == "hang":
            self.released.clear()
        elif previous.kind == "hang":
            self.released.set()
        if fault.kind == "refuse" and previous.kind != "refuse":
            self._unlisten()
        elif fault.kind != "refuse" and previous.kind == "refuse":
            self._listen()

    def close(self) -> None:
        self.released.set()
        self._unlisten()
