"""Stages: which account a call goes to first, decided once per call in the proxy.

With a ``stage=`` callback, the proxy asks the stage of every resource a call names before any
handler runs (through the writer's :class:`~dualwrite._core.decide.Decider`, which also reports
a call whose resources' stages disagree), then hands the call to one of two mirrors of the
wrapped pair:

* the forward mirror (the old account first), for ``OFF`` and ``DUAL_WRITE``;
* the reverse mirror (the new account first, the old one as its shadow), for ``CUTOVER`` and
  ``DONE``, with the call's parameters renamed to the new account's buckets and tables.

The decisions travel to the handlers' :meth:`~dualwrite._core.mirror.Mirror.decide` through
:func:`~dualwrite._core.decide.decided`, so a handler asks nothing twice. Whatever cannot be routed
(no new name, a call on a specific S3 version, a PartiQL statement on a renamed table) and a call
whose resources disagree on the account to write first go old-first to both accounts, as
``DUAL_WRITE`` does: no write is lost, whatever the tenant's stage.
"""

from __future__ import annotations

import contextlib
import logging
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from dualwrite._core.decide import Decision, _scope, with_stage
from dualwrite._core.errors import error_code
from dualwrite._core.mirror import Mirror
from dualwrite._stage import FALLBACK, REVERSED, Stage

logger = logging.getLogger("dualwrite")


_NO_RENAMES: Mapping[str, str] = types.MappingProxyType({})


class Route(NamedTuple):
    """Where one call goes: the mirror to run it on, its parameters there, its decisions.

    A tuple, not an attrs class: every staged call makes one.
    """

    mirror: Mirror
    params: Mapping[str, Any]
    decisions: dict[str, Decision] | None
    # (old name, key) of what the call writes and of what it reads from (a copy's source).
    targets: tuple[tuple[str, Any], ...] = ()
    sources: tuple[tuple[str, Any], ...] = ()
    # The new account's names -> the caller's, for the names a response echoes.
    renamed: Mapping[str, str] = _NO_RENAMES
    # A write of one key at OFF whose handler would only call the primary (the service's
    # plain_when_off): the call is the primary's own, as without the wrapper.
    plain: bool = False


# route()'s common path builds its Route and Decision with tuple.__new__ and every field in
# order: a field added to either must be added there too, which this check makes impossible to
# miss.
_tuple = tuple.__new__
_ROUTE_FIELDS = ("mirror", "params", "decisions", "targets", "sources", "renamed", "plain")
if Route._fields != _ROUTE_FIELDS or Decision._fields != (  # pragma: no cover
    "tenant",
    "stage",
    "mirrored",
    "write",
):
    raise AssertionError("Route or Decision changed: update routing.route()'s common path")


def _renamed(forward: Mirror, resources: Any) -> dict[str, str]:
    """New name -> the caller's name, for each of ``resources`` whose names differ."""
    out = {}
    for resource in resources:
        new = forward.new_name(resource) if isinstance(resource, str) else None
        if new is not None and new != resource:
            out[new] = resource
    return out


def route(forward: Mirror, api: str, params: Mapping[str, Any]) -> Route:
    """Decide where a call on the forward mirror ``forward`` goes (see the module's docstring)."""
    service = forward.plugin
    side = service.upload_owner(forward, api, params) if api in service.owned_calls else None
    if side == "reverse":
        routed = service.reroute(forward, api, params)
        if routed is not None:
            renamed = _renamed(forward, [params.get("Bucket")])
            return Route(forward.reverse(), routed, {}, renamed=renamed)
    if side is not None:
        return Route(forward, params, {})
    targets = tuple(service.stage_targets(forward, api, params))
    if not targets:
        return Route(forward, params, None)
    decider = forward.writer.decider
    # What a call reads from (a copy's source) must be owned by the same account as what it
    # writes, or the copy would read the other account's version.
    sources = (
        tuple(service.stage_sources(forward, api, params)) if api in service.sourced_calls else ()
    )
    asked: dict[str, tuple[str | None, Stage]]
    if len(targets) == 1 and not sources:
        resource, key = targets[0]
        write, stage = decider.stage(forward.describe(api, resource, key))
        if stage is Stage.OFF or stage is Stage.DUAL_WRITE:
            # The common call (one resource, no source, old account first): what the general
            # path below returns, without its sets and comprehensions. Both tuples built by
            # tuple.__new__: a NamedTuple's own __new__ is a Python function (_ROUTE_FIELDS).
            if stage is Stage.OFF and api in service.plain_when_off:
                decision = _tuple(Decision, (write.tenant, stage, False, None))
                return _tuple(
                    Route, (forward, params, {resource: decision}, targets, (), _NO_RENAMES, True)
                )
            # Handed to the handler only with an immutable key (S3's str): a DynamoDB key here
            # holds the caller's maps, which the handler copies (semantics 10).
            decided = with_stage(write, write.tenant, stage) if type(key) is str else None
            decision = _tuple(Decision, (write.tenant, stage, stage is Stage.DUAL_WRITE, decided))
            return _tuple(
                Route, (forward, params, {resource: decision}, targets, (), _NO_RENAMES, False)
            )
        asked = {resource: (write.tenant, stage)}
    else:
        asked = {}
        for resource, key in targets:
            if resource not in asked:
                write, stage = decider.stage(forward.describe(api, resource, key))
                asked[resource] = (write.tenant, stage)
    reversed_ = {stage in REVERSED for _, stage in asked.values()}
    for resource, key in sources:
        _, stage = decider.stage(forward.describe(api, resource, key))
        reversed_.add(stage in REVERSED)
    if reversed_ == {False}:
        return Route(
            forward,
            params,
            {r: Decision(t, s, s is Stage.DUAL_WRITE) for r, (t, s) in asked.items()},
            targets,
            sources,
        )
    if reversed_ == {True}:
        routed = service.reroute(forward, api, params)
        if routed is not None:
            decisions = {}
            for resource, (tenant, stage) in asked.items():
                new = forward.new_name(resource)
                if new is not None:
                    decisions[new] = Decision(tenant, stage, stage is Stage.CUTOVER)
            renamed = _renamed(forward, [*asked, *(r for r, _ in sources)])
            return Route(forward.reverse(), routed, decisions, targets, sources, renamed)
        logger.debug(
            "dualwrite: %s on %s cannot go to the new account first; it goes to both, old first",
            api,
            ", ".join(asked),
        )
    else:
        first = next(iter(asked))
        decider.conflict(
            forward.describe(api, first, None), api, [(r, s) for r, (_, s) in asked.items()]
        )
    # Handled as DUAL_WRITE, and so reported: its events, journal entries and key queue are
    # those of an old-first write.
    return Route(
        forward,
        params,
        {r: Decision(t, FALLBACK, True) for r, (t, _) in asked.items()},
        targets,
        sources,
    )


def await_queued(
    forward: Mirror,
    chosen: Route,
    *,
    writes: bool,
    api: str = "",
    params: Mapping[str, Any] | None = None,
) -> None:
    """Background mode with stages: let writes still queued for the account this call uses land.

    Each key the call reads (a one-key read, a copy's source) and, for a write to one account
    only (OFF, DONE), each key it writes, waits for that key's jobs queued in the other
    direction: a write made old-first just before a flip to CUTOVER is still on its way to the
    new account (and new-first before a rollback, to the old one). A mirrored write orders
    itself (Mirror.call). A write of several keys to one account waits for each of its keys
    (``written_keys`` of the service, from the caller's ``params``), or, where they cannot be
    told (PartiQL), for the other direction's jobs queued before it.
    """
    writer = forward.writer
    if not writer.staged_background or not chosen.decisions:
        return
    reverse = chosen.mirror.reversed
    keyed = [*chosen.sources]
    one_account = writes and not any(d.mirrored for d in chosen.decisions.values())
    if not writes or one_account:
        keyed.extend(chosen.targets)
    if one_account and any(key is None for _, key in chosen.targets):
        keys = forward.plugin.written_keys(forward, api, params)
        if keys is None:
            writer.wait_other_direction(reverse=reverse)
        else:
            keyed.extend(keys)
    for resource, key in keyed:
        if key is not None:
            writer.wait_key(forward.service, resource, key, reverse=reverse)


def call(
    forward: Mirror, api: str, py_name: str, handler: Callable[..., Any], params: dict[str, Any]
) -> Any:
    """Route one write call, then run its handler on the chosen mirror."""
    chosen = route(forward, api, params)
    if forward.writer.staged_background:
        await_queued(forward, chosen, writes=True, api=api, params=params)
    mirror = chosen.mirror
    method = getattr(mirror.primary, py_name)
    if chosen.plain:
        return method(**params)
    # A forward route keeps the caller's parameters: ``params`` is the call's own ``**kwargs``.
    given = params if chosen.params is params else dict(chosen.params)
    # The decisions, for the handler's Decider.decide: decided(), without a generator.
    scope = _scope.box
    previous = scope.decisions
    scope.decisions = chosen.decisions
    try:
        if mirror.forward is None:
            return handler(mirror, method, given, None)
        with callers_errors(forward, reverse=True):
            response = handler(mirror, method, given, None)
    finally:
        scope.decisions = previous
    return as_called(forward, chosen, api, response)


def read(forward: Mirror, api: str, py_name: str, params: dict[str, Any]) -> Any:
    """Route one read call to the account that owns its tenant now."""
    chosen = route(forward, api, params)
    await_queued(forward, chosen, writes=False)
    with callers_errors(forward, reverse=chosen.mirror.reversed):
        response = getattr(chosen.mirror.primary, py_name)(**chosen.params)
    return as_called(forward, chosen, api, response)


@contextlib.contextmanager
def callers_errors(forward: Mirror, *, reverse: bool) -> Iterator[None]:
    """With ``reverse`` (a call made to the new account), raise its errors as the caller's own
    client would (:func:`caller_error`)."""
    if not reverse:
        yield
        return
    try:
        yield
    except ClientError as exc:
        translated = caller_error(forward, exc)
        if translated is exc:
            raise
        raise translated.with_traceback(exc.__traceback__) from None


def caller_error(forward: Mirror, exc: ClientError) -> ClientError:
    """The same error as an instance of the caller's client's exception class.

    botocore makes exception classes per session: the new account's client (another session)
    raises ``ConditionalCheckFailedException`` or ``NoSuchKey`` classes that ``except
    client.exceptions.NoSuchKey`` on the wrapped client would not catch. Same response, same
    message, the caller's class.
    """
    code = error_code(exc) or ""
    cls: type[ClientError] = forward.primary.exceptions.from_code(code)
    if isinstance(exc, cls):
        return exc
    return cls(exc.response, exc.operation_name)


def as_called(forward: Mirror, chosen: Route, api: str, response: Any) -> Any:
    """The new account's response, with the names the caller used where it names a resource.

    A copy: a queued shadow write may still read the response as the new account sent it.
    """
    if not chosen.mirror.reversed or not chosen.renamed or not isinstance(response, dict):
        return response
    return forward.plugin.as_called(api, response, chosen.renamed)


def client_for(forward: Mirror, api: str, params: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The real client a read-like call (paginator, transfer, presigned URL) goes to, and its
    parameters there. A one-key read waits as :func:`read` does."""
    chosen = route(forward, api, params)
    await_queued(forward, chosen, writes=False)
    return chosen.mirror.primary, dict(chosen.params)
