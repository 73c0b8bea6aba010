"""The PartiQL write handlers (``ExecuteStatement``, ``BatchExecuteStatement``,
``ExecuteTransaction``): each statement read with :mod:`dualwrite._dynamodb.partiql`, its key
read back from the primary; a statement whose key cannot be read is journaled ahead and
reported ``unsupported``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import attrs

from dualwrite._core.errors import safe_invoke
from dualwrite._core.mirror import Mirror, ShadowContext
from dualwrite._core.snapshot import snapshot
from dualwrite._dynamodb.batch import _batches_by_table, _call_keys
from dualwrite._dynamodb.calls import UNKNOWN_TABLE, Call, _decided, _holding, _malformed
from dualwrite._dynamodb.converge import READ_BACK, _Change, _converge_one, _resolve
from dualwrite._dynamodb.fleet import _counting, _settle
from dualwrite._dynamodb.keys import State, _canon_key, _state, well_formed_key
from dualwrite._dynamodb.partiql import parse_statement
from dualwrite._dynamodb.transactions import _transaction
from dualwrite.events import Unsupported, Write


@attrs.frozen
class _Planned:
    """One write statement of a PartiQL call, decided flag-on."""

    index: int
    verb: str
    write: Write
    change: _Change | None  # None: its key could not be read from the statement

    def unsupported(self) -> tuple[str, str]:
        return _partiql_unsupported(self.verb, self.write.resource)


def _partiql_unsupported(verb: str, table: str) -> tuple[str, str]:
    # Never quote the statement: its literals are item data.
    if table == UNKNOWN_TABLE:
        return "partiql-unparsed", (
            f"PartiQL {verb or 'statement'}: the table could not be read from the statement; "
            "it went to the primary only"
        )
    return "partiql-key", (
        f"PartiQL {verb}: the key of the item in table {table!r} could not be read from the "
        "statement; it went to the primary only"
    )


def _plan_statements(
    mirror: Mirror, state: State, entries: Sequence[Any], operation: str
) -> tuple[list[_Planned], dict[str, Write | None]]:
    """Parse and decide every write statement (``{"Statement", "Parameters"}``) of a call."""
    decisions: dict[str, Write | None] = {}
    planned = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("Statement"), str):
            continue
        parsed = parse_statement(entry["Statement"])
        if parsed.is_read:
            continue
        table = parsed.table or UNKNOWN_TABLE
        if table not in decisions:
            decisions[table] = _decided(mirror, operation, table, None)
        write = decisions[table]
        if write is None:
            continue
        schema = state.schemas.get(parsed.table) if parsed.table else None
        # A copy of the parameters as they are now: the key must not follow the caller's dicts.
        key = parsed.key(schema, snapshot(entry.get("Parameters")), state.level)
        change = None
        if key is not None and not well_formed_key(key, state.level, schema):
            key = None  # a parameter of the wrong type: reported, never read back
        if key is not None:
            write = attrs.evolve(write, key=key)
            item = None if parsed.verb == "DELETE" else READ_BACK
            change = _Change(write=write, table=table, key=key, item=item)
        planned.append(_Planned(index=index, verb=parsed.verb, write=write, change=change))
    return planned, decisions


def _execute_statement(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    statement = params.get("Statement")
    if not isinstance(statement, str):
        return _malformed(mirror, "ExecuteStatement", call, params, "Statement is not a string")
    if parse_statement(statement).is_read:
        return call(**params)
    state = _state(mirror)
    planned, _ = _plan_statements(mirror, state, [params], "ExecuteStatement")
    return _execute_one(mirror, state, call, params, planned[0] if planned else None)


def _execute_one(
    mirror: Mirror, state: State, call: Call, params: Mapping[str, Any], planned: _Planned | None
) -> Any:
    if planned is None:
        return call(**params)  # flag off
    change = planned.change
    if change is None:  # the key could not be read: the table, journaled ahead
        return mirror.reported_call(planned.write, call, params, *planned.unsupported())

    def action(ctx: ShadowContext, response: Any) -> None:
        (resolved,) = _resolve(mirror, state.level, [change])
        _converge_one(ctx.shadow, str(ctx.write.shadow_resource), change.key or {}, resolved.item)
        _settle(ctx, state.level, [attrs.evolve(resolved, generation=counted[0])])

    primary, counted = _counting(mirror, state.level, call, [(change.table, change.key)])
    hold = _holding(mirror, state.level, [(change.table, change.key)])
    return mirror.call(planned.write, primary, params, action, hold=hold)


def _batch_execute_statement(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    entries = params.get("Statements")
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        return _malformed(mirror, "BatchExecuteStatement", call, params, "Statements not a list")
    state = _state(mirror)
    planned, decisions = _plan_statements(mirror, state, entries, "BatchExecuteStatement")
    if not planned:
        return call(**params)
    flagged = {table: write for table, write in decisions.items() if write is not None}

    def carried_out(response: Any) -> list[_Planned]:
        results = response.get("Responses") or []
        carried = []
        for entry in planned:
            outcome = results[entry.index] if entry.index < len(results) else None
            if isinstance(outcome, Mapping) and not outcome.get("Error"):
                carried.append(entry)  # else the primary refused it: nothing changed
        return carried

    def done(response: Any) -> list[_Change]:
        changes: dict[Hashable, _Change] = {}
        for entry in carried_out(response):
            if entry.change is not None:
                ident = (entry.change.table, _canon_key(entry.change.key, state.level))
                changes[ident] = entry.change
        return list(changes.values())

    def to_shadow(ctx: ShadowContext, mapped: list[_Change]) -> list[_Change]:
        resolved = _resolve(mirror, state.level, mapped)
        _batches_by_table(ctx, flagged, resolved)
        return resolved

    changes = [e.change for e in planned if e.change is not None]
    unknown = [e for e in planned if e.change is None]

    def run(primary: Call) -> Any:
        if not changes:
            return primary(**params)
        return _call_keys(mirror, state, primary, params, flagged, changes, done, to_shadow)

    def written(response: Any) -> list[_Planned]:
        return [e for e in carried_out(response) if e.change is None]

    return _with_unknown(mirror, call, unknown, run, written)


def _execute_transaction(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
    entries = params.get("TransactStatements")
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
        return _malformed(
            mirror, "ExecuteTransaction", call, params, "TransactStatements is not a list"
        )
    state = _state(mirror)
    planned, decisions = _plan_statements(mirror, state, entries, "ExecuteTransaction")
    changes = [e.change for e in planned if e.change is not None]
    unknown = [e for e in planned if e.change is None]
    if not changes:  # flag off, nothing that writes, or no key that could be read
        return _with_unknown(mirror, call, unknown, lambda c: c(**params), lambda _: unknown)
    flagged = {table: write for table, write in decisions.items() if write is not None}

    def run(primary: Call) -> Any:
        return _transaction(mirror, state, primary, params, flagged, changes)

    # All or nothing: a committed transaction carried out every statement.
    return _with_unknown(mirror, call, unknown, run, lambda _: unknown)


def _with_unknown(
    mirror: Mirror,
    call: Call,
    unknown: Sequence[_Planned],
    run: Callable[[Call], Any],
    written: Callable[[Any], Sequence[_Planned]],
) -> Any:
    """Run a PartiQL call some of whose write statements name no readable key.

    Their tables are journaled before the primary call (write-ahead); once the primary
    answered, those it changed (``written(response)``) are reported ``unsupported``, each with
    its table and no key, and the table-level ``unsupported`` entries replace the intent.

    Args:
        mirror: the wrapped client's mirror.
        call: the primary client's bound method.
        unknown: the flag-on statements whose key could not be read.
        run: makes the call, given the primary method to use (the rest of the handler).
        written: given the primary's response, which of ``unknown`` it carried out.

    Returns:
        What ``run`` returns: the primary's response.
    """
    if not unknown:
        return run(call)
    ahead = mirror.intend(unknown[0].write, [p.write for p in unknown])
    answered: list[Any] = []

    def primary(**kwargs: Any) -> Any:
        response = ahead.primary(call, kwargs)  # a failure settles the intent as it says
        answered.append(response)
        return response

    try:
        return run(primary)
    finally:
        if answered:  # also when a shadow error is raised to the caller (on_shadow_error)
            done, failed = safe_invoke(written, answered[0])
            events = [
                Unsupported(write=p.write, reason=p.unsupported()[0], detail=p.unsupported()[1])
                for p in (unknown if failed is not None else done)
            ]
            mirror.writer.report(events, intent=ahead)
