"""Following writes made outside the wrapper: what every follower shares.

A follower turns notifications of writes made without the wrapper (S3 event notifications,
DynamoDB stream records) into :class:`Notice` objects and converges each key from the primary's
current state (:class:`Follower`); :mod:`dualwrite._offline.follow_s3` and
:mod:`dualwrite._offline.follow_dynamodb` read the two services' notifications.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from dualwrite._core.errors import describe_error
from dualwrite.events import Followed, Write
from dualwrite.journal import encode_key

if TYPE_CHECKING:
    from dualwrite._core.mirror import Mirror
    from dualwrite._writer import DualWriter


OUTCOMES = ("equal", "copied", "deleted", "skipped", "failed")
"""What following one key can come to (see :class:`dualwrite.events.Followed`)."""


@attrs.frozen(kw_only=True)
class Notice:
    """One key named by a notification.

    Attributes:
        bucket: the primary bucket (or, for a DynamoDB record, the primary table).
        key: the object key, decoded (a DynamoDB key in its typed form).
        event: the notification's event name (``"ObjectCreated:Put"``, ``"Object Deleted"``).
        at: the notification's event time (seconds since the epoch), when it says.
    """

    bucket: str
    key: str | Mapping[str, Any]
    event: str
    at: float | None = None


@attrs.frozen(kw_only=True)
class FollowReport:
    """What following a batch of notices did.

    Attributes:
        keys: distinct keys followed.
        equal: keys the shadow already held as the primary does (one comparison each).
        copied: keys copied to the shadow.
        deleted: keys deleted from the shadow (the primary has none).
        skipped: keys of an unmapped bucket, or whose tenant's flag is off.
        failed: keys that could not converge (journaled when a journal is given).
        journaled: failed keys recorded in the journal (repair retries them).
        errors: one line per failed key (no payload).
        failed_keys: ``(bucket, key as canonical JSON)`` of each failed key
            (:func:`dualwrite.journal.encode_key`).
        unjournaled_keys: those of them not journaled (no journal, or it failed): their
            notifications must stay on the queue.
    """

    keys: int = 0
    equal: int = 0
    copied: int = 0
    deleted: int = 0
    skipped: int = 0
    failed: int = 0
    journaled: int = 0
    errors: tuple[str, ...] = ()
    failed_keys: tuple[tuple[str, str], ...] = ()
    unjournaled_keys: tuple[tuple[str, str], ...] = ()

    def __add__(self, other: FollowReport) -> FollowReport:
        return FollowReport(
            keys=self.keys + other.keys,
            equal=self.equal + other.equal,
            copied=self.copied + other.copied,
            deleted=self.deleted + other.deleted,
            skipped=self.skipped + other.skipped,
            failed=self.failed + other.failed,
            journaled=self.journaled + other.journaled,
            errors=self.errors + other.errors,
            failed_keys=self.failed_keys + other.failed_keys,
            unjournaled_keys=self.unjournaled_keys + other.unjournaled_keys,
        )


# -- the follower --------------------------------------------------------------------------


class Follower:
    """Converge followed keys of one service through a writer's wrapped pairs.

    The writer's flag decides (``DualWriter(flag=...)``, called with a :class:`Write` whose
    ``operation`` is the event name and whose tenant comes from ``tenant_of``); its hooks get
    one :class:`~dualwrite.events.Followed` event per key; its journal, if any, records the keys
    that could not converge (reason ``shadow_failed``, detail ``follow: <error>``), so that a
    notification can be let go once its keys converged or were journaled.

    Args:
        writer: a :class:`~dualwrite.DualWriter` that wrapped the client(s) of the primary
            buckets or tables (``names=`` maps each to its shadow).
    """

    service = "s3"

    def __init__(self, writer: DualWriter) -> None:
        self.writer = writer
        self._runtime = writer._runtime  # its wrapped pairs, journal and hooks

    def converge(self, mirror: Mirror, resource: str, key: Any) -> str:
        """Converge one key; ``"equal"``, ``"copied"`` or ``"deleted"`` (per service)."""
        raise NotImplementedError

    def mirror(self, resource: str) -> Mirror | None:
        """The wrapped pair of ``resource`` (a primary bucket or table), if any."""
        for mirror in self._runtime.mirrors:
            if mirror.service == self.service and mirror.shadow_name(resource) is not None:
                return mirror
        return None

    def follow(self, notices: Iterable[Notice]) -> FollowReport:
        """Converge each distinct key of ``notices`` (the latest notice of a key names it).

        Never raises for one key: a failure is counted, reported and journaled.
        """
        latest: dict[tuple[str, str], Notice] = {}
        for notice in notices:
            latest[notice.bucket, encode_key(notice.key)] = notice
        report = FollowReport()
        for notice in latest.values():
            report += self._one(notice)
        return report

    def _one(self, notice: Notice) -> FollowReport:
        mirror = self.mirror(notice.bucket)
        write = Write(
            tenant=None,
            service=self.service,  # type: ignore[arg-type]
            operation=notice.event or "Notification",
            resource=notice.bucket,
            shadow_resource=mirror.shadow_name(notice.bucket) if mirror else None,
            key=notice.key,
        )
        if mirror is None:
            self._emit(write, "skipped", notice)
            return FollowReport(keys=1, skipped=1)
        write, on = _decide(mirror, write)
        if not on:
            self._emit(write, "skipped", notice)
            return FollowReport(keys=1, skipped=1)
        ident = (notice.bucket, encode_key(notice.key))
        try:
            outcome = self.converge(mirror, notice.bucket, notice.key)
        except Exception as exc:  # noqa: BLE001 - one key's failure must not stop the batch
            info = describe_error(exc)
            journaled = self._journal(write, info.code or info.type)
            self._emit(write, "failed", notice, info.type, info.message)
            shown = ident[1] if len(ident[1]) <= 120 else ident[1][:117] + "..."
            line = f"{self.service} {notice.bucket} {shown}: {info.type} {info.code or ''}"
            return FollowReport(
                keys=1,
                failed=1,
                journaled=int(journaled),
                errors=(line.rstrip(),),
                failed_keys=(ident,),
                unjournaled_keys=() if journaled else (ident,),
            )
        self._emit(write, outcome, notice)
        counts: dict[str, Any] = {"keys": 1, outcome: 1}
        return FollowReport(**counts)

    def _journal(self, write: Write, detail: str) -> bool:
        runtime = self._runtime
        if runtime.journal is None:
            return False
        return runtime.journal_now(write, None, "shadow_failed", f"follow: {detail}")

    def _emit(
        self,
        write: Write,
        outcome: str,
        notice: Notice,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> None:
        lag = None if notice.at is None else max(0.0, time.time() - notice.at)
        self._runtime.emit(
            Followed(
                write=write,
                outcome=outcome,
                error_type=error_type,
                error_message=error_message,
                lag=lag,
            )
        )


def _decide(mirror: Mirror, write: Write) -> tuple[Write, bool]:
    """The flag's answer for a followed key (with stages: whether the tenant is mirrored)."""
    if mirror.writer.stage is None:
        return mirror.decide(write)
    write, stage = mirror.writer.decider.stage(write)
    # Copying old to new is right while the old account is written first (DUAL_WRITE); at
    # CUTOVER a write outside the wrapper to the old account is a write to the wrong account,
    # and copying it over the new one would undo newer writes: left alone (skipped).
    return write, stage.mirrored and stage.owner == "primary"


_PAUSE = 5.0  # seconds before a long-running follower retries a failed receive or read


class Stop:
    """A flag set by SIGTERM/SIGINT: the current batch finishes, then the loop ends."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        """Ask the loop to stop after its current batch."""
        self._event.set()

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a stop is asked meanwhile."""
        self._event.wait(seconds)

    def __bool__(self) -> bool:
        return self._event.is_set()
