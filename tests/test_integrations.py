"""dualwrite.integrations: the tenant set per request (WSGI, ASGI), per call, per Celery task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import S3Env
from werkzeug.test import Client

import dualwrite
from dualwrite.integrations import ASGIMiddleware, WSGIMiddleware, connect_celery, with_tenant

MIGRATING = {"acme"}


@pytest.fixture
def client(s3: S3Env) -> Any:
    """A wrapped S3 client mirroring the writes of tenant acme only."""
    return s3.wrap(flag=lambda write: write.tenant in MIGRATING, journal=None)


def _tenant_header(environ: dict[str, Any]) -> str | None:
    return environ.get("HTTP_X_TENANT")


# -- WSGI ---------------------------------------------------------------------------------------


def test_wsgi_sets_the_tenant_per_request(s3: S3Env, client: Any) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        key = environ["PATH_INFO"].strip("/")
        client.put_object(Bucket="photos", Key=key, Body=b"x")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(dualwrite.current_tenant()).encode()]

    web = Client(WSGIMiddleware(app, tenant_of=_tenant_header))
    assert web.get("/acme/1", headers={"X-Tenant": "acme"}).data == b"acme"
    assert web.get("/globex/1", headers={"X-Tenant": "globex"}).data == b"globex"
    assert web.get("/none/1").data == b"None"
    assert s3.keys("primary") == ["acme/1", "globex/1", "none/1"]
    assert s3.keys("shadow") == ["acme/1"]
    assert dualwrite.current_tenant() is None


def test_wsgi_streamed_body_keeps_the_tenant(s3: S3Env, client: Any) -> None:
    """A generator body runs the app's code after __call__ returned: its writes count too."""
    closed: list[str | None] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])

        def body() -> Iterator[bytes]:
            try:
                for n in range(2):
                    client.put_object(Bucket="photos", Key=f"acme/stream-{n}", Body=b"x")
                    yield str(dualwrite.current_tenant()).encode()
            finally:
                closed.append(dualwrite.current_tenant())

        return body()

    web = Client(WSGIMiddleware(app, tenant_of=_tenant_header))
    response = web.get("/", headers={"X-Tenant": "acme"})
    assert response.data == b"acmeacme"
    assert s3.keys("shadow") == ["acme/stream-0", "acme/stream-1"]
    assert closed == ["acme"]
    assert dualwrite.current_tenant() is None


def test_a_failing_tenant_of_never_fails_the_request(
    s3: S3Env, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(environ: dict[str, Any]) -> str:
        raise KeyError("secret-token-value")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        client.put_object(Bucket="photos", Key="acme/1", Body=b"x")
        start_response("200 OK", [])
        return [b"ok"]

    with caplog.at_level(logging.WARNING, logger="dualwrite"):
        assert Client(WSGIMiddleware(app, tenant_of=broken)).get("/").data == b"ok"
    assert s3.keys("primary") == ["acme/1"]
    assert s3.keys("shadow") == []
    assert "tenant_of raised KeyError" in caplog.text
    assert "secret-token-value" not in caplog.text


def test_a_non_string_tenant_is_refused_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str | None] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(dualwrite.current_tenant())
        start_response("200 OK", [])
        return []

    with caplog.at_level(logging.WARNING, logger="dualwrite"):
        Client(WSGIMiddleware(app, tenant_of=lambda environ: 42)).get("/")
    assert seen == [None]
    assert "returned a int" in caplog.text


# -- ASGI ---------------------------------------------------------------------------------------


def _asgi_call(app: Any, scope: dict[str, Any]) -> list[Any]:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_asgi_sets_the_tenant_per_connection(s3: S3Env, client: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0)  # the tenant follows the awaits
        if scope["type"] == "http":
            key = scope["path"].strip("/")
            client.put_object(Bucket="photos", Key=key, Body=b"x")
        await send({"type": "tenant", "tenant": dualwrite.current_tenant()})

    def tenant_of(scope: dict[str, Any]) -> str | None:
        return dict(scope["headers"]).get(b"x-tenant", b"").decode() or None

    wrapped = ASGIMiddleware(app, tenant_of=tenant_of)
    http = {"type": "http", "path": "/acme/1", "headers": [(b"x-tenant", b"acme")]}
    assert _asgi_call(wrapped, http) == [{"type": "tenant", "tenant": "acme"}]
    other = {"type": "http", "path": "/globex/1", "headers": [(b"x-tenant", b"globex")]}
    assert _asgi_call(wrapped, other) == [{"type": "tenant", "tenant": "globex"}]
    # lifespan passes through without asking tenant_of (which would fail on this scope).
    assert _asgi_call(wrapped, {"type": "lifespan"}) == [{"type": "tenant", "tenant": None}]
    assert s3.keys("shadow") == ["acme/1"]
    assert s3.keys("primary") == ["acme/1", "globex/1"]


# -- decorator ----------------------------------------------------------------------------------


def test_with_tenant_on_functions_and_coroutines(s3: S3Env, client: Any) -> None:
    @with_tenant(lambda tenant_id, key: tenant_id)
    def job(tenant_id: str, key: str) -> str | None:
        client.put_object(Bucket="photos", Key=key, Body=b"x")
        return dualwrite.current_tenant()

    @with_tenant(lambda tenant_id, **_: tenant_id)
    async def ajob(tenant_id: str, *, key: str) -> str | None:
        await asyncio.sleep(0)
        client.put_object(Bucket="photos", Key=key, Body=b"x")
        return dualwrite.current_tenant()

    assert job("acme", "acme/1") == "acme"
    assert job("globex", "globex/1") == "globex"
    assert asyncio.run(ajob("acme", key="acme/2")) == "acme"
    assert job.__name__ == "job"
    assert ajob.__name__ == "ajob"
    assert s3.keys("shadow") == ["acme/1", "acme/2"]
    assert dualwrite.current_tenant() is None


# -- Celery -------------------------------------------------------------------------------------


class Signal:
    """The part of a Celery (blinker-like) signal the helper uses: connect and send."""

    def __init__(self) -> None:
        self.receivers: list[Callable[..., Any]] = []

    def connect(self, receiver: Callable[..., Any], weak: bool = True) -> None:
        assert weak is False  # a weak reference to a bound method would vanish at once
        self.receivers.append(receiver)

    def send(self, sender: Any = None, **kwargs: Any) -> None:
        for receiver in self.receivers:
            receiver(sender=sender, signal=self, **kwargs)


class Signals:
    def __init__(self) -> None:
        self.before_task_publish = Signal()
        self.task_prerun = Signal()
        self.task_postrun = Signal()


class Request:
    """Celery's task.request: message headers become attributes (protocol 2)."""

    def __init__(self, headers: dict[str, Any]) -> None:
        self.__dict__.update(headers)


class Task:
    def __init__(self, headers: dict[str, Any]) -> None:
        self.request = Request(headers)


def test_celery_tasks_run_with_the_senders_tenant(s3: S3Env, client: Any) -> None:
    signals = Signals()
    connect_celery(signals=signals)

    def send_task(tenant: str | None) -> dict[str, Any]:
        headers: dict[str, Any] = {"id": "t"}
        with dualwrite.tenant(tenant):
            signals.before_task_publish.send(sender="app.upload", headers=headers, body=())
        return headers

    def run_task(task_id: str, headers: dict[str, Any], key: str) -> str | None:
        task = Task(headers)
        signals.task_prerun.send(sender=task, task_id=task_id, task=task, args=(), kwargs={})
        try:
            client.put_object(Bucket="photos", Key=key, Body=b"x")
            return dualwrite.current_tenant()
        finally:
            signals.task_postrun.send(sender=task, task_id=task_id, task=task, retval=None)

    acme = send_task("acme")
    assert acme["dualwrite_tenant"] == "acme"
    assert "dualwrite_tenant" not in send_task(None)
    with dualwrite.tenant("worker-default"):
        assert run_task("1", acme, "acme/1") == "acme"
        assert run_task("2", send_task("globex"), "globex/1") == "globex"
        assert run_task("3", {}, "none/1") is None
        # postrun restored the worker's own tenant.
        assert dualwrite.current_tenant() == "worker-default"
    assert s3.keys("shadow") == ["acme/1"]


def test_celery_reads_the_header_from_request_headers_too() -> None:
    signals = Signals()
    connect_celery(signals=signals, header="x-tenant")
    task = Task({"headers": {"x-tenant": "acme"}})
    signals.task_prerun.send(sender=task, task_id="1", task=task)
    try:
        assert dualwrite.current_tenant() == "acme"
    finally:
        signals.task_postrun.send(sender=task, task_id="1", task=task)
    assert dualwrite.current_tenant() is None
