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

from dualwrite import _s3
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
        http_method = meta.service_model.operation_model(api).http.get("method", "POST")
        handler = type(self)._unclassified(api, http_method)
        if handler is None:
            return attr
        return _bind(self, name, handler)

    def __repr__(self) -> str:
        return f"<dualwrite proxy of {self.__wrapped__!r}>"


def _bind(proxy: ClientProxy, py_name: str, handler: Any) -> Callable[..., Any]:
    def method(*args: Any, **kwargs: Any) -> Any:
        real = getattr(proxy.__wrapped__, py_name)
        if args:
            return real(*args, **kwargs)  # botocore's own "only accepts keyword arguments"
        return handler(proxy._self_mirror, real, kwargs, proxy._self_pin)

    method.__name__ = py_name
    return method


def _operation_method(py_name: str, handler: Any) -> Callable[..., Any]:
    def method(self: ClientProxy, *args: Any, **kwargs: Any) -> Any:
        real = getattr(self.__wrapped__, py_name)
        if args:
            return real(*args, **kwargs)  # botocore's own "only accepts keyword arguments"
        return handler(self._self_mirror, real, kwargs, self._self_pin)

    method.__name__ = py_name
    method.__qualname__ = f"ClientProxy.{py_name}"
    method.__doc__ = f"Mirrored ``{py_name}``: the primary first, then the shadow."
    return method


def _install(cls: type[ClientProxy], handlers: Mapping[str, Any]) -> None:
    cls._handlers = dict(handlers)
    for api_name, handler in handlers.items():
        py_name = xform_name(api_name)
        setattr(cls, py_name, _operation_method(py_name, handler))


class S3ClientProxy(ClientProxy):
    """A wrapped S3 client, including boto3's managed transfers."""

    _unclassified = staticmethod(_s3.unclassified)

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
            Bucket,
            Key,
            Config,
            lambda client, config: inject.upload_file(
                client, Filename, Bucket, Key, ExtraArgs=ExtraArgs, Callback=Callback, Config=config
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
            Bucket,
            Key,
            Config,
            lambda client, config: inject.upload_fileobj(
                client, Fileobj, Bucket, Key, ExtraArgs=ExtraArgs, Callback=Callback, Config=config
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
            Bucket,
            Key,
            Config,
            lambda client, config: inject.copy(
                client,
                CopySource,
                Bucket,
                Key,
                ExtraArgs=ExtraArgs,
                Callback=Callback,
                SourceClient=SourceClient,
                Config=config,
            ),
        )

    def _transfer(
        self,
        operation: str,
        bucket: Any,
        key: Any,
        config: TransferConfig | None,
        run: Callable[[Any, TransferConfig | None], None],
    ) -> None:
        """Decide once, in the caller's thread, then run the whole managed transfer.

        The transfer's parts run on s3transfer's worker threads, where the caller's tenant
        context is not set; they use a proxy pinned to this decision. With the flag off the real
        client does the transfer, exactly as without the wrapper. With
        ``on_shadow_error="raise"``, a part's shadow error is raised once the transfer is done
        (raised inside s3transfer, it would abort the primary's upload).
        """
        if self._self_pin is not None:
            run(self, config)
            return
        mirror: Mirror = self._self_mirror
        if not isinstance(bucket, str):
            run(self.__wrapped__, config)
            return
        write, on = mirror.decide(
            mirror.describe(operation, bucket, key if isinstance(key, str) else None)
        )
        if not on:
            run(self.__wrapped__, config)
            return
        # The CRT transfer manager never calls put_object/upload_part on the client, so the
        # shadow would never see the parts: pin the classic manager for mirrored transfers.
        pinned_config = copy.copy(config) if config is not None else TransferConfig()
        pinned_config.preferred_transfer_client = "classic"  # type: ignore[assignment] # stub says int
        pin = _s3.Pin(tenant=write.tenant, on=True)
        run(S3ClientProxy(self.__wrapped__, mirror, pin), pinned_config)
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
    if names is None:
        logger.warning(
            "dualwrite: S3 wrapped without names=: S3 bucket names are global, so no write can "
            "reach the shadow; every mirrored write will be reported as unsupported (unmapped)"
        )
    proxy = S3ClientProxy(primary_client, mirror)
    if p_level == "client":
        return proxy  # type: ignore[return-value]
    return rebind(primary, proxy)
