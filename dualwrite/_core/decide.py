"""Deciding a call: the one place that asks the flag, the ``stage`` callback and ``tenant_of``.

Holds :class:`Decider`, which every decision goes through (a wrapped write's flag or stage, the
stage the proxy routes a call by, a scheduled job's stage) and which alone reports what went
wrong while deciding (``flag_failed``, ``no_tenant``); :class:`Decision`, the stage decided for
one resource of one call; and the thread-local scope through which the proxy
(:mod:`dualwrite._core.routing`) hands its decisions to the handlers (:func:`decided`,
:func:`scoped_decisions`), so that a handler asks nothing twice.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from dualwrite._core.errors import describe_error, safe_invoke
from dualwrite._stage import FALLBACK, REVERSED, Stage
from dualwrite.events import FlagFailed, NoTenant, Write, _new_write

if TYPE_CHECKING:
    from dualwrite._core.runtime import Runtime

logger = logging.getLogger("dualwrite")
_warned_no_tenant = False


class Decision(NamedTuple):
    """The stage decided for one resource of one call (``stage=`` writers).

    ``mirrored`` says whether the call's other account gets the write: ``DUAL_WRITE`` on the
    old-first side, ``CUTOVER`` on the new-first side, and every fallback (see
    :data:`dualwrite._stage.FALLBACK`). ``write``, for a call of one S3 key (an immutable
    ``str``) routed old account first, is the write as decided (tenant and stage set), so that
    the handler that describes the same operation and key takes it as is (:func:`routed`). A
    tuple, not an attrs class: every staged call makes one.
    """

    tenant: str | None
    stage: Stage
    mirrored: bool
    write: Write | None = None


# The decisions of the call being made in this thread, by resource as the handling mirror names
# it; set by the proxy around one handler call (dualwrite._core.routing.decided). Also the flag
# decision an async proxy took on its loop for the call (pre_decided).
class _Box:
    """One thread's scope: plain attributes, for code that reads and sets several of them.

    Each read of a ``threading.local``'s attribute looks the thread's dictionary up (about 500
    instructions); ``_scope.box`` is looked up once, and its attributes are then an object's.
    """

    __slots__ = ("asked", "decisions")

    def __init__(self) -> None:
        self.decisions: dict[str, Decision] | None = None
        self.asked: tuple[Write, Asked] | None = None


class _Scope(threading.local):
    box: _Box

    def __init__(self) -> None:  # in each thread, on its first use of _scope
        self.box = _Box()


_scope = _Scope()
_pre_decided_used = False
"""Whether any thread ever entered :func:`pre_decided` (set before its thread-local is)."""


class Asked(NamedTuple):
    """What :meth:`Decider.ask` found: the write (tenant resolved), whether the flag is on, and
    the failure to report (``source`` is ``"tenant_of"`` or ``"flag"``), if any."""

    write: Write
    on: bool
    source: str | None
    error: BaseException | None


@contextlib.contextmanager
def pre_decided(write: Write, asked: Asked) -> Any:
    """Make ``asked`` the answer for ``write`` when this thread's handler decides it (once).

    An async proxy asks the flag on its loop (:meth:`Decider.ask`), so that a clean "off" needs
    no worker thread; when it hands the call to one, the handler's :meth:`Decider.decide` of the
    same write takes this answer instead of asking again: the flag is asked once per call.
    """
    global _pre_decided_used  # noqa: PLW0603 - set once, never unset: see Decider.decide
    _pre_decided_used = True
    box = _scope.box
    box.asked = (write, asked)
    try:
        yield
    finally:
        box.asked = None


def routed(operation: str, resource: str, key: object) -> tuple[Write, bool] | None:
    """The write the proxy decided for this call, if it is ``operation`` on ``resource`` and
    ``key`` (see :class:`Decision`), and whether it is mirrored; else ``None``."""
    decisions = _scope.box.decisions
    if decisions is None:
        return None
    decision = decisions.get(resource)
    if decision is None:
        return None
    write = decision.write
    # The proxy described it with the same mirror, from the same bucket and key parameters:
    # what the handler's own describe() would give (S3 names a bucket one way only).
    if write is None or write.operation != operation or write.key != key:
        return None
    return write, decision.mirrored


def scoped_decisions() -> dict[str, Decision] | None:
    """The decisions of the call this thread is making, if the proxy took them."""
    return _scope.box.decisions


def set_decisions(decisions: dict[str, Decision] | None) -> None:
    """Make ``decisions`` this thread's current call's (the caller restores the previous ones;
    :func:`decided` does both)."""
    _scope.box.decisions = decisions


@contextlib.contextmanager
def decided(decisions: dict[str, Decision] | None) -> Any:
    """Make ``decisions`` the current call's, for :meth:`Decider.decide` (nesting-safe)."""
    box = _scope.box
    previous = box.decisions
    box.decisions = decisions
    try:
        yield
    finally:
        box.decisions = previous


def with_stage(write: Write, tenant: str | None, stage: Stage | None) -> Write:
    """``write`` with its tenant and stage set: ``attrs.evolve`` without its per-call look at
    the class's fields (every staged write makes one)."""
    return _new_write(
        tenant,
        write.service,
        write.operation,
        write.resource,
        write.shadow_resource,
        write.key,
        stage,
    )


def _flag_answer(flag: Any, write: Write) -> bool:
    """The flag's answer for ``write`` as a bool: its ``__bool__`` is the user's code too."""
    return bool(flag(write))


class Decider:
    """Asks the flag, the ``stage`` callback and ``tenant_of`` of one writer. Never raises.

    Every failure to decide is reported here, once: a ``flag_failed`` event (with the key
    journaled ``flag_failed`` when a ``flag=`` writer's write is then not mirrored), and a
    ``no_tenant`` event for a write whose flag is asked without a tenant. The writer's settings
    are read at each call, so a changed ``stage``/``flag`` applies to the next one.

    Args:
        writer: the runtime whose ``flag``, ``stage``, ``tenant_of`` and hooks apply.
    """

    __slots__ = ("_writer",)

    def __init__(self, writer: Runtime) -> None:
        self._writer = writer

    def decide(self, write: Write, *, reverse: bool = False) -> tuple[Write, bool]:
        """Resolve the tenant and ask the flag (or take the stage): whether the other account
        gets a write handled by the mirror of direction ``reverse``.

        With stages, the decision the proxy took for the call (:func:`decided`) is used; a write
        the proxy did not decide (an upload unknown to this wrapper) is asked now, and a stage of
        the other direction means both accounts, this mirror's way round.

        Returns:
            The write with its tenant (and stage) filled in, and whether the shadow gets it.
        """
        writer = self._writer
        if writer.stage is not None:
            return self._decide_stage(write, reverse)
        # Asked already, by an async proxy? (A thread-local costs ~500 instructions a read: a
        # process that never used pre_decided() does not read it.)
        if _pre_decided_used:
            asked = _scope.box.asked
            if asked is not None and asked[0] == write:
                _scope.box.asked = None
                return self.settle(asked[1])
        flag = writer.flag
        if writer.tenant_of is not None or flag is True or flag is False:
            return self.settle(self.ask(write))
        # The common case, ask() and settle() in one (every write of a flag-off service goes
        # through here): a flag callable, no tenant_of.
        try:
            on = bool(flag(write))
        except Exception as exc:  # noqa: BLE001 - the flag is the user's code: contained
            if write.tenant is None:
                self._no_tenant(write)
            self._failed(write, "flag", exc)
            return write, False
        if write.tenant is None and (writer.wants_no_tenant or not _warned_no_tenant):
            self._no_tenant(write)
        return write, on

    def ask(self, write: Write) -> Asked:
        """Resolve the tenant and ask the flag (``flag=`` writers), reporting nothing.

        For a caller that must know the answer before it can report (an async proxy asks on
        its event loop, and reports through :meth:`settle` on a worker thread, or not at all
        when the answer is a clean "off"; see :func:`pre_decided`).
        """
        tenant_of = self._writer.tenant_of
        if write.tenant is None and tenant_of is not None:
            tenant, exc = safe_invoke(tenant_of, write)
            if exc is not None:
                return Asked(write, False, "tenant_of", exc)
            if tenant is not None:
                write = attrs.evolve(write, tenant=str(tenant))
        flag = self._writer.flag
        if flag is True or flag is False:
            return Asked(write, flag, None, None)
        on, exc = safe_invoke(_flag_answer, flag, write)
        if exc is not None:
            return Asked(write, False, "flag", exc)
        return Asked(write, on, None, None)

    def settle(self, asked: Asked) -> tuple[Write, bool]:
        """Report what :meth:`ask` found (``flag_failed``, ``no_tenant``); the decision."""
        write = asked.write
        if asked.source == "tenant_of":
            self._failed(write, "tenant_of", asked.error)  # type: ignore[arg-type]
            return write, False
        flag = self._writer.flag
        if write.tenant is None and not (flag is True or flag is False):
            self._no_tenant(write)
        if asked.error is not None:
            self._failed(write, "flag", asked.error)
        return write, asked.on

    def quiet(self, asked: Asked) -> bool:
        """Whether :meth:`settle` would report nothing for ``asked``."""
        if asked.error is not None:
            return False
        flag = self._writer.flag
        return asked.write.tenant is not None or flag is True or flag is False

    def _decide_stage(self, write: Write, reverse: bool) -> tuple[Write, bool]:
        decisions = _scope.box.decisions
        decision = decisions.get(write.resource) if decisions else None
        # decision.write is not taken here: its key may be the caller's own objects (a DynamoDB
        # Key's maps), where the handler's write holds its copy (semantics 10). S3's handlers
        # take it before describing (routed(): a key there is an immutable str).
        if decision is None:
            write, stage = self.stage(write)
            if reverse == (stage in REVERSED):
                decision = Decision(write.tenant, stage, stage.mirrored)
            else:  # the other direction's stage: both accounts, this mirror's way round
                fallback = Stage.CUTOVER if reverse else FALLBACK
                decision = Decision(write.tenant, fallback, True)
        return with_stage(write, decision.tenant, decision.stage), decision.mirrored

    def stage(self, write: Write) -> tuple[Write, Stage]:
        """Resolve the tenant (``tenant_of``) and ask the ``stage`` callback.

        A failure is a ``flag_failed`` event, and the stage is then :data:`FALLBACK`.
        """
        writer = self._writer
        if write.tenant is None and writer.tenant_of is not None:
            write, failed = self._tenant(write)
            if failed:
                return write, FALLBACK
        # stage_now(), inline for a callback that answers a Stage: every staged call asks.
        try:
            value = writer.stage(write)  # type: ignore[misc] # not None: a staged writer
        except Exception as exc:  # noqa: BLE001 - the user's code: contained
            self._failed(write, "stage", exc)
            return write, FALLBACK
        if type(value) is Stage:
            return write, value
        stage = self._coerced(write, value, report=True)
        return write, FALLBACK if stage is None else stage

    def job_stage(self, tenant: str | None, job: str) -> Stage | None:
        """The stage of a scheduled job's tenant (``flag=``: ``DUAL_WRITE`` or ``OFF``).

        The callback gets a :class:`~dualwrite.Write` with ``service="job"``,
        ``operation="RunsHere"`` and ``resource=job``; ``tenant_of`` is not asked.

        Returns:
            The stage, or ``None`` (after a ``flag_failed`` event) when it cannot be decided.
        """
        write = Write(
            tenant=tenant,
            service="job",
            operation="RunsHere",
            resource=job,
            shadow_resource=None,
        )
        if self._writer.stage is not None:
            return self.stage_now(write)
        flag = self._writer.flag
        if isinstance(flag, bool):
            return Stage.DUAL_WRITE if flag else Stage.OFF
        on, exc = safe_invoke(_flag_answer, flag, write)
        if exc is not None:
            self._failed(write, "flag", exc)
            return None
        return Stage.DUAL_WRITE if on else Stage.OFF

    def conflict(self, write: Write, api: str, stages: Iterable[tuple[str, Stage]]) -> None:
        """Report a call whose resources' stages disagree on the account written first (it goes
        to both accounts, the old one first)."""
        named = list(stages)
        self._report(
            write,
            "stage",
            "StageConflict",
            f"{api} names {', '.join(repr(r) for r, _ in named)}, whose stages "
            f"({', '.join(s.name for _, s in named)}) disagree on the account written first; "
            "it went to both accounts, the old one first",
        )

    def _tenant(self, write: Write) -> tuple[Write, bool]:
        """``write`` with the tenant ``tenant_of`` derives, if it has none; and whether that
        failed (reported)."""
        tenant_of = self._writer.tenant_of
        if write.tenant is not None or tenant_of is None:
            return write, False
        tenant, exc = safe_invoke(tenant_of, write)
        if exc is not None:
            self._failed(write, "tenant_of", exc)
            return write, True
        if tenant is not None:
            write = attrs.evolve(write, tenant=str(tenant))
        return write, False

    def stage_now(self, write: Write, *, report: bool = True) -> Stage | None:
        """The ``stage`` callback's answer for ``write`` as it is (no ``tenant_of``, no
        fallback), or ``None`` when it raised or returned no stage.

        Args:
            write: what the callback gets.
            report: send a ``flag_failed`` event for a failure (``False``: e.g. a repair, which
                only skips the key).
        """
        stage_of = self._writer.stage
        assert stage_of is not None
        try:  # safe_invoke, inline: every staged call asks it
            value = stage_of(write)
        except Exception as exc:  # noqa: BLE001 - the user's code: contained
            if report:
                self._failed(write, "stage", exc)
            return None
        return value if type(value) is Stage else self._coerced(write, value, report=report)

    def _coerced(self, write: Write, value: Any, *, report: bool) -> Stage | None:
        """The stage callback's ``value`` as a :class:`Stage` (``Stage.coerce``), or ``None``,
        reported (``flag_failed``) if ``report``."""
        stage = Stage.coerce(value)
        if stage is None and report:
            message = f"the stage callback returned {value!r}, not a dualwrite.Stage"
            self._failed(write, "stage", TypeError(message))
        return stage

    def _failed(self, write: Write, source: str, exc: BaseException) -> None:
        """Report a flag, ``stage`` or ``tenant_of`` that failed; journal the key if it is then
        not mirrored.

        With ``flag=`` the shadow is not written, so the key may diverge: it is journaled
        (``flag_failed``) before the primary is called, like an intent, so that a crash right
        after the primary's ack cannot lose it. If the primary then fails, repair finds the two
        accounts equal and only removes the entry. With stages a failure falls back to writing
        both accounts: nothing to journal.
        """
        info = describe_error(exc)
        if self._writer.stage is None and write.shadow_resource is not None:
            self._writer.journal_now(write, None, "flag_failed", f"{source}: {info.type}")
        self._report(write, source, info.type, info.message)

    def _report(self, write: Write, source: str, error_type: str, message: str) -> None:
        """Send the ``flag_failed`` event: the one place it is built."""
        self._writer.emit(
            FlagFailed(write=write, source=source, error_type=error_type, error_message=message)
        )

    def _no_tenant(self, write: Write) -> None:
        global _warned_no_tenant  # noqa: PLW0603 - one warning per process
        if not _warned_no_tenant:
            _warned_no_tenant = True
            logger.warning(
                "dualwrite: a %s %s write on %r has no tenant: no dualwrite.tenant() block is "
                "active and tenant_of gave none, so a flag that checks the tenant says off and "
                "the write is not mirrored (logged once per process; MetricsHook counts each "
                "such write as no_tenant)",
                write.service,
                write.operation,
                write.resource,
            )
        if self._writer.wants_no_tenant:
            self._writer.emit_no_tenant(NoTenant(write=write))
