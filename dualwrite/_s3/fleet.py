"""S3: read-back after a shadow write, so that a fleet of writers leaves the shadow converged.

After a mirrored write the primary is read back (:func:`primary_holds`): when another process
wrote the key since, the shadow is converged from the primary's current state (:func:`settle`).
:class:`Expected` says what one write left on the primary; :class:`Stamp` and :class:`_Latest`
skip the check for a write this client itself wrote again since.
"""

from __future__ import annotations

import datetime
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import attrs
from botocore.utils import parse_timestamp

from dualwrite._core.errors import RepairError, error_code
from dualwrite._core.mirror import Mirror, ShadowContext
from dualwrite._s3.converge import _LOCK_FIELDS, MISSING_CODES
from dualwrite._s3.requests import Call, owner_params
from dualwrite.events import Write

# Content headers a write sets and HeadObject returns as they were sent. ContentEncoding
# (botocore may add aws-chunked, which S3 strips) and Expires (a date S3 reformats) are left out:
# compared, they would make equal objects look different.
_HEADERS = (
    "CacheControl",
    "ContentDisposition",
    "ContentLanguage",
    "ContentType",
    "WebsiteRedirectLocation",
)
_DEFAULT_TYPE = "binary/octet-stream"  # what S3 stores for a write without ContentType
# What reading the object back needs from the write: the SSE-C key, requester pays, the owner.
_READ_PARAMS = (
    "SSECustomerAlgorithm",
    "SSECustomerKey",
    "SSECustomerKeyMD5",
    "RequestPayer",
    "ExpectedBucketOwner",
)
_TAG_READ_PARAMS = ("RequestPayer", "ExpectedBucketOwner")


@attrs.frozen(kw_only=True)
class Expected:
    """What one mirrored write left on the primary, for the check that nobody wrote since.

    Attributes:
        present: whether the write leaves an object (``False``: a delete).
        etag: the ETag the primary returned (compared when ``version_id`` is not known).
        version_id: the version the write created; when known it names the object alone.
        modified: a copy's ``LastModified`` in whole seconds (a copy's metadata is the source's).
        headers: the content headers the object has, ``None`` for one the write did not set.
        metadata: the user metadata, keys lowercased as S3 returns them; ``None``: not compared.
        tags: the tag set the object has; ``None``: not known.
        shadow_tags: compare the primary's tag set with the shadow's (a copy kept the source's).
        lock: object-lock fields the write set, as ``(HeadObject field, value)``.
        tags_only: a tagging write: only the tag set is compared (one GetObjectTagging).
        read: parameters the primary needs to read the object back (SSE-C key, payer, owner).
    """

    present: bool = True
    etag: str | None = None
    version_id: str | None = None
    modified: int | None = None
    headers: tuple[tuple[str, Any], ...] | None = None
    metadata: Mapping[str, str] | None = None
    tags: frozenset[tuple[str, str]] | None = None
    shadow_tags: bool = False
    lock: tuple[tuple[str, Any], ...] = ()
    tags_only: bool = False
    read: Mapping[str, Any] = attrs.field(factory=dict, repr=False)


def _read_params(
    params: Mapping[str, Any], names: tuple[str, ...] = _READ_PARAMS
) -> dict[str, Any]:
    return {name: params[name] for name in names if params.get(name) is not None}


def _version(response: Mapping[str, Any]) -> str | None:
    version = response.get("VersionId")
    return version if isinstance(version, str) and version != "null" else None


def _tags_of_query(tagging: Any) -> frozenset[tuple[str, str]]:
    """The tag set of a ``Tagging`` parameter (``"a=1&b=2"``) or a ``{"TagSet": [...]}``."""
    if tagging is None or tagging == "":
        return frozenset()
    if isinstance(tagging, Mapping):
        return _tag_set(tagging)
    return frozenset(parse_qsl(str(tagging), keep_blank_values=True))


def _written(params: Mapping[str, Any], response: Mapping[str, Any]) -> Expected:
    """What a put (or a multipart upload created with ``params``) left on the primary."""
    metadata = params.get("Metadata") or {}
    return Expected(
        etag=response.get("ETag"),
        version_id=_version(response),
        headers=tuple((name, params.get(name)) for name in _HEADERS),
        metadata={str(k).lower(): str(v) for k, v in metadata.items()},
        tags=_tags_of_query(params.get("Tagging")),
        lock=tuple((name, params[name]) for name in _LOCK_FIELDS if name in params),
        read=_read_params(params),
    )


def _copied(params: Mapping[str, Any], response: Mapping[str, Any]) -> Expected:
    """What a CopyObject left on the primary: the new object, metadata and tags as directed."""
    result = response.get("CopyObjectResult") or {}
    replaced = params.get("MetadataDirective") == "REPLACE"
    tags_replaced = params.get("TaggingDirective") == "REPLACE"
    written = _written(params, {}) if replaced else None
    return Expected(
        etag=result.get("ETag"),
        version_id=_version(response),
        modified=_second(result.get("LastModified")),
        headers=written.headers if written is not None else None,
        metadata=written.metadata if written is not None else None,
        tags=_tags_of_query(params.get("Tagging")) if tags_replaced else None,
        shadow_tags=not tags_replaced,
        lock=tuple((name, params[name]) for name in _LOCK_FIELDS if name in params),
        read=_read_params(params),
    )


def settle(ctx: ShadowContext, expected: Expected, stamp: Stamp | None = None) -> None:
    """After a shadow write: if the primary moved on (another process wrote the key since),
    make the shadow equal to the primary's current state.

    Several processes may write one key at once, and a later write's shadow call may land before
    an earlier one's: the shadow would keep the older value. Whichever shadow write lands last
    is followed by this check, so the shadow ends equal to the primary (or the key is journaled,
    when the check or the convergence fails). Skipped with ``DualWriter(single_writer=True)``,
    and for a write that this client wrote again since (``stamp``): the later write reaches the
    shadow after this one and checks then. See docs/s3.md, "Fleets", for what it costs.
    """
    mirror = ctx.mirror
    write = ctx.write

    def superseded() -> bool:
        # Asked again after each read: a later write of this client may have been acknowledged
        # by the primary meanwhile (which is then why the primary moved on).
        return stamp is not None and stamp.superseded(write.key)

    try:
        if mirror.writer.single_writer or superseded():
            return
        ctx.written()
        if primary_holds(mirror, write, expected) or superseded():
            return
        ctx.converge()
    except RepairError as exc:
        if superseded():
            return
        # The key kept changing while it was copied: journaled, but the shadow answered (this
        # is no reason to open the circuit breaker).
        ctx.failed(write, exc)
    finally:
        if stamp is not None:
            stamp.done(write.key)


class _Latest:
    """Per key, the last write this client made that replaces the whole object (see Stamp).

    Bounded: a key forgotten (past :data:`_MAX_LATEST` keys) is simply checked.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._keys: OrderedDict[tuple[str, str], int] = OrderedDict()

    def stamp(self, resource: str, key: str) -> int:
        with self._lock:
            self._next += 1
            self._keys[(resource, key)] = self._next
            self._keys.move_to_end((resource, key))
            while len(self._keys) > _MAX_LATEST:
                self._keys.popitem(last=False)
            return self._next

    def superseded(self, resource: str, key: str, number: int) -> bool:
        with self._lock:
            latest = self._keys.get((resource, key))
        return latest is not None and latest != number

    def done(self, resource: str, key: str, number: int) -> None:
        with self._lock:
            if self._keys.get((resource, key)) == number:
                del self._keys[(resource, key)]


_MAX_LATEST = 100_000


class Stamp:
    """The order of one write of whole objects among this client's writes of the same keys.

    Taken when the primary acknowledged the write, under the key's lock (so in the primary's
    order). In background mode a later write of the same key is queued behind this one: its own
    fleet check, which covers everything this one's would, runs after this write reached the
    shadow, so this one's is skipped (without it every write of a busy key would converge).
    """

    def __init__(self, mirror: Mirror, resource: str) -> None:
        self._latest: _Latest = mirror.state.latest
        self._resource = resource
        self._numbers: dict[str, int] = {}

    def primary(self, call: Call, keys: Callable[[], list[str]]) -> Call:
        """``call``, stamping ``keys()`` once it succeeded."""

        def stamped(**kwargs: Any) -> Any:
            response = call(**kwargs)
            for key in keys():
                self._numbers[key] = self._latest.stamp(self._resource, key)
            return response

        return stamped

    def superseded(self, key: Any) -> bool:
        number = self._numbers.get(key)
        return number is not None and self._latest.superseded(self._resource, key, number)

    def done(self, key: Any) -> None:
        number = self._numbers.get(key)
        if number is not None:
            self._latest.done(self._resource, key, number)


def primary_holds(mirror: Mirror, write: Write, expected: Expected) -> bool:
    """Whether the primary's object ``write.key`` is still what ``expected`` describes."""
    primary = mirror.primary
    target = {"Bucket": write.resource, "Key": write.key}
    try:
        if expected.tags_only:
            tagging = primary.get_object_tagging(
                **target, **_read_params(expected.read, _TAG_READ_PARAMS)
            )
            return _tag_set(tagging) == expected.tags
        head = primary.head_object(**target, **expected.read)
    except Exception as exc:
        if error_code(exc) in MISSING_CODES:
            return not expected.present
        raise
    if not expected.present or head.get("DeleteMarker"):
        return False
    if expected.version_id is not None:
        if head.get("VersionId") != expected.version_id:
            return False
    elif not _same_object(head, expected):
        return False
    for name, value in expected.lock:
        if not _same_lock(head.get(name), value):
            return False
    count = int(head.get("TagCount") or 0)
    if expected.tags is not None:
        if count != len(expected.tags):
            return False
        if not count:
            return True
        tagging = primary.get_object_tagging(
            **target, **_read_params(expected.read, _TAG_READ_PARAMS)
        )
        return _tag_set(tagging) == expected.tags
    if expected.shadow_tags:
        mine: frozenset[tuple[str, str]] = frozenset()
        if count:
            mine = _tag_set(
                primary.get_object_tagging(
                    **target, **_read_params(expected.read, _TAG_READ_PARAMS)
                )
            )
        theirs = mirror.shadow.get_object_tagging(
            Bucket=write.shadow_resource, Key=write.key, **owner_params(mirror)
        )
        return mine == _tag_set(theirs)
    return True


def _same_object(head: Mapping[str, Any], expected: Expected) -> bool:
    """Whether a HeadObject shows the object ``expected`` describes (no version id known)."""
    if expected.etag is not None and head.get("ETag") != expected.etag:
        return False
    if expected.modified is not None and _second(head.get("LastModified")) != expected.modified:
        return False
    if expected.metadata is not None:
        metadata = head.get("Metadata") or {}
        if {str(k).lower(): str(v) for k, v in metadata.items()} != expected.metadata:
            return False
    for name, value in expected.headers or ():
        got = head.get(name)
        if value is None and name == "ContentType":
            if got not in (None, _DEFAULT_TYPE):
                return False
        elif got != value:
            return False
    return True


def _second(value: Any) -> int | None:
    """A timestamp in whole seconds (HeadObject's LastModified has no finer resolution)."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    return None


def _same_lock(got: Any, want: Any) -> bool:
    if isinstance(want, str) and not isinstance(got, datetime.datetime):
        return (got or "OFF") == want if want in ("ON", "OFF") else got == want
    try:
        want_time = want if isinstance(want, datetime.datetime) else parse_timestamp(want)
    except Exception:  # noqa: BLE001 - a value botocore would send as given: cannot compare
        return True
    if not isinstance(got, datetime.datetime):
        return False
    if want_time.tzinfo is None:
        want_time = want_time.replace(tzinfo=datetime.timezone.utc)
    return abs(got.timestamp() - want_time.timestamp()) < 1


def _tag_set(response: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    return frozenset((str(t.get("Key")), str(t.get("Value"))) for t in response.get("TagSet", []))
