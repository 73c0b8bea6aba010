"""Set the tenant per request or per task: WSGI and ASGI middleware, a decorator, Celery signals.

dualwrite decides per write from the current tenant (:func:`dualwrite.tenant`, a
:mod:`contextvars` value). These helpers set it where a request or a task starts, from a callable
you give, so the code below never passes it around:

* :class:`WSGIMiddleware`: Flask, Django, any WSGI app (``tenant_of(environ)``); the tenant
  also holds while a streamed response body is produced.
* :class:`ASGIMiddleware`: FastAPI, Starlette, Django ASGI (``tenant_of(scope)``).
* :func:`with_tenant`: a decorator for functions and coroutine functions (a job, a handler).
* :func:`connect_celery`: a task runs with the tenant that was current where it was sent.

A ``tenant_of`` that raises is contained, as the library contains the flag's exceptions: the
request goes on without a tenant (so its writes are not mirrored) and a warning is logged with
the exception's type; the request itself is never failed by dualwrite.

None of these import a web framework or Celery.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from contextlib import AbstractContextManager
from typing import Any, ParamSpec, TypeVar

from dualwrite._context import current_tenant, tenant

__all__ = ["ASGIMiddleware", "WSGIMiddleware", "connect_celery", "with_tenant"]

logger = logging.getLogger("dualwrite")

P = ParamSpec("P")
R = TypeVar("R")

CELERY_HEADER = "dualwrite_tenant"
"""The Celery message header carrying the sender's tenant."""


def _resolve(tenant_of: Callable[..., str | None], *args: Any, **kwargs: Any) -> str | None:
    """Call ``tenant_of``; on an exception or a non-string, log and answer ``None``."""
    try:
        name = tenant_of(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the request must not fail because of the tenant
        logger.warning(
            "dualwrite: tenant_of raised %s; this request runs without a tenant",
            type(exc).__name__,
        )
        return None
    if name is not None and not isinstance(name, str):
        logger.warning(
            "dualwrite: tenant_of returned a %s, not a str; this request runs without a tenant",
            type(name).__name__,
        )
        return None
    return name


class WSGIMiddleware:
    """WSGI middleware running each request with the tenant ``tenant_of(environ)`` names.

    Flask: ``app.wsgi_app = WSGIMiddleware(app.wsgi_app, tenant_of=...)``; Django: wrap the
    application in ``wsgi.py``.

    Args:
        app: the WSGI application.
        tenant_of: called with the WSGI ``environ`` of each request; returns the tenant or
            ``None``. Example: ``lambda environ: environ.get("HTTP_X_TENANT")``.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], tenant_of: Callable[..., Any]) -> None:
        self.app = app
        self.tenant_of = tenant_of

    def __call__(
        self, environ: MutableMapping[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Run the request with its tenant set, and produce its body with the tenant set."""
        name = _resolve(self.tenant_of, environ)
        with tenant(name):
            body = self.app(environ, start_response)
        return _TenantBody(body, name)


class _TenantBody:
    """A WSGI response body whose chunks (and ``close``) run with the request's tenant.

    A streamed body (a generator) runs the application's code while the server iterates it,
    after ``__call__`` returned: its writes need the tenant too.
    """

    def __init__(self, body: Iterable[bytes], name: str | None) -> None:
        self._body = body
        self._name = name

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._body)
        while True:
            with tenant(self._name):
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
            yield chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            with tenant(self._name):
                close()


class ASGIMiddleware:
    """ASGI middleware running each HTTP or WebSocket connection with its tenant.

    FastAPI/Starlette: ``app.add_middleware(ASGIMiddleware, tenant_of=...)``. ``lifespan`` and
    other scope types pass through untouched.

    Args:
        app: the ASGI application.
        tenant_of: called with the ASGI ``scope``; returns the tenant or ``None``. Example:
            ``lambda scope: dict(scope["headers"]).get(b"x-tenant", b"").decode() or None``.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], tenant_of: Callable[..., Any]) -> None:
        self.app = app
        self.tenant_of = tenant_of

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """Run the connection with its tenant set (a contextvar: it follows the awaits)."""
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with tenant(_resolve(self.tenant_of, scope)):
            await self.app(scope, receive, send)


def with_tenant(tenant_of: Callable[..., Any]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function so that each call runs with the tenant ``tenant_of`` names.

    ``tenant_of`` receives the call's arguments. Coroutine functions are awaited inside the
    tenant's block.

    Example::

        @with_tenant(lambda order, **_: order.tenant_id)
        def ship(order, *, express=False): ...

    Args:
        tenant_of: called with the decorated function's arguments; returns the tenant or
            ``None``.

    Returns:
        The decorator.
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with tenant(_resolve(tenant_of, *args, **kwargs)):
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with tenant(_resolve(tenant_of, *args, **kwargs)):
                return function(*args, **kwargs)

        return run

    return decorate


class _CeleryTenants:
    """The Celery signal receivers: carry the tenant in a header, set it around the task."""

    def __init__(self, header: str) -> None:
        self.header = header
        self._lock = threading.Lock()
        # task id -> the open tenant block of that task (prerun opens it, postrun closes it).
        self._open: dict[str, AbstractContextManager[Any]] = {}

    def before_task_publish(
        self, headers: MutableMapping[str, Any] | None = None, **_: Any
    ) -> None:
        name = current_tenant()
        if headers is not None and name is not None:
            headers.setdefault(self.header, name)

    def _of(self, task: Any) -> str | None:
        request = getattr(task, "request", None)
        if request is None:
            return None
        name = getattr(request, self.header, None)
        if name is None:
            headers = getattr(request, "headers", None) or {}
            name = headers.get(self.header)
        return name if isinstance(name, str) else None

    def task_prerun(self, task_id: str | None = None, task: Any = None, **_: Any) -> None:
        block = tenant(self._of(task))
        block.__enter__()
        with self._lock:
            self._open[str(task_id)] = block

    def task_postrun(self, task_id: str | None = None, **_: Any) -> None:
        with self._lock:
            block = self._open.pop(str(task_id), None)
        if block is not None:
            block.__exit__(None, None, None)


def connect_celery(*, header: str = CELERY_HEADER, signals: Any = None) -> None:
    """Make every Celery task run with the tenant that was current where it was sent.

    ``before_task_publish`` puts the sender's tenant in a message header; ``task_prerun`` sets
    it for the task and ``task_postrun`` restores the worker's previous tenant. Call once, in
    both the sending process and the worker (e.g. where the Celery app is defined). A task sent
    without a tenant runs without one.

    Args:
        header: the message header's name.
        signals: the module holding the signals; default ``celery.signals``.

    Raises:
        ImportError: Celery is not installed and ``signals`` was not given.
    """
    if signals is None:
        from celery import signals as celery_signals  # noqa: PLC0415 - optional dependency

        signals = celery_signals
    receivers = _CeleryTenants(header)
    # weak=False: the receivers are bound methods of an object nothing else holds.
    signals.before_task_publish.connect(receivers.before_task_publish, weak=False)
    signals.task_prerun.connect(receivers.task_prerun, weak=False)
    signals.task_postrun.connect(receivers.task_postrun, weak=False)
