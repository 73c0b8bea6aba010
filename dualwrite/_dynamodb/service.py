"""DynamoDB as the engine sees it: the one :class:`~dualwrite._core.service.Service` object of
DynamoDB."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dualwrite._core.mirror import Mirror
from dualwrite._core.snapshot import snapshot
from dualwrite._dynamodb import converge, keys, proxy, routing
from dualwrite._dynamodb.calls import _describe
from dualwrite.events import Write
from dualwrite.journal import encode_key

_ONE_ITEM = frozenset({"PutItem", "UpdateItem", "DeleteItem"})


class DynamoDB:
    """DynamoDB's implementation of :class:`~dualwrite._core.service.Service` (see there)."""

    name = "dynamodb"
    identity_names = True  # tables are named per account: an unmapped table keeps its name
    plain_when_off = _ONE_ITEM

    def lock_name(self, resource: str) -> str:
        return keys.lock_name(resource)

    def route_name(self, mirror: Mirror, resource: str) -> str | None:
        return routing.route_name(mirror, resource)

    def build_reverse(self, mirror: Mirror) -> Mirror:
        return routing.build_reverse(mirror)

    def target_write(self, mirror: Mirror, api: str, params: Mapping[str, Any]) -> Write | None:
        """The write ``PutItem``/``UpdateItem``/``DeleteItem`` decide first, when its key is
        well formed and (for ``PutItem``) the table's key schema is already known; ``None``
        otherwise (the handler then asks, after a ``DescribeTable`` if need be)."""
        if api not in _ONE_ITEM:
            return None
        table = params.get("TableName")
        if not isinstance(table, str):
            return None
        state = mirror.state
        schema = state.schemas.known(table)
        if api == "PutItem":
            item = params.get("Item")
            if schema is None or not isinstance(item, Mapping):
                return None
            try:
                key: Any = {name: item[name] for name in schema}
            except Exception:  # noqa: BLE001 - the handler reports the malformed item
                return None
        else:
            key = params.get("Key")
        if not isinstance(key, Mapping) or not keys.well_formed_key(key, state.level, schema):
            return None
        return _describe(mirror, api, table, snapshot(key))

    def queue_key(self, key: Any) -> Any:
        return keys.queue_key(key)

    def journal_key(self, key: object) -> Any:
        if not isinstance(key, Mapping):
            return {}
        try:
            encode_key(key)
        except Exception:  # noqa: BLE001 - any shape at all: the table's entry, never an error
            return {}
        return key

    def converge(
        self,
        mirror: Mirror,
        resource: str,
        key: Any,
        *,
        attempts: int | None = None,
        deadline: float | None = None,
    ) -> str:
        return converge.repair_item(mirror, resource, key, attempts=attempts, deadline=deadline)

    # The module's function itself: routing asks it on every staged call.
    owned_calls: frozenset[str] = frozenset()  # no multipart uploads
    sourced_calls: frozenset[str] = frozenset()  # no call reads another table than it writes
    upload_owner = staticmethod(routing.upload_owner)

    def reroute(self, mirror: Mirror, api: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        return routing.reroute(mirror, api, params)

    # The module's function itself: routing asks it on every staged call.
    stage_targets = staticmethod(routing.stage_targets)

    # The module's function itself: routing asks it on every staged call.
    stage_sources = staticmethod(routing.stage_sources)

    def written_keys(
        self, mirror: Mirror, api: str, params: Mapping[str, Any] | None
    ) -> list[tuple[str, Any]] | None:
        return routing.written_keys(mirror, api, params)

    def as_called(self, api: str, response: Any, renamed: Mapping[str, str]) -> Any:
        return routing.as_called(api, response, renamed)

    def wrap(self, writer: Any, primary: Any, **options: Any) -> Any:
        """Wrap a DynamoDB client, resource or Table (:func:`dualwrite._dynamodb.proxy.wrap`)."""
        return proxy.wrap(self, writer, primary, **options)


SERVICE = DynamoDB()
