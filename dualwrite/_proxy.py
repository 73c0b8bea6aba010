"""The wrapper objects: a client proxy per service, and resources rebound to it.

A wrapped client is a ``wrapt`` proxy over the primary client: it passes ``isinstance`` checks for
the client's class, and every attribute that is not a mirrored write (reads, paginators, waiters,
``meta``, ``exceptions``, presigned URLs) is the primary's own. A mirrored write is a method of
the proxy class, generated from the service's table of handlers (``_s3.HANDLERS``,
``_dynamodb.HANDLERS``), which hands the call to the :class:`~dualwrite._mirror.Mirror`.

Resources (``boto3.resource(...)``, ``Bucket``, ``Object``, ``Table``) are shallow copies of the
caller's object whose ``meta.client`` is the proxy, so the caller's own objects are never changed
and sub-resources built from the copy use the proxy too.
"""

from __future__ import annotations

import copy
import inspect
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import wrapt
from boto3.resources.base import ServiceResource
from boto3.s3 import inject
from boto3.s3.transfer import TransferConfig
from botocore import xform_name
from botocore.client import BaseClient

from dualwrite import _presign, _routing, _s3
from dualwrite._mirror import Mirror
from dualwrite.exceptions import ConfigurationError

T = TypeVar("T")
logger = logging.getLogger("dualwrite")

SERVICES = ("s3", "dynamodb")
_ACCOUNT_RE = re.compile(r"^\d{12}$")


class ClientProxy(wrapt.BaseObjectProxy[Any]):
    """A primary client whose mirrored writes go through a :class:`Mirror`.

    Subclasses get one method per mirrored operation from :func:`_install`.
    """

    _handlers: dict[str, Any] = {}  # noqa: RUF012 - replaced per subclass by _install
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


class _StagedPaginator(wrapt.ObjectProxy[Any]):
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


class _RenamedPages(wrapt.ObjectProxy[Any]):
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
        real = getattr(self.__wrapped__, py_name)
        if args:
            return real(*args, **kwargs)  # botocore's own "only accepts keyword arguments"
        mirror = self._self_mirror
        if mirror.writer.stage is not None and self._self_pin is None:
            return _routing.call(mirror, api, py_name, handler, kwargs)
        return handler(mirror, real, kwargs, self._self_pin)

    method.__name__ = py_name
    method.__qualname__ = f"ClientProxy.{py_name}"
    method.__doc__ = f"Mirrored ``{py_name}``: the primary first, then the shadow."
    return method


def _install(cls: type[ClientProxy], handlers: Mapping[str, Any]) -> None:
    cls._handlers = dict(handlers)
    for api_name, handler in handlers.items():
        py_name = xform_name(api_name)
        setattr(cls, py_name, _operation_method(py_name, api_name, handler))


class S3ClientProxy(ClientProxy):
    """A wrapped S3 client, including boto3's managed transfers."""

    _unclassified = staticmethod(_s3.unclassified)

    _routed_reads = _s3.ROUTED_READS

    def upload_file(
        self,
        Filename: Any,  # noqa: N803 - boto3's parameter names
        Bucket: str,  # noqa: N803
        Key: str,  # noqa: N803
        ExtraArgs: dict[str, Any] | None = None,  # noqa: N803
        Callback: Any = None,  # noqa: N803
        Config: TransferConfig | None = None,  # noqa: N803
    ) -> None:
        """Upload a file (boto3's managed transfer), mirrored part by part to the shadow."""
        self._transfer(
            "PutObject",
            {"Bucket": Bucket, "Key": Key, "ExtraArgs": ExtraArgs},
            Config,
            lambda client, config, p: inject.upload_file(
                client,
                Filename,
                p["Bucket"],
                Key,
                ExtraArgs=p["ExtraArgs"],
                Callback=Callback,
                Config=config,
            ),
        )

    def upload_fileobj(
        self,
        Fileobj: Any,  # noqa: N803
        Bucket: str,  # noqa: N803
        Key: str,  # noqa: N803
        ExtraArgs: dict[str, Any] | None = None,  # noqa: N803
        Callback: Any = None,  # noqa: N803
        Config: TransferConfig | None = None,  # noqa: N803
    ) -> None:
        """Upload a file-like object (managed transfer), mirrored part by part to the shadow."""
        self._transfer(
            "PutObject",
            {"Bucket": Bucket, "Key": Key, "ExtraArgs": ExtraArgs},
            Config,
            lambda client, config, p: inject.upload_fileobj(
                client,
                Fileobj,
                p["Bucket"],
                Key,
                ExtraArgs=p["ExtraArgs"],
                Callback=Callback,
                Config=config,
            ),
        )

    def copy(
        self,
        CopySource: Any,  # noqa: N803
        Bucket: str,  # noqa: N803
        Key: str,  # noqa: N803
        ExtraArgs: dict[str, Any] | None = None,  # noqa: N803
        Callback: Any = None,  # noqa: N803
        SourceClient: Any = None,  # noqa: N803
        Config: TransferConfig | None = None,  # noqa: N803
    ) -> None:
        """Copy an object (managed transfer), mirrored as a copy inside the shadow account."""
        self._transfer(
            "CopyObject",
            {"Bucket": Bucket, "Key": Key, "CopySource": CopySource, "ExtraArgs": ExtraArgs},
            Config,
            lambda client, config, p: inject.copy(
                client,
                p["CopySource"],
                p["Bucket"],
                Key,
                ExtraArgs=p["ExtraArgs"],
                Callback=Callback,
                SourceClient=SourceClient,
                Config=config,
            ),
        )

    def download_file(
        self,
        Bucket: str,  # noqa: N803
        Key: str,  # noqa: N803
        Filename: Any,  # noqa: N803
        ExtraArgs: dict[str, Any] | None = None,  # noqa: N803
        Callback: Any = None,  # noqa: N803
        Config: TransferConfig | None = None,  # noqa: N803
    ) -> None:
        """Download an object (managed transfer); with stages, from the tenant's owner."""
        self._download("download_file", Bucket, Key, Filename, ExtraArgs, Callback, Config)

    def download_fileobj(
        self,
        Bucket: str,  # noqa: N803
        Key: str,  # noqa: N803
        Fileobj: Any,  # noqa: N803
        ExtraArgs: dict[str, Any] | None = None,  # noqa: N803
        Callback: Any = None,  # noqa: N803
        Config: TransferConfig | None = None,  # noqa: N803
    ) -> None:
        """Download into a file-like object; with stages, from the tenant's owner."""
        self._download("download_fileobj", Bucket, Key, Fileobj, ExtraArgs, Callback, Config)

    def _download(
        self,
        method: str,
        bucket: str,
        key: str,
        target: Any,
        extra: dict[str, Any] | None,
        callback: Any,
        config: TransferConfig | None,
    ) -> None:
        """Run the client's own ``download_file``/``download_fileobj`` on the tenant's owner."""
        # A VersionId pins the old account: the new one's versions are its own.
        params = {"Bucket": bucket, "Key": key}
        if extra and extra.get("VersionId") is not None:
            params["VersionId"] = extra["VersionId"]
        client, routed = self._reader("GetObject", params)
        with _routing.callers_errors(self._self_mirror, reverse=client is not self.__wrapped__):
            getattr(client, method)(
                routed["Bucket"], key, target, ExtraArgs=extra, Callback=callback, Config=config
            )

    def generate_presigned_url(
        self,
        ClientMethod: str,  # noqa: N803
        Params: dict[str, Any] | None = None,  # noqa: N803
        ExpiresIn: int = 3600,  # noqa: N803
        HttpMethod: str | None = None,  # noqa: N803
    ) -> str:
        """A presigned URL; with stages, signed for the account that owns the tenant now.

        A presigned write reaches only the account it was signed for: with the flag on, its key
        is journaled with the URL's expiry, for ``repair()`` (see ``dualwrite._presign``).
        """
        api = self.__wrapped__.meta.method_to_api_mapping.get(ClientMethod, "")
        client, params = self._reader(api, Params or {})
        url = client.generate_presigned_url(
            ClientMethod,
            Params=params if Params is not None else None,
            ExpiresIn=ExpiresIn,
            HttpMethod=HttpMethod,
        )
        if _presign.writes(self.__wrapped__, api):
            _presign.record(
                self._self_mirror,
                self._self_pin,
                operation=api,
                bucket=(Params or {}).get("Bucket"),
                key=(Params or {}).get("Key"),
                expires_in=ExpiresIn,
                reversed_=client is not self.__wrapped__,
            )
        return url  # type: ignore[no-any-return]

    def generate_presigned_post(
        self,
        Bucket: str,  # noqa: N803
        Key: str,  # noqa: N803
        Fields: dict[str, Any] | None = None,  # noqa: N803
        Conditions: list[Any] | None = None,  # noqa: N803
        ExpiresIn: int = 3600,  # noqa: N803
    ) -> dict[str, Any]:
        """A presigned POST; with stages, for the tenant's owner now.

        With the flag on, the key (or the prefix before ``${filename}``) is journaled with the
        expiry, for ``repair()`` (a POST is not mirrored; see ``dualwrite._presign``).
        """
        client, params = self._reader("PutObject", {"Bucket": Bucket, "Key": Key})
        post = client.generate_presigned_post(
            params["Bucket"], Key, Fields=Fields, Conditions=Conditions, ExpiresIn=ExpiresIn
        )
        _presign.record(
            self._self_mirror,
            self._self_pin,
            operation="PostObject",
            bucket=Bucket,
            key=Key,
            expires_in=ExpiresIn,
            reversed_=client is not self.__wrapped__,
        )
        return post  # type: ignore[no-any-return]

    def _reader(self, api: str, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The real client a call goes to (the tenant's owner, with stages) and its parameters."""
        if self._self_mirror.writer.stage is None or self._self_pin is not None:
            return self.__wrapped__, params
        return _routing.client_for(self._self_mirror, api, params)

    def _transfer(
        self,
        operation: str,
        params: dict[str, Any],
        config: TransferConfig | None,
        run: Callable[[Any, TransferConfig | None, dict[str, Any]], None],
    ) -> None:
        """Decide once, in the caller's thread, then run the whole managed transfer.

        The transfer's parts run on s3transfer's worker threads, where the caller's tenant
        context is not set; they use a proxy pinned to this decision. With the flag off the real
        client does the transfer, exactly as without the wrapper. With
        ``on_shadow_error="raise"``, a part's shadow error is raised once the transfer is done
        (raised inside s3transfer, it would abort the primary's upload). With stages, the
        transfer goes to the account that owns the tenant first (renamed as a call would be).
        """
        if self._self_pin is not None:
            run(self, config, params)
            return
        mirror: Mirror = self._self_mirror
        bucket, key = params["Bucket"], params["Key"]
        if not isinstance(bucket, str):
            run(self.__wrapped__, config, params)
            return
        decision = None
        if mirror.writer.stage is not None:
            extra = params.pop("ExtraArgs")
            chosen = _routing.route(mirror, operation, params)
            _routing.await_queued(mirror, chosen, writes=True, api=operation, params=params)
            mirror, params = chosen.mirror, dict(chosen.params)
            params.pop("ACL", None)  # reroute's, for a request: a transfer's ACL is in ExtraArgs
            if mirror.reversed:
                extra = dict(extra or {})
                _s3.force_owner_acl(extra)
            params["ExtraArgs"] = extra
            decision = (chosen.decisions or {}).get(params["Bucket"])
            write = mirror.describe(operation, params["Bucket"], key)
            on = decision is not None and decision.mirrored
            tenant = decision.tenant if decision is not None else write.tenant
        else:
            write, on = mirror.decide(
                mirror.describe(operation, bucket, key if isinstance(key, str) else None)
            )
            tenant = write.tenant
        if not on:
            run(mirror.primary, config, params)
            return
        # The CRT transfer manager never calls put_object/upload_part on the client, so the
        # shadow would never see the parts: pin the classic manager for mirrored transfers.
        pinned_config = copy.copy(config) if config is not None else TransferConfig()
        pinned_config.preferred_transfer_client = "classic"  # type: ignore[assignment] # stub says int
        pin = _s3.Pin(tenant=tenant, on=True, stage=decision.stage if decision else None)
        run(S3ClientProxy(mirror.primary, mirror, pin), pinned_config, params)
        if pin.errors:
            raise pin.errors[0]


_install(S3ClientProxy, _s3.HANDLERS)


# -- wrap --------------------------------------------------------------------------------------


def _describe(obj: Any) -> tuple[str, str] | None:
    """Return ``(level, service)`` of a client or resource, ``None`` for anything else.

    ``level`` is ``"client"``, ``"resource"`` (a service resource), or the resource type name
    (``"Bucket"``, ``"Object"``, ``"Table"``).
    """
    if isinstance(obj, BaseClient):
        return "client", obj.meta.service_model.service_name
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


def _client_of(obj: Any) -> Any:
    return obj if isinstance(obj, BaseClient) else obj.meta.client


def rebind(resource: T, client: Any) -> T:
    """Return a shallow copy of a boto3 resource whose calls go through ``client``."""
    bound = copy.copy(resource)
    bound.meta = copy.copy(resource.meta)  # type: ignore[attr-defined]
    bound.meta.client = client  # type: ignore[attr-defined]
    return bound


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
    for side, obj in (("primary", primary), ("shadow", shadow)):
        if _is_async(obj):
            msg = (
                f"the {side} is an asynchronous client ({type(obj).__module__}."
                f"{type(obj).__name__}): aiobotocore/aioboto3 support is not there yet; wrap a "
                "boto3 client (or resource) instead"
            )
            raise ConfigurationError(msg)
    p_kind = _describe(primary)
    if p_kind is None:
        msg = (
            "wrap() takes a boto3 S3 or DynamoDB client, a boto3 S3/DynamoDB resource, or an S3 "
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
    if service not in SERVICES:
        msg = f"dualwrite mirrors {' and '.join(SERVICES)}; got a {service!r} {p_level}"
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

    if service == "dynamodb":
        from dualwrite import _dynamodb  # noqa: PLC0415 - loaded only when DynamoDB is wrapped

        return _dynamodb.wrap(  # type: ignore[no-any-return]
            writer, primary, shadow=shadow, names=names, levels=(p_level, s_level)
        )

    primary_client = _client_of(primary)
    mirror = Mirror(
        writer,
        service="s3",
        primary=primary_client,
        shadow=_client_of(shadow),
        names=names,
        identity_names=False,
    )
    mirror.state.update(
        _s3.new_state(_s3.Options(kms_keys=kms_keys, shadow_account=shadow_account))
    )
    mirror.build_reverse = _s3.build_reverse
    if names is None:
        logger.warning(
            "dualwrite: S3 wrapped without names=: S3 bucket names are global, so no write can "
            "reach the shadow; every mirrored write will be reported as unsupported (unmapped)"
        )
    proxy = S3ClientProxy(primary_client, mirror)
    if p_level == "client":
        return proxy  # type: ignore[return-value]
    return rebind(primary, proxy)
