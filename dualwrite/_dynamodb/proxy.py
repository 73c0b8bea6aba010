"""The wrapped DynamoDB client, and DynamoDB resources and ``Table`` objects rebound to it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dualwrite._core.mirror import Mirror
from dualwrite._core.proxy import ClientProxy, install, rebind
from dualwrite._dynamodb.keys import KeySchemas, Level, State
from dualwrite._dynamodb.operations import HANDLERS, ROUTED_READS, unclassified
from dualwrite._dynamodb.routing import route_name
from dualwrite.exceptions import ConfigurationError

if TYPE_CHECKING:
    from dualwrite._core.service import Service


class DynamoDBClientProxy(ClientProxy):
    """A wrapped DynamoDB client (low-level, or the client of a wrapped resource)."""

    _unclassified = staticmethod(unclassified)
    _routed_reads = ROUTED_READS


install(DynamoDBClientProxy, HANDLERS)


# -- wrap ----------------------------------------------------------------------------------------


def _level_of(level: str) -> Level:
    return "client" if level == "client" else "resource"


def wrap(
    service: Service,
    writer: Any,
    primary: Any,
    *,
    shadow: Any,
    names: Any,
    levels: tuple[str, str],
    kms_keys: Any = None,
    shadow_account: str | None = None,
) -> Any:
    """Wrap a DynamoDB client, service resource or ``Table`` (see ``DualWriter.wrap``).

    Args:
        service: the DynamoDB service object (``dualwrite._dynamodb.service.SERVICE``).
        writer: the :class:`~dualwrite.DualWriter`.
        primary: a low-level client, ``boto3.resource("dynamodb")`` or a ``Table``.
        shadow: the shadow's object of the same level: a low-level client for a low-level
            primary; a service resource or ``Table`` for a resource-level primary.
        names: primary table name -> shadow table name; a missing entry means the same name.
        levels: ``(primary level, shadow level)`` as ``"client"``, ``"resource"`` or
            ``"Table"``.
        kms_keys: ignored (S3 only).
        shadow_account: ignored (S3 only).

    Returns:
        The same kind of object as ``primary``.

    Raises:
        ConfigurationError: a low-level side paired with a resource-level side, or the same
            client on both sides.
    """
    p_level, s_level = _level_of(levels[0]), _level_of(levels[1])
    if p_level != s_level:
        if p_level == "client":
            msg = (
                "the primary is a low-level DynamoDB client (typed values such as {'S': 'a'}), "
                f"so the shadow must be one too; got a DynamoDB {levels[1]}: pass "
                "shadow=shadow_session.client('dynamodb')"
            )
        else:
            msg = (
                f"the primary is a DynamoDB {levels[0]} (Python values), so the shadow must be "
                "resource-level too; got a low-level client: pass "
                "shadow=shadow_session.resource('dynamodb') or its Table(...)"
            )
        raise ConfigurationError(msg)
    primary_client = primary if p_level == "client" else primary.meta.client
    shadow_client = shadow if s_level == "client" else shadow.meta.client
    if primary_client is shadow_client:
        msg = "primary and shadow are the same DynamoDB client; pass the shadow account's client"
        raise ConfigurationError(msg)
    del kms_keys, shadow_account
    mirror = Mirror(
        writer, service=service, primary=primary_client, shadow=shadow_client, names=names
    )
    mirror.state = State(
        level=p_level,
        schemas=KeySchemas(primary_client, shadow_client, lambda table: route_name(mirror, table)),
    )
    proxy = DynamoDBClientProxy(primary_client, mirror)
    if levels[0] == "client":
        return proxy
    return rebind(primary, proxy)
