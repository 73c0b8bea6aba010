"""asyncio clients (aiobotocore, aioboto3): the one engine, driven from an event loop.

A wrapped async client runs each mirrored write through exactly the handler a boto3 client runs:
there is no second table of handlers. The driver is thin:

- :class:`AsyncClientProxy` is what ``wrap()`` returns for an aiobotocore client. A mirrored
  write is awaited as ``await s3.put_object(...)``: the handler runs on a worker thread of the
  writer (:class:`AsyncDriver`) in a copy of the calling task's context (its
  ``dualwrite.tenant()`` and every other ``contextvars`` value), and the task awaits it without
  blocking the loop. Everything that is not a mirrored write (reads, paginators, waiters,
  ``meta``, ``close``, ``async with``) is the primary's own attribute: no thread is involved.
- :class:`LoopClient` is the synchronous face the engine calls on that thread: each API call
  is run on the caller's event loop (``asyncio.run_coroutine_threadsafe``) and the thread waits
  for its answer, so the aiobotocore client is only ever used on its own loop. A streaming body
  in an answer (``GetObject``) reads through the loop the same way.

The engine's guarantees are therefore the sync ones: write-ahead intents, per-key locks and
order, ``shadow_timeout``, the ACL, state convergence, background workers. A background write's
shadow call also runs on the loop: after the loop is closed it fails
(:class:`LoopUnavailableError`), and the key is journaled like any other failed shadow write.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from dualwrite._core import routing as _routing
from dualwrite._core.bodies import SPOOL_MEMORY
from dualwrite._core.decide import Asked, pre_decided
from dualwrite._core.intent import add_sends, count_sends_into
from dualwrite._core.proxy import _BaseProxy, _Proxy
from dualwrite._core.snapshot import snapshot
from dualwrite.exceptions import DualWriteError

# How often a thread waiting for the loop checks that the loop still runs.
_POLL = 0.5
# Worker threads of one writer running async clients' mirrored writes at once.
ASYNC_WORKERS = 64
# boto3's managed transfers, which aioboto3 adds to its S3 client: run as aioboto3 runs them,
# with this proxy as the client, so that every part they write is a mirrored call.
_TRANSFERS = frozenset({"upload_file", "upload_fileobj", "copy"})
# Attributes that stay the primary's own even where the sync proxy has its own version.
_PASSTHROUGH = frozenset({"get_waiter", "download_file", "download_fileobj"})


class LoopUnavailableError(DualWriteError, RuntimeError):
    """The event loop an async client belongs to is closed or stopped, so a call of a worker
    thread (a background shadow write, a repair) cannot run on it. Inside a shadow action it
    becomes a ``shadow_failed`` event and the key is journaled."""


class LoopRef:
    """The event loop a wrapped async client pair is used from (the last one that called it)."""

    __slots__ = ("dead", "loop")

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        # A loop that cancelled one of our calls: only a loop shutting down cancels every task
        # (asyncio.run(), a server's shutdown), so no further call is started on it.
        self.dead: asyncio.AbstractEventLoop | None = None

    def run(self, method: Callable[..., Awaitable[Any]], args: Any, kwargs: Any) -> Any:
        """Run ``method(*args, **kwargs)`` on the loop and wait for its result (a worker thread).

        The call's own exception is raised unchanged. Requests it sends count as this thread's
        (the primary's failure classification, :func:`dualwrite._core.intent.call_primary`).

        Raises:
            LoopUnavailableError: the loop is closed or stopped, or none ever called the client.
            RuntimeError: called on the loop's own thread (it would wait for itself).
        """
        loop = self.loop
        if loop is None:
            msg = "this async client was never called from an event loop"
            raise LoopUnavailableError(msg)
        if loop is self.dead or getattr(loop, "_asyncgens_shutdown_called", False):
            # asyncio.run() is ending the loop: a call scheduled now would never finish.
            msg = "the event loop is shutting down"
            raise LoopUnavailableError(msg)
        if _running_loop() is loop:
            msg = (
                "a synchronous dualwrite call was made on the event loop's own thread, which it "
                "would wait for forever: use the async methods (await writer.aflush(), "
                "await writer.aclose(), await writer.arepair())"
            )
            raise RuntimeError(msg)
        box = [0]
        coro = _on_loop(method, args, kwargs, box)
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError as exc:  # closed between the check and the call
            coro.close()
            raise LoopUnavailableError(f"the event loop is closed ({exc})") from None
        try:
            while True:
                try:
                    return future.result(_POLL)
                except concurrent.futures.TimeoutError:
                    if loop.is_closed() or not loop.is_running():
                        self.dead = loop
                        if not loop.is_closed():  # a closed loop cannot take the cancel
                            future.cancel()
                        msg = "the event loop stopped before the call finished"
                        raise LoopUnavailableError(msg) from None
                except concurrent.futures.CancelledError:
                    self.dead = loop
                    msg = "the call was cancelled by its event loop (shutting down)"
                    raise LoopUnavailableError(msg) from None
        finally:
            add_sends(box[0])


async def _on_loop(
    method: Callable[..., Awaitable[Any]], args: Any, kwargs: Any, box: list[int]
) -> Any:
    count_sends_into(box)
    return await method(*args, **kwargs)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Bridged:
    """A synchronous API method of a :class:`LoopClient`: runs the async one on the loop."""

    __slots__ = ("__name__", "_method", "_ref")

    def __init__(self, ref: LoopRef, method: Callable[..., Awaitable[Any]], name: str) -> None:
        self._ref = ref
        self._method = method
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        response = self._ref.run(self._method, args, kwargs)
        if isinstance(response, dict):
            body = response.get("Body")
            if body is not None and _async_read(body):
                response["Body"] = BridgedStream(body, self._ref)
        return response


def _async_read(obj: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(obj, "read", None))


class LoopClient(_BaseProxy):
    """The synchronous face of an aiobotocore client, for the engine's worker threads.

    Passes ``isinstance`` checks for the client's class; ``meta``, ``exceptions`` and every
    other attribute are the client's own, except that its coroutine methods (API calls,
    ``generate_presigned_url``) become :class:`Bridged` calls and paginators iterate through
    the loop.
    """

    def __init__(self, client: Any, ref: LoopRef) -> None:
        super().__init__(client)
        self._self_ref = ref

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_self_"):
            raise AttributeError(name)
        client = self.__wrapped__
        attr = getattr(client, name)
        # An API method is botocore's plain function returning aiobotocore's coroutine.
        if name in client.meta.method_to_api_mapping or inspect.iscoroutinefunction(attr):
            return Bridged(self._self_ref, attr, name)
        return attr

    def get_paginator(self, operation_name: str) -> Any:
        """A paginator whose ``paginate()`` pages are fetched on the loop."""
        return _BridgedPaginator(self.__wrapped__.get_paginator(operation_name), self._self_ref)

    def __repr__(self) -> str:
        return f"<dualwrite loop face of {self.__wrapped__!r}>"


class _BridgedPaginator:
    __slots__ = ("_paginator", "_ref")

    def __init__(self, paginator: Any, ref: LoopRef) -> None:
        self._paginator = paginator
        self._ref = ref

    def paginate(self, **kwargs: Any) -> Iterator[Any]:
        pages = self._paginator.paginate(**kwargs).__aiter__()
        while True:
            try:
                yield self._ref.run(pages.__anext__, (), {})
            except StopAsyncIteration:
                return


class BridgedStream(_Proxy):
    """An aiobotocore streaming body that a worker thread reads synchronously.

    On the loop's own thread (a routed read handed back to the caller) it is the async body
    it wraps: ``await body.read()``, ``async for chunk in body``.
    """

    def __init__(self, body: Any, ref: LoopRef) -> None:
        super().__init__(body)
        self._self_ref = ref

    def _self_on_loop(self) -> bool:
        loop = self._self_ref.loop
        return loop is not None and _running_loop() is loop

    def read(self, amt: int | None = None) -> Any:
        if self._self_on_loop():
            return self.__wrapped__.read(amt)
        return self._self_ref.run(self.__wrapped__.read, (amt,), {})

    def iter_chunks(self, chunk_size: int = 1024) -> Any:
        if self._self_on_loop():
            return self.__wrapped__.iter_chunks(chunk_size)
        return self._self_chunks(chunk_size)

    def _self_chunks(self, chunk_size: int) -> Iterator[bytes]:
        while True:
            chunk = self.read(chunk_size)
            if not chunk:
                return
            yield chunk

    def __iter__(self) -> Iterator[bytes]:
        return self._self_chunks(1024)

    def __aiter__(self) -> Any:
        return self.__wrapped__.__aiter__()

    async def __aenter__(self) -> Any:
        return await self.__wrapped__.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self.__wrapped__.__aexit__(*exc_info)


class AsyncDriver:
    """The worker threads one writer runs async clients' mirrored writes on.

    Threads start on demand, up to :data:`ASYNC_WORKERS`; a call beyond that waits for one
    (the calling task awaits; the loop is never blocked).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.refs: list[LoopRef] = []

    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        ASYNC_WORKERS, thread_name_prefix="dualwrite-async"
                    )
        return self._executor

    async def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Await ``func(*args, **kwargs)`` run on a worker thread in the caller's context."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, func, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor(), call)

    def on_own_loop(self) -> bool:
        """Whether this thread runs the event loop of a wrapped async client."""
        loop = _running_loop()
        return loop is not None and any(ref.loop is loop for ref in self.refs)


class AsyncClientProxy(_BaseProxy):
    """A wrapped aiobotocore client: the awaitable counterpart of a sync wrapped client.

    Args:
        client: the primary aiobotocore client.
        sync: the sync wrapped client over the pair's :class:`LoopClient` faces.
        driver: the writer's :class:`AsyncDriver`.
        ref: the pair's :class:`LoopRef`, set to the calling loop at each call.
    """

    def __init__(self, client: Any, sync: Any, driver: AsyncDriver, ref: LoopRef) -> None:
        super().__init__(client)
        self._self_sync = sync
        self._self_driver = driver
        self._self_ref = ref

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_self_"):
            raise AttributeError(name)
        attr = getattr(self.__wrapped__, name)
        if name.startswith("_") or name in _PASSTHROUGH or not callable(attr):
            return attr
        if name in _TRANSFERS:
            # aioboto3's implementation, called with this proxy as its client.
            return functools.partial(getattr(type(self.__wrapped__), name), self)
        mirrored = getattr(self._self_sync, name, None)
        if (
            mirrored is None
            or isinstance(mirrored, Bridged)
            or getattr(mirrored, "__self__", None) is self.__wrapped__
        ):
            return attr  # the primary's own: a read, or anything not mirrored
        return functools.partial(self._self_call, name)

    async def _self_call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """A mirrored write: the sync proxy's method, run on a worker thread."""
        ref = self._self_ref
        ref.loop = asyncio.get_running_loop()
        if ref.dead is ref.loop:  # a call from it: the loop runs on (not asyncio.run's end)
            ref.dead = None
        client = self.__wrapped__
        api_method = name in client.meta.method_to_api_mapping
        if args and api_method:  # botocore's own "only accepts keyword arguments", from the loop
            return await getattr(client, name)(*args, **kwargs)
        method = getattr(self._self_sync, name)
        if args:  # generate_presigned_url/post: positional arguments, and no Body
            return await self._self_driver.run(functools.partial(method, *args), **kwargs)
        asked = self._self_ask(name, kwargs)
        if asked is not None:
            write, answer = asked
            if not answer.on and self._self_sync._self_mirror.writer.decider.quiet(answer):
                # A clean "off", asked in the calling task: the primary's own call, as if no
                # wrapper were there (no thread, and the body goes to aiobotocore as given).
                return await getattr(client, name)(**kwargs)
            method = functools.partial(_answered, write, answer, method)
        # The request as it is now (semantics 10): while this task waits for the worker thread,
        # other tasks of the loop run, and may change the dicts and buffers it was given.
        kwargs = snapshot(kwargs)
        body = kwargs.get("Body")
        if body is None or not _is_async_body(body):
            return await self._self_driver.run(method, **kwargs)
        # The call is done with it when it returns: a queued shadow write has its own copy.
        with await spool_async_body(body) as spool:
            kwargs["Body"] = spool
            return await self._self_driver.run(method, **kwargs)

    def _self_ask(self, name: str, kwargs: dict[str, Any]) -> tuple[Any, Asked] | None:
        """Ask the flag here, on the loop, for a call whose handler would decide one write
        known without I/O (``Service.target_write``); ``None`` for every other call."""
        mirror = self._self_sync._self_mirror
        runtime = mirror.writer
        if runtime.stage is not None or runtime.closed:
            return None
        api = self.__wrapped__.meta.method_to_api_mapping.get(name)
        write = mirror.plugin.target_write(mirror, api, kwargs) if api else None
        if write is None:
            return None
        return write, runtime.decider.ask(write)

    def get_paginator(self, operation_name: str) -> Any:
        """The client's paginator; with stages, each ``paginate()`` reads the tenant's owner
        (decided once, in the calling task), as a sync wrapped client's does."""
        paginator = self.__wrapped__.get_paginator(operation_name)
        if self._self_sync._self_mirror.writer.stage is None:
            return paginator
        return _StagedPaginator(paginator, self, operation_name)

    async def __aenter__(self) -> AsyncClientProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await self.__wrapped__.__aexit__(*exc_info)

    def __repr__(self) -> str:
        return f"<dualwrite async proxy of {self.__wrapped__!r}>"


class _StagedPaginator(_Proxy):
    """An aiobotocore paginator whose ``paginate()`` decides the stage once, for all its pages."""

    def __init__(self, paginator: Any, proxy: AsyncClientProxy, operation_name: str) -> None:
        super().__init__(paginator)
        self._self_proxy = proxy
        self._self_operation = operation_name

    def paginate(self, **kwargs: Any) -> Any:
        proxy = self._self_proxy
        forward = proxy._self_sync._self_mirror
        api = proxy.__wrapped__.meta.method_to_api_mapping.get(self._self_operation, "")
        chosen = _routing.route(forward, api, kwargs)
        client = chosen.mirror.primary
        client = getattr(client, "__wrapped__", client)  # the aiobotocore client of a LoopClient
        if client is proxy.__wrapped__:
            return self.__wrapped__.paginate(**dict(chosen.params))
        pages = client.get_paginator(self._self_operation).paginate(**dict(chosen.params))
        return _RenamedPages(pages, forward, chosen, api)


class _RenamedPages(_Proxy):
    """The new account's async page iterator, whose pages name what the caller named and whose
    errors are the caller's client's classes."""

    def __init__(self, pages: Any, forward: Any, chosen: Any, api: str) -> None:
        super().__init__(pages)
        self._self_route = (forward, chosen, api)

    def __aiter__(self) -> Any:
        return self._self_pages()

    async def _self_pages(self) -> Any:
        forward, chosen, api = self._self_route
        with _routing.callers_errors(forward, reverse=chosen.mirror.reversed):
            async for page in self.__wrapped__:
                yield _routing.as_called(forward, chosen, api, page)


def _answered(write: Any, asked: Asked, method: Callable[..., Any], **kwargs: Any) -> Any:
    """``method(**kwargs)`` on a worker thread, whose handler takes ``asked`` as the flag's
    answer for ``write`` instead of asking again."""
    with pre_decided(write, asked):
        return method(**kwargs)


def _is_async_body(body: Any) -> bool:
    if _async_read(body):
        return True
    return hasattr(body, "__aiter__") and not hasattr(body, "read")


async def spool_async_body(body: Any) -> Any:
    """Read an async body (``aiofiles`` file, async iterable of bytes) to a spool on the loop.

    The spool holds up to ``SPOOL_MEMORY`` bytes in memory and the rest on disk; both accounts
    are sent it, so they get the same bytes. The caller's stream is left at its end, as
    aiobotocore leaves it.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
    try:
        if _async_read(body):
            while True:
                chunk = await body.read(256 * 1024)
                if not chunk:
                    break
                spool.write(chunk.encode() if isinstance(chunk, str) else chunk)
        else:
            async for chunk in body:
                spool.write(chunk.encode() if isinstance(chunk, str) else chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool
