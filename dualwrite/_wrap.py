"""``DualWriter.wrap``: check what is wrapped, then hand it to its service's package."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import types
from collections.abc import Mapping
from typing import Any, TypeVar

from botocore.client import BaseClient

from dualwrite import _services as services
from dualwrite.exceptions import ConfigurationError

T = TypeVar("T")
_ACCOUNT_RE = re.compile(r"^\d{12}$")


def _describe(obj: Any) -> tuple[str, str] | None:
    """Return ``(level, service)`` of a client or resource, ``None`` for anything else.

    ``level`` is ``"client"``, ``"resource"`` (a service resource), or the resource type name
    (``"Bucket"``, ``"Object"``, ``"Table"``).
    """
    if isinstance(obj, BaseClient):
        return "client", obj.meta.service_model.service_name
    # boto3 is loaded by the first wrap() of a resource, not by ``import dualwrite``.
    from boto3.resources.base import ServiceResource  # noqa: PLC0415

    if isinstance(obj, ServiceResource):
        name = obj.meta.resource_model.name
        if not obj.meta.identifiers:
            return "resource", obj.meta.service_name
        return name, obj.meta.service_name
    return None


_ASYNC_PACKAGES = ("aiobotocore", "aioboto3")


def _is_async(obj: Any) -> bool:
    """Whether ``obj`` is an aiobotocore client or aioboto3 resource, without importing either.

    Known by the package its class (or a base class) comes from, or by an API call method that
    is a coroutine function (an aiobotocore client's ``_make_api_call``).
    """
    for cls in type(obj).__mro__:
        if str(getattr(cls, "__module__", "")).split(".", 1)[0] in _ASYNC_PACKAGES:
            return True
    target = getattr(getattr(obj, "meta", None), "client", None) or obj
    call = getattr(type(target), "_make_api_call", None)
    return inspect.iscoroutinefunction(call)


def _check_names(names: Any) -> None:
    if names is None or callable(names):
        return
    if not isinstance(names, Mapping):
        msg = (
            "names must be a dict {primary name: shadow name}, a callable returning the shadow "
            f"name or None, or None; got {type(names).__name__}"
        )
        raise ConfigurationError(msg)
    for primary, shadow in names.items():
        if not isinstance(primary, str) or not isinstance(shadow, str) or not shadow:
            msg = f"names must map str to non-empty str; got {primary!r}: {shadow!r}"
            raise ConfigurationError(msg)


def wrap_any(
    writer: Any,
    primary: T,
    *,
    shadow: Any,
    names: Any,
    kms_keys: Any,
    shadow_account: str | None,
) -> T:
    """Implement :meth:`DualWriter.wrap` (see there)."""
    asynchronous = _is_async(primary), _is_async(shadow)
    if asynchronous[0] != asynchronous[1]:
        async_side, sync_side = ("primary", "shadow") if asynchronous[0] else ("shadow", "primary")
        msg = (
            f"the {async_side} is an asynchronous (aiobotocore/aioboto3) client but the "
            f"{sync_side} is a boto3 one: wrap an async primary with an async shadow, and a "
            "boto3 one with a boto3 one"
        )
        raise ConfigurationError(msg)
    p_kind = _describe(primary)
    if p_kind is None:
        msg = (
            "wrap() takes a boto3 (or aiobotocore) S3 or DynamoDB client, a boto3 (or aioboto3) "
            "S3/DynamoDB resource, or an S3 "
            f"Bucket/Object or DynamoDB Table; got {type(primary).__name__}"
        )
        raise ConfigurationError(msg)
    s_kind = _describe(shadow)
    if s_kind is None:
        msg = (
            "shadow must be a boto3 client or resource of the same service as the primary; "
            f"got {type(shadow).__name__}"
        )
        raise ConfigurationError(msg)
    p_level, service = p_kind
    s_level, s_service = s_kind
    if service not in services.NAMES:
        msg = f"dualwrite mirrors {' and '.join(services.NAMES)}; got a {service!r} {p_level}"
        raise ConfigurationError(msg)
    if s_service != service:
        msg = f"primary is {service!r} but shadow is {s_service!r}; both must be the same service"
        raise ConfigurationError(msg)
    _check_names(names)
    if kms_keys is not None and not (callable(kms_keys) or isinstance(kms_keys, Mapping)):
        msg = f"kms_keys must be a dict, a callable or None; got {type(kms_keys).__name__}"
        raise ConfigurationError(msg)
    if shadow_account is not None and not (
        isinstance(shadow_account, str) and _ACCOUNT_RE.match(shadow_account)
    ):
        msg = f"shadow_account must be a 12-digit AWS account id or None; got {shadow_account!r}"
        raise ConfigurationError(msg)
    # A Bucket/Table on each side names the pair by itself.
    if names is None and p_level == s_level and p_level in ("Bucket", "Table"):
        names = {primary.name: shadow.name}  # type: ignore[attr-defined]
    options = {
        "shadow": shadow,
        "names": names,
        "levels": (p_level, s_level),
        "kms_keys": kms_keys,
        "shadow_account": shadow_account,
    }
    if asynchronous[0]:
        return _wrap_async(writer, primary, service=service, **options)
    wrapped: T = services.get(service).wrap(writer, primary, **options)
    return wrapped


def _wrap_async(
    writer: Any,
    primary: T,
    *,
    shadow: Any,
    service: str,
    levels: tuple[str, str],
    **options: Any,
) -> T:
    """Wrap an aiobotocore client or aioboto3 resource (see :mod:`dualwrite._core.aio`).

    The service wraps the pair's synchronous faces (:class:`~dualwrite._core.aio.LoopClient`)
    exactly as it wraps boto3 clients; the async proxy runs that sync proxy's mirrored methods
    on the writer's worker threads.
    """
    from dualwrite._core import aio  # noqa: PLC0415 - loaded by the first async wrap()
    from dualwrite._core.proxy import client_of, rebind  # noqa: PLC0415

    p_client, s_client = client_of(primary), client_of(shadow)
    if p_client is s_client:
        msg = f"primary and shadow are the same {service} client; pass the shadow account's client"
        raise ConfigurationError(msg)
    ref = aio.LoopRef()
    with contextlib.suppress(RuntimeError):  # wrapped outside a loop: the first call sets it
        ref.loop = asyncio.get_running_loop()
    runtime = writer
    if runtime.aio is None:
        runtime.aio = aio.AsyncDriver()
    runtime.aio.refs.append(ref)

    def face(level: str, client: Any) -> Any:
        loop_client = aio.LoopClient(client, ref)
        if level == "client":
            return loop_client
        # What a service's wrap() reads of a resource: its client.
        return types.SimpleNamespace(meta=types.SimpleNamespace(client=loop_client))

    wrapped = services.get(service).wrap(
        writer,
        face(levels[0], p_client),
        shadow=face(levels[1], s_client),
        levels=levels,
        **options,
    )
    sync_proxy = wrapped if levels[0] == "client" else wrapped.meta.client
    proxy = aio.AsyncClientProxy(p_client, sync_proxy, runtime.aio, ref)
    if levels[0] == "client":
        return proxy  # type: ignore[return-value]
    return rebind(primary, proxy)
