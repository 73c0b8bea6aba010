"""What the engine needs to know about one AWS service: the :class:`Service` protocol.

The engine (:mod:`dualwrite._core`) knows no AWS service. Each service package
(:mod:`dualwrite._s3`, :mod:`dualwrite._dynamodb`) implements this protocol once, as one object,
and passes it to every :class:`~dualwrite._core.mirror.Mirror` it builds; the registry
(:mod:`dualwrite._services`) finds it by name for the offline operations (repair, check,
backfill, follow). Adding a third service is one package implementing this protocol and one
line in the registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dualwrite._core.mirror import Mirror
    from dualwrite.events import Write


class Service(Protocol):
    """One AWS service's knowledge, as the engine, the proxies and the offline operations use it.

    Attributes:
        name: the service's name as events and the journal spell it (``"s3"``, ``"dynamodb"``).
        identity_names: whether a resource without a mapping keeps its name on the shadow
            (DynamoDB tables are named per account) rather than having no shadow (S3 bucket
            names are global).
    """

    name: str
    identity_names: bool
    # Operations whose handler, for a one-key write decided not mirrored, makes exactly the
    # primary's call and nothing else: a stage-routed call of one at OFF skips the handler.
    plain_when_off: frozenset[str]
    # The operations for which upload_owner() may answer and stage_sources() may name a source:
    # route() asks neither for any other (every staged call is routed).
    owned_calls: frozenset[str]
    sourced_calls: frozenset[str]

    def lock_name(self, resource: str) -> str:
        """The name under which a resource's keys are locked and queued (a table's ARN and its
        name share one)."""

    def route_name(self, mirror: Mirror, resource: str) -> str | None:
        """The other account's name of ``resource`` as a call routed there must spell it."""

    def build_reverse(self, mirror: Mirror) -> Mirror:
        """The mirror that writes the new account first and mirrors to the old (CUTOVER)."""

    def target_write(self, mirror: Mirror, api: str, params: Mapping[str, Any]) -> Write | None:
        """The :class:`~dualwrite.Write` whose flag decides ``api`` with ``params``, when the
        operation's handler decides exactly that write first and it is known without I/O;
        ``None`` otherwise. Lets an async proxy ask the flag on its event loop."""

    def journal_key(self, key: object) -> Any:
        """``key`` as the journal can record it; the resource-level key (``""``, ``{}``) for a
        key of a shape no request carries."""

    def queue_key(self, key: Any) -> Any:
        """``key`` as background jobs are queued by, hashable: equal for every spelling of one key
        (a DynamoDB number ``"1.0"`` and ``"1"``), as the key's lock is. Never raises."""

    def converge(
        self,
        mirror: Mirror,
        resource: str,
        key: Any,
        *,
        attempts: int | None = None,
        deadline: float | None = None,
    ) -> str:
        """Copy the primary's current state of one key to the shadow, or delete it there.

        Returns:
            ``"copied"`` or ``"deleted"``.

        Raises:
            RepairError: the key did not settle, or cannot be repaired.
        """

    def wrap(self, writer: Any, primary: Any, **options: Any) -> Any:
        """Wrap ``primary`` (a client or resource of this service) for ``writer``.

        ``options`` are ``shadow``, ``names``, ``levels`` (``(primary level, shadow level)``),
        ``kms_keys`` and ``shadow_account``, already checked by ``DualWriter.wrap``.
        """

    # -- stage routing (see dualwrite._core.routing) ----------------------------------------

    def upload_owner(self, mirror: Mirror, api: str, params: Mapping[str, Any]) -> str | None:
        """``"reverse"``/``"forward"`` for a call that must stay on the side it started on (a
        multipart upload's parts); ``None`` when the call is routed by its stage."""

    def reroute(self, mirror: Mirror, api: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The call's parameters for the new account, or ``None`` when it cannot go there."""

    def stage_targets(
        self, mirror: Mirror, api: str, params: Mapping[str, Any]
    ) -> Iterable[tuple[str, Any]]:
        """The ``(resource, key)`` pairs whose stage decides where the call goes."""

    def stage_sources(
        self, mirror: Mirror, api: str, params: Mapping[str, Any]
    ) -> Iterable[tuple[str, Any]]:
        """The ``(resource, key)`` pairs the call reads from (a copy's source)."""

    def written_keys(
        self, mirror: Mirror, api: str, params: Mapping[str, Any] | None
    ) -> list[tuple[str, Any]] | None:
        """The ``(resource, key)`` pairs a write of several keys changes; ``None`` when they
        cannot all be told."""

    def as_called(self, api: str, response: Any, renamed: Mapping[str, str]) -> Any:
        """The new account's response naming the resources the caller named."""
