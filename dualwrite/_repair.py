"""Repair: make the shadow equal to the primary for every journaled key.

Repair never replays a request: it reads the key's current state on the primary and writes that
state to the shadow (or deletes the shadow's copy when the primary has none). Replaying an entry
twice, or entries in any order, or from two processes at once, gives the same result. After the
write, the primary is read again: if the key changed meanwhile (a live write), the copy is redone,
so a repair racing a live dual-write cannot leave the older value on the shadow.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs

from dualwrite._mirror import describe_error, safe_invoke, table_name
from dualwrite._stage import Stage
from dualwrite.events import Write

if TYPE_CHECKING:
    from dualwrite._mirror import Mirror
    from dualwrite.journal import Entry, Journal

_ATTEMPTS = 3


@attrs.frozen(kw_only=True)
class RepairReport:
    """What a repair run did.

    Attributes:
        entries: journal entries read.
        keys: distinct keys among them.
        copied: keys whose primary state was written to the shadow.
        deleted: keys deleted on the shadow because the primary has none.
        failed: keys that could not be repaired (their entries stay in the journal).
        skipped: keys of a bucket or table this writer has not wrapped (entries stay).
        remaining: entries left in the journal afterwards.
        seconds: how long the run took.
        errors: one line per failed key (error type and code; never a payload).
    """

    entries: int = 0
    keys: int = 0
    copied: int = 0
    deleted: int = 0
    failed: int = 0
    skipped: int = 0
    remaining: int = 0
    seconds: float = 0.0
    errors: tuple[str, ...] = ()

    @property
    def repaired(self) -> int:
        """Keys made equal (copied or deleted)."""
        return self.copied + self.deleted


class RepairError(Exception):
    """A key could not be repaired; the message says why (no payload)."""


def repair_journal(
    journal: Journal,
    mirrors: Sequence[Mirror],
    *,
    limit: int | None,
    progress: bool,
    workers: int = 1,
    staged: bool = False,
) -> RepairReport:
    """Repair every key in ``journal`` through the matching wrapped pair in ``mirrors``.

    With ``workers`` above 1, distinct keys are repaired by that many threads at once (one key
    is never repaired by two threads: its entries are grouped first).

    Each key is copied from the account its latest entry's write went to first (old to new,
    or new to old for a write made at ``CUTOVER``): see :func:`_source`. With ``staged`` (a
    ``stage=`` writer), a tenant at ``DONE`` is skipped and its entries stay (a rollback to
    ``CUTOVER`` can still repair it); so is one whose stage cannot be decided.
    """
    started = time.perf_counter()
    groups: dict[tuple[str, str, str], list[Entry]] = {}
    count = 0
    for entry in journal.entries(limit):
        # A table's ARN and its name are one table: one key, whichever the caller wrote.
        service, resource, key = entry.identity()
        groups.setdefault((service, table_name(resource), key), []).append(entry)
        count += 1
    counts = {"copied": 0, "deleted": 0, "failed": 0, "skipped": 0}
    errors: list[str] = []
    lock = threading.Lock()
    bar = _Progress(len(groups)) if progress and sys.stderr.isatty() else None

    def repair_group(entries: list[Entry]) -> None:
        first = max(entries, key=lambda entry: entry.at)  # the latest names the resource
        error = None
        mirror = _mirror_for(mirrors, first.service, first.resource)
        resource = first.resource
        if mirror is not None and mirror.shadow_name(resource) is not None:
            mirror, resource = _source(mirror, entries, staged=staged)
        if mirror is None or mirror.shadow_name(resource) is None:
            outcome = "skipped"
        else:
            try:
                outcome = converge(mirror, first.service, resource, first.key)
                journal.remove([e.id for e in entries if e.id is not None])
            except Exception as exc:  # noqa: BLE001 - one key's failure must not stop the run
                info = describe_error(exc)
                outcome = "failed"
                error = (
                    f"{first.service} {first.resource} {_show(first.key)}: "
                    f"{info.type} {info.code or ''}".rstrip()
                )
        with lock:
            counts[outcome] += 1
            if error is not None:
                errors.append(error)
            if bar is not None:
                bar.step()

    if workers > 1 and len(groups) > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dualwrite-repair") as pool:
            for _ in pool.map(repair_group, groups.values()):
                pass
    else:
        for entries in groups.values():
            repair_group(entries)
    if bar is not None:
        bar.done()
    return RepairReport(
        entries=count,
        keys=len(groups),
        remaining=journal.count(),
        seconds=time.perf_counter() - started,
        errors=tuple(sorted(errors)),
        **counts,
    )


def _mirror_for(mirrors: Iterable[Mirror], service: str, resource: str) -> Mirror | None:
    for mirror in mirrors:
        if mirror.service == service and mirror.shadow_name(resource) is not None:
            return mirror
    for mirror in mirrors:
        if mirror.service == service:
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

    Not ``ask_stage``: its fallback (both accounts, old first) is safe for a write, but a repair
    must not guess.
    """
    write = Write(
        tenant=entry.tenant,
        service=entry.service,  # type: ignore[arg-type]
        operation="Repair",
        resource=entry.resource,
        shadow_resource=mirror.shadow_name(entry.resource),
        key=entry.key,
    )
    assert mirror.writer.stage is not None
    value, exc = safe_invoke(mirror.writer.stage, write)
    return None if exc is not None else Stage.coerce(value)


def converge(mirror: Mirror, service: str, resource: str, key: Any) -> str:
    """Copy the primary's current state of one key to the shadow, or delete it there.

    Used by repair, and by shadow actions that cannot trust a replay (a server-side copy whose
    source the shadow holds at another version).

    Returns:
        ``"copied"`` or ``"deleted"``.
    """
    if service == "s3":
        from dualwrite._s3 import repair_object  # noqa: PLC0415

        return repair_object(mirror, resource, str(key))
    if service == "dynamodb":
        from dualwrite._dynamodb import repair_item  # noqa: PLC0415

        return repair_item(mirror, resource, key)
    msg = f"unknown service {service!r} in the journal"
    raise RepairError(msg)


def _show(key: object) -> str:
    text = key if isinstance(key, str) else repr(key)
    return text if len(text) <= 120 else text[:117] + "..."


class _Progress:
    """A one-line progress bar on standard error."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.done_count = 0
        self.started = time.monotonic()

    def step(self) -> None:
        self.done_count += 1
        elapsed = time.monotonic() - self.started
        rate = self.done_count / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done_count) / rate if rate else 0.0
        width = 30
        filled = int(width * self.done_count / self.total)
        sys.stderr.write(
            f"\rrepair [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done_count}/{self.total} keys, {rate:.0f}/s, ETA {eta:.0f}s "
        )
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def retry_until_stable(copy_once: Any, version_now: Any) -> str:
    """Copy, then check the primary did not change meanwhile; redo at most a few times.

    Args:
        copy_once: copies the current state; returns ``(outcome, version it copied)``.
        version_now: returns the primary's version now (ETag, or the item itself).

    Returns:
        The outcome of the last copy (``"copied"`` or ``"deleted"``).

    Raises:
        RepairError: the key kept changing.
    """
    for _ in range(_ATTEMPTS):
        outcome, copied = copy_once()
        if version_now() == copied:
            return str(outcome)
    msg = f"the key changed on the primary during {_ATTEMPTS} repair attempts"
    raise RepairError(msg)
