"""The one choke point: flag, primary call, shadow call, events.

Every mirrored operation of every service goes through :class:`Mirror`. The sequence is always:

1. describe the write (:class:`~dualwrite.events.Write`), resolve the tenant, ask the flag, in
   the caller's thread, with every exception of ``tenant_of`` or the flag contained;
2. call the primary; its response or exception reaches the caller untouched;
3. only if the primary succeeded and the flag was on, run the shadow action, whose exceptions
   become ``shadow_failed`` events (or ``ShadowWriteError`` when the caller asked for it).

A shadow action is a function of one :class:`~dualwrite._core.shadow.ShadowContext`; it makes
the shadow call(s) and reports mismatches or per-key outcomes through the context. This module
holds :class:`Mirror` (one wrapped pair: names, key locks, the reverse mirror of a staged pair,
the order primary call -> shadow action); the write-ahead intent is in
:mod:`dualwrite._core.intent`, the shadow side in :mod:`dualwrite._core.shadow`, the stage
decisions in :mod:`dualwrite._core.decide`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dualwrite._context import _TENANT
from dualwrite._core.bodies import Body
from dualwrite._core.errors import safe_invoke
from dualwrite._core.intent import Intent, call_primary, journal_faults, track_sends
from dualwrite._core.keys import freeze
from dualwrite._core.shadow import (
    Outcome,
    ShadowAction,
    ShadowContext,
    _converging,
    closed_event,
    finish,
    run_shadow,
    shadow_outcome,
)
from dualwrite.events import Unsupported, Write, _new_write
from dualwrite.exceptions import ShadowWriteError

if TYPE_CHECKING:
    from dualwrite._core.runtime import Runtime
    from dualwrite._core.service import Service

# ShadowContext: the service packages' handlers import it from here, with Mirror.
__all__ = ["Mirror", "ShadowContext"]

logger = logging.getLogger("dualwrite")


# RLock: a hook that writes through a wrapped client from inside a shadow action must not
# deadlock on its own thread's stripe.
_KEY_LOCKS = tuple(threading.RLock() for _ in range(1024))


class Mirror:
    """One primary/shadow client pair of one service, bound to one writer's runtime.

    Args:
        writer: the :class:`~dualwrite._core.runtime.Runtime` of the
            :class:`~dualwrite.DualWriter` whose flag, hooks and policies apply (``mirror.writer``).
        service: what the engine needs to know about the pair's AWS service.
        primary: the real primary client.
        shadow: the real shadow client.
        names: primary resource name -> shadow name (mapping or callable), or ``None``.
        state: the service's own per-pair state (e.g. S3 multipart upload ids), opaque here.
        forward: for the reverse mirror of a stage-routed pair (new account first), the
            forward one.
    """

    def __init__(
        self,
        writer: Runtime,
        *,
        service: Service,
        primary: Any,
        shadow: Any,
        names: Any,
        state: Any = None,
        forward: Mirror | None = None,
    ) -> None:
        self.writer = writer
        self.plugin = service
        self.service = service.name
        self.primary = primary
        self.shadow = shadow
        self._names = names
        self._identity_names = service.identity_names
        self.state = state
        self.circuit = writer.new_circuit()
        # Stages (``stage=`` writers): the forward mirror (old account first) builds its reverse
        # (new account first) on the first CUTOVER call; the reverse names resources by the new
        # account's names and finds the old ones in ``_seen``.
        self.forward = forward
        self._reverse: Mirror | None = None
        self._reverse_lock = threading.Lock()
        self._seen: dict[str, str] = {}
        # decide(write) -> (write with its tenant, whether the shadow gets it): resolves the
        # tenant (tenant_of) and asks the flag, or takes the call's stage; never raises (see
        # Decider.decide). Bound once: every write of the pair asks it, flag on or off.
        self.decide: Callable[[Write], tuple[Write, bool]] = (
            writer.decider.decide
            if forward is None
            else functools.partial(writer.decider.decide, reverse=True)
        )
        # Whether the primary's sent requests are counted, to classify its failures. Only an
        # intent (a journal's) reads the count: without a journal the counter is not registered
        # (a before-send handler runs in every call of the primary client, flag on or off,
        # reads too: a few thousand instructions, 0.1-0.3% of a plain put_item).
        self._tracks_sends = writer.journal is not None and track_sends(primary)
        if forward is None:
            writer.register(self)

    def runs_inline(self) -> bool:
        """Whether a write's shadow action runs now in the caller's thread and ends before its
        call returns: sync mode with no ``shadow_timeout``. Such an action may then read the
        caller's request itself rather than a call-time copy (semantics 10): the caller cannot
        reuse its objects before the call returns. Pass ``borrowed=True`` to :meth:`call`."""
        writer = self.writer
        return not writer.background and writer.shadow_timeout is None

    def key_lock(self, resource: str, key: object) -> contextlib.AbstractContextManager[Any]:
        """Return the lock that orders writes to one key of one resource in this process.

        Holding it from the primary call to the end of the shadow call makes same-key writes
        reach the shadow in the order the primary acknowledged them. Locks are striped (a fixed
        pool shared by hashing), so two keys may share a lock: that only serialises them.
        """
        if _converging.active:  # converging(), without the call
            return contextlib.nullcontext()  # see ShadowContext.converge
        if self.forward is not None:
            # The old account's name: a key written new-first (CUTOVER) and the same key written
            # old-first (a DUAL_WRITE call decided a moment earlier) share one lock.
            resource = self.plugin.lock_name(self.shadow_name(resource) or resource)
        # An int is already hashable (DynamoDB passes its canonical key's hash): no freezing.
        frozen = key if type(key) is int else freeze(key)
        try:
            stripe = hash((self.service, resource, frozen))
        except Exception:  # noqa: BLE001 - a resource name of a shape no request carries
            stripe = hash(self.service)
        return _KEY_LOCKS[stripe % len(_KEY_LOCKS)]

    def key_locks(
        self, targets: Iterable[tuple[str, object]]
    ) -> list[contextlib.AbstractContextManager[Any]]:
        """:meth:`key_lock` of each ``(resource, key)``, each lock once, in the one global order
        (by identity) that every write holding several takes them in: so none can deadlock."""
        if _converging.active:  # as key_lock
            return [contextlib.nullcontext()]
        service, forward, plugin = self.service, self.forward, self.plugin
        count = len(_KEY_LOCKS)
        found = {}
        for named, key in targets:
            resource = named
            if forward is not None:  # as key_lock
                resource = plugin.lock_name(self.shadow_name(named) or named)
            frozen = key if type(key) is int else freeze(key)
            try:
                stripe = hash((service, resource, frozen))
            except Exception:  # noqa: BLE001 - as key_lock
                stripe = hash(service)
            lock = _KEY_LOCKS[stripe % count]
            found[id(lock)] = lock
        return [found[ident] for ident in sorted(found)]

    # -- stages ------------------------------------------------------------------------------

    @property
    def reversed(self) -> bool:
        """Whether this mirror writes the new account first (the reverse of a wrapped pair)."""
        return self.forward is not None

    def new_name(self, resource: str) -> str | None:
        """The new account's name of the old account's ``resource``, remembered for the reverse."""
        name = self.plugin.route_name(self, resource)
        if name is not None and self._seen.get(name) != resource:
            with self._reverse_lock:
                self._seen[name] = resource
        return name

    def old_name(self, resource: str) -> str | None:
        """The old account's name of a resource named by the new account (``names`` inverted)."""
        old = self._seen.get(resource)
        if old is not None:
            return old
        return resource if self._identity_names else None

    def reverse(self) -> Mirror:
        """The mirror that writes the new account first, built on first use."""
        if self._reverse is None:
            with self._reverse_lock:
                if self._reverse is None:
                    if isinstance(self._names, Mapping):
                        for old, new in self._names.items():
                            self._seen.setdefault(new, old)
                    self._reverse = self.plugin.build_reverse(self)
        return self._reverse

    def reverse_if_built(self) -> Mirror | None:
        """The reverse mirror, if a call already needed it."""
        return self._reverse

    # -- describing and deciding -----------------------------------------------------------

    def shadow_name(self, resource: str) -> str | None:
        """Return the shadow's name for the primary bucket or table ``resource``, or ``None``."""
        names = self._names
        if names is None:
            return resource if self._identity_names else None
        if callable(names):
            mapped, exc = safe_invoke(names, resource)
            if exc is not None:
                logger.warning(
                    "dualwrite: names callable raised %s for %r; treated as unmapped",
                    type(exc).__name__,
                    resource,
                )
                return None
            return mapped if isinstance(mapped, str) and mapped else None
        mapped = names.get(resource)
        if mapped is None and self._identity_names:
            return resource
        return mapped if isinstance(mapped, str) and mapped else None

    def describe(self, operation: str, resource: str, key: Any) -> Write:
        """Build the :class:`Write` for one call, with the caller's tenant."""
        return _new_write(
            _TENANT.get(),  # current_tenant(), inline: every write's
            self.service,  # type: ignore[arg-type]
            operation,
            resource,
            self.shadow_name(resource),
            key,
        )

    def reported_call(
        self,
        write: Write,
        call: Callable[..., Any],
        params: Mapping[str, Any],
        reason: str,
        detail: str,
        *,
        reported: Callable[[Any], bool] = lambda response: True,
    ) -> Any:
        """Call the primary for a flag-on write the shadow cannot follow; report it ``unsupported``.

        The write's key (``write.key``; the bucket's or table's entry when it is ``None``) is
        journaled before the primary call (write-ahead), so that a crash right after the
        primary's ack still leaves it in the journal; the ``unsupported`` entry replaces it once
        the primary answered.

        Args:
            write: the write, decided flag-on in the caller's thread.
            call: the primary client's bound method.
            params: the request, as given.
            reason: the ``unsupported`` event's reason.
            detail: the ``unsupported`` event's detail.
            reported: given the primary's response, whether it changed anything to report.

        Returns:
            The primary's response.
        """
        with self.write_ahead(write) as intent:
            response = intent.primary(call, params)
            if reported(response):
                self.unsupported(write, reason, detail)
        return response

    def unsupported(
        self, write: Write, reason: str, detail: str = "", keys: Sequence[Any] | None = None
    ) -> None:
        """Report a write that cannot be mirrored (after the primary succeeded); journal it."""
        self.writer.report([Unsupported(write=write, reason=reason, detail=detail)], keys)

    # -- write-ahead intents -----------------------------------------------------------------

    def intend(self, write: Write, keys: Sequence[Any] | None = None) -> Intent:
        """Journal the intent of a flag-on write, durably, before its primary call.

        For handlers that call the primary themselves (outside :meth:`call`): call the primary
        through :meth:`Intent.primary` (or :meth:`write_ahead`), then either hand the intent
        (or its :meth:`Intent.part` per key) to :meth:`call` with ``intent=``, or settle it
        with :meth:`Intent.settle` once whatever the shadow lacks is journaled.

        Args:
            write: the decided write.
            keys: the keys of a multi-key write (``write.key`` is ``None``).

        Returns:
            The intent; without a journal, an empty one (every method is then a no-op).
        """
        return self.writer.intend(write, keys, mirror=self)

    @contextlib.contextmanager
    def write_ahead(self, write: Write, keys: Sequence[Any] | None = None) -> Iterator[Intent]:
        """``with mirror.write_ahead(write) as intent: response = intent.primary(call, params)``.

        The intent is journaled on entry; a primary exception raised in the block is classified
        (definite: the intent is removed; ambiguous: an ``uncertain`` entry replaces it); on a
        normal exit the intent is removed, unless it was handed on (:meth:`Intent.part`) or a
        journal write of the block failed (it is then kept for repair).
        """
        intent = self.intend(write, keys)
        faults = journal_faults()
        yield intent
        if journal_faults() != faults:  # an entry of the block (unsupported, ...) is missing
            intent.keep()
        intent.settle()

    def call_primary(
        self, intent: Intent | None, call: Callable[..., Any], params: Mapping[str, Any]
    ) -> Any:
        """Call the primary; on an exception settle ``intent`` as the failure says, and re-raise."""
        return call_primary(intent, call, params, tracks_sends=self._tracks_sends)

    # -- the shadow side ---------------------------------------------------------------------

    def call(
        self,
        write: Write,
        call: Callable[..., Any],
        params: Mapping[str, Any],
        action: Callable[[ShadowContext, Any], None],
        *,
        secrets: tuple[object, ...] = (),
        ordered: bool = True,
        body: Body | None = None,
        keys: Sequence[Any] | None = None,
        deferred: list[ShadowWriteError] | None = None,
        hold: contextlib.AbstractContextManager[Any] | None = None,
        intent: Intent | None = None,
        borrowed: bool = False,
    ) -> Any:
        """Call the primary with ``params``, then run ``action(ctx, response)`` on the shadow.

        With a journal, the write's ``pending`` intent is journaled before the primary is
        called (write-ahead) and removed only once the shadow holds the state, or once what
        replaces it (``shadow_failed``, ``timeout``, ``uncertain``, ...) is durable. The
        primary's exception propagates untouched and the shadow is then not called. In sync
        mode the shadow action runs right away and the caller waits for it at most
        ``shadow_timeout`` plus the primary's own duration; in background mode it is queued and
        ``body`` is detached from the caller's object. With ``ordered``, the key's lock
        (:meth:`key_lock`) is held from the primary call until the shadow action ran (sync) or
        was queued (background), so same-key writes from several threads reach the shadow in
        the primary's order. Events are sent to the hooks after the lock is released.

        Args:
            write: the decided write.
            call: the primary client's bound method.
            params: the parameters for the primary.
            action: the shadow call(s), given the primary's response.
            secrets: values to blank out of error messages (SSE-C keys).
            ordered: hold the key's lock (single-key writes).
            body: the request body; closed here once the shadow is done with it.
            keys: for a multi-key write (``write.key`` is ``None``), the keys to journal if the
                whole shadow call fails.
            hold: a lock (context manager) to hold instead of the key's, e.g. the locks of
                every key of a multi-key write; released, like the key's, before a background
                caller waits for room. ``ordered`` is then ignored.
            intent: an intent already journaled (and its primary already called) by the
                handler (:meth:`intend`), used instead of a new one.
            borrowed: ``action`` reads the caller's own objects, not a copy: the handler found
                :meth:`runs_inline` true. The action then runs in the caller's thread with no
                ``shadow_timeout`` even should the setting change meanwhile, so that it is done
                before the call returns (semantics 10).

        Returns:
            The primary's response, the same object botocore returned.
        """
        writer = self.writer
        if writer.closed:
            try:
                return self._call_closed(write, call, params, keys, intent)
            finally:
                if body is not None:
                    body.close()
        if hold is not None:  # the locks of every key of a multi-key write, taken by the caller
            lock = hold
        else:
            lock = self.key_lock(write.resource, write.key) if ordered else contextlib.nullcontext()
        if not writer.background:  # never turned on again once off (close)
            if writer.pool is not None and not writer.settle_queued(write, keys):
                # Closing, and older jobs of this key outlived close()'s timeout: they may
                # still write the shadow, so this write is journaled as a closed writer's.
                try:
                    return self._call_closed(write, call, params, keys, intent)
                finally:
                    if body is not None:
                        body.close()
            if intent is None and writer.journal is not None:  # else it would be empty
                intent = writer.intend(write, keys, mirror=self)
            # Positional: every sync write makes this call (keyword arguments cost a dict).
            return self._sync(
                write, call, params, action, lock, intent, secrets, body, keys, deferred, borrowed
            )
        if borrowed:  # runs_inline() was true: never in background mode (it is never turned on)
            msg = "a borrowed request in background mode"
            raise AssertionError(msg)
        if intent is None:
            intent = writer.intend(write, keys, mirror=self)
        primary_intent = intent
        return self._then_shadow(
            write,
            lambda: self.call_primary(primary_intent, call, params),
            action,
            lock=lock,
            intent=intent,
            secrets=secrets,
            body=body,
            keys=keys,
            deferred=deferred,
        )

    def shadow_acked(
        self,
        write: Write,
        response: Any,
        action: Callable[[ShadowContext, Any], None],
        *,
        hold: contextlib.AbstractContextManager[Any],
        intent: Intent,
        acked: Callable[[], None] | None = None,
    ) -> None:
        """Mirror one key of a write whose primary call already succeeded (``response``).

        For a multi-key write in background mode: the primary was called once for every key,
        and each key's shadow action is queued on that key's own queue, under ``hold`` (the
        key's lock), exactly as :meth:`call` queues a one-key write. After
        :meth:`dualwrite.DualWriter.close`, the key is journaled ``closed`` instead.

        Args:
            write: the key's decided write.
            response: the primary's response to the whole call.
            action: the key's shadow call(s), given ``response``.
            hold: the key's lock, held while the job is queued (or run, in sync mode).
            intent: the key's part of the call's write-ahead intent (:meth:`Intent.part`).
            acked: called under ``hold`` before the job is queued (e.g. to count the key's
                write as acknowledged, in the primary's order).
        """

        def already_called() -> Any:
            if acked is not None:
                acked()
            return response

        if self.writer.closed:
            self._call_closed(write, lambda **_: already_called(), {}, None, intent)
            return
        self._then_shadow(write, already_called, action, lock=hold, intent=intent)

    def _then_shadow(
        self,
        write: Write,
        primary: Callable[[], Any],
        action: Callable[[ShadowContext, Any], None],
        *,
        lock: contextlib.AbstractContextManager[Any],
        intent: Intent,
        secrets: tuple[object, ...] = (),
        body: Body | None = None,
        keys: Sequence[Any] | None = None,
        deferred: list[ShadowWriteError] | None = None,
    ) -> Any:
        """Under ``lock``: ``primary()``, then the shadow action queued (background) or run
        (sync, bounded by ``shadow_timeout``); outside it: wait for room, or send the events."""
        writer = self.writer
        queued = False
        outcome: Outcome | None = None

        def primary_then_shadow() -> Any:
            nonlocal body, queued, outcome
            started = time.perf_counter()
            response = primary()
            acked = time.perf_counter()

            def job() -> None:
                self.run_shadow(
                    write,
                    lambda ctx: action(ctx, response),
                    acked_at=acked,
                    secrets=secrets,
                    keys=keys,
                    intent=intent,
                )

            if writer.background:
                if body is not None:
                    body.detach()
                writer.submit(self, write, job, keys=keys, body=body, intent=intent)
                body = None  # the queued job owns it now
                queued = True
            else:
                outcome = self._shadow_now(
                    write, action, response, started, acked, secrets=secrets, keys=keys, body=body
                )
                if outcome.late:
                    body = None  # the late shadow call still reads it, and closes it
            return response

        try:
            response = self.locked(write, keys, lock, primary_then_shadow)
        finally:
            if body is not None:
                body.close()
        if queued:
            # Outside the key's lock: a worker may need it (see dualwrite._core.pool).
            writer.wait_for_room(write, keys)
        elif outcome is not None:
            # Outside the key's lock: a hook may write through a wrapped client.
            finish(self, outcome, deferred=deferred, intent=intent)
        return response

    def _shadow_now(
        self,
        write: Write,
        action: Callable[[ShadowContext, Any], None],
        response: Any,
        started: float,
        acked: float,
        *,
        secrets: tuple[object, ...],
        keys: Sequence[Any] | None,
        body: Body | None,
    ) -> Outcome:
        """Run ``action(ctx, response)`` on the shadow now (sync mode), bounded by
        ``shadow_timeout``; the outcome, not yet reported. (:meth:`_sync` has it inline.)"""
        timeout = self.writer.shadow_timeout
        if timeout is not None:
            # A large body takes as long on the shadow as on the primary: the caller waits for
            # the shadow as long as the primary took, plus shadow_timeout.
            timeout += acked - started
        return shadow_outcome(
            self,
            write,
            action,
            response=response,
            acked_at=acked,
            secrets=secrets,
            keys=keys,
            timeout=timeout,
            body=body,
        )

    def _sync(
        self,
        write: Write,
        call: Callable[..., Any],
        params: Mapping[str, Any],
        action: Callable[[ShadowContext, Any], None],
        lock: contextlib.AbstractContextManager[Any],
        intent: Intent | None,
        secrets: tuple[object, ...],
        body: Body | None,
        keys: Sequence[Any] | None,
        deferred: list[ShadowWriteError] | None,
        borrowed: bool,
    ) -> Any:
        """:meth:`_then_shadow` in sync mode, for :meth:`call`: the same steps, without the
        closures and the ordering loop that only background mode needs.

        Under ``lock``: the primary, then the shadow action, bounded by ``shadow_timeout``;
        outside it: the outcome journaled and sent (a hook may write through a wrapped client).
        """
        try:
            with lock:
                started = time.perf_counter()
                response = call_primary(intent, call, params, tracks_sends=self._tracks_sends)
                acked = time.perf_counter()
                # _shadow_now(), inline (one frame less on every sync write); a borrowed request
                # is never left to a late shadow call (see call()).
                timeout = None if borrowed else self.writer.shadow_timeout
                if timeout is not None:
                    timeout += acked - started
                outcome = shadow_outcome(
                    self,
                    write,
                    action,
                    response=response,
                    acked_at=acked,
                    secrets=secrets,
                    keys=keys,
                    timeout=timeout,
                    body=body,
                )
                if outcome.late:
                    body = None  # the late shadow call still reads it, and closes it
        finally:
            if body is not None:
                body.close()
        finish(self, outcome, deferred=deferred, intent=intent)
        return response

    def _call_closed(
        self,
        write: Write,
        call: Callable[..., Any],
        params: Mapping[str, Any],
        keys: Sequence[Any] | None,
        intent: Intent | None,
    ) -> Any:
        """A write after :meth:`dualwrite.DualWriter.close`: the primary only; the key journaled
        ``closed``.

        The entry is journaled before the primary call (a crash loses nothing) and removed if
        the primary refused the write.
        """
        writer = self.writer
        closed = (
            intent
            if intent is not None
            else writer.intend(write, keys, reason="closed", mirror=self)
        )
        response = self.call_primary(closed, call, params)
        if intent is not None:
            # The handler's own intent: replace it with a "closed" entry.
            writer.report([closed_event(write)], keys, reason="closed", intent=intent)
        else:
            writer.emit(closed_event(write))
        return response

    def locked(
        self,
        write: Write,
        keys: Sequence[Any] | None,
        lock: contextlib.AbstractContextManager[Any],
        func: Callable[[], Any],
    ) -> Any:
        """Run ``func`` (the primary call, and the shadow's in sync mode) under ``lock``.

        In background mode with stages, same-key shadow writes still queued in the other
        direction (a flip between old-first and new-first) run first: otherwise one of them
        could overwrite this write on the account it is about to write first. They are waited
        for without the key's lock (a worker's hook may need it), then checked again under it.
        """
        staged = self.writer.staged_background
        while True:
            if staged:
                self.writer.wait_direction(write, keys, reverse=self.reversed)
            with lock:
                if staged and self.writer.direction_pending(write, keys, reverse=self.reversed):
                    continue
                return func()

    def run_shadow(
        self,
        write: Write,
        action: ShadowAction,
        *,
        acked_at: float,
        secrets: tuple[object, ...] = (),
        keys: Sequence[Any] | None = None,
        deferred: list[ShadowWriteError] | None = None,
        intent: Intent | None = None,
    ) -> None:
        """Run ``action`` against the shadow, then report and journal its outcome.

        Args:
            write: the write, as decided in the caller's thread.
            action: the shadow call(s).
            acked_at: ``time.perf_counter()`` when the primary acknowledged the write.
            secrets: values to blank out of error messages (SSE-C keys).
            keys: the keys of a multi-key write, journaled if it fails as a whole.
            deferred: with ``on_shadow_error="raise"``, collect the error here instead of
                raising it (one part of a managed transfer: raising inside s3transfer would make
                it abort the primary's upload; the transfer raises it when it is done).
            intent: the write's intent, removed once the outcome is journaled.

        Raises:
            ShadowWriteError: only with ``on_shadow_error="raise"``, after the events were sent.
        """
        run_shadow(
            self,
            write,
            action,
            acked_at=acked_at,
            secrets=secrets,
            keys=keys,
            deferred=deferred,
            intent=intent,
        )
