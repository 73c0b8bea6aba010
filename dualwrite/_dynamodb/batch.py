"""Writes of several keys in one call: :func:`_call_keys` (one primary call, then the shadow
given what it changed, in one go or one job per key), and the ``BatchWriteItem`` handler.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import attrs

from dualwrite._core.entries import QueuedKeys, forward_resource, queue_hash
from dualwrite._core.errors import SkipShadow, UnsupportedWrite, safe_invoke
from dualwrite._core.mirror import Mirror, ShadowContext
from dualwrite._core.snapshot import snapshot
from dualwrite._dynamodb.calls import (
    Call,
    _decided,
    _holding,
    _malformed,
    _unknown_key,
)
from dualwrite._dynamodb.converge import (
    _Change,
    _change_ident,
    _converge_one,
    _request_ident,
    _shadow_batch,
    new_change,
    read_item,
)
from dualwrite._dynamodb.fleet import _count, _settle
from dualwrite._dynamodb.keys import (
    State,
    _canon_key,
    _state,
    item_key,
    lock_name,
    well_formed_key,
)
from dualwrite.events import Write, _new_write


def _unknown_keys(mirror: Mirror, changes: Sequence[_Change]) -> None:
    """Report the changes whose key could not be read (no key schema from either account).

    Their items went to the shadow as well as can be, but neither ordered by key nor checked:
    each is reported ``unsupported`` with no key, which the journal keeps as a table-level
    entry until a ``diff``/``copy`` of the table settles it.
    """
    for change in changes:
        if change.key is None:
            mirror.unsupported(change.write, *_unknown_key(change.table))


def _main_write(flagged: Mapping[str, Write]) -> Write:
    """The write a call spanning tables is reported under: its first table with a shadow name."""
    for write in flagged.values():
        if write.shadow_resource is not None:
            return attrs.evolve(write, key=None)
    return attrs.evolve(next(iter(flagged.values())), key=None)


def _mapped(mirror: Mirror, flagged: Mapping[str, Write], changes: list[_Change]) -> list[_Change]:
    """The changes whose table has a shadow name; the others are reported, key by key."""
    if all(write.shadow_resource is not None for write in flagged.values()):
        return changes
    mapped = []
    for change in changes:
        if flagged[change.table].shadow_resource is None:
            mirror.unsupported(
                change.write, "unmapped", f"no shadow name for dynamodb table {change.table!r}"
            )
        else:
            mapped.append(change)
    return mapped


def _batches_by_table(
    ctx: ShadowContext, flagged: Mapping[str, Write], changes: list[_Change]
) -> None:
    """Write resolved changes with one BatchWriteItem per table.

    Every table is written even when another fails; then the first failure is raised, so the
    write fails as a whole (every key of the call journaled, the circuit breaker told).
    """
    by_table: dict[str, list[_Change]] = {}
    for change in changes:
        by_table.setdefault(change.table, []).append(change)
    failure: Exception | None = None
    for table, table_changes in by_table.items():
        try:
            _shadow_batch(ctx, str(flagged[table].shadow_resource), table_changes)
        except Exception as exc:  # noqa: BLE001 - raised below, once every table was tried
            failure = failure or exc
    if failure is not None:
        raise failure


Done = Callable[[Any], list[_Change]]
"""Given the primary's response, the changes it made (e.g. a batch minus its UnprocessedItems)."""
ToShadow = Callable[[ShadowContext, list[_Change]], list[_Change]]
"""Writes changes, all with a shadow name, to the shadow in one go (sync mode); returns them
resolved (every item read back where it had to be), for :func:`_settle`."""


def _call_keys(
    mirror: Mirror,
    state: State,
    call: Call,
    params: Mapping[str, Any],
    flagged: Mapping[str, Write],
    changes: list[_Change],
    done: Done,
    to_shadow: ToShadow,
) -> Any:
    """Call the primary once for a write of several keys, then give the shadow what it changed.

    Sync mode: one shadow call for all the changes (a batch, a transaction), under the locks of
    every key, reported under the call's first table, then one read of the primary to settle
    them (:func:`_settle`); every key is journaled with its own table if that fails.

    Background mode: one job per changed key, queued on that key's own queue (a call's
    keys do not share one queue, so a batch cannot overtake, or be overtaken by, another write
    of one of its keys). Each job reads its key back from the primary when it runs, with a
    consistent read, puts or deletes it, and settles it: a job that runs later than it was
    queued still writes the newest state, so the key's queue order is all that ordering needs.
    """
    if not mirror.writer.background:
        return _call_once(mirror, state, call, params, flagged, changes, done, to_shadow)

    # Same-key primary calls stay serialised in this process, as on every other path; the
    # locks are released before the jobs are queued, so no caller waits for room holding them.
    # Every key's intent is journaled before the primary call; each job removes its own.
    with mirror.write_ahead(_main_write(flagged), [c.write for c in changes]) as intent:
        response = mirror.locked(
            _main_write(flagged),
            [c.write for c in changes],
            _holding(mirror, state.level, [(c.table, c.key) for c in changes]),
            lambda: intent.primary(call, params),
        )
        mapped, exc = safe_invoke(lambda: _mapped(mirror, flagged, done(response)))
        if exc is not None:  # a response this module cannot read: journal every key, never raise
            mirror.run_shadow(
                _main_write(flagged),
                _raising(exc),
                acked_at=time.perf_counter(),
                keys=[c.write for c in changes],
                intent=intent,
            )
            return response
        for change in mapped:
            counted: list[int] = []
            mirror.shadow_acked(
                change.write,
                response,
                _converge_key(mirror, state, change, counted),
                hold=_holding(mirror, state.level, [(change.table, change.key)]),
                intent=intent.part(change.write),
                acked=functools.partial(
                    _count, mirror, state.level, [(change.table, change.key)], counted
                ),
            )
    return response


def _call_once(
    mirror: Mirror,
    state: State,
    call: Call,
    params: Mapping[str, Any],
    flagged: Mapping[str, Write],
    changes: list[_Change],
    done: Done,
    to_shadow: ToShadow,
    *,
    canons: Sequence[Hashable] | None = None,
) -> Any:
    """Call the primary once, then run one shadow action for every change it made.

    The shadow action writes the changes with ``to_shadow`` and settles them (:func:`_settle`:
    one read of the primary for all of them). In sync mode it runs under the locks of every key,
    right after the primary call. In background mode it is one job queued on the queue of every
    key: it keeps its place in each key's order (neither overtaking nor overtaken by another
    write of one of its keys), and writes the changes as they were at call time, which the key's
    later writes, queued behind it, overwrite in their turn. So that :func:`_settle` can tell a
    later write of a key by this process (which settles the key after this one) from another
    process's, each key the primary processed is counted under its lock, as the primary
    acknowledged it (not needed with ``single_writer``: nothing settles).
    """
    writer = mirror.writer
    level = state.level
    counted: list[list[_Change]] = []  # background fleet check: the processed changes, counted

    def action(ctx: ShadowContext, response: Any) -> None:
        mapped = _mapped(mirror, flagged, counted[0] if counted else done(response))
        if not mapped:
            raise SkipShadow
        written = to_shadow(ctx, mapped)
        _unknown_keys(mirror, written)
        _settle(ctx, level, written)

    primary = call
    if writer.background and not writer.single_writer:

        def primary(**kwargs: Any) -> Any:
            response = call(**kwargs)
            processed, exc = safe_invoke(done, response)
            if exc is None:  # else the action raises it again: every key is journaled
                generations: list[int] = []
                _count(mirror, level, [(c.table, c.key) for c in processed], generations)
                counted.append(
                    [
                        new_change(c.write, c.table, c.key, c.item, g)
                        for c, g in zip(processed, generations, strict=True)
                    ]
                )
            return response

    # Each key's canonical form, computed once for its lock and its background queue (equal to
    # queue_key()'s for every key the primary can accept: tests/test_dynamodb_queue_key.py).
    if canons is None:
        canons = [_canon_key(c.key, level) for c in changes]
    hold = _holding(mirror, level, [(c.table, c.key) for c in changes], canons)
    keys: list[Write] = [c.write for c in changes]
    if writer.background:
        keys = QueuedKeys(keys, _queues(keys, canons))
    return mirror.call(_main_write(flagged), primary, params, action, keys=keys, hold=hold)


def _queues(writes: Sequence[Write], canons: Sequence[Any]) -> list[int]:
    """The background queue of each key, as :func:`dualwrite._core.entries.shards` computes it
    from ``queue_key`` (``canons``: each key's canonical form, computed for its lock)."""
    # A batch's writes of one table are one Write but for the key (_keyed): the same stage,
    # so the same old name. Looked up once per table.
    names: dict[str, str] = {}
    found = []
    for write, canon in zip(writes, canons, strict=True):
        name = names.get(write.resource)
        if name is None:
            name = names[write.resource] = lock_name(forward_resource(write))
        found.append(queue_hash(write.service, name, canon))
    return found


def _converge_key(
    mirror: Mirror, state: State, change: _Change, counted: list[int]
) -> Callable[[ShadowContext, Any], None]:
    def action(ctx: ShadowContext, response: Any) -> None:
        shadow_table = str(ctx.write.shadow_resource)
        if change.key is None:  # a put whose key schema is unknown: its item is all there is
            ctx.shadow.put_item(TableName=shadow_table, Item=change.item)
            raise UnsupportedWrite(*_unknown_key(change.table))
        item = read_item(mirror.primary, change.table, change.key)
        _converge_one(ctx.shadow, shadow_table, change.key, item)
        _settle(ctx, state.level, [attrs.evolve(change, item=item, generation=counted[0])])

    return action


def _raising(exc: BaseException) -> Callable[[ShadowContext], None]:
    def action(ctx: ShadowContext) -> None:
        raise exc

    return action


def _batch_write_item(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    request = params.get("RequestItems")
    if not isinstance(request, Mapping):
        return _malformed(mirror, "BatchWriteItem", call, params, "RequestItems is not a map")
    state = _state(mirror)
    flagged: dict[str, Write] = {}
    changes: list[_Change] = []
    canons: list[Hashable] = []  # each change's canonical key, for its lock and its queue
    well_formed = True
    for table, entries in request.items():
        if not isinstance(table, str) or not isinstance(entries, Sequence):
            continue  # botocore rejects the whole call before anything is written
        write = _decided(mirror, "BatchWriteItem", table, None)
        if write is not None:
            flagged[table] = write
            # The table's requests as they are now (a table the flag leaves alone is not
            # copied): the caller may reuse its dicts the moment the call returns.
            well_formed = _table_changes(
                state, write, table, snapshot(entries), changes, canons
            ) and (well_formed)
    if not flagged:
        return call(**params)
    if not well_formed:
        return _malformed(
            mirror, "BatchWriteItem", call, params, "a key is not well formed", _main_write(flagged)
        )

    def done(response: Any) -> list[_Change]:
        # Only what the primary processed: the caller retries the rest through this wrapper,
        # and those retries are mirrored when they succeed.
        unprocessed = response.get("UnprocessedItems") or {}
        skipped = {
            (table, _request_ident(r, state.level))
            for table, requests in unprocessed.items()
            for r in requests or ()
        }
        if not skipped:  # the common case: everything processed, nothing to identify
            return changes
        return [c for c in changes if (c.table, _change_ident(c, state.level)) not in skipped]

    def to_shadow(ctx: ShadowContext, done: list[_Change]) -> list[_Change]:
        _batches_by_table(ctx, flagged, done)
        return done

    # One shadow call, or one background job queued on every key's queue, for the whole batch
    # in both modes (not _call_keys' job per key): a batch's puts and deletes have no
    # condition, so the primary's state after the call is the request's.
    return _call_once(mirror, state, call, params, flagged, changes, done, to_shadow, canons=canons)


def _well_formed(state: State, changes: Sequence[_Change]) -> bool:
    """Whether every known key of ``changes`` is well formed (an unknown one is reported as
    such: its table's key schema could not be read)."""
    return all(
        c.key is None or well_formed_key(c.key, state.level, state.schemas.known(c.table))
        for c in changes
    )


def _keyed(write: Write) -> Callable[[Any], Write]:
    """``keyed(key)``: ``write`` with ``key``, as ``attrs.evolve(write, key=key)`` but without
    reading the class's fields again for each of a batch's keys."""
    tenant, service, operation = write.tenant, write.service, write.operation
    resource, shadow, stage = write.resource, write.shadow_resource, write.stage
    return lambda key: _new_write(tenant, service, operation, resource, shadow, key, stage)


def _table_changes(
    state: State,
    write: Write,
    table: str,
    entries: Sequence[Any],
    changes: list[_Change],
    canons: list[Hashable],
) -> bool:
    """Append the changes of one table's requests to ``changes``, and each one's canonical key
    (``_canon_key``: its lock's and its queue's) to ``canons``; return whether every known key
    among them is well formed (an unknown one is reported as such: its table's key schema
    could not be read).

    A request that is neither a put of an item nor a delete of a key is left out: the primary
    refuses the whole call.
    """
    keyed = _keyed(write)
    level, schemas = state.level, state.schemas
    # The key schema, read on the first put (key_of would read it too): a batch of deletes
    # only never asks DynamoDB for it, as before this one-pass path.
    names: tuple[str, ...] | None = None
    described = False
    well_formed = True
    for entry in entries:
        if not (type(entry) is dict or isinstance(entry, Mapping)):
            continue
        put = entry.get("PutRequest")
        item = put.get("Item") if type(put) is dict or isinstance(put, Mapping) else None
        if type(item) is dict or isinstance(item, Mapping):
            # The common shape is read and checked in one pass; anything else the general way.
            if not described:
                names, described = schemas.get(table), True
            key: dict[str, Any] | None
            read = None if names is None else item_key(item, names, level)
            if read is not None:
                key, canon = read
            else:
                key = schemas.key_of(table, item)
                if key is None and schemas.known(table) is not None:
                    key = {}  # the schema is known and the item lacks a key attribute: malformed
                # A key read from the item has the schema's names: only its values are checked.
                if key is not None and not well_formed_key(key, level):
                    well_formed = False
                canon = _canon_key(key, level)
        else:
            delete = entry.get("DeleteRequest")
            found = delete.get("Key") if isinstance(delete, Mapping) else None
            if not isinstance(found, Mapping):
                continue
            key, item = dict(found), None
            if not well_formed_key(key, level, schemas.known(table)):
                well_formed = False
            canon = _canon_key(key, level)
        changes.append(new_change(keyed(key), table, key, item))
        canons.append(canon)
    return well_formed
