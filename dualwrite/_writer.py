"""DualWriter: the configuration shared by every wrapped client, and ``dualwrite.wrap``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from dualwrite._mirror import describe_error, safe_invoke
from dualwrite.events import Event
from dualwrite.exceptions import ConfigurationError
from dualwrite.typing import Flag, Hook, NameMap, TenantOf

logger = logging.getLogger("dualwrite")

T = TypeVar("T")

MODES = ("sync", "background")
ON_SHADOW_ERROR = ("record", "raise")


class DualWriter:
    """Mirror writes to a shadow AWS account, per tenant, behind a flag.

    A writer holds what every wrapped client shares: the flag, the hooks and the policies. Wrap
    each primary client (or resource) once with :meth:`wrap` and use the result wherever the
    primary was used.

    Args:
        flag: called with the :class:`~dualwrite.Write` of each write call, in the caller's thread;
            a truthy result sends the write to the shadow too. ``True``/``False`` are accepted
            as constant flags.
        hooks: callables each receiving every event (see :mod:`dualwrite.events`).
        mode: ``"sync"``: the shadow write runs in the caller's thread right after the primary's.
            ``"background"`` is reserved for the background worker pool and not available in this
            release.
        journal: ``None``: no journal. Journal backends are not available in this release.
        tenant_of: derives the tenant from a write when no :func:`dualwrite.tenant` block is
            active (for example from a key prefix).
        on_shadow_error: ``"record"``: a shadow failure becomes a ``shadow_failed`` event only;
            ``"raise"``: it also raises :class:`~dualwrite.exceptions.ShadowWriteError` to the
            caller, after the primary write succeeded.

    Raises:
        ConfigurationError: an argument is invalid; the message lists the allowed values.
    """

    def __init__(
        self,
        flag: Flag | bool,
        *,
        hooks: Iterable[Hook] = (),
        mode: str = "sync",
        journal: object = None,
        tenant_of: TenantOf | None = None,
        on_shadow_error: str = "record",
    ) -> None:
        if not (isinstance(flag, bool) or callable(flag)):
            msg = f"flag must be a callable taking a dualwrite.Write, or True/False; got {flag!r}"
            raise ConfigurationError(msg)
        if isinstance(hooks, (str, bytes)) or not isinstance(hooks, Iterable):
            msg = f"hooks must be a list of callables; got {hooks!r}"
            raise ConfigurationError(msg)
        hook_list = list(hooks)
        for hook in hook_list:
            if not callable(hook):
                msg = f"every hook must be callable taking one event; got {hook!r}"
                raise ConfigurationError(msg)
        if mode not in MODES:
            msg = f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}"
            raise ConfigurationError(msg)
        if mode == "background":
            msg = "mode='background' is not available in this release of dualwrite; use mode='sync'"
            raise ConfigurationError(msg)
        if journal is not None:
            msg = (
                "journal backends are not available in this release of dualwrite; "
                f"pass journal=None (got {journal!r})"
            )
            raise ConfigurationError(msg)
        if tenant_of is not None and not callable(tenant_of):
            msg = (
                f"tenant_of must be a callable taking a dualwrite.Write, or None; got {tenant_of!r}"
            )
            raise ConfigurationError(msg)
        if on_shadow_error not in ON_SHADOW_ERROR:
            msg = (
                f"on_shadow_error must be one of {', '.join(map(repr, ON_SHADOW_ERROR))}; "
                f"got {on_shadow_error!r}"
            )
            raise ConfigurationError(msg)
        self.flag = flag
        self.hooks: tuple[Hook, ...] = tuple(hook_list)
        self.mode = mode
        self.journal = journal
        self.tenant_of = tenant_of
        self.on_shadow_error = on_shadow_error
        self._closed = False

    def wrap(
        self,
        primary: T,
        *,
        shadow: Any,
        names: NameMap | None = None,
        kms_keys: Mapping[str, str] | Callable[[str], str | None] | None = None,
        shadow_account: str | None = None,
    ) -> T:
        """Wrap a boto3 S3 or DynamoDB client or resource so that its writes are mirrored.

        Args:
            primary: a low-level ``s3`` or ``dynamodb`` client, a ``boto3.resource("s3")`` or
                ``boto3.resource("dynamodb")``, or an S3 ``Bucket`` / DynamoDB ``Table``.
            shadow: the shadow account's client or resource of the same service and the same
                level (a resource-level primary needs a resource-level shadow for DynamoDB).
            names: primary bucket/table name -> shadow name, as a dict or a callable returning
                ``None`` for "no shadow". S3 bucket names are global, so an S3 bucket without a
                mapping is never written on the shadow (the write is reported ``unsupported``).
                DynamoDB table names are per account: a missing mapping means the same name.
            kms_keys: primary KMS key id/ARN -> shadow key (S3 ``SSEKMSKeyId``); an unmapped key
                is dropped so the shadow bucket's default encryption applies.
            shadow_account: the shadow's 12-digit account id; ``ExpectedBucketOwner`` is
                translated to it, or dropped when it is not given.

        Returns:
            An object of the same kind as ``primary`` (it passes ``isinstance`` checks) whose
            writes are mirrored.

        Raises:
            ConfigurationError: the objects are not S3/DynamoDB clients or resources, the services
                or levels differ, or an option is invalid.
        """
        from dualwrite._proxy import wrap_any  # noqa: PLC0415 - _proxy imports this module

        if self._closed:
            msg = "this DualWriter is closed; create a new one to wrap more clients"
            raise ConfigurationError(msg)
        return wrap_any(
            self,
            primary,
            shadow=shadow,
            names=names,
            kms_keys=kms_keys,
            shadow_account=shadow_account,
        )

    def emit(self, event: Event) -> None:
        """Send ``event`` to every hook; a hook's exception is logged and contained."""
        for hook in self.hooks:
            _, exc = safe_invoke(hook, event)
            if exc is not None:
                info = describe_error(exc)
                logger.warning(
                    "dualwrite: hook %r raised %s: %s (event %s ignored by it)",
                    hook,
                    info.type,
                    info.message,
                    event.kind,
                )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued shadow write is done.

        In ``sync`` mode every shadow write is done before the caller's call returns, so this
        returns at once.

        Args:
            timeout: seconds to wait at most; ``None`` waits as long as needed.

        Returns:
            ``True`` when nothing is pending.
        """
        del timeout
        return True

    def close(self) -> None:
        """Flush and stop; wrapping more clients afterwards raises ``ConfigurationError``."""
        self.flush()
        self._closed = True

    def __enter__(self) -> DualWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"DualWriter(mode={self.mode!r}, hooks={len(self.hooks)}, "
            f"on_shadow_error={self.on_shadow_error!r})"
        )


def wrap(
    primary: T,
    *,
    shadow: Any,
    flag: Flag | bool,
    names: NameMap | None = None,
    kms_keys: Mapping[str, str] | Callable[[str], str | None] | None = None,
    shadow_account: str | None = None,
    **options: Any,
) -> T:
    """Shortcut for ``DualWriter(flag=flag, **options).wrap(primary, shadow=shadow, ...)``.

    Args:
        primary: the client or resource to wrap (see :meth:`DualWriter.wrap`).
        shadow: the shadow account's client or resource.
        flag: the flag (see :class:`DualWriter`).
        names: bucket/table name map (see :meth:`DualWriter.wrap`).
        kms_keys: KMS key map (see :meth:`DualWriter.wrap`).
        shadow_account: the shadow's account id (see :meth:`DualWriter.wrap`).
        **options: any other :class:`DualWriter` argument (``hooks``, ``mode``, ...).

    Returns:
        The wrapped object.
    """
    return DualWriter(flag=flag, **options).wrap(
        primary, shadow=shadow, names=names, kms_keys=kms_keys, shadow_account=shadow_account
    )
