"""A write's journal entries and its key queue: where a write is recorded and ordered.

Every function takes the write's :class:`~dualwrite._core.service.Service`, which says how its
keys are journaled and which resource names are one resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dualwrite._stage import REVERSED
from dualwrite.events import Write
from dualwrite.journal import Entry, encode_key

if TYPE_CHECKING:
    from dualwrite._core.service import Service


def forward_resource(write: Write) -> str:
    """The old account's name of a write's resource, whichever account it was written first to.

    Journal entries, key queues and key locks use it, so that one key is one key at every stage.
    A write handled new-first carries a reversed stage (CUTOVER, DONE); one that fell back to
    old-first carries DUAL_WRITE (see dualwrite._core.routing).
    """
    if write.stage in REVERSED and write.shadow_resource is not None:
        return write.shadow_resource
    return write.resource


def entry_identity(service: Service, write: Write) -> tuple[str, str, str]:
    """The :meth:`Entry.identity` of the entry journaled for ``write``'s own key."""
    key = service.journal_key(write.key if write.key is not None else None)
    return write.service, forward_resource(write), encode_key(key)


def entries(
    service: Service,
    write: Write,
    keys: Sequence[Any] | None,
    reason: str,
    detail: str,
    owner: str | None = None,
) -> list[Entry]:
    """Journal entries for a write: its own key, or each of a multi-key write's ``keys``.

    A write whose key is unknown (``write.key`` is ``None`` and no ``keys``) gets one
    resource-level entry (key ``""`` for S3, ``{}`` for DynamoDB): repair cannot settle it key
    by key, so it stays until a ``diff``/``copy`` of the resource does.
    """
    targets: Sequence[Any] = [write.key] if write.key is not None else (keys or ())
    if not targets:
        targets = [service.journal_key(None)]
    # A key may be a Write of its own: a call spanning tables (a DynamoDB transaction) names
    # each key's table with it.
    located = [
        (forward_resource(key), key.key)
        if isinstance(key, Write)
        else (forward_resource(write), key)
        for key in targets
    ]
    # Which account acknowledged the write: the one repair copies the key from.
    first = "shadow" if write.stage in REVERSED else "primary"
    entries: dict[tuple[str, str, str], Entry] = {}
    for resource, key in located:
        entry = Entry(
            service=write.service,
            resource=resource,
            key=service.journal_key(key),
            reason=reason,
            tenant=write.tenant,
            detail=detail,
            first=first,
            owner=owner,
        )
        entries.setdefault(entry.identity(), entry)
    return list(entries.values())


def queue_hash(service_name: str, lock_name: str, canonical: Any) -> int:
    """The queue of a key: its service, its resource's lock name (of the old account's name)
    and its canonical form (``Service.queue_key``). The one spelling of it: a handler that has
    the canonical form already (a DynamoDB batch) must reach the same queue."""
    return hash((service_name, lock_name, canonical))


def queue(service: Service, service_name: str, resource: str, key: Any) -> int:
    """The queue of ``key`` in ``resource`` (its old account's name): one hash, equal for every
    spelling of one key (``Service.queue_key``), the resource's queue for a key of a shape no
    request carries. Never raises."""
    try:
        return queue_hash(service_name, service.lock_name(resource), service.queue_key(key))
    except Exception:  # noqa: BLE001 - a resource or key of a shape no request carries
        return hash(service_name)


def shard(service: Service, write: Write, key: Any = None) -> int:
    """The queue of a write's key (``key``, if given, in place of ``write.key``): same-key
    writes share one, and so run in order."""
    return queue(service, write.service, forward_resource(write), write.key if key is None else key)


class QueuedKeys(list):  # type: ignore[type-arg] # a list of keys, as every caller takes it
    """The keys of a multi-key write with their queues already known (:func:`shards`' result
    for them, in order), computed by a handler that had each key's canonical form at hand (a
    DynamoDB batch: its locks' keys). Passed where ``keys`` are, so nothing else changes."""

    __slots__ = ("queues",)

    def __init__(self, keys: Sequence[Any], queues: list[int]) -> None:
        super().__init__(keys)
        self.queues = queues


def shards(service: Service, write: Write, keys: Sequence[Any] | None) -> int | list[int]:
    """The queue of a write's key, or of each key of a multi-key write (``keys``: keys of
    ``write``'s resource, or ``Write``s of their own)."""
    if write.key is not None or not keys:
        return shard(service, write)
    if type(keys) is QueuedKeys:
        return keys.queues
    name = write.service
    queue_key = service.queue_key
    names: dict[str, str] = {}  # resource -> its lock's name: a batch's keys share a few tables
    found: list[int] = []
    for key in keys:
        owner = key if isinstance(key, Write) else write
        try:
            resource = forward_resource(owner)
            lock = names.get(resource)
            if lock is None:
                lock = names[resource] = service.lock_name(resource)
            found.append(queue_hash(name, lock, queue_key(owner.key if owner is key else key)))
        except Exception:  # noqa: BLE001 - as queue(): a shape no request carries
            found.append(hash(name))
    return found
