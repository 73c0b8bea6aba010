"""What every DynamoDB handler shares: the shape of a handler, the write a call describes and
the flag's decision on it, the per-key locks held across the call, and what becomes of a
request the wrapper cannot read (the primary judges it; a success is reported ``unsupported``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dualwrite._context import _TENANT
from dualwrite._core.errors import safe_invoke
from dualwrite._core.mirror import Mirror
from dualwrite._dynamodb.keys import Level, _canon_key, lock_name
from dualwrite._dynamodb.partiql import _PARTIQL, _statements, statement_table
from dualwrite.events import Write, _new_write
from dualwrite.exceptions import ShadowWriteError

logger = logging.getLogger("dualwrite")


Call = Callable[..., Any]
Handler = Callable[[Mirror, Call, dict[str, Any], Any], Any]

UNKNOWN_TABLE = "<unknown table>"
"""``Write.resource`` of a PartiQL write whose table could not be read from the statement."""


# -- locks --------------------------------------------------------------------------------------


def _holding(
    mirror: Mirror,
    level: Level,
    targets: Sequence[tuple[str, Mapping[str, Any] | None]],
    canons: Sequence[Any] | None = None,
) -> contextlib.AbstractContextManager[Any]:
    """The per-key locks of every ``(table, key)``, held from the primary call to the shadow's.

    A key of ``None`` (unknown) takes the table's lock. Several locks are taken in one global
    order (by identity of the striped lock), so that calls holding several never deadlock.
    ``canons``, if given, are the keys' ``_canon_key(key, level)``, already computed.
    """
    # The canonical key is passed as its hash: already hashable, it needs no further freezing.
    if len(targets) == 1:  # a one-key write: the hot path, nothing more to build
        table, key = targets[0]
        canon = _canon_key(key, level) if canons is None else canons[0]
        return mirror.key_lock(lock_name(table), hash(canon))
    if canons is None:
        canons = [_canon_key(key, level) for _, key in targets]
    locks = mirror.key_locks(
        (lock_name(table), hash(canon)) for (table, _), canon in zip(targets, canons, strict=True)
    )
    return locks[0] if len(locks) == 1 else _all_of(locks)


class _all_of:  # noqa: N801 - used like a function
    """Several locks held as one, in the given order; reusable (``Mirror.call`` may take it again
    after waiting without it, in background mode with stages)."""

    def __init__(self, locks: Sequence[contextlib.AbstractContextManager[Any]]) -> None:
        self._locks = locks

    def __enter__(self) -> None:
        taken: list[contextlib.AbstractContextManager[Any]] = []
        try:
            for lock in self._locks:
                lock.__enter__()
                taken.append(lock)
        except BaseException:  # a lock that raises releases those already taken
            for lock in reversed(taken):
                lock.__exit__(None, None, None)
            raise

    def __exit__(self, *exc_info: object) -> None:
        for lock in reversed(self._locks):
            lock.__exit__(None, None, None)


# -- describing, deciding ------------------------------------------------------------------------


def _describe(mirror: Mirror, operation: str, table: str, key: Mapping[str, Any] | None) -> Write:
    """The :class:`Write` of a call on ``table`` and ``key`` (a copy of it: the caller keeps its
    own), with the caller's tenant."""
    return _write_of(mirror, operation, table, None if key is None else dict(key))


def _write_of(mirror: Mirror, operation: str, table: str, key: dict[str, Any] | None) -> Write:
    """:func:`_describe` of a ``key`` the write takes as it is (a one-key write's decide phase:
    its key is the wrapper's own, built from the request)."""
    # Mirror.describe(), inline: every DynamoDB write, flag on or off, comes through here.
    shadow = mirror.shadow_name(table)
    if shadow is not None and shadow == table and table[:4] == "arn:" and lock_name(table) != table:
        # A table ARN names the primary's account: on the shadow the same name means the
        # shadow's own table (mapped by names= as the name is), never a cross-account write
        # back into the primary.
        shadow = mirror.shadow_name(lock_name(table))
    return _new_write(
        _TENANT.get(),
        mirror.service,  # type: ignore[arg-type]
        operation,
        table,
        shadow,
        key,
    )


def _decided(
    mirror: Mirror, operation: str, table: str, key: Mapping[str, Any] | None
) -> Write | None:
    """The write to mirror, or ``None`` when the flag is off for it."""
    write, on = mirror.decide(_describe(mirror, operation, table, key))
    return write if on else None


def _table_of(params: Mapping[str, Any]) -> str | None:
    for name in ("TableName", "TargetTableName", "TableArn", "ResourceArn"):
        value = params.get(name)
        if isinstance(value, str) and value:
            return value
    creation = params.get("TableCreationParameters")
    if isinstance(creation, Mapping) and isinstance(creation.get("TableName"), str):
        return str(creation["TableName"])
    return None


# -- writes reported unsupported -------------------------------------------------------------------


def _unknown_key(table: str) -> tuple[str, str]:
    return "unknown-key", (
        f"the key schema of table {table!r} could not be read from either account "
        "(DescribeTable denied or failed), so the item's key is unknown; the item was written "
        "to the shadow unordered and unchecked: run `dualwrite diff`/`copy` on the table"
    )


# -- requests the wrapper cannot read --------------------------------------------------------------


PASS: Any = object()
"""What a handler's decide phase returns when the flag is off: the primary's call, as given."""

Decide = Callable[[Mirror, dict[str, Any]], Any]
"""A handler's decide phase: the common shape of its request read and decided before anything
else is built (see :func:`_guarded`)."""


def _guarded(operation: str, handler: Handler, decide: Decide | None = None) -> Handler:
    """``handler``, made unable to change the caller's outcome whatever the request holds.

    Every handler reads the request before the primary call (table, key, tenant, locks). It is
    written never to raise for any shape, but a request is the caller's to get wrong (a client
    with ``parameter_validation=False`` sends anything): should anything the wrapper derives
    raise all the same, the primary is called with the request exactly as given (if it was not
    yet), its response or exception reaches the caller, and the write is reported
    ``unsupported`` (``unreadable-request``) for its table, with no key.

    ``decide``, if given, is the handler's first phase for the common shape of its request
    (every write of a flag-off service): it reads the request and asks the flag, and returns
    :data:`PASS` when the flag is off (the primary is called as given, with nothing else
    built), ``None`` when the request is not of that shape (the handler reads it all; the flag
    was not asked), or the flag-on decision, which the handler is then given as a fifth
    argument instead of deciding again: the flag is asked once per call either way.
    """

    def guarded(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
        decided = None
        if decide is not None:
            try:
                decided = decide(mirror, params)
            except ShadowWriteError:
                raise  # as below (nothing in a decide phase raises it today)
            except Exception as exc:  # noqa: BLE001 - contained; the primary judges the request
                answer = call(**params)  # nothing reached the primary yet
                _report_unreadable(mirror, operation, params, f"{type(exc).__name__} reading it")
                return answer
            if decided is PASS:
                return call(**params)
        # What the primary did during this call (closure cells: no object to build per call).
        called = False
        response: Any = None
        error: BaseException | None = None

        def primary(**kwargs: Any) -> Any:
            nonlocal called, response, error
            called = True
            try:
                response = call(**kwargs)
            except BaseException as exc:
                error = exc
                raise
            return response

        try:
            if decided is None:
                return handler(mirror, primary, params, pin)
            return handler(mirror, primary, params, pin, decided)  # type: ignore[call-arg]
        except ShadowWriteError:
            raise  # the caller asked for shadow failures to be raised
        except Exception as exc:
            if error is not None:
                if error is exc:
                    raise
                raise error from None
            # Called already: the wrapper failed after the primary's success; return it.
            response = response if called else call(**params)
            _report_unreadable(mirror, operation, params, f"{type(exc).__name__} reading it")
            return response

    guarded.__name__ = handler.__name__
    guarded.__wrapped__ = handler  # type: ignore[attr-defined] # for tests: the bare handler
    return guarded


def _report_unreadable(
    mirror: Mirror,
    operation: str,
    params: Mapping[str, Any],
    why: str,
    decided: Write | None = None,
) -> None:
    """Report a write the wrapper could not read, for its table as far as one can be told.

    ``decided``: the write as already decided flag-on, so that the flag is not asked twice.
    """

    def report() -> None:
        write = decided
        if write is None:
            write = _decided(mirror, operation, _any_table(operation, params), None)
        if write is not None:
            mirror.unsupported(write, *_unreadable(operation, why))

    _, failed = safe_invoke(report)
    if failed is not None:
        logger.error(
            "dualwrite: could not report an unreadable %s request: %s",
            operation,
            type(failed).__name__,
        )


def _unreadable(operation: str, why: str) -> tuple[str, str]:
    return "unreadable-request", (
        f"dualwrite could not read this {operation} request ({why}); it went to the primary "
        "only: run `dualwrite diff`/`copy` on the table"
    )


def _any_table(operation: str, params: Mapping[str, Any]) -> str:
    """The first table a request names, whatever its operation; :data:`UNKNOWN_TABLE` if none."""
    table = _table_of(params)
    if table is not None:
        return table
    request = params.get("RequestItems")
    if isinstance(request, Mapping):
        for name in request:
            if isinstance(name, str) and name:
                return name
    items = params.get("TransactItems")
    if isinstance(items, Sequence) and not isinstance(items, (str, bytes)):
        for entry in items:
            body = next(iter(entry.values()), None) if isinstance(entry, Mapping) else None
            if isinstance(body, Mapping) and isinstance(body.get("TableName"), str):
                return str(body["TableName"])
    if operation in _PARTIQL:
        for entry in _statements(operation, params):
            if isinstance(entry, Mapping):
                name = statement_table(entry.get("Statement"))
                if name:
                    return name
    return UNKNOWN_TABLE


def _malformed(
    mirror: Mirror,
    operation: str,
    call: Call,
    params: Mapping[str, Any],
    why: str,
    decided: Write | None = None,
) -> Any:
    """A request whose shape the wrapper cannot mirror: the primary judges it.

    AWS rejects such a request, and then nothing happens; should it ever succeed, it is
    reported ``unsupported`` (no key: a table-level journal entry), never skipped silently.
    ``decided``: the write, if the flag was already asked (on) for it. Otherwise the flag is
    asked first, in the caller's thread; flag on, the table is journaled before the primary
    call (:meth:`Mirror.reported_call`).
    """
    write, failed = safe_invoke(
        lambda: decided or _decided(mirror, operation, _any_table(operation, params), None)
    )
    if failed is not None:  # never raises on any shape; should it, report after the call
        response = call(**params)
        _report_unreadable(mirror, operation, params, why)
        return response
    if write is None:
        return call(**params)
    return mirror.reported_call(write, call, params, *_unreadable(operation, why))
