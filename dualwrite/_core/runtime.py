"""The runtime of one writer: what a wrapped call uses while it runs.

:class:`Runtime` holds the settings the engine reads (flag, stage, hooks, journal, policies),
the journal plumbing (write-ahead intents, entries of what the shadow lacks, journal faults as
events), the hooks, the background worker pool and its ordering waits, the circuit breaker, and
the wrapped pairs. Every :class:`~dualwrite._core.mirror.Mirror` gets it as ``mirror.writer``;
:class:`dualwrite.DualWriter` builds one and shows only the documented surface.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from dualwrite._core.bodies import Body
from dualwrite._core.breaker import Circuit, CircuitBreaker
from dualwrite._core.decide import Decider
from dualwrite._core.entries import entries as _entries
from dualwrite._core.entries import queue, shards
from dualwrite._core.errors import describe_error, safe_invoke
from dualwrite._core.intent import Intent, note_journal_fault
from dualwrite._core.pool import PoolClosedError, WorkerPool
from dualwrite.events import (
    Event,
    JournalFailed,
    Mismatch,
    NoTenant,
    ShadowFailed,
    Unsupported,
    Write,
)
from dualwrite.exceptions import JournalError
from dualwrite.journal import Entry, Journal, process_token
from dualwrite.typing import Flag, Hook, StageOf, TenantOf

if TYPE_CHECKING:
    from dualwrite._core.mirror import Mirror
    from dualwrite._core.service import Service

logger = logging.getLogger("dualwrite")

SETTLED_BATCH = 64
"""Background mode: settled intents removed together once this many are waiting."""
SETTLED_AGE = 0.05
"""Background mode: ... or once the oldest has waited this many seconds (checked as the next one
is settled; the pool's running out of jobs removes them too)."""


class Runtime:
    """What every wrapped pair of one writer shares while calls run; built by the writer.

    Args:
        flag: the flag (or ``False`` with stages).
        stage: the ``stage`` callback, or ``None``.
        hooks: the hooks every event goes to.
        journal: the journal, or ``None``.
        tenant_of: derives a write's tenant, or ``None``.
        on_shadow_error: ``"record"`` or ``"raise"``.
        on_full: ``"block"`` or ``"journal"`` (background mode).
        circuit_breaker: the breaker each pair's circuit follows, or ``None``.
        shadow_timeout: sync mode: seconds a caller waits for the shadow, or ``None``.
        single_writer: whether one process alone writes each key (no read-back).
        close_timeout: seconds the writer's close (and the interpreter's exit) wait for queued
            shadow writes, or ``None``.
        pool: the background workers, or ``None`` in sync mode.
        services: a service's name -> its :class:`~dualwrite._core.service.Service`.

    Attributes:
        background: whether shadow writes are queued (``False`` once the writer is closed).
        staged_background: background mode with stages: same-key jobs of the two directions
            are kept in order.
        closed: whether the writer was closed: writes then reach the primary only, and their
            keys are journaled (``closed``).
        mirrors: the wrapped pairs (forward mirrors), for repair.
        decider: asks the flag/stage (:class:`~dualwrite._core.decide.Decider`).
    """

    def __init__(
        self,
        *,
        flag: Flag | bool,
        stage: StageOf | None,
        hooks: Sequence[Hook],
        journal: Journal | None,
        tenant_of: TenantOf | None,
        on_shadow_error: str,
        on_full: str,
        circuit_breaker: CircuitBreaker | None,
        shadow_timeout: float | None,
        single_writer: bool,
        close_timeout: float | None,
        pool: WorkerPool | None,
        services: Callable[[str], Service],
    ) -> None:
        self.flag = flag
        self.stage = stage
        self.hooks: tuple[Hook, ...] = tuple(hooks)
        self._no_tenant_hooks = tuple(h for h in hooks if getattr(h, "no_tenant", False) is True)
        # Whether a no_tenant event has anywhere to go: without such a hook none is built.
        self.wants_no_tenant = bool(self._no_tenant_hooks)
        self.journal = journal
        self.tenant_of = tenant_of
        self.on_shadow_error = on_shadow_error
        self.on_full = on_full
        self.circuit_breaker = circuit_breaker
        self.shadow_timeout = shadow_timeout
        # Whether one process alone writes each key: the shadow write then needs no read-back
        # of the primary to detect a later write of another process (see docs/index.md, Fleets).
        self.single_writer = single_writer
        self.close_timeout = close_timeout
        self.pool = pool
        self.background = pool is not None
        # Background mode with stages: same-key jobs of the two directions are kept in order.
        self.staged_background = self.background and stage is not None
        self.closed = False
        self.mirrors: list[Mirror] = []
        self.decider = Decider(self)
        # The worker threads of wrapped async clients (dualwrite._core.aio.AsyncDriver), made
        # by their first wrap().
        self.aio: Any = None
        self._services = services
        # Faults a journal recovered from by itself (a deleted file recreated), reported as
        # events by the thread that next uses the journal (see _drain_notices).
        self._notices: list[tuple[str, str]] = []
        self._notices_lock = threading.Lock()
        if hasattr(journal, "on_notice"):
            journal.on_notice = self._notice  # type: ignore[union-attr]
        # Background mode: intents settled by the workers, removed in batches (see unjournal).
        self._settled: list[str] = []
        self._settled_since = 0.0
        self._settled_write: Write | None = None
        self._settled_lock = threading.Lock()
        self._removing = threading.Lock()  # held while settled intents are being removed
        if pool is not None and journal is not None:
            # Weakly: the pool's threads outlive a writer dropped without close().
            pool.on_due = _remove_settled_of(weakref.ref(self))
        _RUNTIMES.add(self)

    def emit(self, event: Event) -> None:
        """Send ``event`` to every hook; a hook's exception is logged and contained."""
        for hook in self.hooks:
            _, exc = safe_invoke(hook, event)
            if exc is not None:
                info = describe_error(exc)
                logger.warning(
                    "dualwrite: hook %r raised %s: %s (event %s ignored by it)",
                    hook,
                    info.type,
                    info.message,
                    event.kind,
                )

    def emit_no_tenant(self, event: NoTenant) -> None:
        """Send a ``no_tenant`` event to the hooks that ask for it (``no_tenant = True``, as
        :class:`~dualwrite.hooks.MetricsHook` does): one per untenanted write would otherwise
        flood hooks that log every event."""
        for hook in self._no_tenant_hooks:
            _, exc = safe_invoke(hook, event)
            if exc is not None:
                logger.warning("dualwrite: hook %r raised on a no_tenant event", hook)

    def report(
        self,
        events: Sequence[Event],
        keys: Sequence[Any] | None = None,
        reason: str = "",
        *,
        intent: Intent | None = None,
    ) -> bool:
        """Journal what the shadow lacks, settle the write's intent, then send ``events``.

        Every ``shadow_failed``, ``unsupported`` and ``mismatch`` event is journaled under its
        write's key, or under each of ``keys`` for a multi-key write. The ``intent`` is removed
        only once those entries are durable; if they could not be recorded it is kept.

        Returns:
            Whether everything that needed journaling was journaled.
        """
        ok = True
        if self.journal is not None:
            entries: list[Entry] = []
            for event in events:
                if isinstance(event, ShadowFailed):
                    why, detail = reason or "shadow_failed", event.error_code or event.error_type
                elif isinstance(event, Unsupported):
                    why, detail = "unsupported", event.reason
                elif isinstance(event, Mismatch):
                    why, detail = "mismatch", event.field
                else:
                    continue
                entries.extend(
                    _entries(self._services(event.write.service), event.write, keys, why, detail)
                )
            if entries:
                # One entry per key and reason (a mismatch of the ETag and of a checksum).
                unique = {(e.identity(), e.reason): e for e in entries}
                ok = self._journal_add(list(unique.values()), events[0].write) is not None
        if intent is not None:
            if not ok:
                intent.keep()
            intent.settle()
        for event in events:
            self.emit(event)
        return ok

    def intend(
        self,
        write: Write,
        keys: Sequence[Any] | None = None,
        *,
        reason: str = "pending",
        mirror: Mirror | None = None,
    ) -> Intent:
        """Journal a flag-on write's intent before its primary call (see :meth:`Mirror.intend`).

        ``pending`` entries carry this process's token as their owner; other reasons (a
        write after :meth:`DualWriter.close <dualwrite.DualWriter.close>`) none.
        """
        if self.journal is None:
            return Intent(self, write, keys, [], mirror)
        owner = process_token() if reason == "pending" else None
        entries = _entries(
            self._services(write.service), write, keys, reason, write.operation, owner
        )
        ids = self._journal_add(entries, write)
        return Intent(self, write, keys, list(zip(entries, ids or (), strict=False)), mirror)

    def journal_now(
        self, write: Write, keys: Sequence[Any] | None, reason: str, detail: str
    ) -> bool:
        """Journal ``write``'s key(s) with ``reason``; return whether it is durable (or there
        is no journal to record it in)."""
        if self.journal is None:
            return True
        return (
            self._journal_add(
                _entries(self._services(write.service), write, keys, reason, detail), write
            )
            is not None
        )

    def unjournal(self, write: Write, ids: Sequence[str]) -> None:
        """Remove entries ``ids`` (a settled intent); a failure is an event and a log line.

        In background mode the ids are collected and removed together: once
        :data:`SETTLED_BATCH` are waiting, or about :data:`SETTLED_AGE` seconds after the first
        of them (checked as the next one is settled, and by a timer on the pool's workers), and
        at :meth:`remove_settled` (``flush()``, ``close()``, exit). A remove is not on any
        write's path to safety: an intent the process dies before removing is repaired (the key
        is copied again, idempotently), and repair leaves a live process's intents alone. Each
        remove is a journal transaction, which the workers' removes would otherwise make for
        every write, in the way of the callers' adds (their write-ahead intents) on the
        journal's one writer connection.
        """
        journal = self.journal
        if journal is None or not ids:
            return
        if not self.background:
            self._remove(journal, write, ids)
            return
        now = time.monotonic()
        with self._settled_lock:
            first = not self._settled
            if first:
                self._settled_since = now
            self._settled.extend(ids)
            self._settled_write = write
            due = len(self._settled) >= SETTLED_BATCH or now - self._settled_since >= SETTLED_AGE
        pool = self.pool
        if first and pool is not None:
            pool.arm(SETTLED_AGE)
        if due:
            # Not waiting for a removal under way (this thread may hold a key's lock): what that
            # one did not take, the next one or the timer takes.
            self.remove_settled(wait=False)
        if not self.background:
            # close() ran meanwhile, and its removal perhaps before these ids were added.
            self.remove_settled()

    def remove_settled(self, *, wait: bool = True) -> None:
        """Remove the intents settled so far in background mode. With ``wait``, returns once
        every removal begun before it (on any thread) has ended; without, returns at once if
        one is under way."""
        journal = self.journal
        if journal is None or not self._removing.acquire(blocking=wait):
            return
        ids: list[str] = []
        write: Write | None = None
        error: Exception | None = None
        try:
            with self._settled_lock:
                ids, self._settled = self._settled, []
                write = self._settled_write
            if ids:
                try:
                    journal.remove(ids)
                except Exception as exc:  # noqa: BLE001 - a journal outage must not break a write
                    error = exc
        finally:
            self._removing.release()
        if not ids or write is None:
            return
        # Reported outside the lock: a hook may write through a wrapped client, and that
        # write's intent may settle in this thread. The event names the last write settled.
        if error is not None:
            self._journal_failed(error, write, "remove", len(ids), "pending")
        self._drain_notices(write)

    def _remove(self, journal: Journal, write: Write, ids: Sequence[str]) -> None:
        try:
            journal.remove(ids)
        except Exception as exc:  # noqa: BLE001 - a journal outage must not break the write
            self._journal_failed(exc, write, "remove", len(ids), "pending")
        self._drain_notices(write)

    def _journal_add(self, entries: list[Entry], write: Write) -> list[str] | None:
        """Record ``entries``; ``None`` (after an event and a log line) if that failed."""
        assert self.journal is not None
        try:
            ids = self.journal.add(entries)
        except Exception as exc:  # noqa: BLE001 - a journal outage must not break the write
            note_journal_fault()
            self._journal_failed(exc, write, "add", len(entries), entries[0].reason)
            self._drain_notices(write)
            return None
        self._drain_notices(write)
        return ids

    def _journal_failed(
        self, exc: BaseException, write: Write, action: str, count: int, reason: str
    ) -> None:
        info = describe_error(exc)
        problem = exc.problem if isinstance(exc, JournalError) else "error"
        what = {
            "add": f"could not journal {count} {reason} entr{'y' if count == 1 else 'ies'}",
            "remove": f"could not remove {count} settled entr{'y' if count == 1 else 'ies'} "
            "(repair will find the keys equal and remove them)",
        }[action]
        logger.error(
            "dualwrite: journal %s: %s of %s %s/%s: %s: %s",
            problem,
            what,
            write.service,
            write.operation,
            write.resource,
            info.type,
            info.message,
        )
        self.emit(
            JournalFailed(
                write=write,
                problem=problem,
                action=action,
                entries=count,
                reason=reason,
                error_type=info.type,
                error_message=info.message,
            )
        )

    def _notice(self, problem: str, message: str) -> None:
        # Called by the journal while it holds its own locks: only queued here.
        with self._notices_lock:
            self._notices.append((problem, message))

    def _drain_notices(self, write: Write) -> None:
        if not self._notices:
            return
        with self._notices_lock:
            notices, self._notices = self._notices, []
        for problem, message in notices:
            logger.error("dualwrite: %s", message)
            self.emit(
                JournalFailed(
                    write=write,
                    problem=problem,
                    action="recreate",
                    entries=0,
                    reason="",
                    error_type="JournalError",
                    error_message=message,
                )
            )

    def submit(
        self,
        mirror: Mirror,
        write: Write,
        job: Callable[[], None],
        *,
        keys: Sequence[Any] | None,
        body: Body | None,
        intent: Intent | None = None,
    ) -> None:
        """Queue a shadow ``job`` (background mode); its intent was journaled before the primary
        call, and the job removes it.

        Never waits for room in the queue: with ``on_full="block"`` the caller waits afterwards,
        in :meth:`wait_for_room`, once it has released the key's lock. If the writer was closed
        meanwhile, the job runs here, in the caller's thread, as in sync mode.
        """
        pool = self.pool
        assert pool is not None

        def run() -> None:
            try:
                job()
            finally:
                if body is not None:
                    body.close()

        direction = mirror.reversed if self.stage is not None else None
        try:
            if pool.submit(
                shards(self._services(write.service), write, keys),
                run,
                block=self.on_full == "block",
                direction=direction,
            ):
                return
        except PoolClosedError:
            run()
            return
        # The queue is full and the policy is to journal: the key is kept for repair (the
        # job's intent stays too; repair removes it once this process has ended).
        if body is not None:
            body.close()
        self.report(
            [
                ShadowFailed(
                    write=write,
                    error_type="QueueFull",
                    error_code=None,
                    error_message="the background queue was full; the key is journaled",
                )
            ],
            keys,
            reason="overflow",
            intent=intent,
        )

    def wait_for_room(self, write: Write, keys: Sequence[Any] | None = None) -> None:
        """Background mode, ``on_full="block"``: wait until the queue of ``write``'s key has room.

        Called by the caller's thread after it queued the write and released the key's lock;
        ``keys`` are those of a multi-key write, as given to :meth:`submit`.
        """
        pool = self.pool
        if pool is not None and self.on_full == "block":
            # All keys share the pool's capacity: no shard to compute (25 for a batch).
            pool.wait_for_room(())

    def settle_queued(self, write: Write, keys: Sequence[Any] | None) -> bool:
        """A background writer being closed (its calls now run in the caller's thread): wait
        for the jobs still queued for ``write``'s keys; whether none is left.

        Without this a write made while :meth:`DualWriter.close` drains the queue would reach
        the shadow before an older queued write of the same key, which would then overwrite it.
        ``False`` (close timed out with such jobs left): the caller must not write the shadow.
        """
        pool = self.pool
        return pool is None or pool.settle_keys(shards(self._services(write.service), write, keys))

    def wait_direction(self, write: Write, keys: Sequence[Any] | None, *, reverse: bool) -> None:
        """Background mode with stages: wait for same-key jobs queued in the other direction."""
        pool = self.pool
        if pool is not None:
            pool.wait_direction(shards(self._services(write.service), write, keys), reverse)

    def wait_key(self, service: str, resource: str, key: Any, *, reverse: bool) -> None:
        """Background mode with stages: before a read of one key (``resource`` by its old name),
        wait for that key's jobs queued in the other direction."""
        pool = self.pool
        if pool is not None:
            pool.wait_direction(queue(self._services(service), service, resource, key), reverse)

    def wait_other_direction(self, *, reverse: bool) -> None:
        """Background mode with stages: wait until no job queued in the other direction is left
        (a write of several keys to one account only, whose keys' queues are not known)."""
        pool = self.pool
        if pool is not None:
            pool.wait_direction_all(reverse)

    def direction_pending(self, write: Write, keys: Sequence[Any] | None, *, reverse: bool) -> bool:
        """Whether same-key jobs queued in the other direction are still waiting or running."""
        pool = self.pool
        return pool is not None and pool.direction_pending(
            shards(self._services(write.service), write, keys), reverse
        )

    def new_circuit(self) -> Circuit | None:
        """A circuit for one more shadow, or ``None`` without a breaker."""
        return Circuit(self.circuit_breaker) if self.circuit_breaker is not None else None

    def register(self, mirror: Mirror) -> None:
        """Remember a wrapped pair, for :meth:`DualWriter.repair <dualwrite.DualWriter.repair>`."""
        self.mirrors.append(mirror)


def _remove_settled_of(ref: weakref.ReferenceType[Runtime]) -> Callable[[], None]:
    def remove_settled() -> None:
        runtime = ref()
        if runtime is not None:
            runtime.remove_settled()

    return remove_settled


_RUNTIMES: weakref.WeakSet[Runtime] = weakref.WeakSet()


def _after_fork() -> None:
    # A forked child has none of the parent's threads: a lock one of them held would stay held.
    # The settled ids are the parent's to remove.
    for runtime in list(_RUNTIMES):
        runtime._settled_lock = threading.Lock()
        runtime._removing = threading.Lock()
        runtime._settled = []


os.register_at_fork(after_in_child=_after_fork)
