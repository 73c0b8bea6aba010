"""Repair: make the two accounts agree on every journaled key, copying from the one that took it.

Repair never replays a request: it reads the key's current state in the *source* account and
writes that state to the other account (or deletes the other's copy when the source has none).
The source is the account that acknowledged the key's latest journaled write (``Entry.first``:
the old account, or the new one for a write made at ``CUTOVER``; see :func:`_source`), not the
account that owns the tenant now. Replaying an entry twice, or entries in any order, or from two
processes at once, gives the same result. After the write, the source's state is read again (S3:
ETag, attributes, tags, object lock, storage class and encryption; DynamoDB: the whole item): if
it moved meanwhile (a live write), the copy is redone, a bounded number of times, so a repair
racing a live dual-write cannot leave an older value, tag or metadata on the other account. A
key that does not settle keeps its entries.

Safe beside live writers:

* A ``pending`` intent whose writer process is alive (:func:`dualwrite.journal.owner_alive`) is
  left to that process, which removes it once its shadow write is done; a dead writer's intent
  is repaired and removed. When liveness cannot be told (a writer on another host, or an entry
  of an earlier release that recorded no owner), the intent is left while it is younger than
  ``pending_grace`` seconds (:data:`PENDING_GRACE`) and repaired after that.
* Entries are removed by id: an entry added for the same key while repair runs stays.
* No lock of the live write path is held, so an unrelated key never waits behind a repair.
* One pass: an entry seen twice in a run (an SQS message whose visibility timeout ran out) ends
  the reading; ``limit`` counts only entries repair acts on; ``deadline`` bounds the run, and a
  hung shadow call is abandoned at the deadline (its entries stay).
* Resource-level entries (the write's key could not be read) cannot be settled key by key: they
  stay, are counted ``unresolved``, and need a ``diff``/``copy`` of their bucket or table.
"""

from __future__ import annotations

import functools
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from dualwrite import _services as services
from dualwrite._core.converge import ATTEMPTS
from dualwrite._core.errors import RepairError, describe_error
from dualwrite._offline.progress import Progress
from dualwrite._stage import Stage
from dualwrite.events import Write
from dualwrite.journal import one_pass, owner_alive

if TYPE_CHECKING:
    from dualwrite._core.mirror import Mirror
    from dualwrite._s3.server_copy import ServerSideCopy
    from dualwrite.journal import Entry, Journal

PENDING_GRACE = 600.0
"""Seconds a ``pending`` intent of unknown liveness is left to its writer (see module doc)."""

_CHUNK = 1000  # keys read before they are repaired: SQS receipts stay fresh, memory bounded


@attrs.frozen(kw_only=True)
class RepairReport:
    """What a repair run did.

    Attributes:
        entries: journal entries read.
        keys: distinct keys among the entries repair acted on.
        copied: keys whose state was copied from the account that acknowledged their latest
            journaled write (the primary, or the new account for a write made at ``CUTOVER``)
            to the other.
        deleted: keys deleted on the other account because that source account has none.
        failed: keys that could not be repaired, or did not settle (the source kept changing);
            their entries stay in the journal.
        skipped: keys of a bucket or table this writer has not wrapped, or of a tenant whose
            stage forbids a repair (entries stay).
        in_flight: keys whose only entries are ``pending`` intents of writer processes still
            alive (or too recent to tell): left to those writers (entries stay).
        unresolved: resource-level entries (no key: see ``Entry.resource_level``), left in the
            journal until a ``copy`` of their bucket or table settles them.
        unresolved_resources: ``"service resource"`` of each, sorted.
        unfinished: keys not repaired because the deadline passed (entries stay).
        timed_out: whether the deadline passed before the run was done.
        remaining: entries left in the journal afterwards.
        seconds: how long the run took.
        errors: one line per failed key (error type and code; never a payload).
        presigned_waiting: ``presigned`` entries kept: the URL still works and the upload has
            not come yet (or, for a ``${filename}`` POST, more may come).
        presigned_expired: ``presigned`` entries dropped: the URL expired unused.
        copied_in_s3: with ``server_side``, S3 objects S3 copied itself (``CopyObject``,
            ``UploadPartCopy``), one per copy made (a key redone counts again).
        copied_through_host: with ``server_side``, S3 objects copied through this host instead
            because the shadow may not read them on the source account (``AccessDenied``).
    """

    entries: int = 0
    keys: int = 0
    copied: int = 0
    deleted: int = 0
    failed: int = 0
    skipped: int = 0
    in_flight: int = 0
    unresolved: int = 0
    unresolved_resources: tuple[str, ...] = ()
    unfinished: int = 0
    timed_out: bool = False
    remaining: int = 0
    seconds: float = 0.0
    errors: tuple[str, ...] = ()
    presigned_waiting: int = 0
    presigned_expired: int = 0
    copied_in_s3: int = 0
    copied_through_host: int = 0

    @property
    def repaired(self) -> int:
        """Keys made equal (copied or deleted)."""
        return self.copied + self.deleted

    @property
    def settled(self) -> bool:
        """Whether every entry read was settled or left to a live writer.

        False while any key failed, was skipped or unfinished, or a resource-level entry
        remains: the journal then still names data the shadow may lack.
        """
        return not (
            self.failed or self.skipped or self.unresolved or self.unfinished or self.timed_out
        )


def repair_journal(
    journal: Journal,
    mirrors: Sequence[Mirror],
    *,
    limit: int | None,
    progress: bool,
    workers: int = 1,
    staged: bool = False,
    deadline: float | None = None,
    pending_grace: float = PENDING_GRACE,
    attempts: int = ATTEMPTS,
    server_side: bool = False,
) -> RepairReport:
    """Repair every key in ``journal`` through the matching wrapped pair in ``mirrors``.

    One pass over the journal, in chunks: distinct keys are repaired by ``workers`` threads
    (one key is never repaired by two threads: its entries are grouped first). See the module
    docstring for what is left to live writers and what ends a run.

    Each key is copied from the account its latest entry's write went to first (old to new,
    or new to old for a write made at ``CUTOVER``): see :func:`_source`. With ``staged`` (a
    ``stage=`` writer), a tenant at ``DONE`` is skipped and its entries stay (a rollback to
    ``CUTOVER`` can still repair it); so is one whose stage cannot be decided.

    Args:
        journal: the journal to read.
        mirrors: the wrapped pairs.
        limit: act on at most this many entries (entries left to live writers, of unwrapped
            resources, of tenants at ``DONE``, or resource-level, do not count).
        progress: draw a progress bar on standard error when it is a terminal.
        workers: keys repaired at once.
        staged: the writer has a ``stage=`` callback.
        deadline: seconds the run may take: after them no key starts, keys in flight are
            abandoned (their entries stay) and the report says ``timed_out``.
        pending_grace: seconds a ``pending`` intent of unknown liveness is left to its writer.
        attempts: copies of one key at most when the primary keeps changing under it.
        server_side: S3 copies each S3 object itself with the destination's credentials
            (:class:`dualwrite._s3.server_copy.ServerSideCopy`), or through this host when the
            destination may not read the source's object.
    """
    started = time.perf_counter()
    ends = None if deadline is None else time.monotonic() + deadline
    run = _Run(journal, mirrors, staged=staged, ends=ends, attempts=attempts, workers=workers)
    if server_side:
        from dualwrite._s3.server_copy import ServerSideCopy  # noqa: PLC0415 - S3, on request

        run.copier = ServerSideCopy("dualwrite repair (server-side)")
    run.bar = Progress("repair") if progress and sys.stderr.isatty() else None
    alive: dict[str | None, bool | None] = {}
    now = time.time()

    def left_to_owner(entry: Entry) -> bool:
        if entry.reason != "pending":
            return False
        if entry.owner not in alive:
            alive[entry.owner] = owner_alive(entry.owner)
        known = alive[entry.owner]
        if known is not None:
            return known
        return now - entry.at < pending_grace

    groups: dict[tuple[str, str, str], list[Entry]] = {}
    owned: dict[tuple[str, str, str], list[Entry]] = {}
    presigned: list[Entry] = []
    acted = 0
    for entry in one_pass(journal):
        if limit is not None and acted >= limit:
            break  # this entry is left for the next run
        run.count("entries")
        if entry.reason == "presigned" and not entry.resource_level:
            presigned.append(entry)  # settled by dualwrite._s3.presign, after the keys
            acted += 1
            continue
        if entry.resource_level:
            run.unresolved(entry)
            continue
        # A table's ARN and its name are one table: one key, whichever the caller wrote.
        service, resource, key = entry.identity()
        ident = (service, _one_name(service, resource), key)
        if left_to_owner(entry):
            owned.setdefault(ident, []).append(entry)
            continue
        mirror = _mirror_for(mirrors, entry.service, entry.resource)
        if mirror is None or (staged and _stage_now(mirror, entry) in (None, Stage.DONE)):
            # Skipped, key by key (see _source): such entries do not use up the limit.
            groups.setdefault(ident, []).append(entry)
            continue
        groups.setdefault(ident, []).append(entry)
        acted += 1
        if len(groups) >= _CHUNK:
            run.repair(groups)
            groups = {}
        if run.expired():
            break
    run.repair(groups)
    run.settle_presigned(presigned, now)
    run.finish()
    run.add("in_flight", len(set(owned) - run.attempted))
    return run.report(started)


class _Run:
    """The counts of one repair run, and the daemon threads that repair its keys."""

    def __init__(
        self,
        journal: Journal,
        mirrors: Sequence[Mirror],
        *,
        staged: bool,
        ends: float | None,
        attempts: int,
        workers: int,
    ) -> None:
        self.journal = journal
        self.mirrors = mirrors
        self.staged = staged
        self.ends = ends
        self.attempts = attempts
        self.bar: Progress | None = None
        self.copier: ServerSideCopy | None = None  # S3 objects copied inside S3 (server_side)
        self.attempted: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._errors: list[str] = []
        self._resources: set[str] = set()
        self._timed_out = False
        self._pool = _Pool(workers)

    def count(self, name: str) -> None:
        self.add(name, 1)

    def add(self, name: str, value: int) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + value

    def unresolved(self, entry: Entry) -> None:
        with self._lock:
            self._counts["unresolved"] = self._counts.get("unresolved", 0) + 1
            self._resources.add(f"{entry.service} {_one_name(entry.service, entry.resource)}")

    def expired(self) -> bool:
        if self.ends is not None and time.monotonic() >= self.ends:
            self._timed_out = True
        return self._timed_out

    def repair(self, groups: dict[tuple[str, str, str], list[Entry]]) -> None:
        """Repair ``groups`` (one per key) and wait for them, or for the deadline."""
        if not groups:
            return
        self.attempted.update(groups)
        if self.bar is not None:
            self.bar.grow(len(groups))
        for entries in groups.values():
            self._pool.submit(functools.partial(self._group, entries))
        if not self._pool.wait(self.ends):
            self._timed_out = True

    def _group(self, entries: list[Entry]) -> None:
        if self.expired():
            self.count("unfinished")
            return
        outcome, error = _repair_group(
            self.journal,
            self.mirrors,
            entries,
            staged=self.staged,
            attempts=self.attempts,
            deadline=self.ends,
            copier=self.copier,
        )
        with self._lock:
            self._counts[outcome] = self._counts.get(outcome, 0) + 1
            if outcome != "skipped":
                self._counts["keys"] = self._counts.get("keys", 0) + 1
            if error is not None:
                self._errors.append(error)
        if self.bar is not None:
            self.bar.step()

    def settle_presigned(self, entries: list[Entry], now: float) -> None:
        """Settle ``presigned`` entries on the workers, and wait for them or the deadline."""
        if not entries:
            return
        for entry in entries:
            self._pool.submit(functools.partial(self._presigned, entry, now))
        if not self._pool.wait(self.ends):
            self._timed_out = True

    def _presigned(self, entry: Entry, now: float) -> None:
        """Settle one ``presigned`` entry (see :func:`dualwrite._s3.presign.settle`)."""
        from dualwrite._s3.presign import settle  # noqa: PLC0415 - only with presigned entries

        if self.expired():
            self.count("unfinished")
            return

        mirror = _mirror_for(self.mirrors, entry.service, entry.resource)
        source, resource = None, entry.resource
        if mirror is not None:
            source, resource = _source(mirror, [entry], staged=self.staged)
        if source is None or source.shadow_name(resource) is None:
            self.count("skipped")
            return
        try:
            counts, done = settle(source, resource, entry, now)
            if done and entry.id is not None:
                self.journal.remove([entry.id])
        except Exception as exc:  # noqa: BLE001 - one entry's failure must not stop the run
            info = describe_error(exc)
            with self._lock:
                self._counts["failed"] = self._counts.get("failed", 0) + 1
                self._errors.append(
                    f"s3 {entry.resource} {_show(entry.key)} (presigned): {info.type} "
                    f"{info.code or ''}".rstrip()
                )
            return
        for name, value in counts.items():
            if name in ("equal", "copied", "deleted"):
                self.add("keys", value)
            if name != "equal":
                self.add(name, value)

    def finish(self) -> None:
        self._pool.close()
        if self.bar is not None:
            self.bar.close()

    def report(self, started: float) -> RepairReport:
        try:
            remaining = self.journal.count()
        except Exception:  # noqa: BLE001 - the count is for the report only
            remaining = -1
        with self._lock:
            counts = dict(self._counts)
            unfinished = counts.get("unfinished", 0) + self._pool.abandoned()
            return RepairReport(
                entries=counts.get("entries", 0),
                keys=counts.get("keys", 0),
                copied=counts.get("copied", 0),
                deleted=counts.get("deleted", 0),
                failed=counts.get("failed", 0),
                skipped=counts.get("skipped", 0),
                in_flight=counts.get("in_flight", 0),
                unresolved=counts.get("unresolved", 0),
                unresolved_resources=tuple(sorted(self._resources)),
                unfinished=unfinished,
                timed_out=self._timed_out,
                remaining=remaining,
                seconds=time.perf_counter() - started,
                errors=tuple(sorted(self._errors)),
                presigned_waiting=counts.get("presigned_waiting", 0),
                presigned_expired=counts.get("presigned_expired", 0),
                copied_in_s3=0 if self.copier is None else self.copier.server_side,
                copied_through_host=0 if self.copier is None else self.copier.through_host,
            )


def _repair_group(
    journal: Journal,
    mirrors: Sequence[Mirror],
    entries: list[Entry],
    *,
    staged: bool,
    attempts: int,
    deadline: float | None,
    copier: ServerSideCopy | None = None,
) -> tuple[str, str | None]:
    """Repair one key; remove its entries (by id) once the other side holds the source's state."""
    first = max(entries, key=lambda entry: entry.at)  # the latest names the resource
    mirror = _mirror_for(mirrors, first.service, first.resource)
    resource = first.resource
    if mirror is not None and mirror.shadow_name(resource) is not None:
        mirror, resource = _source(mirror, entries, staged=staged)
    if mirror is None or mirror.shadow_name(resource) is None:
        return "skipped", None
    try:
        outcome = converge(
            mirror,
            first.service,
            resource,
            first.key,
            attempts=attempts,
            deadline=deadline,
            copier=copier,
        )
        journal.remove([e.id for e in entries if e.id is not None])
    except Exception as exc:  # noqa: BLE001 - one key's failure must not stop the run
        info = describe_error(exc)
        detail = info.code or (info.message if isinstance(exc, RepairError) else "")
        error = f"{first.service} {first.resource} {_show(first.key)}: {info.type} {detail}"
        return "failed", error.rstrip()
    return outcome, None


class _Pool:
    """Daemon worker threads: a key whose shadow call hangs is abandoned at the deadline
    (``wait`` returns) instead of holding the run, or the interpreter's exit, with it."""

    def __init__(self, workers: int) -> None:
        self._size = max(1, workers)
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._pending = 0

    def submit(self, task: Callable[[], None]) -> None:
        with self._cond:
            self._pending += 1
        if len(self._threads) < self._size:
            thread = threading.Thread(
                target=self._loop, name=f"dualwrite-repair-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        self._tasks.put(task)

    def _loop(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            try:
                task()
            except Exception:  # noqa: BLE001, S110 - a task reports its own failures
                pass
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

    def wait(self, ends: float | None) -> bool:
        """Wait until every task is done (``True``) or ``ends`` passed (``False``)."""
        with self._cond:
            while self._pending:
                timeout = None if ends is None else ends - time.monotonic()
                if timeout is not None and timeout <= 0:
                    return False
                self._cond.wait(timeout)
            return True

    def abandoned(self) -> int:
        """Tasks still running or queued (past the deadline)."""
        with self._cond:
            return self._pending

    def close(self) -> None:
        for _ in self._threads:
            self._tasks.put(None)


def _one_name(service: str, resource: str) -> str:
    """The name under which ``resource``'s keys are one (a table's ARN and its name), or the
    name itself for a service this release does not know (the entry is then left alone)."""
    try:
        return services.get(service).lock_name(resource)
    except KeyError:
        return resource


def _mirror_for(mirrors: Iterable[Mirror], service: str, resource: str) -> Mirror | None:
    for mirror in mirrors:
        if mirror.service == service and mirror.shadow_name(resource) is not None:
            return mirror
    return None


def _source(mirror: Mirror, entries: Sequence[Entry], *, staged: bool) -> tuple[Mirror | None, str]:
    """The pair to repair a key through, and its resource there: from the account that the
    key's latest journaled write went to first (``Entry.first``), which acknowledged it.

    Not the account that owns the tenant now: a write made old-first just before a flip to
    CUTOVER, and lost with a crash before it reached the new account, exists only in the old
    one; copying from the new account would delete it from both. Later writes either reached
    both accounts (the direction does not matter) or were journaled after it.

    With stages, a tenant at ``DONE`` (the old account no longer kept), or whose stage cannot be
    decided, is skipped: its entries stay.
    """
    latest = max(entries, key=lambda entry: entry.at)
    if staged and _stage_now(mirror, latest) in (None, Stage.DONE):
        return None, latest.resource
    if latest.first != "shadow":
        return mirror, latest.resource
    new = mirror.new_name(latest.resource)
    if new is None:
        return None, latest.resource
    return mirror.reverse(), new


def _stage_now(mirror: Mirror, entry: Entry) -> Stage | None:
    """The tenant's stage as the callback says now; ``None`` when it fails.

    Not the write path's decision: its fallback (both accounts, old first) is safe for a write,
    but a repair must not guess; nor is a failure reported (the key is only skipped).
    """
    write = Write(
        tenant=entry.tenant,
        service=entry.service,  # type: ignore[arg-type]
        operation="Repair",
        resource=entry.resource,
        shadow_resource=mirror.shadow_name(entry.resource),
        key=entry.key,
    )
    return mirror.writer.decider.stage_now(write, report=False)


def converge(
    mirror: Mirror,
    service: str,
    resource: str,
    key: Any,
    *,
    attempts: int | None = None,
    deadline: float | None = None,
    copier: ServerSideCopy | None = None,
) -> str:
    """Copy the primary's current state of one key to the shadow, or delete it there.

    Used by repair, and by shadow actions that cannot trust a replay (a server-side copy whose
    source the shadow holds at another version).

    Args:
        mirror: the wrapped pair.
        service: ``"s3"`` or ``"dynamodb"``.
        resource: the primary bucket or table.
        key: the S3 key, or the DynamoDB key.
        attempts: copies at most when the primary keeps changing (default :data:`ATTEMPTS`).
        deadline: a ``time.monotonic()`` instant after which no new attempt starts.
        copier: copies an S3 object inside S3 (``server_side``); ``None``, or a DynamoDB key:
            the service's own convergence.

    Returns:
        ``"copied"`` or ``"deleted"``.

    Raises:
        RepairError: the key did not settle, or cannot be repaired (no shadow name).
    """
    if service != mirror.service:
        msg = f"a {service!r} entry cannot be repaired through a {mirror.service!r} pair"
        raise RepairError(msg)
    if copier is not None and service == "s3":
        from dualwrite._s3.converge import repair_object  # noqa: PLC0415 - S3, on request

        # The same convergence as the S3 plugin's, only the object's bytes take S3's path.
        return repair_object(
            mirror, resource, str(key), attempts=attempts, deadline=deadline, copy=copier
        )
    return mirror.plugin.converge(mirror, resource, key, attempts=attempts, deadline=deadline)


def _show(key: object) -> str:
    text = key if isinstance(key, str) else repr(key)
    return text if len(text) <= 120 else text[:117] + "..."
