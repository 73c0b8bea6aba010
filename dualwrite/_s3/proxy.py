"""The wrapped S3 client: mirrored operations, boto3's managed transfers, presigned URLs."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from boto3.s3 import inject
from boto3.s3.transfer import TransferConfig

from dualwrite._core import routing as _routing
from dualwrite._core.mirror import Mirror
from dualwrite._core.proxy import ClientProxy, client_of, install, rebind
from dualwrite._s3 import presign as _presign
from dualwrite._s3.operations import HANDLERS, ROUTED_READS, unclassified
from dualwrite._s3.requests import Options, Pin, force_owner_acl
from dualwrite._s3.state import new_state

if TYPE_CHECKING:
    from dualwrite._core.service import Service

T = TypeVar("T")
logger = logging.getLogger("dualwrite")


class S3ClientProxy(ClientProxy):
    """A wrapped S3 client, including boto3's managed transfers."""

    _unclassified = staticmethod(unclassified)

    _routed_reads = ROUTED_READS

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
        is journaled with the URL's expiry, for ``repair()`` (see ``dualwrite._s3.presign``).
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
        expiry, for ``repair()`` (a POST is not mirrored; see ``dualwrite._s3.presign``).
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
                force_owner_acl(extra)
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
        pin = Pin(tenant=tenant, on=True, stage=decision.stage if decision else None)
        run(S3ClientProxy(mirror.primary, mirror, pin), pinned_config, params)
        if pin.errors:
            raise pin.errors[0]


install(S3ClientProxy, HANDLERS)


def wrap(
    service: Service,
    writer: Any,
    primary: T,
    *,
    shadow: Any,
    names: Any,
    levels: tuple[str, str],
    kms_keys: Any,
    shadow_account: str | None,
) -> T:
    """Wrap an S3 client, service resource, ``Bucket`` or ``Object`` (see ``DualWriter.wrap``)."""
    p_level = levels[0]
    primary_client = client_of(primary)
    mirror = Mirror(
        writer,
        service=service,
        primary=primary_client,
        shadow=client_of(shadow),
        names=names,
        state=new_state(Options(kms_keys=kms_keys, shadow_account=shadow_account)),
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
