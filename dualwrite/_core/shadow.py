"""The shadow side of one write: run its action, collect the outcome, report it.

Holds :class:`ShadowContext` (what a shadow action gets and reports through), the
:data:`ShadowAction` type, :class:`Outcome` (what one shadow attempt produced),
:func:`shadow_outcome` / :func:`settle` / :func:`finish` / :func:`run_shadow` (run an action,
turn what it did into events and journal entries, send them), and the daemon threads that let a
sync-mode caller stop waiting for a hung shadow (``shadow_timeout``).
"""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from dualwrite._core.bodies import Body
from dualwrite._core.decide import scoped_decisions, set_decisions
from dualwrite._core.errors import (
    ErrorInfo,
    SkipShadow,
    UnsupportedWrite,
    describe_error,
)
from dualwrite.events import (
    CircuitClosed,
    CircuitOpened,
    Event,
    Mismatch,
    ShadowFailed,
    ShadowWritten,
    Unsupported,
    Write,
)
from dualwrite.exceptions import ShadowWriteError

if TYPE_CHECKING:
    from dualwrite._core.intent import Intent
    from dualwrite._core.mirror import Mirror

logger = logging.getLogger("dualwrite")


class ShadowContext:
    """What a shadow action gets: the write, the shadow client, and ways to report outcomes.

    Attributes:
        write: the write being mirrored (its ``shadow_resource`` is set).
        shadow: the shadow client.
        mirror: the :class:`Mirror` the write goes through.
    """

    __slots__ = ("_acked", "_failures", "_secrets", "events", "mirror", "shadow", "write")

    def __init__(self, mirror: Mirror, write: Write, secrets: tuple[object, ...]) -> None:
        self.mirror = mirror
        self.write = write
        self.shadow = mirror.shadow
        self.events: list[Event] = []
        self._failures: list[tuple[ShadowFailed, BaseException | None]] = []
        self._secrets = secrets
        self._acked: float | None = None

    def written(self) -> None:
        """Mark that the shadow acknowledged this write's own calls: what the action does next
        (the fleet check's read of the primary, a convergence it leads to) is not part of the
        write's ``latency`` and ``lag`` in ``shadow_written``. The first mark counts."""
        if self._acked is None:
            self._acked = time.perf_counter()

    def mismatch(self, field: str, primary: object, shadow: object) -> None:
        """Report that ``field`` differs between the primary's and the shadow's results."""
        self.events.append(
            Mismatch(
                write=self.write,
                field=field,
                primary=None if primary is None else str(primary),
                shadow=None if shadow is None else str(shadow),
            )
        )

    def unsupported(self, write: Write, reason: str, detail: str = "") -> None:
        """Report that one part of the call (e.g. one key of a batch) cannot be mirrored."""
        self.events.append(Unsupported(write=write, reason=reason, detail=detail))

    def converge(self) -> str:
        """Make the shadow's copy of this write's key equal to the primary's current state.

        For a write whose replay cannot be trusted, e.g. a server-side copy whose source the
        shadow holds at another version (in background mode the source's own writes wait in
        another queue). Reads the primary; raises what the read or the write raises.

        Returns:
            ``"copied"`` or ``"deleted"``.
        """
        # The write is already ordered: by the key's lock, which the caller's thread holds in
        # sync mode, or by the key's queue on a background worker. Taking the lock again on a
        # worker could wait for a caller that waits for this worker's queue.
        _converging.active = True
        try:
            return self.mirror.plugin.converge(self.mirror, self.write.resource, self.write.key)
        finally:
            _converging.active = False

    def failed(self, write: Write, error: BaseException | ErrorInfo, latency: float = 0.0) -> None:
        """Report that the write, or one part of it (one key of a batch), failed on the shadow.

        Args:
            write: the write (or the one key) that failed.
            error: the shadow's exception, or an :class:`ErrorInfo` for errors reported inside
                a successful response (e.g. ``DeleteObjects``' ``Errors``).
            latency: seconds the failed call took.
        """
        if isinstance(error, ErrorInfo):
            info, exc = error, None
        else:
            info, exc = describe_error(error, self._secrets), error
        event = ShadowFailed(
            write=write,
            error_type=info.type,
            error_code=info.code,
            error_message=info.message,
            latency=latency,
        )
        self.events.append(event)
        self._failures.append((event, exc))


class _Converging(threading.local):
    active = False  # a class default: read without an AttributeError in other threads


_converging = _Converging()


def converging() -> bool:
    """Whether this thread is inside :meth:`ShadowContext.converge` (the key is already ordered)."""
    return _converging.active


ShadowAction = Callable[[ShadowContext], None]
"""Makes the shadow call(s) for one write; raises to report the whole write as failed."""


class Outcome:
    """What one shadow attempt produced, to journal and send once no lock is held.

    A plain class with positional arguments: every mirrored write builds one, and attrs'
    keyword ``__init__`` with a default factory cost about 5k instructions a call.
    """

    __slots__ = ("events", "failures", "keys", "late", "reason", "write")

    def __init__(
        self,
        write: Write,
        keys: Sequence[Any] | None,
        events: list[Event],
        reason: str = "",
        failures: list[tuple[ShadowFailed, BaseException | None]] | None = None,
        late: bool = False,
    ) -> None:
        self.write = write
        self.keys = keys
        self.events = events
        self.reason = reason
        self.failures: list[tuple[ShadowFailed, BaseException | None]] = (
            [] if failures is None else failures
        )
        self.late = late

    def __repr__(self) -> str:
        return (
            f"Outcome(write={self.write!r}, keys={self.keys!r}, events={self.events!r}, "
            f"reason={self.reason!r}, failures={self.failures!r}, late={self.late!r})"
        )


_NO_RESPONSE: Any = object()
"""``shadow_outcome(response=)`` not given: the action takes the context alone."""


def _attempt(
    action: Callable[..., None], ctx: ShadowContext, response: Any
) -> BaseException | None:
    try:
        if response is _NO_RESPONSE:
            action(ctx)
        else:
            action(ctx, response)
    except Exception as exc:  # noqa: BLE001 - a shadow failure must not reach the caller
        return exc
    return None


def shadow_outcome(
    mirror: Mirror,
    write: Write,
    action: Callable[..., None],
    *,
    response: Any = _NO_RESPONSE,
    acked_at: float,
    secrets: tuple[object, ...] = (),
    keys: Sequence[Any] | None = None,
    timeout: float | None = None,
    body: Body | None = None,
) -> Outcome:
    """Run ``action`` against the shadow and collect what to report, without reporting it.

    ``action`` is a :data:`ShadowAction`, or, given ``response`` (the primary's), an action
    called as ``action(ctx, response)``. With ``timeout``, the action runs on a helper thread
    and the caller waits that long at most; past it the outcome is a ``shadow_failed``
    (``ShadowTimeout``) to journal as ``timeout``, and the late action reports its own outcome
    when it ends (and closes ``body``), without removing any entry.
    """
    if write.shadow_resource is None:
        return Outcome(
            write=write,
            keys=keys,
            events=[
                Unsupported(
                    write=write,
                    reason="unmapped",
                    detail=f"no shadow name for {mirror.service} resource {write.resource!r}; "
                    "pass names=",
                )
            ],
        )
    circuit = mirror.circuit
    if circuit is not None and not circuit.allow():
        return Outcome(
            write=write,
            keys=keys,
            reason="circuit_open",
            events=[
                ShadowFailed(
                    write=write,
                    error_type="CircuitOpen",
                    error_code=None,
                    error_message="the shadow failed repeatedly; not called until the "
                    "circuit breaker's next probe",
                )
            ],
        )
    ctx = ShadowContext(mirror, write, secrets)
    started = time.perf_counter()
    raised: BaseException | None = None
    if timeout is None:
        try:  # _attempt(), inline: one frame less on the sync path
            if response is _NO_RESPONSE:
                action(ctx)
            else:
                action(ctx, response)
        except Exception as exc:  # noqa: BLE001 - a shadow failure must not reach the caller
            raised = exc
    else:
        late = _Late(mirror, ctx, action, response, started, acked_at, keys, body)
        if not _RUNNER.run(late, timeout):
            # The shadow did not answer in time. Its call goes on; the key is journaled now.
            if circuit is not None and circuit.failure():
                circuit_event: list[Event] = [CircuitOpened(write=write, service=mirror.service)]
            else:
                circuit_event = []
            return Outcome(
                write=write,
                keys=keys,
                reason="timeout",
                late=True,
                events=[
                    ShadowFailed(
                        write=write,
                        error_type="ShadowTimeout",
                        error_code=None,
                        error_message=f"the shadow did not answer within {timeout:.3g} s "
                        "(shadow_timeout plus the primary's duration); the key is journaled",
                        latency=time.perf_counter() - started,
                    ),
                    *circuit_event,
                ],
            )
        raised = late.raised
    return settle(mirror, ctx, raised, started, acked_at, keys, circuit)


def settle(
    mirror: Mirror,
    ctx: ShadowContext,
    raised: BaseException | None,
    started: float,
    acked_at: float,
    keys: Sequence[Any] | None,
    circuit: Any,
) -> Outcome:
    write = ctx.write
    whole_failed = False
    healthy = True  # whether the outcome tells the circuit the shadow answered
    ended = time.perf_counter()
    if raised is None:
        pass  # the common case, handled below without the type checks
    elif isinstance(raised, SkipShadow):
        if circuit is not None:
            circuit.release()
        return Outcome(write=write, keys=keys, events=[])
    if raised is None:
        if not ctx._failures and mirror.writer.hooks:  # journaled never; built for a hook only
            # Up to the shadow's acknowledgement, not the fleet check's read-back after it.
            acked = ended if ctx._acked is None else ctx._acked
            ctx.events.insert(
                0, ShadowWritten(write=write, latency=acked - started, lag=acked - acked_at)
            )
    elif isinstance(raised, UnsupportedWrite):
        healthy = False
        ctx.events.insert(0, Unsupported(write=write, reason=raised.reason, detail=raised.detail))
    elif raised is not None:
        whole_failed = True
        ctx.failed(write, raised, ended - started)
        ctx.events.insert(0, ctx.events.pop())
    if circuit is not None:
        if whole_failed:
            if circuit.failure():
                ctx.events.append(CircuitOpened(write=write, service=mirror.service))
        elif not healthy:
            circuit.release()
        elif circuit.success():
            ctx.events.append(CircuitClosed(write=write, service=mirror.service))
    return Outcome(write, keys, ctx.events, "", ctx._failures)


def finish(
    mirror: Mirror,
    outcome: Outcome,
    *,
    deferred: list[ShadowWriteError] | None = None,
    intent: Intent | None = None,
) -> None:
    """Journal an outcome, settle the write's intent, send the events; raise if asked.

    Raises:
        ShadowWriteError: only with ``on_shadow_error="raise"``, after the events were sent.
    """
    if not outcome.events:  # nothing to journal, send or raise: settle the intent only
        if intent is not None:
            intent.settle()
        return
    write = outcome.write
    mirror.writer.report(outcome.events, outcome.keys, reason=outcome.reason, intent=intent)
    if mirror.writer.on_shadow_error != "raise":
        return
    failed = [e for e in outcome.events if isinstance(e, ShadowFailed)]
    if not failed:
        return
    cause = outcome.failures[0][1] if outcome.failures else None
    event = outcome.failures[0][0] if outcome.failures else failed[0]
    msg = (
        f"shadow {write.operation} to {write.shadow_resource!r} failed after the primary "
        f"write succeeded: {event.error_type}: {event.error_message}"
    )
    error = ShadowWriteError(msg, event=event)
    error.__cause__ = cause
    if deferred is not None:
        deferred.append(error)
        return
    raise error


def run_shadow(
    mirror: Mirror,
    write: Write,
    action: ShadowAction,
    *,
    acked_at: float,
    secrets: tuple[object, ...] = (),
    keys: Sequence[Any] | None = None,
    deferred: list[ShadowWriteError] | None = None,
    intent: Intent | None = None,
) -> None:
    """Run ``action`` against the shadow, then report and journal its outcome (see
    :meth:`Mirror.run_shadow <dualwrite._core.mirror.Mirror.run_shadow>`)."""
    outcome = shadow_outcome(mirror, write, action, acked_at=acked_at, secrets=secrets, keys=keys)
    finish(mirror, outcome, deferred=deferred, intent=intent)


def closed_event(write: Write) -> ShadowFailed:
    return ShadowFailed(
        write=write,
        error_type="WriterClosed",
        error_code=None,
        error_message="the DualWriter was closed; the shadow was not called and the key is "
        "journaled (closed)",
    )


# -- sync mode: bounded waits for the shadow -------------------------------------------------


class _Late:
    """A shadow action run on a helper thread, which the caller may stop waiting for.

    Also what the helper thread is handed: it runs the action in the caller's context
    (``contextvars``) and with the caller's stage decisions, then releases ``_done``, the plain
    lock the caller waits on (acquired here, released once by the helper).
    """

    __slots__ = (
        "_done",
        "_finished",
        "_lock",
        "abandoned",
        "acked_at",
        "action",
        "body",
        "context",
        "ctx",
        "decisions",
        "keys",
        "mirror",
        "raised",
        "response",
        "started",
    )

    def __init__(
        self,
        mirror: Mirror,
        ctx: ShadowContext,
        action: Callable[..., None],
        response: Any,
        started: float,
        acked_at: float,
        keys: Sequence[Any] | None,
        body: Body | None,
    ) -> None:
        self.mirror = mirror
        self.ctx = ctx
        self.action = action
        self.response = response
        self.started = started
        self.acked_at = acked_at
        self.keys = keys
        self.body = body
        self.raised: BaseException | None = None
        self.abandoned = False
        self.context = contextvars.copy_context()
        # A flag-mode writer's calls have no decisions: no thread-local to read.
        self.decisions = None if mirror.writer.stage is None else scoped_decisions()
        self._finished = False
        self._lock = threading.Lock()
        self._done = threading.Lock()
        self._done.acquire()

    def serve(self) -> None:
        """Run on the helper thread: the action in the caller's context and decisions."""
        decisions = self.decisions
        if decisions is None:  # a helper thread has none of its own between tasks
            self.context.run(self)
            return
        previous = scoped_decisions()
        set_decisions(decisions)
        try:
            self.context.run(self)
        finally:
            set_decisions(previous)

    def __call__(self) -> None:
        self.raised = _attempt(self.action, self.ctx, self.response)
        with self._lock:
            abandoned = self.abandoned
            self._finished = True
        self._done.release()
        if not abandoned:
            return
        # The caller gave up and journaled the key ("timeout"). Report what happened; the
        # entry stays (a late write may have landed after a newer one: repair decides).
        if self.body is not None:
            self.body.close()
        mirror = self.mirror
        outcome = settle(
            mirror, self.ctx, self.raised, self.started, self.acked_at, self.keys, None
        )
        mirror.writer.report(outcome.events, outcome.keys, reason="timeout")

    def wait(self, timeout: float) -> bool:
        if self._done.acquire(True, timeout):
            return True
        with self._lock:
            if self._finished:
                return True
            self.abandoned = True
            return False


class _Runner:
    """Daemon threads that run sync-mode shadow actions, so that a caller can stop waiting.

    Threads are reused; one is added whenever none is idle (a hung shadow holds one thread per
    abandoned call until its client gives up). Daemon threads never delay interpreter exit.
    """

    def __init__(self) -> None:
        self._idle: list[queue.SimpleQueue[_Late]] = []
        self._lock = threading.Lock()
        self._count = 0

    def run(self, late: _Late, timeout: float) -> bool:
        """Run ``late`` in the caller's context; return whether it finished within ``timeout``."""
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            with self._lock:
                self._count += 1
                name = f"dualwrite-shadow-{self._count}"
            threading.Thread(target=self._serve, args=(inbox,), name=name, daemon=True).start()
        inbox.put(late)
        return late.wait(timeout)

    def _serve(self, inbox: queue.SimpleQueue[_Late]) -> None:
        while True:
            late = inbox.get()
            try:
                late.serve()
            except Exception:  # pragma: no cover - tasks contain their own failures
                logger.exception("dualwrite: a shadow call raised outside its guard")
            with self._lock:
                self._idle.append(inbox)


_RUNNER = _Runner()


def _after_fork() -> None:
    # A forked child has none of the parent's threads: idle inboxes would never be served.
    global _RUNNER  # noqa: PLW0603 - replaced once per fork
    _RUNNER = _Runner()


os.register_at_fork(after_in_child=_after_fork)
