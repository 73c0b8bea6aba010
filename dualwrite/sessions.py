"""Sessions and client settings for the shadow account.

A service dual-writes for days; a copy or a diff of a large bucket runs for hours. Credentials
taken once from ``sts.assume_role`` expire after an hour (by default), and every shadow write then
fails. :func:`assume_role_session` instead hands the role to botocore's own assume-role provider,
which renews the credentials before they expire, as the ``role_arn`` setting of an AWS profile
does. :func:`shadow_config` gives the shadow clients short timeouts and bounded retries, so that a
slow shadow costs each write little (the shadow's failures are journaled, not raised).

Example::

    import boto3, dualwrite
    from dualwrite.sessions import assume_role_session, shadow_config

    shadow = assume_role_session("arn:aws:iam::111111111111:role/dualwrite-shadow",
                                 region="eu-west-1")
    s3 = dualwrite.wrap(boto3.client("s3"), shadow=shadow.client("s3", config=shadow_config()),
                        flag=lambda write: True)
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
import botocore.config
import botocore.credentials
import botocore.session

from dualwrite.exceptions import ConfigurationError

__all__ = ["assume_role_session", "shadow_config"]

_MIN_DURATION = 900
_MAX_DURATION = 43200


class _AssumeRoleProvider(botocore.credentials.CredentialProvider):
    """A credential provider that always answers with one set of refreshing credentials."""

    METHOD = "assume-role"
    CANONICAL_NAME = "dualwrite-assume-role"

    def __init__(self, credentials: botocore.credentials.Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> botocore.credentials.Credentials:
        return self._credentials


def assume_role_session(
    role_arn: str,
    *,
    session_name: str = "dualwrite-shadow",
    region: str | None = None,
    sts_endpoint_url: str | None = None,
    base_session: boto3.Session | None = None,
    external_id: str | None = None,
    duration_seconds: int | None = None,
) -> boto3.Session:
    """Return a boto3 session acting as ``role_arn``, whose credentials renew themselves.

    No AWS call is made here: the role is assumed on the session's first request, and again
    before each set of credentials expires (botocore's ``AssumeRoleCredentialFetcher`` and
    ``DeferredRefreshableCredentials``, the machinery behind a profile's ``role_arn``). Clients
    made from the session, and clients made before a renewal, all use the current credentials.

    Args:
        role_arn: the role to assume, e.g. ``arn:aws:iam::111111111111:role/dualwrite-shadow``.
        session_name: the ``RoleSessionName`` (shows in the shadow account's CloudTrail).
        region: region of the returned session (and of the STS client); default: the base
            session's.
        sts_endpoint_url: endpoint for STS only; an S3 or DynamoDB endpoint URL is given to
            each client, never to STS. Default: botocore's regional STS endpoint.
        base_session: whose credentials call ``AssumeRole``; default: a new ``boto3.Session()``
            (environment, profile, instance role...). Its own credentials may refresh too.
        external_id: the ``ExternalId`` the role's trust policy requires, if any.
        duration_seconds: lifetime of each set of credentials (900 to 43200); default: the
            role's (one hour unless the role says otherwise).

    Returns:
        A ``boto3.Session`` for the role, in ``region``.

    Raises:
        ConfigurationError: ``role_arn`` is not an IAM role ARN, ``duration_seconds`` is out of
            range, or the base session has no credentials to assume the role with.
    """
    if not role_arn.startswith("arn:") or ":role/" not in role_arn:
        msg = f"role_arn must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), got {role_arn!r}"
        raise ConfigurationError(msg)
    if duration_seconds is not None and not _MIN_DURATION <= duration_seconds <= _MAX_DURATION:
        msg = (
            f"duration_seconds must be between {_MIN_DURATION} and {_MAX_DURATION}, "
            f"got {duration_seconds!r}"
        )
        raise ConfigurationError(msg)
    base = base_session if base_session is not None else boto3.Session()
    base_core: botocore.session.Session = base._session
    source = base_core.get_credentials()
    if source is None:
        msg = (
            f"no credentials to assume {role_arn} with: configure the base session "
            "(environment, profile, instance or task role) or pass base_session="
        )
        raise ConfigurationError(msg)
    region_name = region or base.region_name
    extra_args: dict[str, Any] = {"RoleSessionName": session_name}
    if external_id is not None:
        extra_args["ExternalId"] = external_id
    if duration_seconds is not None:
        extra_args["DurationSeconds"] = duration_seconds
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=functools.partial(
            base_core.create_client, region_name=region_name, endpoint_url=sts_endpoint_url
        ),
        source_credentials=source,
        role_arn=role_arn,
        extra_args=extra_args,
    )
    credentials = botocore.credentials.DeferredRefreshableCredentials(
        refresh_using=fetcher.fetch_credentials, method=_AssumeRoleProvider.METHOD
    )
    core = botocore.session.Session()
    # The same service models as the base session: botocore parses each model once per loader.
    core.register_component("data_loader", base_core.get_component("data_loader"))
    core.register_component(
        "credential_provider",
        botocore.credentials.CredentialResolver([_AssumeRoleProvider(credentials)]),
    )
    return boto3.Session(botocore_session=core, region_name=region_name)


def shadow_config(
    *,
    connect_timeout: float = 1.0,
    read_timeout: float = 5.0,
    max_attempts: int = 3,
    max_pool_connections: int = 10,
    **overrides: Any,
) -> botocore.config.Config:
    """Return a botocore ``Config`` for shadow clients: short timeouts, bounded retries.

    botocore's defaults (60 s to connect, 60 s per read, legacy retries) let one unreachable
    shadow hold a caller for minutes. A shadow failure costs a journal entry that ``repair()``
    replays, so failing fast is the cheaper side. Sync mode also bounds the caller's wait by
    ``DualWriter(shadow_timeout=...)``; these settings bound the shadow call itself (and each
    background worker).

    Args:
        connect_timeout: seconds to open a connection.
        read_timeout: seconds to wait for each read of a response (not the whole transfer).
        max_attempts: attempts in total, the first included, in botocore's ``standard`` retry
            mode (which retries throttling and transient errors with backoff).
        max_pool_connections: connections kept per client (raise it with background workers).
        **overrides: any other ``botocore.config.Config`` argument, e.g. ``tcp_keepalive=True``.

    Returns:
        A ``botocore.config.Config``; merge it with your own through ``Config.merge``.

    Raises:
        ConfigurationError: a timeout is not positive or ``max_attempts`` is below 1.
    """
    if connect_timeout <= 0 or read_timeout <= 0:
        msg = (
            "connect_timeout and read_timeout must be positive seconds, got "
            f"{connect_timeout!r} and {read_timeout!r}"
        )
        raise ConfigurationError(msg)
    if max_attempts < 1:
        msg = f"max_attempts counts the first attempt: 1 or more, got {max_attempts!r}"
        raise ConfigurationError(msg)
    return botocore.config.Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        **overrides,
    )
