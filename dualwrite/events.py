"""The records dualwrite hands to flags and hooks.

Every write the library sees is described by a :class:`Write`. Hooks receive one event per
outcome; each event has a ``kind`` (a string constant of its class) and the ``write`` it is about.
Events are frozen: new fields may appear in later releases, so hooks should read the fields they
need and ignore the rest.

No event ever holds an object body, an SSE-C key, a credential or the request's parameters.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import attrs

from dualwrite._stage import Stage

__all__ = [
    "CircuitClosed",
    "CircuitOpened",
    "Event",
    "FlagFailed",
    "Followed",
    "JournalFailed",
    "Mismatch",
    "NoTenant",
    "PresignedWrite",
    "ShadowFailed",
    "ShadowWritten",
    "Unsupported",
    "Write",
]

Service = Literal["s3", "dynamodb", "job"]
"""The AWS service of a write; ``"job"`` for the question a scheduled-job guard asks
(:meth:`dualwrite.DualWriter.runs_here`)."""


@attrs.frozen(kw_only=True)
class Write:
    """One write call, as the flag and the hooks see it.

    Attributes:
        tenant: the tenant of the write (from :func:`dualwrite.tenant` or ``tenant_of``), or
            ``None``.
        service: ``"s3"`` or ``"dynamodb"``.
        operation: the API operation name, e.g. ``"PutObject"`` or ``"UpdateItem"``.
        resource: the primary bucket or table name: the one written first. Under
            :attr:`Stage.CUTOVER` that is the new account's name.
        shadow_resource: the shadow bucket or table name (under ``CUTOVER``, the old account's);
            ``None`` when no mapping exists.
        key: the S3 object key, the DynamoDB key as a dict, or ``None`` for calls that touch
            several keys.
        stage: the tenant's :class:`~dualwrite.Stage` for this call, with a ``stage=`` callback
            (``None`` in the callback's own argument, and with ``flag=``).
    """

    tenant: str | None
    service: Service
    operation: str
    resource: str
    shadow_resource: str | None
    key: str | Mapping[str, Any] | None = None
    stage: Stage | None = None


# Write.__init__ as attrs generates it for a frozen class costs about 11k instructions (a
# keyword call, then object.__setattr__ per field); every wrapped write builds at least one,
# flag on or off. _new_write() builds the same object through the slots' own setters in about
# half that (tests/test_events.py holds it to attrs' __init__). It sets every field by name: a
# field added to Write must be added there too, which this check makes impossible to miss.
_WRITE_FIELDS = ("tenant", "service", "operation", "resource", "shadow_resource", "key", "stage")
if tuple(f.name for f in attrs.fields(Write)) != _WRITE_FIELDS:  # pragma: no cover
    raise AssertionError("dualwrite.events.Write changed: update dualwrite.events._new_write")
_new = object.__new__
(
    _set_tenant,
    _set_service,
    _set_operation,
    _set_resource,
    _set_shadow_resource,
    _set_key,
    _set_stage,
) = (vars(Write)[name].__set__ for name in _WRITE_FIELDS)


def _new_write(
    tenant: str | None,
    service: Service,
    operation: str,
    resource: str,
    shadow_resource: str | None,
    key: str | Mapping[str, Any] | None = None,
    stage: Stage | None = None,
) -> Write:
    """``Write(tenant=..., ...)``, built faster (the library's hot paths; not public API)."""
    write = _new(Write)
    _set_tenant(write, tenant)
    _set_service(write, service)
    _set_operation(write, operation)
    _set_resource(write, resource)
    _set_shadow_resource(write, shadow_resource)
    _set_key(write, key)
    _set_stage(write, stage)
    return write


@attrs.frozen(kw_only=True)
class Event:
    """Base class of all events.

    Attributes:
        write: the write the event is about.
        at: wall-clock time of the event (seconds since the epoch).
    """

    kind: ClassVar[str] = "event"
    write: Write
    at: float = attrs.field(factory=time.time)


@attrs.frozen(kw_only=True)
class ShadowWritten(Event):
    """The shadow write succeeded.

    Attributes:
        latency: seconds the shadow call took.
        lag: seconds from the primary's acknowledgement to the shadow's.

    Both end at the shadow's acknowledgement: the fleet check's read of the primary after it
    (``single_writer=False``, the default) is not counted.
    """

    kind: ClassVar[str] = "shadow_written"
    latency: float
    lag: float


@attrs.frozen(kw_only=True)
class ShadowFailed(Event):
    """The shadow write failed, after botocore's own retries.

    Attributes:
        error_type: the exception's class name, e.g. ``"ClientError"``.
        error_code: the AWS error code for a ``ClientError`` (e.g. ``"AccessDenied"``), else
            ``None``.
        error_message: the exception's message, with secrets and bodies removed.
        latency: seconds spent on the failed attempt.
    """

    kind: ClassVar[str] = "shadow_failed"
    error_type: str
    error_code: str | None
    error_message: str
    latency: float = 0.0


@attrs.frozen(kw_only=True)
class Mismatch(Event):
    """Both writes succeeded but their results disagree.

    Attributes:
        field: what differs, e.g. ``"ETag"`` or ``"ChecksumCRC32"``.
        primary: the primary's value.
        shadow: the shadow's value.
    """

    kind: ClassVar[str] = "mismatch"
    field: str
    primary: str | None
    shadow: str | None


@attrs.frozen(kw_only=True)
class Unsupported(Event):
    """A write the library cannot mirror.

    Attributes:
        reason: why, e.g. ``"unmapped"`` (no shadow name for the bucket) or
            ``"version-specific"`` (a delete by VersionId).
        detail: a human-readable explanation.
    """

    kind: ClassVar[str] = "unsupported"
    reason: str
    detail: str = ""


@attrs.frozen(kw_only=True)
class FlagFailed(Event):
    """The flag callback or ``tenant_of`` raised; the write was treated as flag-off.

    With a ``stage=`` callback the call is treated as :attr:`Stage.DUAL_WRITE` instead (both
    accounts get the write, the old one first), and ``source`` is ``"stage"`` when the callback
    raised, returned something that is not a stage, or the tables of one call are at stages
    that disagree on which account is written first (``error_type="StageConflict"``).

    Attributes:
        source: ``"flag"``, ``"stage"`` or ``"tenant_of"``.
        error_type: the exception's class name.
        error_message: the exception's message.
    """

    kind: ClassVar[str] = "flag_failed"
    source: str
    error_type: str
    error_message: str


@attrs.frozen(kw_only=True)
class CircuitOpened(Event):
    """The shadow failed too often in a row: it is not called until the breaker's next probe.

    Until then every write is reported ``shadow_failed`` (``error_type="CircuitOpen"``) and
    journaled. ``write`` is the write whose failure opened the circuit.

    Attributes:
        service: the service whose shadow is cut off.
    """

    kind: ClassVar[str] = "circuit_opened"
    service: str


@attrs.frozen(kw_only=True)
class CircuitClosed(Event):
    """A probe write reached the shadow: it is called again for every write.

    Attributes:
        service: the service whose shadow is back.
    """

    kind: ClassVar[str] = "circuit_closed"
    service: str


@attrs.frozen(kw_only=True)
class JournalFailed(Event):
    """The journal could not record or remove a write's entries, or recovered from a fault.

    The write itself went on (the caller's outcome never depends on the journal), but what
    the journal should hold for it may be missing: a key not recorded is a key ``repair()``
    cannot restore. One log line at ERROR level says the same.

    Attributes:
        problem: ``"locked"`` (another process held the journal's write lock past the busy
            timeout), ``"full"`` (its disk is full), ``"deleted"`` (its file was deleted while
            in use; it was recreated), or ``"error"``.
        action: what failed: ``"add"`` (entries not recorded), ``"remove"`` (entries left
            behind: repair settles them) or ``"recreate"`` (the journal recreated itself).
        entries: how many entries the failed call carried.
        reason: the journal reason of those entries (``"pending"``, ``"shadow_failed"``, ...).
        error_type: the exception's class name.
        error_message: the exception's message (keys only, never payloads).
    """

    kind: ClassVar[str] = "journal_failed"
    problem: str
    action: str
    entries: int
    reason: str
    error_type: str
    error_message: str


@attrs.frozen(kw_only=True)
class NoTenant(Event):
    """A write reached the flag with no tenant: no :func:`dualwrite.tenant` block was active
    and ``tenant_of`` (if any) returned ``None``.

    A flag that checks the tenant then usually says "off": the write is not mirrored. Sent for
    every such write, but only to hooks with an attribute ``no_tenant = True`` (``MetricsHook``
    has it and counts them as ``no_tenant``), so that hooks that log every event are not
    flooded; the library also logs one warning per process. Not sent with a constant flag
    (``flag=True``/``False``).
    """

    kind: ClassVar[str] = "no_tenant"


@attrs.frozen(kw_only=True)
class PresignedWrite(Event):
    """A presigned URL or POST for a write was signed through a wrapped client, flag on.

    The upload goes from its holder straight to the account it was signed for, never through
    the wrapper: the key (or key prefix) was journaled (reason ``"presigned"``) so that
    ``repair()`` copies the object to the other account once it exists. ``write.operation`` is
    the signed operation (``"PutObject"``, ``"UploadPart"``, ``"PostObject"``...).

    Attributes:
        expires: when the URL or POST stops working (seconds since the epoch).
        prefix: whether ``write.key`` is a key prefix (a POST whose key ends in
            ``${filename}``: the holder chooses the rest of the key).
        journaled: whether the entry is durable (``False``: no journal, or it failed; a
            ``journal_failed`` event then says why).
    """

    kind: ClassVar[str] = "presigned_write"
    expires: float
    prefix: bool = False
    journaled: bool = True


@attrs.frozen(kw_only=True)
class Followed(Event):
    """A key written outside the wrapper was followed: ``dualwrite follow`` or a Lambda handler
    converged it from the primary's current state.

    ``write.operation`` is the notification's event name (``"ObjectCreated:Put"``,
    ``"Object Deleted"``, ``"MODIFY"``...).

    Attributes:
        outcome: ``"equal"`` (one comparison, nothing written), ``"copied"``, ``"deleted"``
            (the shadow's copy removed: the primary has none), ``"skipped"`` (the flag says
            off, or no shadow name) or ``"failed"``.
        error_type: for ``"failed"``, the exception's class name.
        error_message: for ``"failed"``, its message (no payload).
        lag: seconds from the notification's event time to the outcome, when known.
    """

    kind: ClassVar[str] = "followed"
    outcome: str
    error_type: str | None = None
    error_message: str | None = None
    lag: float | None = None
