"""DualWriter, the façade a service holds, and ``dualwrite.wrap``.

The writer checks its configuration once, wraps clients, and offers what the docs show (flush,
repair, close, the scheduled-job guard). What wrapped calls use while they run (journal, hooks,
worker pool, breaker, the flag/stage decisions) is its :class:`~dualwrite._core.runtime.Runtime`.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, ParamSpec, TypeVar, overload

import attrs

from dualwrite import _services as services
from dualwrite._context import current_tenant
from dualwrite._core.breaker import CircuitBreaker
from dualwrite._core.pool import ON_FULL, WorkerPool
from dualwrite._core.runtime import Runtime
from dualwrite._offline.repair import RepairReport
from dualwrite._stage import Account, Stage
from dualwrite._wrap import wrap_any
from dualwrite.exceptions import ConfigurationError, DualWriteError
from dualwrite.journal import Journal, open_journal
from dualwrite.typing import Flag, Hook, NameMap, StageOf, TenantOf

logger = logging.getLogger("dualwrite")

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")
V = TypeVar("V")
ACCOUNTS = ("primary", "shadow")


MODES = ("sync", "background")
ON_SHADOW_ERROR = ("record", "raise")
_DEFAULT_BREAKER = CircuitBreaker()


def _check_background(
    workers: object, queue_size: object, on_full: object, circuit_breaker: object
) -> None:
    for name, value in (("workers", workers), ("queue_size", queue_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            msg = f"{name} must be an int >= 1; got {value!r}"
            raise ConfigurationError(msg)
    if on_full not in ON_FULL:
        msg = f"on_full must be one of {', '.join(map(repr, ON_FULL))}; got {on_full!r}"
        raise ConfigurationError(msg)
    if circuit_breaker is not None and not isinstance(circuit_breaker, CircuitBreaker):
        msg = f"circuit_breaker must be a dualwrite.CircuitBreaker or None; got {circuit_breaker!r}"
        raise ConfigurationError(msg)


class _Setting(Generic[V]):
    """A :class:`DualWriter` setting the engine reads: held by the writer's runtime, so that
    a change made on the writer (``writer.stage = ...``) applies to the next call."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Setting[V]: ...

    @overload
    def __get__(self, obj: DualWriter, owner: type) -> V: ...

    def __get__(self, obj: DualWriter | None, owner: type) -> V | _Setting[V]:
        if obj is None:
            return self
        value: V = getattr(obj._runtime, self._name)
        return value

    def __set__(self, obj: DualWriter, value: V) -> None:
        setattr(obj._runtime, self._name, value)


class DualWriter:
    """Mirror writes to a shadow AWS account, per tenant, behind a flag.

    A writer holds what every wrapped client shares: the flag, the hooks, the journal, the
    background workers and the policies. Wrap each primary client (or resource) once with
    :meth:`wrap` and use the result wherever the primary was used.

    Args:
        flag: called with the :class:`~dualwrite.Write` of each write call, in the caller's thread;
            a truthy result sends the write to the shadow too. ``True``/``False`` are accepted
            as constant flags.
        stage: instead of ``flag``: called with the :class:`~dualwrite.Write` of each call
            (reads included), in the caller's thread; returns the tenant's
            :class:`~dualwrite.Stage`, which decides which account is written first, whether
            the other gets the write, and which one serves reads. ``flag`` is its simple form.
        hooks: callables each receiving every event (see :mod:`dualwrite.events`).
        mode: ``"sync"``: the shadow write runs in the caller's thread right after the primary's;
            ``"background"``: it is queued for a worker pool, and the caller waits for the
            primary only.
        journal: ``"auto"`` (the default: an SQLite file at ``$DUALWRITE_JOURNAL``, else
            ``$XDG_STATE_HOME/dualwrite/journal.sqlite3``, else
            ``~/.local/state/dualwrite/journal.sqlite3``; in memory, with one warning, where
            that cannot be written); a path (an SQLite journal is created there); a
            :class:`dualwrite.journal.Journal`; or ``None`` to journal nothing. Each flag-on
            write's intent is recorded there before the primary is called, and every key the
            shadow may lack stays there for :meth:`repair`.
        tenant_of: derives the tenant from a write when no :func:`dualwrite.tenant` block is
            active (for example from a key prefix).
        on_shadow_error: ``"record"``: a shadow failure becomes a ``shadow_failed`` event (and a
            journal entry) only; ``"raise"``: it also raises
            :class:`~dualwrite.exceptions.ShadowWriteError` to the caller, after the primary write
            succeeded (sync mode only).
        workers: background mode: number of worker threads.
        queue_size: background mode: how many shadow writes may wait, all workers together.
        on_full: background mode, when the queue is full: ``"block"`` the caller until there
            is room, or ``"journal"`` the key (needs a journal) and go on.
        circuit_breaker: a :class:`dualwrite.CircuitBreaker` (the default opens after 5
            consecutive failures for 30 s), or ``None`` to always call the shadow.
        shadow_timeout: sync mode: the longest, in seconds, a caller waits for the shadow after
            the primary answered; past it the key is journaled and the caller gets the
            primary's response. ``None`` waits as long as the shadow client does.
        single_writer: ``True`` when only this process writes any given key (no fleet): the
            read-back of the primary after each shadow write, which catches another
            process's later write of the same key, is skipped.
        close_timeout: the longest, in seconds, :meth:`close` (without its own ``timeout``)
            and the interpreter's exit wait for queued shadow writes (background mode); what
            is left stays journaled (``pending``) for :meth:`repair`. ``None`` waits as long
            as needed.

    Raises:
        ConfigurationError: an argument is invalid; the message lists the allowed values.
    """

    # The settings wrapped calls read live on the runtime (see _Setting); the writer shows them.
    flag = _Setting[Flag | bool]()
    stage = _Setting[StageOf | None]()
    hooks = _Setting[tuple[Hook, ...]]()
    journal = _Setting[Journal | None]()
    tenant_of = _Setting[TenantOf | None]()
    on_shadow_error = _Setting[str]()
    on_full = _Setting[str]()
    circuit_breaker = _Setting[CircuitBreaker | None]()
    shadow_timeout = _Setting[float | None]()
    single_writer = _Setting[bool]()
    close_timeout = _Setting[float | None]()

    def __init__(  # noqa: PLR0915 - one check per argument, each with its own message
        self,
        flag: Flag | bool | None = None,
        *,
        stage: StageOf | None = None,
        hooks: Iterable[Hook] = (),
        mode: str = "sync",
        journal: object = "auto",
        tenant_of: TenantOf | None = None,
        on_shadow_error: str = "record",
        workers: int = 8,
        queue_size: int = 10_000,
        on_full: str = "block",
        circuit_breaker: CircuitBreaker | None = _DEFAULT_BREAKER,
        shadow_timeout: float | None = 2.0,
        single_writer: bool = False,
        close_timeout: float | None = 10.0,
    ) -> None:
        if flag is None and stage is None:
            msg = (
                "DualWriter needs flag= (a callable taking a dualwrite.Write, or True/False) or "
                "stage= (a callable taking a dualwrite.Write and returning a dualwrite.Stage)"
            )
            raise ConfigurationError(msg)
        if flag is not None and stage is not None:
            msg = (
                "pass flag= or stage=, not both: stage=Stage.DUAL_WRITE is what flag=True means, "
                "and Stage.OFF what flag=False means"
            )
            raise ConfigurationError(msg)
        if stage is not None and not callable(stage):
            msg = (
                "stage must be a callable taking a dualwrite.Write and returning a "
                f"dualwrite.Stage ({', '.join(s.name for s in Stage)}); got {stage!r}"
            )
            raise ConfigurationError(msg)
        if flag is not None and not (isinstance(flag, bool) or callable(flag)):
            msg = f"flag must be a callable taking a dualwrite.Write, or True/False; got {flag!r}"
            raise ConfigurationError(msg)
        if isinstance(hooks, (str, bytes)) or not isinstance(hooks, Iterable):
            msg = f"hooks must be a list of callables; got {hooks!r}"
            raise ConfigurationError(msg)
        hook_list = list(hooks)
        for hook in hook_list:
            if not callable(hook):
                msg = f"every hook must be callable taking one event; got {hook!r}"
                raise ConfigurationError(msg)
        if mode not in MODES:
            msg = f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}"
            raise ConfigurationError(msg)
        if tenant_of is not None and not callable(tenant_of):
            msg = (
                f"tenant_of must be a callable taking a dualwrite.Write, or None; got {tenant_of!r}"
            )
            raise ConfigurationError(msg)
        if on_shadow_error not in ON_SHADOW_ERROR:
            msg = (
                f"on_shadow_error must be one of {', '.join(map(repr, ON_SHADOW_ERROR))}; "
                f"got {on_shadow_error!r}"
            )
            raise ConfigurationError(msg)
        if on_shadow_error == "raise" and mode == "background":
            msg = (
                "on_shadow_error='raise' needs mode='sync': in background mode the caller has "
                "returned before the shadow write runs"
            )
            raise ConfigurationError(msg)
        _check_background(workers, queue_size, on_full, circuit_breaker)
        if shadow_timeout is not None and (
            isinstance(shadow_timeout, bool)
            or not isinstance(shadow_timeout, (int, float))
            or not shadow_timeout > 0
        ):
            msg = f"shadow_timeout must be a number of seconds > 0, or None; got {shadow_timeout!r}"
            raise ConfigurationError(msg)
        if not isinstance(single_writer, bool):
            msg = f"single_writer must be True or False; got {single_writer!r}"
            raise ConfigurationError(msg)
        if close_timeout is not None and (
            isinstance(close_timeout, bool)
            or not isinstance(close_timeout, (int, float))
            or not close_timeout >= 0
        ):
            msg = f"close_timeout must be a number of seconds >= 0, or None; got {close_timeout!r}"
            raise ConfigurationError(msg)
        try:
            journal_backend = open_journal(journal)
        except TypeError as exc:
            raise ConfigurationError(str(exc)) from exc
        except (OSError, sqlite3.Error) as exc:
            msg = f"cannot open the journal {journal!r}: {exc}"
            raise ConfigurationError(msg) from exc
        if on_full == "journal" and journal_backend is None:
            msg = "on_full='journal' needs a journal: pass journal= a path or a Journal"
            raise ConfigurationError(msg)
        background = mode == "background"
        pool = WorkerPool(workers=workers, queue_size=queue_size) if background else None
        self._runtime = Runtime(
            flag=False if flag is None else flag,
            stage=stage,
            hooks=hook_list,
            journal=journal_backend,
            tenant_of=tenant_of,
            on_shadow_error=on_shadow_error,
            on_full=on_full,
            circuit_breaker=circuit_breaker,
            shadow_timeout=None if shadow_timeout is None else float(shadow_timeout),
            single_writer=single_writer,
            close_timeout=None if close_timeout is None else float(close_timeout),
            pool=pool,
            services=services.get,
        )
        self.mode = mode
        self._owns_journal = journal_backend is not journal
        if pool is not None:
            # The runtime, not the writer: wrapped clients keep it alive after a writer that
            # only built them (dualwrite.wrap) is gone, and their queued writes still drain.
            atexit.register(_flush_at_exit, weakref.ref(self._runtime))

    def wrap(
        self,
        primary: T,
        *,
        shadow: Any,
        names: NameMap | None = None,
        kms_keys: Mapping[str, str] | Callable[[str], str | None] | None = None,
        shadow_account: str | None = None,
    ) -> T:
        """Wrap a boto3 S3 or DynamoDB client or resource so that its writes are mirrored.

        Args:
            primary: a low-level ``s3`` or ``dynamodb`` client, a ``boto3.resource("s3")`` or
                ``boto3.resource("dynamodb")``, or an S3 ``Bucket`` / DynamoDB ``Table``.
            shadow: the shadow account's client or resource of the same service and the same
                level (a resource-level primary needs a resource-level shadow for DynamoDB).
            names: primary bucket/table name -> shadow name, as a dict or a callable returning
                ``None`` for "no shadow". S3 bucket names are global, so an S3 bucket without a
                mapping is never written on the shadow (the write is reported ``unsupported``).
                DynamoDB table names are per account: a missing mapping means the same name.
            kms_keys: primary KMS key id/ARN -> shadow key (S3 ``SSEKMSKeyId``); an unmapped key
                is dropped so the shadow bucket's default encryption applies.
            shadow_account: the shadow's 12-digit account id; ``ExpectedBucketOwner`` is
                translated to it, or dropped when it is not given.

        Returns:
            An object of the same kind as ``primary`` (it passes ``isinstance`` checks) whose
            writes are mirrored.

        Raises:
            ConfigurationError: the objects are not S3/DynamoDB clients or resources, the services
                or levels differ, or an option is invalid.
        """

        if self.closed:
            msg = "this DualWriter is closed; create a new one to wrap more clients"
            raise ConfigurationError(msg)
        return wrap_any(
            self._runtime,
            primary,
            shadow=shadow,
            names=names,
            kms_keys=kms_keys,
            shadow_account=shadow_account,
        )

    # -- stages and the scheduled-job guard --------------------------------------------------

    def stage_of(self, tenant: str | None, *, job: str = "") -> Stage:
        """The tenant's stage, as the ``stage`` callback says now.

        The callback gets a :class:`~dualwrite.Write` with ``service="job"``,
        ``operation="RunsHere"`` and ``resource=job``. With ``flag=`` the answer is
        ``DUAL_WRITE`` when the flag is on for that write and ``OFF`` otherwise.

        Raises:
            DualWriteError: the callback failed or returned something that is not a stage.
        """
        stage = self._runtime.decider.job_stage(tenant, job)
        if stage is None:
            msg = f"the stage of tenant {tenant!r} could not be decided (see the flag_failed event)"
            raise DualWriteError(msg)
        return stage

    def runs_here(self, tenant: str | None, account: Account = "primary", *, job: str = "") -> bool:
        """Whether a scheduled job or background process for ``tenant`` runs in ``account``.

        ``account`` is where the calling process runs: ``"primary"`` (the old account, as
        wrapped) or ``"shadow"`` (the new one). The answer is ``True`` in exactly one of them
        at each stage: the old account at ``OFF`` and ``DUAL_WRITE``, the new one at
        ``CUTOVER`` and ``DONE``, so that business logic never runs in both accounts at once.
        When the stage cannot be decided (the callback raised), the answer is ``False`` in both:
        a job that waits for its next run is better than one that runs twice.

        Args:
            tenant: the tenant the job works for.
            account: ``"primary"`` or ``"shadow"``: where this process runs.
            job: a name for the job, handed to the callback as ``Write.resource``.

        Raises:
            ConfigurationError: ``account`` is not ``"primary"`` or ``"shadow"``.
        """
        if account not in ACCOUNTS:
            msg = f"account must be one of {', '.join(map(repr, ACCOUNTS))}; got {account!r}"
            raise ConfigurationError(msg)
        stage = self._runtime.decider.job_stage(tenant, job)
        return stage is not None and stage.owner == account

    def guard(
        self,
        account: Account = "primary",
        *,
        tenant: str | Callable[..., str | None] | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R | None]]:
        """Decorate a job so that it runs only where :meth:`runs_here` says so.

        The tenant comes from the keyword argument named by ``tenant`` (a str), from
        ``tenant(*args, **kwargs)`` (a callable), or from :func:`dualwrite.current_tenant`
        (``None``). A skipped call returns ``None`` and logs one line at INFO level.

        Raises:
            ConfigurationError: at decoration time, ``account`` or ``tenant`` is invalid.
        """
        if account not in ACCOUNTS:
            msg = f"account must be one of {', '.join(map(repr, ACCOUNTS))}; got {account!r}"
            raise ConfigurationError(msg)
        if tenant is not None and not isinstance(tenant, str) and not callable(tenant):
            msg = (
                "tenant must be the name of the job's tenant argument, a callable taking the "
                f"job's arguments, or None (dualwrite.current_tenant()); got {tenant!r}"
            )
            raise ConfigurationError(msg)

        def decorate(func: Callable[P, R]) -> Callable[P, R | None]:
            import inspect  # noqa: PLC0415 - only when decorating

            signature = inspect.signature(func) if isinstance(tenant, str) else None
            if signature is not None and tenant not in signature.parameters:
                msg = f"{func.__qualname__} has no parameter {tenant!r} to take the tenant from"
                raise ConfigurationError(msg)
            name = getattr(func, "__qualname__", repr(func))

            @functools.wraps(func)
            def guarded(*args: P.args, **kwargs: P.kwargs) -> R | None:
                if signature is not None:
                    bound = signature.bind_partial(*args, **kwargs)
                    bound.apply_defaults()
                    value = bound.arguments.get(str(tenant))
                    who = None if value is None else str(value)
                elif callable(tenant):
                    who = tenant(*args, **kwargs)
                else:
                    who = current_tenant()
                if not self.runs_here(who, account, job=name):
                    logger.info(
                        "dualwrite: %s skipped for tenant %r: it does not run in the %s account "
                        "at this stage",
                        name,
                        who,
                        account,
                    )
                    return None
                return func(*args, **kwargs)

            return guarded

        return decorate

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called: writes then reach the primary only, and their keys
        are journaled (``closed``)."""
        return self._runtime.closed

    @property
    def pending(self) -> int:
        """Shadow writes queued or running (background mode); 0 in sync mode."""
        pool = self._runtime.pool
        return pool.pending if pool is not None else 0

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued shadow write is done.

        In ``sync`` mode every shadow write is done before the caller's call returns, so this
        returns at once.

        Args:
            timeout: seconds to wait at most; ``None`` waits as long as needed.

        Then removes from the journal the write-ahead intents settled meanwhile (background
        mode removes them in batches): one journal transaction, which may add to ``timeout``.

        Returns:
            ``True`` when nothing is pending, ``False`` if the timeout expired first (what is
            still queued stays journaled as ``pending``).
        """
        pool = self._runtime.pool
        if pool is None:
            return True
        self._not_on_own_loop("flush", "await writer.aflush()")
        done = pool.flush(timeout)
        # The intents settled meanwhile, removed in batches in background mode: now removed.
        self._runtime.remove_settled()
        return done

    def _not_on_own_loop(self, method: str, instead: str) -> None:
        """Refuse to wait, on an event loop's thread, for shadow writes that need that loop."""
        aio = self._runtime.aio
        if aio is not None and aio.on_own_loop():
            msg = (
                f"writer.{method}() was called on the thread of the event loop that the wrapped "
                "async clients use: it would wait for shadow writes that need that loop. "
                f"Use {instead} there"
            )
            raise RuntimeError(msg)

    async def aflush(self, timeout: float | None = None) -> bool:
        """:meth:`flush` for asyncio callers: awaits without blocking the event loop."""
        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> bool:
        """:meth:`close` for asyncio callers: awaits without blocking the event loop."""
        return await asyncio.to_thread(self.close, timeout)

    async def arepair(
        self,
        *,
        limit: int | None = None,
        progress: bool = False,
        workers: int = 8,
        deadline: float | None = None,
        server_side: bool = False,
    ) -> RepairReport:
        """:meth:`repair` for asyncio callers (wrapped async clients read and write through the
        running event loop, which this leaves free)."""
        return await asyncio.to_thread(
            self.repair,
            limit=limit,
            progress=progress,
            workers=workers,
            deadline=deadline,
            server_side=server_side,
        )

    def repair(
        self,
        *,
        limit: int | None = None,
        progress: bool = False,
        workers: int = 8,
        deadline: float | None = None,
        server_side: bool = False,
    ) -> RepairReport:
        """Copy every journaled key's current state from the account written first to the other.

        For each distinct key in the journal: S3 copies the object (body, metadata, content
        type, tags, object lock, legal hold, storage class, checksum algorithm, the mapped KMS
        key; the owner ACL forced) or deletes the other account's copy when the source has
        none; DynamoDB does a consistent read and puts or deletes the item. Each copy is
        re-checked against the source's full state and redone if a live write moved it on
        (a bounded number of times). Entries of repaired keys are removed by id. Idempotent and
        order-free: safe to run again, or from several processes. Left in the journal: keys
        whose bucket or table this writer has not wrapped, ``pending`` intents of writer
        processes still alive (their owners finish them), and resource-level entries (a
        ``diff``/``copy`` of the resource settles those; see ``report.settled``).

        Args:
            limit: repair at most this many entries; entries left alone do not count.
            progress: draw a progress bar on standard error when it is a terminal.
            workers: keys repaired at once, by that many threads (each key by one thread).
            deadline: seconds the whole call may take (the flush of queued writes included);
                keys not reached stay journaled and ``report.timed_out`` is set. ``None``: no
                bound but the bounded retries per key.
            server_side: S3 copies each S3 object itself (``CopyObject``, or ``UploadPartCopy``
                part by part in the source's layout) with the destination account's
                credentials, so no byte passes through this host; it needs the source bucket
                to grant the destination's account ``s3:GetObject`` (``kms:Decrypt`` for an
                SSE-KMS object). An object S3 refuses to copy (``AccessDenied``) is copied
                through this host. Counted in ``report.copied_in_s3`` and
                ``report.copied_through_host``. DynamoDB keys are repaired as always.

        Returns:
            A :class:`dualwrite.RepairReport` with the counts.

        Raises:
            ConfigurationError: the writer has no journal, ``workers`` is not an int >= 1, or
                ``server_side`` is not a bool.
        """
        from dualwrite._offline.repair import repair_journal  # noqa: PLC0415 - only when repairing

        if self.journal is None:
            msg = "repair() needs a journal: DualWriter(journal='dualwrite-journal.db')"
            raise ConfigurationError(msg)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            msg = f"workers must be an int >= 1; got {workers!r}"
            raise ConfigurationError(msg)
        if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or deadline <= 0
        ):
            msg = f"deadline must be a number of seconds > 0, or None; got {deadline!r}"
            raise ConfigurationError(msg)
        if not isinstance(server_side, bool):
            msg = f"server_side must be True or False; got {server_side!r}"
            raise ConfigurationError(msg)
        self._not_on_own_loop("repair", "await writer.arepair()")
        started = time.monotonic()
        # Queued writes go first (their intents would otherwise be left to this live process);
        # a hung shadow must not hold repair forever.
        flushed = self.flush(deadline if deadline is not None else self.close_timeout)
        remaining = (
            None if deadline is None else max(0.001, deadline - (time.monotonic() - started))
        )
        report = repair_journal(
            self.journal,
            self._runtime.mirrors,
            limit=limit,
            progress=progress,
            workers=workers,
            staged=self.stage is not None,
            deadline=remaining,
            server_side=server_side,
        )
        # Writes still queued (a hung shadow) keep their intents, left to this live process.
        return report if flushed else attrs.evolve(report, timed_out=True)

    def close(self, timeout: float | None = None) -> bool:
        """Flush for a bounded time, stop the workers and close the journal the writer opened.

        Wrapping more clients afterwards raises ``ConfigurationError``. Writes through clients
        already wrapped keep going to the primary; the shadow is not called for them and their
        keys are journaled (reason ``closed``, before the primary call) with a
        ``shadow_failed`` event (``error_type="WriterClosed"``), so ``repair()`` copies them.

        Args:
            timeout: seconds to wait for queued shadow writes; ``None`` means the writer's
                ``close_timeout``. What is still queued then stays journaled (``pending``)
                and keeps running on the daemon workers until the process exits.

        Returns:
            Whether every queued shadow write was done (see :meth:`flush`).
        """
        runtime = self._runtime
        if runtime.closed:
            return True
        if runtime.pool is not None:
            self._not_on_own_loop("close", "await writer.aclose() or async with DualWriter(...)")
        done = True
        # Calls from now on run their shadow write in the caller's thread; a call that was
        # already queueing finds the pool closed and does the same (WorkerPool.submit).
        runtime.background = False
        runtime.staged_background = False
        pool = runtime.pool
        if pool is not None:
            done = pool.close(self.close_timeout if timeout is None else timeout)
            runtime.remove_settled()
            if not done:
                logger.warning(
                    "dualwrite: closed with %d shadow write(s) still queued; their keys stay "
                    "journaled (pending) for repair()",
                    pool.pending,
                )
        runtime.closed = True
        if self._owns_journal and self.journal is not None:
            # Closed, not dropped: a later write reopens it for one transaction (``closed``).
            self.journal.close()
        return done

    def __enter__(self) -> DualWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> DualWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"DualWriter(mode={self.mode!r}, hooks={len(self.hooks)}, "
            f"on_shadow_error={self.on_shadow_error!r})"
        )


def _flush_at_exit(ref: weakref.ReferenceType[Runtime]) -> None:
    """At interpreter exit: let a background writer's queue drain for ``close_timeout``."""
    runtime = ref()
    pool = runtime.pool if runtime is not None else None
    if runtime is None or pool is None or runtime.closed:
        return
    if not pool.pending:
        runtime.remove_settled()
        return
    timeout = runtime.close_timeout
    flushed = pool.flush(timeout)
    runtime.remove_settled()
    if flushed:
        return
    left = pool.pending
    if runtime.journal is not None:
        logger.warning(
            "dualwrite: exiting with %d shadow write(s) still queued after %s s; their keys "
            "stay journaled (pending intents) for repair()",
            left,
            timeout,
        )
    else:
        logger.error(
            "dualwrite: exiting with %d shadow write(s) still queued after %s s and no "
            "journal: those keys may differ on the shadow (run a diff)",
            left,
            timeout,
        )


def wrap(
    primary: T,
    *,
    shadow: Any,
    flag: Flag | bool | None = None,
    stage: StageOf | None = None,
    names: NameMap | None = None,
    kms_keys: Mapping[str, str] | Callable[[str], str | None] | None = None,
    shadow_account: str | None = None,
    **options: Any,
) -> T:
    """Shortcut for ``DualWriter(flag=flag, **options).wrap(primary, shadow=shadow, ...)``.

    Pass ``stage=`` instead of ``flag=`` for a staged migration (see :class:`DualWriter`).

    Args:
        primary: the client or resource to wrap (see :meth:`DualWriter.wrap`).
        shadow: the shadow account's client or resource.
        flag: the flag (see :class:`DualWriter`).
        stage: the stage callback, instead of ``flag`` (see :class:`DualWriter`).
        names: bucket/table name map (see :meth:`DualWriter.wrap`).
        kms_keys: KMS key map (see :meth:`DualWriter.wrap`).
        shadow_account: the shadow's account id (see :meth:`DualWriter.wrap`).
        **options: any other :class:`DualWriter` argument (``hooks``, ``mode``, ...).

    Returns:
        The wrapped object.
    """
    return DualWriter(flag=flag, stage=stage, **options).wrap(
        primary, shadow=shadow, names=names, kms_keys=kms_keys, shadow_account=shadow_account
    )
