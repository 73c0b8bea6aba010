"""The wrapper objects' common part: a client proxy, and resources rebound to it.

A wrapped client is a ``wrapt`` proxy over the primary client: it passes ``isinstance`` checks for
the client's class, and every attribute that is not a mirrored write (reads, paginators, waiters,
``meta``, ``exceptions``, presigned URLs) is the primary's own. A mirrored write is a method of
the proxy class, generated from the service's table of handlers (:func:`install`), which hands
the call to the :class:`~dualwrite._core.mirror.Mirror`. Each service package subclasses
:class:`ClientProxy` (``dualwrite._s3.proxy``, ``dualwrite._dynamodb.proxy``).

Resources (``boto3.resource(...)``, ``Bucket``, ``Object``, ``Table``) are shallow copies of the
caller's object whose ``meta.client`` is the proxy, so the caller's own objects are never changed
and sub-resources built from the copy use the proxy too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import wrapt
from botocore import xform_name
from botocore.client import BaseClient

from dualwrite._core import routing as _routing
from dualwrite._core.mirror import Mirror

T = TypeVar("T")

# wrapt 2 splits ``BaseObjectProxy`` (no ``__iter__``) out of ``ObjectProxy`` and makes both
# generic; wrapt 1.x, which aioboto3 still pins, has the one non-generic ``ObjectProxy``.
if TYPE_CHECKING:
    _BaseProxy = wrapt.BaseObjectProxy[Any]
    _Proxy = wrapt.ObjectProxy[Any]
else:
    _BaseProxy = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)
    _Proxy = wrapt.ObjectProxy


class ClientProxy(_BaseProxy):
    """A primary client whose mirrored writes go through a :class:`Mirror`.

    Subclasses get one method per mirrored operation from :func:`install`.
    """

    _handlers: dict[str, Any] = {}  # noqa: RUF012 - replaced per subclass by install
    _unclassified: Callable[[str, str], Any] = staticmethod(lambda api, method: None)
    _routed_reads: frozenset[str] = frozenset()

    def __init__(self, client: Any, mirror: Mirror, pin: Any = None) -> None:
        super().__init__(client)
        self._self_mirror = mirror
        self._self_pin = pin

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_self_"):
            raise AttributeError(name)
        attr = getattr(self.__wrapped__, name)
        # An operation this release does not know (a newer botocore): never let it write
        # silently; the service module decides whether to pass it through or report it.
        meta = self.__wrapped__.meta
        api = meta.method_to_api_mapping.get(name)
        if api is None:
            return attr
        staged = self._self_mirror.writer.stage is not None and self._self_pin is None
        if staged and api in type(self)._routed_reads:
            return _bind_read(self, name, api)
        http_method = meta.service_model.operation_model(api).http.get("method", "POST")
        handler = type(self)._unclassified(api, http_method)
        if handler is None:
            return attr
        return _bind(self, name, handler)

    def get_paginator(self, operation_name: str) -> Any:
        """The client's paginator; with stages, each ``paginate()`` reads the tenant's owner."""
        paginator = self.__wrapped__.get_paginator(operation_name)
        if self._self_mirror.writer.stage is None or self._self_pin is not None:
            return paginator
        return _StagedPaginator(paginator, self, operation_name)

    def get_waiter(self, waiter_name: str) -> Any:
        """The client's waiter; with stages, its calls go through this proxy's routed reads."""
        if self._self_mirror.writer.stage is None or self._self_pin is not None:
            return self.__wrapped__.get_waiter(waiter_name)
        return BaseClient.get_waiter(self, waiter_name)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<dualwrite proxy of {self.__wrapped__!r}>"


class _StagedPaginator(_Proxy):
    """A paginator whose ``paginate()`` decides the stage once, for all its pages."""

    def __init__(self, paginator: Any, proxy: ClientProxy, operation_name: str) -> None:
        super().__init__(paginator)
        self._self_proxy = proxy
        self._self_operation = operation_name

    def paginate(self, **kwargs: Any) -> Any:
        proxy = self._self_proxy
        forward = proxy._self_mirror
        api = proxy.__wrapped__.meta.method_to_api_mapping.get(self._self_operation, "")
        chosen = _routing.route(forward, api, kwargs)
        client = chosen.mirror.primary
        if client is proxy.__wrapped__:
            return self.__wrapped__.paginate(**dict(chosen.params))
        pages = client.get_paginator(self._self_operation).paginate(**dict(chosen.params))
        return _RenamedPages(pages, forward, chosen, api)


class _RenamedPages(_Proxy):
    """A page iterator of the new account whose pages, iterated, name what the caller named
    and raise the caller's exception classes (``build_full_result()`` and ``search()`` return
    the new account's pages as they are)."""

    def __init__(self, pages: Any, forward: Mirror, chosen: Any, api: str) -> None:
        super().__init__(pages)
        self._self_route = (forward, chosen, api)

    def __iter__(self) -> Any:
        forward, chosen, api = self._self_route
        with _routing.callers_errors(forward, reverse=chosen.mirror.reversed):
            for page in self.__wrapped__:
                yield _routing.as_called(forward, chosen, api, page)


def _bind(proxy: ClientProxy, py_name: str, handler: Any) -> Callable[..., Any]:
    def method(*args: Any, **kwargs: Any) -> Any:
        real = getattr(proxy.__wrapped__, py_name)
        if args:
            return real(*args, **kwargs)  # botocore's own "only accepts keyword arguments"
        mirror = proxy._self_mirror
        if mirror.writer.stage is not None and proxy._self_pin is None:
            api = proxy.__wrapped__.meta.method_to_api_mapping[py_name]
            return _routing.call(mirror, api, py_name, handler, kwargs)
        return handler(mirror, real, kwargs, proxy._self_pin)

    method.__name__ = py_name
    return method


def _bind_read(proxy: ClientProxy, py_name: str, api: str) -> Callable[..., Any]:
    def method(*args: Any, **kwargs: Any) -> Any:
        if args:
            return getattr(proxy.__wrapped__, py_name)(*args, **kwargs)
        return _routing.read(proxy._self_mirror, api, py_name, kwargs)

    method.__name__ = py_name
    return method


def _operation_method(py_name: str, api: str, handler: Any) -> Callable[..., Any]:
    def method(self: ClientProxy, *args: Any, **kwargs: Any) -> Any:
        if args:  # botocore's own "only accepts keyword arguments"
            return getattr(self.__wrapped__, py_name)(*args, **kwargs)
        mirror = self._self_mirror
        if mirror.writer.stage is not None and self._self_pin is None:
            return _routing.call(mirror, api, py_name, handler, kwargs)  # gets its own method
        return handler(mirror, getattr(self.__wrapped__, py_name), kwargs, self._self_pin)

    method.__name__ = py_name
    method.__qualname__ = f"ClientProxy.{py_name}"
    method.__doc__ = f"Mirrored ``{py_name}``: the primary first, then the shadow."
    return method


def install(cls: type[ClientProxy], handlers: Mapping[str, Any]) -> None:
    """Give ``cls`` one method per operation of ``handlers`` (API name -> handler)."""
    cls._handlers = dict(handlers)
    for api_name, handler in handlers.items():
        py_name = xform_name(api_name)
        setattr(cls, py_name, _operation_method(py_name, api_name, handler))


def client_of(obj: Any) -> Any:
    """The low-level client of a client or a boto3 resource."""
    return obj if isinstance(obj, BaseClient) else obj.meta.client


def rebind(resource: T, client: Any) -> T:
    """Return a shallow copy of a boto3 resource whose calls go through ``client``."""
    bound = copy.copy(resource)
    bound.meta = copy.copy(resource.meta)  # type: ignore[attr-defined]
    bound.meta.client = client  # type: ignore[attr-defined]
    return bound
