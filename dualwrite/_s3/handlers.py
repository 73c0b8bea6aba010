"""S3: which operation is mirrored how.

Three tables classify every operation of botocore's S3 model (a test walks the model and fails on
any operation missing from them):

* ``HANDLERS``: object writes mirrored to the shadow, each by a small function below;
* ``UNSUPPORTED``: object writes that cannot be mirrored and are reported as ``unsupported``;
* ``PRIMARY_ONLY``: reads and control-plane calls, which go to the primary only.

Every shadow request that creates an object carries ``ACL="bucket-owner-full-control"`` with the
caller's ``ACL``/``Grant*`` removed (:func:`translate`), and every account-specific parameter is
translated or dropped.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import attrs
from botocore.utils import parse_timestamp

from dualwrite._core.bodies import Body
from dualwrite._core.converge import retry_until_stable
from dualwrite._core.errors import (
    ErrorInfo,
    RepairError,
    SkipShadow,
    UnsupportedWrite,
    describe_error,
)
from dualwrite._core.mirror import Mirror, ShadowContext
from dualwrite._core.snapshot import snapshot
from dualwrite._stage import Stage
from dualwrite.events import Write

OWNER_ACL = "bucket-owner-full-control"
"""The only ACL a shadow object is ever written with: the shadow bucket's owner gets it whole."""

_GRANTS = ("GrantFullControl", "GrantRead", "GrantReadACP", "GrantWrite", "GrantWriteACP")
# Preconditions are decided by the primary alone: the shadow must converge to the primary's
# outcome, and its ETags, versions and dates are its own.
_CONDITIONS = frozenset(  # a set: translate() tests every parameter of every shadow call
    {
        "IfMatch",
        "IfNoneMatch",
        "IfMatchLastModifiedTime",
        "IfMatchSize",
        "IfModifiedSince",
        "IfUnmodifiedSince",
        "CopySourceIfMatch",
        "CopySourceIfModifiedSince",
        "CopySourceIfNoneMatch",
        "CopySourceIfUnmodifiedSince",
        "ObjectIfMatch",
        "MFA",
    }
)
_KMS = ("SSEKMSKeyId", "SSEKMSEncryptionContext", "BucketKeyEnabled")
_SECRET_PARAMS = ("SSECustomerKey", "CopySourceSSECustomerKey")
_READ_METHODS = frozenset({"GET", "HEAD"})
# botocore's own split of a str CopySource (botocore.handlers.VERSION_ID_SUFFIX).
_VERSION_SUFFIX = re.compile(r"\?versionId=([^\s]+)$")
# Flag-off multipart decisions are remembered so that their parts are not reported as unknown;
# the table is bounded because an upload that is never completed or aborted leaves its entry.
_MAX_OFF_UPLOADS = 10_000


@attrs.frozen
class Options:
    """S3-specific options of one wrapped client (see ``DualWriter.wrap``)."""

    kms_keys: Mapping[str, str] | Callable[[str], str | None] | None = None
    shadow_account: str | None = None


@attrs.frozen
class Pin:
    """A decision taken once for a high-level call (``upload_file``) and kept by its parts."""

    tenant: str | None
    on: bool
    stage: Stage | None = None
    # With on_shadow_error="raise": shadow errors of the transfer's parts, raised by the
    # transfer method once s3transfer is done (raising inside it would abort the primary upload).
    errors: list[Any] = attrs.field(factory=list, eq=False)


Call = Callable[..., Any]
Handler = Callable[[Mirror, Call, dict[str, Any], "Pin | None"], Any]


# -- parameter translation -------------------------------------------------------------------


def translate(
    mirror: Mirror, write: Write, params: Mapping[str, Any], *, creates: bool
) -> dict[str, Any]:
    """Return the shadow's parameters for a call the primary received with ``params``.

    The bucket is the shadow's; preconditions and ``MFA`` are dropped; ``ExpectedBucketOwner``
    becomes the shadow's account or is dropped; an ``SSEKMSKeyId`` is mapped or dropped with its
    KMS companions; for a request that creates an object, ``ACL`` is forced to
    ``bucket-owner-full-control`` and every ``Grant*`` removed.
    """
    options: Options = mirror.state.options
    shadow = {k: v for k, v in params.items() if k not in _CONDITIONS}
    shadow["Bucket"] = write.shadow_resource
    _other_account(options, shadow)
    if creates:
        for grant in _GRANTS:
            shadow.pop(grant, None)
        shadow["ACL"] = OWNER_ACL
    return shadow


def _other_account(options: Options, params: dict[str, Any]) -> None:
    """Translate, in place, what names the account: bucket owners and the KMS key."""
    for owner in ("ExpectedBucketOwner", "ExpectedSourceBucketOwner"):
        if owner in params:
            if options.shadow_account:
                params[owner] = options.shadow_account
            else:
                del params[owner]
    key_id = params.get("SSEKMSKeyId")
    if key_id is not None:
        mapped = _map_kms(options, key_id)
        if mapped:
            params["SSEKMSKeyId"] = mapped
        else:
            for name in _KMS:
                params.pop(name, None)
            if str(params.get("ServerSideEncryption", "")).startswith("aws:kms"):
                del params["ServerSideEncryption"]


def _map_kms(options: Options, key_id: str) -> str | None:
    keys = options.kms_keys
    if keys is None or not isinstance(key_id, str):
        return None
    if callable(keys):
        try:
            mapped = keys(key_id)
        except Exception:  # noqa: BLE001 - a failing map means "unmapped": the default applies
            return None
    else:
        mapped = keys.get(key_id)
    return mapped if isinstance(mapped, str) and mapped else None


def parse_copy_source(source: Any) -> tuple[str, str, str | None] | None:
    """Split a ``CopySource`` (``"bucket/key?versionId=v"`` or a dict) into its parts."""
    if isinstance(source, Mapping):
        bucket, key = source.get("Bucket"), source.get("Key")
        version = source.get("VersionId")
        if isinstance(bucket, str) and isinstance(key, str):
            return bucket, key, version if isinstance(version, str) else None
        return None
    if isinstance(source, str):
        # Split as botocore does before it percent-encodes the path: "%20" in a str CopySource
        # is sent as "%2520", so it names a key with a literal "%20"; never unquote it here.
        suffix = _VERSION_SUFFIX.search(source)
        path = source if suffix is None else source[: suffix.start()]
        version = None if suffix is None else suffix.group(1)
        bucket, sep, key = path.lstrip("/").partition("/")
        if not sep:
            return None
        return bucket, key, version
    return None


def _map_copy_source(mirror: Mirror, params: dict[str, Any]) -> dict[str, str]:
    parsed = parse_copy_source(params.get("CopySource"))
    if parsed is None:
        raise UnsupportedWrite("copy-source", "CopySource could not be parsed")
    bucket, key, version = parsed
    if version is not None:
        raise UnsupportedWrite(
            "version-specific",
            "a copy from a specific VersionId cannot be replayed: the shadow's versions differ",
        )
    shadow_bucket = mirror.shadow_name(bucket)
    if shadow_bucket is None:
        raise UnsupportedWrite("unmapped", f"no shadow name for source bucket {bucket!r}")
    return {"Bucket": shadow_bucket, "Key": key}


def _secrets(params: Mapping[str, Any]) -> tuple[object, ...]:
    """Every form an SSE-C key of ``params`` may take in an error message."""
    found: list[object] = []
    for name in _SECRET_PARAMS:
        key = params.get(name)
        if not key:
            continue
        found.append(key)
        raw = key.encode("utf-8") if isinstance(key, str) else key
        if isinstance(raw, (bytes, bytearray)):
            # The base64 form travels in the x-amz-...-customer-key header; the escaped form
            # appears wherever the parameters are quoted with repr().
            found.append(base64.b64encode(raw).decode("ascii"))
            found.append(repr(bytes(raw))[2:-1])
    return tuple(found)


def _call(mirror: Mirror, pin: Pin | None, *args: Any, **kwargs: Any) -> Any:
    """``mirror.call``, with a managed transfer's shadow errors deferred to its end."""
    return mirror.call(*args, deferred=pin.errors if pin is not None else None, **kwargs)


# -- result comparison -----------------------------------------------------------------------


def compare(ctx: ShadowContext, primary: Mapping[str, Any], shadow: Mapping[str, Any]) -> None:
    """Report a ``mismatch`` where both results carry the same content digest and it differs.

    ETags are compared only where both are content digests (no SSE-KMS, no SSE-C on either
    side); checksums always, when both sides returned the same algorithm.
    """
    if _etag_is_digest(primary) and _etag_is_digest(shadow):
        p_etag, s_etag = primary.get("ETag"), shadow.get("ETag")
        if p_etag is not None and s_etag is not None and p_etag != s_etag:
            ctx.mismatch("ETag", p_etag, s_etag)
    for name, value in primary.items():
        checksum = name.startswith("Checksum") and name != "ChecksumType"
        if checksum and name in shadow and value != shadow[name]:
            ctx.mismatch(name, value, shadow[name])


def _etag_is_digest(result: Mapping[str, Any]) -> bool:
    encryption = str(result.get("ServerSideEncryption", ""))
    return not encryption.startswith("aws:kms") and "SSECustomerAlgorithm" not in result


# -- deciding ----------------------------------------------------------------------------------


def _decide(
    mirror: Mirror, operation: str, bucket: str, key: str | None, pin: Pin | None
) -> tuple[Write, bool]:
    write = mirror.describe(operation, bucket, key)
    if pin is not None:
        return attrs.evolve(write, tenant=pin.tenant, stage=pin.stage), pin.on
    return mirror.decide(write)


def _target(params: Mapping[str, Any]) -> tuple[str, str | None] | None:
    bucket = params.get("Bucket")
    if not isinstance(bucket, str):
        return None
    key = params.get("Key")
    return bucket, key if isinstance(key, str) else None


def _frozen(params: Mapping[str, Any]) -> dict[str, Any]:
    """The request as it is now, for a shadow write that may run after the caller reused it.

    Every container (``Metadata``, ``Tagging``, ``CopySource``, ``Delete``, ``MultipartUpload``)
    is copied (semantics 10). The body is left out (:data:`BODY` in its place): it is
    :class:`Body`'s business, and a reference to it would keep the caller's object alive.
    """
    return {name: BODY if name == "Body" else snapshot(value) for name, value in params.items()}


BODY = object()
"""Stands for the body in a snapshot: the queued job must not keep the caller's object."""


def _shown(value: object) -> str:
    """A malformed parameter's type, for an event: never its value (it may be a secret)."""
    return type(value).__name__


def _unreadable(
    mirror: Mirror, operation: str, call: Call, params: Mapping[str, Any], pin: Pin | None
) -> Any:
    """Call the primary with a request whose target cannot be read; report what it stored.

    With ``Config(parameter_validation=False)`` botocore sends what it is given (``Key=123``
    names the key ``"123"``): the primary decides. When it accepts the write, the shadow cannot
    follow (the key is not known for sure), so the write is reported ``unsupported`` with
    reason ``malformed`` and journaled at bucket level (written ahead: see
    :meth:`Mirror.reported_call`).
    Nothing here raises after the primary.
    """
    bucket = params.get("Bucket")
    resource = bucket if isinstance(bucket, str) else f"<{_shown(bucket)}>"
    write, on = _decide(mirror, operation, resource, None, pin)
    if not on:
        return call(**params)
    return mirror.reported_call(
        write,
        call,
        params,
        "malformed",
        f"{operation}: Bucket ({_shown(bucket)}) or Key ({_shown(params.get('Key'))}) is "
        "not a str; the primary took the request as given, the shadow was not written",
    )


def _decided(
    mirror: Mirror, operation: str, params: Mapping[str, Any], pin: Pin | None
) -> Write | None:
    """The write to mirror, or ``None`` when the flag is off (the target is readable)."""
    target = _target(params)
    assert target is not None
    write, on = _decide(mirror, operation, *target, pin)
    return write if on else None


def _readable(params: Mapping[str, Any]) -> bool:
    target = _target(params)
    return target is not None and target[1] is not None


# -- fleet convergence ---------------------------------------------------------------------------

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
_LOCK_FIELDS = ("ObjectLockMode", "ObjectLockRetainUntilDate", "ObjectLockLegalHoldStatus")


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
        if _error_code(exc) in MISSING_CODES:
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


# -- handlers ----------------------------------------------------------------------------------


def _put_object(mirror: Mirror, call: Call, params: dict[str, Any], pin: Pin | None) -> Any:
    if not _readable(params):
        return _unreadable(mirror, "PutObject", call, params, pin)
    write = _decided(mirror, "PutObject", params, pin)
    if write is None:
        return call(**params)
    body = Body(params.get("Body"))
    view = _frozen(params)

    def action(ctx: ShadowContext, response: Any) -> None:
        if view.get("WriteOffsetBytes") is not None:
            raise UnsupportedWrite(
                "append", "an append (WriteOffsetBytes) depends on the shadow's current size"
            )
        shadow_params = translate(mirror, write, view, creates=True)
        if "Body" in view:
            shadow_params["Body"] = body.for_shadow()
        compare(ctx, response, ctx.shadow.put_object(**shadow_params))
        settle(ctx, _written(view, response), stamp)

    stamp = Stamp(mirror, write.resource)
    primary = stamp.primary(call, lambda: [str(write.key)])
    primary_params = {**params, "Body": body.for_primary()} if "Body" in params else params
    return _call(
        mirror, pin, write, primary, primary_params, action, secrets=_secrets(params), body=body
    )


def _copy_object(mirror: Mirror, call: Call, params: dict[str, Any], pin: Pin | None) -> Any:
    if not _readable(params):
        return _unreadable(mirror, "CopyObject", call, params, pin)
    write = _decided(mirror, "CopyObject", params, pin)
    if write is None:
        return call(**params)
    view = _frozen(params)

    def action(ctx: ShadowContext, response: Any) -> None:
        shadow_params = translate(mirror, write, view, creates=True)
        shadow_params["CopySource"] = _map_copy_source(mirror, view)
        background = mirror.writer.background
        # The copy runs on the shadow's source, which may be at another version than the one
        # the primary copied (a concurrent write to the source; in background mode the source's
        # writes wait in another key's queue) or missing. When the outcome differs, or cannot
        # be told apart in background mode (SSE-KMS or SSE-C ETags are no digests, and no
        # checksum came back), the key is converged from the primary's current state instead.
        if background and not _verifiable(response):
            ctx.converge()
            return
        try:
            result = ctx.shadow.copy_object(**shadow_params)
        except Exception as exc:
            if _error_code(exc) not in MISSING_CODES:
                raise
            ctx.converge()
            return
        diverged = _copy_diverged(response, result)
        if diverged or (diverged is None and background):
            ctx.converge()
            return
        expected = _copied(view, response)
        if mirror.writer.single_writer:
            # No other process writes the key, but in background mode the source's tagging may
            # still be queued: the tags the copy took from it are checked (two reads).
            if background and expected.shadow_tags and not _same_tags(mirror, write):
                ctx.converge()
            return
        settle(ctx, expected, stamp)

    stamp = Stamp(mirror, write.resource)
    primary = stamp.primary(call, lambda: [str(write.key)])
    return _call(mirror, pin, write, primary, params, action, secrets=_secrets(params))


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, Mapping) else None
    return str(error.get("Code")) if isinstance(error, Mapping) else None


def _digests(response: Mapping[str, Any]) -> dict[str, Any]:
    """The content digests of a copy's result: its ETag when it is an MD5, and its checksums."""
    result = response.get("CopyObjectResult") or {}
    found = {
        name: value
        for name, value in result.items()
        if name.startswith("Checksum") and name != "ChecksumType"
    }
    if _etag_is_digest(response) and result.get("ETag"):
        found["ETag"] = result["ETag"]
    return found


def _verifiable(response: Mapping[str, Any]) -> bool:
    """Whether a copy's result carries a digest of its content to compare with the shadow's."""
    return bool(_digests(response))


def _copy_diverged(primary: Mapping[str, Any], shadow: Mapping[str, Any]) -> bool | None:
    """Whether a server-side copy left the shadow's object different from the primary's.

    ``None`` when the two results share no digest of the content: an SSE-KMS or SSE-C ETag is
    not an MD5 of the bytes (and differs between accounts for equal bytes), so it is never
    compared; a checksum is, on either side.
    """
    mine, theirs = _digests(primary), _digests(shadow)
    common = mine.keys() & theirs.keys()
    if not common:
        return None
    return any(mine[name] != theirs[name] for name in common)


def _same_tags(mirror: Mirror, write: Write) -> bool:
    tags = mirror.primary.get_object_tagging(Bucket=write.resource, Key=write.key)
    shadow_tags = mirror.shadow.get_object_tagging(Bucket=write.shadow_resource, Key=write.key)
    return _tag_set(tags) == _tag_set(shadow_tags)


def _tag_set(response: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    return frozenset((str(t.get("Key")), str(t.get("Value"))) for t in response.get("TagSet", []))


def _simple(
    operation: str,
    method: str,
    expect: Callable[[Mapping[str, Any]], Expected | None],
    *,
    whole: bool = False,
) -> Handler:
    """A write on one existing object, mirrored as the same call on the shadow.

    A call naming a ``VersionId`` is reported ``unsupported``: the shadow's version ids are its
    own. ``expect`` says what the write leaves on the primary, for the fleet check
    (:func:`settle`); ``None``: nothing to check. ``whole``: the write replaces (or removes) the
    whole object, so a later one of the same key makes its check unnecessary (:class:`Stamp`).
    """

    def handler(mirror: Mirror, call: Call, params: dict[str, Any], pin: Pin | None) -> Any:
        if not _readable(params):
            return _unreadable(mirror, operation, call, params, pin)
        write = _decided(mirror, operation, params, pin)
        if write is None:
            return call(**params)
        view = _frozen(params)

        def action(ctx: ShadowContext, response: Any) -> None:
            _refuse_version(operation, view)
            getattr(ctx.shadow, method)(**translate(mirror, write, view, creates=False))
            expected = expect(view)
            if expected is not None:
                settle(ctx, expected, stamp)

        stamp = Stamp(mirror, write.resource) if whole else None
        primary = stamp.primary(call, lambda: [str(write.key)]) if stamp is not None else call
        return _call(mirror, pin, write, primary, params, action, secrets=_secrets(params))

    handler.__name__ = f"_{method}"
    return handler


def _deleted(params: Mapping[str, Any]) -> Expected:
    return Expected(present=False, read=_read_params(params))


def _tagged(params: Mapping[str, Any]) -> Expected:
    return Expected(
        tags=_tags_of_query(params.get("Tagging")), tags_only=True, read=_read_params(params)
    )


def _untagged(params: Mapping[str, Any]) -> Expected:
    return Expected(tags=frozenset(), tags_only=True, read=_read_params(params))


def _retained(params: Mapping[str, Any]) -> Expected:
    retention = params.get("Retention") or {}
    lock = (
        ("ObjectLockMode", retention.get("Mode")),
        ("ObjectLockRetainUntilDate", retention.get("RetainUntilDate")),
    )
    return Expected(lock=lock, read=_read_params(params))


def _held(params: Mapping[str, Any]) -> Expected:
    status = (params.get("LegalHold") or {}).get("Status")
    return Expected(lock=(("ObjectLockLegalHoldStatus", status),), read=_read_params(params))


def _unchecked(params: Mapping[str, Any]) -> None:
    """Annotations: HeadObject does not show them, so a write of one is not fleet-checked."""
    del params


def _refuse_version(operation: str, params: Mapping[str, Any]) -> None:
    if params.get("VersionId"):
        raise UnsupportedWrite(
            "version-specific",
            f"{operation} with a VersionId cannot be replayed: the shadow's versions differ",
        )


def _put_object_acl(mirror: Mirror, call: Call, params: dict[str, Any], pin: Pin | None) -> Any:
    if not _readable(params):
        return _unreadable(mirror, "PutObjectAcl", call, params, pin)
    write = _decided(mirror, "PutObjectAcl", params, pin)
    if write is None:
        return call(**params)
    view = _frozen(params)

    def action(ctx: ShadowContext, response: Any) -> None:
        _refuse_version("PutObjectAcl", view)
        # The caller's grants name the primary's principals; on the shadow the only meaningful
        # ACL is the bucket owner's, which keeps the object readable by the shadow account.
        # Being the same for every write, it needs no fleet check.
        kept: dict[str, Any] = {
            k: view[k] for k in ("Key", "ExpectedBucketOwner", "RequestPayer") if k in view
        }
        shadow_params = translate(mirror, write, kept, creates=False)
        ctx.shadow.put_object_acl(**shadow_params, ACL=OWNER_ACL)

    return _call(mirror, pin, write, call, params, action)


def _requested_keys(delete: Any) -> list[str]:
    """The keys a ``Delete`` parameter names; never raises, whatever its shape."""
    objects = delete.get("Objects") if isinstance(delete, Mapping) else None
    if not isinstance(objects, (list, tuple)):
        return []
    return [o["Key"] for o in objects if isinstance(o, Mapping) and isinstance(o.get("Key"), str)]


def _delete_objects(mirror: Mirror, call: Call, params: dict[str, Any], pin: Pin | None) -> Any:
    bucket = params.get("Bucket")
    delete = params.get("Delete")
    requested = _requested_keys(delete)
    if not isinstance(bucket, str) or not requested:
        return _unreadable_delete(mirror, call, params, pin)
    write, on = _decide(mirror, "DeleteObjects", bucket, None, pin)
    if not on:
        return call(**params)
    view = _frozen(params)

    def action(ctx: ShadowContext, response: Any) -> None:
        objects = view["Delete"].get("Objects", [])
        asked = [o for o in objects if isinstance(o, Mapping)]
        if view["Delete"].get("Quiet"):
            # A quiet response lists only the errors: everything else was deleted.
            failed = {(e.get("Key"), e.get("VersionId")) for e in response.get("Errors", [])}
            done = [o for o in asked if (o.get("Key"), o.get("VersionId")) not in failed]
        else:
            done = list(response.get("Deleted", []))
        keys: list[str] = []
        for entry in done:
            key = entry.get("Key")
            if not isinstance(key, str):
                continue
            # S3 echoes the VersionId a request named; a key deleted without one has none.
            if entry.get("VersionId"):
                ctx.unsupported(
                    attrs.evolve(write, key=key),
                    "version-specific",
                    "a delete by VersionId cannot be replayed: the shadow's versions differ",
                )
            else:
                keys.append(key)
        if not keys:
            return
        shadow_params = translate(mirror, write, view, creates=False)
        shadow_params["Delete"] = {"Objects": [{"Key": k} for k in keys], "Quiet": True}
        result = ctx.shadow.delete_objects(**shadow_params)
        errors = set()
        for error in result.get("Errors", []):
            errors.add(error.get("Key"))
            ctx.failed(
                attrs.evolve(write, key=error.get("Key")),
                ErrorInfo(
                    type="DeleteObjectsError",
                    code=error.get("Code"),
                    message=str(error.get("Message", "")),
                ),
            )
        if mirror.writer.single_writer:
            return
        for key in keys:
            if key not in errors:
                _settle_key(ctx, attrs.evolve(write, key=key), _deleted(view), stamp)

    # Many keys: no per-key ordering (it would take up to 1,000 locks); see docs/s3.md.
    stamp = Stamp(mirror, bucket)
    primary = stamp.primary(call, lambda: requested)
    return _call(mirror, pin, write, primary, params, action, ordered=False, keys=requested)


def _settle_key(ctx: ShadowContext, write: Write, expected: Expected, stamp: Stamp) -> None:
    """:func:`settle` for one key of a multi-key write; a failure is that key's alone."""
    one = ShadowContext(ctx.mirror, write, ())
    try:
        settle(one, expected, stamp)
    except Exception as exc:  # noqa: BLE001 - reported for this key; the others go on
        ctx.failed(write, exc)
    ctx.events.extend(one.events)


def _unreadable_delete(
    mirror: Mirror, call: Call, params: Mapping[str, Any], pin: Pin | None
) -> Any:
    """DeleteObjects whose bucket or keys cannot be read: the primary decides, as given.

    Flag on, the bucket is journaled before the primary call; the entry is removed again when
    the primary deleted nothing (nothing for the shadow to follow).
    """
    bucket = params.get("Bucket")
    resource = bucket if isinstance(bucket, str) else f"<{_shown(bucket)}>"
    write, on = _decide(mirror, "DeleteObjects", resource, None, pin)
    if not on:
        return call(**params)

    def deleted(response: Any) -> bool:
        return isinstance(response, Mapping) and bool(response.get("Deleted"))

    return mirror.reported_call(
        write,
        call,
        params,
        "malformed",
        f"DeleteObjects: Bucket ({_shown(bucket)}) or Delete "
        f"({_shown(params.get('Delete'))}) could not be read; the primary deleted what it "
        "read, the shadow was not written",
        reported=deleted,
    )


# -- multipart ---------------------------------------------------------------------------------


class IncompleteShadowUpload(Exception):  # noqa: N818 - its name is the event's error_type
    """The shadow's copy of a multipart upload is incomplete; the object is not on the shadow."""


_MAX_UPLOADS = 10_000
"""Multipart uploads in progress remembered per wrapped client (the oldest is forgotten first)."""
_MAX_UPLOAD_AGE = 7 * 24 * 3600.0
"""Seconds after which an upload that was neither completed nor aborted is forgotten."""


@attrs.define
class _Upload:
    """One multipart upload the primary accepted while the flag was on."""

    write: Write
    params: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    shadow_id: str | None = None
    parts: dict[Any, dict[str, Any]] = attrs.field(factory=dict)
    broken: str | None = None
    started: float = attrs.field(factory=time.monotonic)


class _Uploads:
    """Primary UploadId -> shadow upload, per wrapped client; bounded in size and age.

    An upload that is never completed or aborted (its process gave up) would stay forever: past
    :data:`_MAX_UPLOADS` entries or :data:`_MAX_UPLOAD_AGE` seconds the oldest is forgotten, its
    key journaled (it may still complete), and its later calls go to the primary only.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.on: OrderedDict[str, _Upload] = OrderedDict()
        self.off: OrderedDict[str, Write | None] = OrderedDict()

    def remember_off(self, upload_id: str, write: Write | None = None) -> None:
        with self.lock:
            self._off(upload_id, write)

    def _off(self, upload_id: str, write: Write | None) -> None:
        self.off[upload_id] = write
        while len(self.off) > _MAX_OFF_UPLOADS:
            self.off.popitem(last=False)

    def add(self, upload_id: str, upload: _Upload) -> list[_Upload]:
        """Remember a mirrored upload; return those forgotten to make room (in progress)."""
        evicted = []
        with self.lock:
            self.on[upload_id] = upload
            now = time.monotonic()
            while len(self.on) > 1:  # never the upload just added
                oldest_id, oldest = next(iter(self.on.items()))
                if len(self.on) <= _MAX_UPLOADS and now - oldest.started <= _MAX_UPLOAD_AGE:
                    break
                del self.on[oldest_id]
                self._off(oldest_id, oldest.write)
                evicted.append(oldest)
        return evicted

    def lookup(self, upload_id: Any) -> _Upload | bool | None:
        """The upload if mirrored, ``False`` if it started flag-off (or was forgotten),
        ``None`` if unknown."""
        if not isinstance(upload_id, str):
            return None
        with self.lock:
            if upload_id in self.on:
                return self.on[upload_id]
            if upload_id in self.off:
                return False
        return None

    def evicted(self, upload_id: Any) -> Write | None:
        """The write of a mirrored upload that was forgotten while in progress, if it was."""
        if not isinstance(upload_id, str):
            return None
        with self.lock:
            return self.off.get(upload_id)

    def forget(self, upload_id: Any) -> None:
        if not isinstance(upload_id, str):
            return
        with self.lock:
            self.on.pop(upload_id, None)
            self.off.pop(upload_id, None)


def _uploads(mirror: Mirror) -> _Uploads:
    return mirror.state.uploads  # type: ignore[no-any-return]


def _report_evicted(
    mirror: Mirror, evicted: list[_Upload], operation: str = "CreateMultipartUpload"
) -> None:
    for upload in evicted:
        upload.broken = upload.broken or "forgotten: too many or too old uploads in progress"
        mirror.unsupported(
            attrs.evolve(upload.write, operation=operation),
            "upload-evicted",
            f"a multipart upload in progress was forgotten (more than {_MAX_UPLOADS} uploads, or "
            f"older than {_MAX_UPLOAD_AGE:.0f} s); if it completes, the object is not mirrored",
        )


def _create_multipart(mirror: Mirror, call: Call, params: dict[str, Any], pin: Pin | None) -> Any:
    if not _readable(params):
        return _unreadable(mirror, "CreateMultipartUpload", call, params, pin)
    write = _decided(mirror, "CreateMultipartUpload", params, pin)
    if write is None:
        response = call(**params)
        if isinstance(response.get("UploadId"), str):
            _uploads(mirror).remember_off(response["UploadId"])
        return response
    view = _frozen(params)
    upload = _Upload(write=write, params=view)

    def primary(**kwargs: Any) -> Any:
        # Registered as soon as the primary answers, so that its parts find the decision even
        # when the shadow's create fails or the bucket has no shadow name.
        response = call(**kwargs)
        if isinstance(response.get("UploadId"), str):
            _report_evicted(mirror, _uploads(mirror).add(response["UploadId"], upload))
        return response

    def action(ctx: ShadowContext, response: Any) -> None:
        shadow_params = translate(mirror, write, view, creates=True)
        try:
            upload.shadow_id = ctx.shadow.create_multipart_upload(**shadow_params)["UploadId"]
        except Exception:
            upload.broken = "the shadow's CreateMultipartUpload failed"
            raise

    return _call(
        mirror, pin, write, primary, params, action, secrets=_secrets(params), ordered=False
    )


def _unknown_upload(
    mirror: Mirror, operation: str, target: tuple[str, str | None], call: Call, params: Any
) -> Any:
    """A part or completion of an upload this wrapper did not create: the primary only.

    The flag is asked first, in the caller's thread; flag on, the key is journaled before the
    primary call and reported ``unsupported`` (``unknown-upload``) once it answered.
    """
    write, on = mirror.decide(mirror.describe(operation, *target))
    if not on:
        return call(**params)
    return mirror.reported_call(
        write,
        call,
        params,
        "unknown-upload",
        "the multipart upload was not created through this wrapper; its object is not mirrored",
    )


def _part(operation: str, method: str) -> Handler:
    """UploadPart / UploadPartCopy: the same part, to the shadow's own upload."""
    copy = operation == "UploadPartCopy"

    def handler(mirror: Mirror, call: Call, params: dict[str, Any], pin: Pin | None) -> Any:
        upload = _uploads(mirror).lookup(params.get("UploadId"))
        if not _readable(params):
            response = call(**params)
            if isinstance(upload, _Upload):
                # Reported at the upload's completion, which finds this part missing.
                upload.broken = upload.broken or f"{operation}: Key could not be read"
            return response
        target = _target(params)
        assert target is not None
        if upload is None:
            return _unknown_upload(mirror, operation, target, call, params)
        if not isinstance(upload, _Upload) or upload.broken or upload.write.shadow_resource is None:
            # Flag off at Create, a broken shadow upload (reported), or no shadow bucket
            # (reported at Create and at Complete): the primary only.
            return call(**params)
        write = attrs.evolve(upload.write, operation=operation)
        body = Body(params.get("Body"))
        view = _frozen(params)
        part_number = view.get("PartNumber")

        def action(ctx: ShadowContext, response: Any) -> None:
            # Read here, not in the caller's thread: in background mode the shadow's
            # CreateMultipartUpload runs on a worker, ahead of this part in the key's queue.
            shadow_id = upload.shadow_id
            if upload.broken or shadow_id is None:
                raise SkipShadow  # reported when the upload broke, and again at its completion
            shadow_params = translate(mirror, write, view, creates=False)
            shadow_params["UploadId"] = shadow_id
            if copy:
                try:
                    shadow_params["CopySource"] = _map_copy_source(mirror, view)
                except UnsupportedWrite as signal:
                    # Without this part the object can never be completed on the shadow: abort
                    # its upload now rather than leave the parts billed until Complete.
                    _break(mirror, upload, f"{operation} {part_number}: {signal.detail}")
                    raise
            if "Body" in view:
                shadow_params["Body"] = body.for_shadow()
            try:
                result = getattr(ctx.shadow, method)(**shadow_params)
            except Exception as exc:
                # Reported again at Complete, whose parameters may lack this part's SSE-C key:
                # scrub the reason now, with the part's own secrets.
                info = describe_error(exc, _secrets(view))
                _break(
                    mirror,
                    upload,
                    f"shadow {operation} {part_number} failed: {info.type}: {info.message}",
                )
                raise
            mine = result.get("CopyPartResult", {}) if copy else result
            theirs = response.get("CopyPartResult", {}) if copy else response
            upload.parts[part_number] = {
                k: v for k, v in mine.items() if k == "ETag" or k.startswith("Checksum")
            }
            if copy:
                # The encryption fields sit beside CopyPartResult: an SSE-KMS part's ETag is no
                # digest, and is not compared.
                both = dict(response, CopyObjectResult=theirs), dict(result, CopyObjectResult=mine)
                if _copy_diverged(*both):
                    _break(
                        mirror, upload, f"{operation} {part_number}: the shadow's source differs"
                    )
                    raise IncompleteShadowUpload(f"part {part_number} copied another source")
            else:
                compare(ctx, theirs, mine)

        primary_params = {**params, "Body": body.for_primary()} if "Body" in params else params
        # Parts of one upload go in parallel (s3transfer's threads): no per-key ordering.
        return _call(
            mirror,
            pin,
            write,
            call,
            primary_params,
            action,
            secrets=_secrets(params),
            ordered=False,
            body=body,
        )

    handler.__name__ = f"_{method}"
    return handler


def _break(mirror: Mirror, upload: _Upload, reason: str) -> None:
    """Abort the shadow's upload so that no orphaned parts are billed in the shadow account."""
    if upload.broken and upload.shadow_id is None:
        return
    upload.broken = upload.broken or reason
    shadow_id, upload.shadow_id = upload.shadow_id, None
    if shadow_id is None or upload.write.shadow_resource is None:
        return
    try:
        mirror.shadow.abort_multipart_upload(
            Bucket=upload.write.shadow_resource, Key=upload.write.key, UploadId=shadow_id
        )
    except Exception:  # noqa: BLE001 - best effort; the shadow bucket's lifecycle rule is the backstop
        return


def _complete_unreadable(mirror: Mirror, call: Call, params: Mapping[str, Any]) -> Any:
    """CompleteMultipartUpload whose Key cannot be read: the primary decides, as given.

    A mirrored upload's key is journaled before the primary call and reported ``malformed``
    after it; its shadow upload is aborted.
    """
    upload_id = params.get("UploadId")
    upload = _uploads(mirror).lookup(upload_id)
    if not isinstance(upload, _Upload):
        return call(**params)
    write = attrs.evolve(upload.write, operation="CompleteMultipartUpload")
    with mirror.write_ahead(write) as intent:
        response = intent.primary(call, params)
        _uploads(mirror).forget(upload_id)
        _break(mirror, upload, "CompleteMultipartUpload: Key could not be read")
        mirror.unsupported(
            write,
            "malformed",
            f"CompleteMultipartUpload: Key ({_shown(params.get('Key'))}) is not a str",
        )
    return response


def _complete_unmirrored(mirror: Mirror, call: Call, params: Mapping[str, Any]) -> Any:
    """CompleteMultipartUpload of an upload created flag-off, or mirrored and then forgotten.

    A forgotten one's key is journaled before the primary call (its object is not mirrored)
    and reported ``upload-evicted`` after it.
    """
    upload_id = params.get("UploadId")
    evicted = _uploads(mirror).evicted(upload_id)
    if evicted is None:  # flag off at its CreateMultipartUpload
        response = call(**params)
    else:
        write = attrs.evolve(evicted, operation="CompleteMultipartUpload")
        with mirror.write_ahead(write) as intent:
            response = intent.primary(call, params)
            _report_evicted(mirror, [_Upload(write=evicted)], "CompleteMultipartUpload")
    _uploads(mirror).forget(upload_id)
    return response


def _complete_multipart(mirror: Mirror, call: Call, params: dict[str, Any], pin: Pin | None) -> Any:
    upload_id = params.get("UploadId")
    if not _readable(params):
        return _complete_unreadable(mirror, call, params)
    target = _target(params)
    assert target is not None
    upload = _uploads(mirror).lookup(upload_id)
    if upload is None:
        return _unknown_upload(mirror, "CompleteMultipartUpload", target, call, params)
    if not isinstance(upload, _Upload):
        return _complete_unmirrored(mirror, call, params)
    write = attrs.evolve(upload.write, operation="CompleteMultipartUpload")
    view = _frozen(params)

    def action(ctx: ShadowContext, response: Any) -> None:
        _uploads(mirror).forget(upload_id)
        if upload.broken or upload.shadow_id is None:
            _break(mirror, upload, upload.broken or "the shadow upload was not created")
            raise IncompleteShadowUpload(upload.broken or "the shadow upload was not created")
        shadow_params = translate(mirror, write, view, creates=False)
        shadow_params["UploadId"] = upload.shadow_id
        parts = []
        for part in (view.get("MultipartUpload") or {}).get("Parts", []):
            number = part.get("PartNumber")
            mirrored = upload.parts.get(number)
            if mirrored is None:
                _break(mirror, upload, f"part {number} was not mirrored")
                raise IncompleteShadowUpload(f"part {number} never reached the shadow")
            parts.append({**{k: v for k, v in part.items() if k not in mirrored}, **mirrored})
        shadow_params["MultipartUpload"] = {"Parts": parts}
        try:
            result = ctx.shadow.complete_multipart_upload(**shadow_params)
        except Exception:
            _break(mirror, upload, "the shadow's CompleteMultipartUpload failed")
            raise
        compare(ctx, response, result)
        settle(ctx, _written({**upload.params, **_read_params(view)}, response), stamp)

    # A primary failure leaves the upload registered: the caller may retry or abort it. A
    # success forgets it here as well as in the action, which never runs for a bucket without
    # a shadow name: the table would otherwise grow with every such upload.
    stamp = Stamp(mirror, write.resource)
    primary = stamp.primary(call, lambda: [str(write.key)])
    response = _call(mirror, pin, write, primary, params, action, secrets=_secrets(params))
    _uploads(mirror).forget(upload_id)
    return response


def _abort_multipart(mirror: Mirror, call: Call, params: dict[str, Any], pin: Pin | None) -> Any:
    upload_id = params.get("UploadId")
    upload = _uploads(mirror).lookup(upload_id)
    if not isinstance(upload, _Upload) or not _readable(params):
        response = call(**params)
        _uploads(mirror).forget(upload_id)
        if isinstance(upload, _Upload):
            _break(mirror, upload, "aborted")
        return response
    write = attrs.evolve(upload.write, operation="AbortMultipartUpload")
    view = _frozen(params)

    def action(ctx: ShadowContext, response: Any) -> None:
        _uploads(mirror).forget(upload_id)
        shadow_id, upload.shadow_id = upload.shadow_id, None
        upload.broken = upload.broken or "aborted"
        if shadow_id is not None:
            shadow_params = translate(mirror, write, view, creates=False)
            ctx.shadow.abort_multipart_upload(**{**shadow_params, "UploadId": shadow_id})

    response = _call(mirror, pin, write, call, params, action, ordered=False)
    _uploads(mirror).forget(upload_id)  # also when the action does not run (unmapped bucket)
    return response


# -- operations that cannot be mirrored -------------------------------------------------------


def _reported(operation: str, reason: str, detail: str) -> Handler:
    def handler(mirror: Mirror, call: Call, params: dict[str, Any], pin: Pin | None) -> Any:
        target = _target(params)
        if target is None:  # a bucket-level write names no key: only the bucket must be read
            return _unreadable(mirror, operation, call, params, pin)
        write, on = _decide(mirror, operation, *target, pin)
        if not on:
            return call(**params)
        return mirror.reported_call(write, call, params, reason, detail)

    handler.__name__ = f"_unsupported_{operation}"
    return handler


HANDLERS: dict[str, Handler] = {
    "PutObject": _put_object,
    "CopyObject": _copy_object,
    "DeleteObject": _simple("DeleteObject", "delete_object", _deleted, whole=True),
    "DeleteObjects": _delete_objects,
    "PutObjectTagging": _simple("PutObjectTagging", "put_object_tagging", _tagged),
    "DeleteObjectTagging": _simple("DeleteObjectTagging", "delete_object_tagging", _untagged),
    "PutObjectAcl": _put_object_acl,
    "PutObjectRetention": _simple("PutObjectRetention", "put_object_retention", _retained),
    "PutObjectLegalHold": _simple("PutObjectLegalHold", "put_object_legal_hold", _held),
    "PutObjectAnnotation": _simple("PutObjectAnnotation", "put_object_annotation", _unchecked),
    "DeleteObjectAnnotation": _simple(
        "DeleteObjectAnnotation", "delete_object_annotation", _unchecked
    ),
    "CreateMultipartUpload": _create_multipart,
    "UploadPart": _part("UploadPart", "upload_part"),
    "UploadPartCopy": _part("UploadPartCopy", "upload_part_copy"),
    "CompleteMultipartUpload": _complete_multipart,
    "AbortMultipartUpload": _abort_multipart,
}
"""Object writes mirrored to the shadow."""

UNSUPPORTED: dict[str, str] = {
    "RenameObject": (
        "RenameObject exists only on directory buckets (S3 Express One Zone) and moves a key "
        "server-side; it is reported so that both keys can be repaired from the primary"
    ),
    "UpdateObjectEncryption": (
        "re-encrypting an object names the primary account's KMS keys; the shadow keeps its own "
        "encryption"
    ),
}
"""Object writes that cannot be mirrored: each call is reported as an ``unsupported`` event."""

for _operation, _detail in UNSUPPORTED.items():
    HANDLERS[_operation] = _reported(_operation, "not-mirrorable", _detail)

PRIMARY_ONLY: frozenset[str] = frozenset(
    {
        # reads
        "GetObject", "GetObjectAcl", "GetObjectAnnotation", "GetObjectAttributes",
        "GetObjectLegalHold", "GetObjectRetention", "GetObjectTagging", "GetObjectTorrent",
        "HeadObject", "HeadBucket", "ListBuckets", "ListDirectoryBuckets", "ListMultipartUploads",
        "ListObjectAnnotations", "ListObjectVersions", "ListObjects", "ListObjectsV2",
        "ListParts", "SelectObjectContent", "GetPart",
        # object operations that do not change stored data
        "RestoreObject",  # a temporary restored copy of an archived object; not its data
        "WriteGetObjectResponse",  # the response of an Object Lambda, not a bucket write
        "CreateSession",  # S3 Express session credentials
        # bucket configuration: the control plane, set up per account
        "CreateBucket", "DeleteBucket",
        "CreateBucketMetadataConfiguration", "CreateBucketMetadataTableConfiguration",
        "DeleteBucketAnalyticsConfiguration", "DeleteBucketCors", "DeleteBucketEncryption",
        "DeleteBucketIntelligentTieringConfiguration", "DeleteBucketInventoryConfiguration",
        "DeleteBucketLifecycle", "DeleteBucketMetadataConfiguration",
        "DeleteBucketMetadataTableConfiguration", "DeleteBucketMetricsConfiguration",
        "DeleteBucketOwnershipControls", "DeleteBucketPolicy", "DeleteBucketReplication",
        "DeleteBucketTagging", "DeleteBucketWebsite", "DeletePublicAccessBlock",
        "GetBucketAbac", "GetBucketAccelerateConfiguration", "GetBucketAcl",
        "GetBucketAnalyticsConfiguration", "GetBucketCors", "GetBucketDefaultStorageClass",
        "GetBucketEncryption",
        "GetBucketIntelligentTieringConfiguration", "GetBucketInventoryConfiguration",
        "GetBucketLifecycle", "GetBucketLifecycleConfiguration", "GetBucketLocation",
        "GetBucketLogging", "GetBucketMetadataConfiguration", "GetBucketMetadataTableConfiguration",
        "GetBucketMetricsConfiguration", "GetBucketNotification",
        "GetBucketNotificationConfiguration", "GetBucketOwnershipControls", "GetBucketPolicy",
        "GetBucketPolicyStatus", "GetBucketReplication", "GetBucketRequestPayment",
        "GetBucketTagging", "GetBucketVersioning", "GetBucketWebsite",
        "GetObjectLockConfiguration", "GetPublicAccessBlock",
        "ListBucketAnalyticsConfigurations", "ListBucketIntelligentTieringConfigurations",
        "ListBucketInventoryConfigurations", "ListBucketMetricsConfigurations",
        "PutBucketAbac", "PutBucketAccelerateConfiguration", "PutBucketAcl",
        "PutBucketAnalyticsConfiguration", "PutBucketCors", "PutBucketDefaultStorageClass",
        "PutBucketEncryption",
        "PutBucketIntelligentTieringConfiguration", "PutBucketInventoryConfiguration",
        "PutBucketLifecycle", "PutBucketLifecycleConfiguration", "PutBucketLogging",
        "PutBucketMetricsConfiguration", "PutBucketNotification",
        "PutBucketNotificationConfiguration", "PutBucketOwnershipControls", "PutBucketPolicy",
        "PutBucketReplication", "PutBucketRequestPayment", "PutBucketTagging",
        "PutBucketVersioning", "PutBucketWebsite", "PutObjectLockConfiguration",
        "PutPublicAccessBlock",
        "UpdateBucketMetadataAnnotationTableConfiguration",
        "UpdateBucketMetadataInventoryTableConfiguration",
        "UpdateBucketMetadataJournalTableConfiguration",
    }
)  # fmt: skip
"""Reads and control-plane operations: the primary only, as documented in docs/s3.md."""


def unclassified(api_name: str, http_method: str) -> Handler | None:
    """Handle an operation botocore knows and this module does not (a newer botocore).

    A read passes through; anything else is sent to the primary and reported ``unsupported``
    with reason ``"unclassified"``, so that no write slips past silently.
    """
    if api_name in PRIMARY_ONLY or http_method.upper() in _READ_METHODS:
        return None
    return _reported(
        api_name,
        "unclassified",
        f"{api_name} is not known to this version of dualwrite; it went to the primary only",
    )


@attrs.frozen
class State:
    """What this package keeps per wrapped pair (``Mirror.state``): its options, the multipart
    uploads in progress and the latest write of each key."""

    options: Options
    uploads: _Uploads = attrs.field(factory=_Uploads)
    latest: _Latest = attrs.field(factory=_Latest)


def new_state(options: Options) -> State:
    """The per-pair state this package keeps on a :class:`Mirror`."""
    return State(options)


# -- stages: routing a call to the new account first ---------------------------------------------

ROUTED_READS: frozenset[str] = frozenset(
    {
        "GetObject", "GetObjectAcl", "GetObjectAnnotation", "GetObjectAttributes",
        "GetObjectLegalHold", "GetObjectRetention", "GetObjectTagging", "GetObjectTorrent",
        "HeadObject", "HeadBucket", "ListMultipartUploads", "ListObjectAnnotations",
        "ListObjectVersions", "ListObjects", "ListObjectsV2", "ListParts", "SelectObjectContent",
        "GetPart",
    }
)  # fmt: skip
"""Object reads that follow the tenant's stage to the account that owns it."""

_UPLOAD_OPS = frozenset(
    {"UploadPart", "UploadPartCopy", "CompleteMultipartUpload", "AbortMultipartUpload", "ListParts"}
)


def stage_targets(mirror: Mirror, api: str, params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The ``(bucket, key)`` a call's stage is asked for; empty when the call names none."""
    del mirror, api
    target = _target(params)
    return [] if target is None else [target]


def stage_sources(mirror: Mirror, api: str, params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The ``(bucket, key)`` a call reads from: a copy's source."""
    del mirror
    if api not in ("CopyObject", "UploadPartCopy"):
        return []
    parsed = parse_copy_source(params.get("CopySource"))
    return [] if parsed is None else [(parsed[0], parsed[1])]


def written_keys(
    mirror: Mirror, api: str, params: Mapping[str, Any] | None
) -> list[tuple[str, Any]] | None:
    """The ``(bucket, key)`` pairs a write of several keys changes (DeleteObjects)."""
    del mirror
    if params is None or api != "DeleteObjects" or not isinstance(params.get("Bucket"), str):
        return None
    delete = params.get("Delete")
    objects = delete.get("Objects") if isinstance(delete, Mapping) else None
    if not isinstance(objects, list):
        return None
    return [(params["Bucket"], key) for key in _requested_keys(delete)]


def upload_owner(mirror: Mirror, api: str, params: Mapping[str, Any]) -> str | None:
    """``"reverse"`` or ``"forward"`` for a call on a multipart upload: the side it started on.

    A multipart upload keeps the stage it started with: its parts and its completion go where
    its CreateMultipartUpload went, whatever the tenant's stage is now. An upload this wrapper
    does not know (another process created it) goes by the tenant's stage now (``None``).
    """
    if api not in _UPLOAD_OPS:
        return None
    upload_id = params.get("UploadId")
    reverse = mirror.reverse_if_built()
    if reverse is not None and _uploads(reverse).lookup(upload_id) is not None:
        return "reverse"
    if _uploads(mirror).lookup(upload_id) is not None:
        return "forward"
    return None


def reroute(mirror: Mirror, api: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The parameters of a call for the new account, or ``None`` when it cannot go there.

    The bucket (and a ``CopySource``'s bucket) become the new account's names, and bucket owners
    and KMS keys are translated as for a shadow write; conditions and the caller's ACL stay. A
    call on a specific ``VersionId`` cannot go there: the new account's versions are its own.
    """
    bucket = params.get("Bucket")
    if not isinstance(bucket, str) or params.get("VersionId") is not None:
        return None
    new = mirror.new_name(bucket)
    if new is None:
        return None
    routed = dict(params)
    routed["Bucket"] = new
    if "CopySource" in params:
        parsed = parse_copy_source(params["CopySource"])
        if parsed is None or parsed[2] is not None:
            return None
        source_bucket = mirror.new_name(parsed[0])
        if source_bucket is None:
            return None
        source = params["CopySource"]
        routed["CopySource"] = (
            {**source, "Bucket": source_bucket}
            if isinstance(source, Mapping)
            else {"Bucket": source_bucket, "Key": parsed[1]}
        )
    _other_account(mirror.state.options, routed)
    if api in _CREATES:
        force_owner_acl(routed)
    return routed


_CREATES = frozenset({"PutObject", "CopyObject", "CreateMultipartUpload"})


def force_owner_acl(params: dict[str, Any]) -> None:
    """Give a request that creates an object in the new account its only ACL, in place.

    Whether the new account gets the write as the shadow (``DUAL_WRITE``) or first
    (``CUTOVER``, ``DONE``), its objects carry ``bucket-owner-full-control`` and no grants, so
    they are the same at every stage (and accepted by buckets whose ACLs are disabled).
    """
    for grant in _GRANTS:
        params.pop(grant, None)
    params["ACL"] = OWNER_ACL


def as_called(api: str, response: dict[str, Any], renamed: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the new account's response naming the bucket the caller named (``Name`` of a
    listing, ``Bucket`` of a multipart response); the response itself if it names none."""
    del api
    changes = {
        field: renamed[response[field]]
        for field in ("Name", "Bucket")
        if isinstance(response.get(field), str) and response[field] in renamed
    }
    return {**response, **changes} if changes else response


def build_reverse(mirror: Mirror) -> Mirror:
    """The mirror that writes the new account first and mirrors to the old (CUTOVER)."""
    options: Options = mirror.state.options
    keys = options.kms_keys
    # The old account's KMS keys, where the map can be inverted; else its default encryption.
    inverse = {v: k for k, v in keys.items()} if isinstance(keys, Mapping) else None
    return Mirror(
        mirror.writer,
        service=mirror.plugin,
        primary=mirror.shadow,
        shadow=mirror.primary,
        names=mirror.old_name,
        state=new_state(Options(kms_keys=inverse, shadow_account=None)),
        forward=mirror,
    )


# -- copying an object's current state (repair, backfill) -----------------------------------------

COPIED_ATTRIBUTES = (
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
    "ContentType",
    "Expires",
    "Metadata",
    "WebsiteRedirectLocation",
)
"""Object attributes carried from the primary's GetObject to the shadow's upload (repair, copy)."""

MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
"""Error codes that mean "no such object"."""

# A part (or a single-part object) is spooled before it is sent: botocore needs a seekable body
# on http endpoints and for its checksums. Up to this size the spool stays in memory.
_SPOOL_MEMORY = 8 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
_DEFAULT_PART = 8 * 1024 * 1024
_MAX_PARTS = 10_000
_PART_CHECKSUM = "CRC32"  # what s3transfer asks for by default (botocore's default algorithm)


@attrs.frozen(kw_only=True)
class CopiedObject:
    """What :func:`copy_object_state` wrote.

    Attributes:
        primary_etag: the ETag of the primary's version that was copied.
        shadow_etag: the ETag of the object the shadow now holds.
        size: bytes copied.
        fingerprint: the copied state as :func:`object_fingerprint` reads it (ETag, attributes,
            tags, object lock, storage class, encryption): the primary still holds what was
            copied while its fingerprint is this one.
        tagged: whether the copied object had tags.
    """

    primary_etag: str
    shadow_etag: str | None
    size: int
    fingerprint: object = None
    tagged: bool = False


# Object-lock, storage and checksum settings carried from the primary's object to the shadow's
# (besides COPIED_ATTRIBUTES, tags and the mapped KMS key).
_LOCK_FIELDS = ("ObjectLockMode", "ObjectLockRetainUntilDate", "ObjectLockLegalHoldStatus")
_STATE_FIELDS = (
    *COPIED_ATTRIBUTES,
    *_LOCK_FIELDS,
    "StorageClass",
    "ServerSideEncryption",
    "SSEKMSKeyId",
    "BucketKeyEnabled",
)
# The algorithms botocore can compute itself (botocore.httpchecksum); a part of a multipart
# copy is sent with one of them, the primary's when botocore knows it.
_COMPUTABLE = frozenset({"CRC32", "SHA1", "SHA256", "SHA512"})


def copy_object_state(
    primary: Any,
    shadow: Any,
    bucket: str,
    key: str,
    shadow_bucket: str,
    *,
    owner: Mapping[str, str] | None = None,
    condition: Mapping[str, str] | None = None,
    kms_keys: Mapping[str, str] | Callable[[str], str | None] | None = None,
) -> CopiedObject | None:
    """Copy the primary's current object ``bucket/key`` to ``shadow_bucket/key``.

    One GetObject is streamed to the shadow part by part, each part spooled (in memory up to
    8 MiB, on disk beyond), so memory stays bounded whatever the size. The primary's part layout
    is kept (a multipart object is uploaded with its part size, read from ``HeadObject`` of part
    1), so that equal bytes give equal ETags on both sides.

    What comes along: content type, disposition, encoding, language, cache control, expiry,
    website redirect, user metadata and tags; object lock retention (mode and retain-until
    date, when still in the future) and legal hold (when on; the shadow bucket must have
    Object Lock enabled, else the write fails); the storage class; the checksum algorithm (and,
    for a single-part object, the primary's checksum value, so that the shadow verifies the
    bytes); SSE-KMS with the key mapped through ``kms_keys`` (an unmapped key, like SSE-S3,
    leaves the shadow bucket's default encryption). The object gets
    ``ACL="bucket-owner-full-control"``.

    Args:
        primary: the primary's S3 client.
        shadow: the shadow's S3 client.
        bucket: the primary bucket.
        key: the object key.
        shadow_bucket: the shadow bucket.
        owner: ``{"ExpectedBucketOwner": account}`` sent with every shadow call, or ``None``.
        condition: the shadow precondition, sent with the request that makes the object visible
            (``PutObject`` or ``CompleteMultipartUpload``): ``{"IfNoneMatch": "*"}`` (the shadow
            must still lack the key) or ``{"IfMatch": etag}`` (it must still hold that ETag).
        kms_keys: the writer's ``kms_keys`` map (primary key ARN or id to shadow key), or
            ``None``.

    Returns:
        What was copied, or ``None`` when the primary has no such object (nothing was written).

    Raises:
        botocore.exceptions.ClientError: a read or write failed; ``PreconditionFailed`` (or
            ``NoSuchKey`` for an ``IfMatch`` on a key deleted meanwhile) when ``condition`` no
            longer holds on the shadow. A multipart upload is aborted before the error is raised.
    """
    owner = dict(owner or {})
    try:
        obj = primary.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception as exc:
        if _error_code(exc) in MISSING_CODES:
            return None
        raise
    body = obj["Body"]
    try:
        etag = str(obj["ETag"])
        size = int(obj.get("ContentLength") or 0)
        extra: dict[str, Any] = {k: obj[k] for k in COPIED_ATTRIBUTES if obj.get(k)}
        # S3 sends TagCount only for an object that has tags: no GetObjectTagging otherwise.
        tags = _tags(primary, bucket, key) if obj.get("TagCount") else ()
        if tags:
            extra["Tagging"] = _urlencode(tags)
        extra.update(_carried(obj, kms_keys))
        extra["ACL"] = OWNER_ACL
        extra.update(owner)
        target = {"Bucket": shadow_bucket, "Key": key}
        part_size = _part_size(primary, bucket, key, etag, size)
        algorithm = _checksum_algorithm(obj)
        if part_size is None:
            checksum = _single_part_checksum(obj, algorithm)
            with _spool(body, size) as data:
                result = shadow.put_object(
                    **target, Body=data, **extra, **checksum, **(condition or {})
                )
        else:
            part_algorithm = algorithm if algorithm in _COMPUTABLE else _PART_CHECKSUM
            result = _upload_parts(
                shadow,
                target,
                body,
                size,
                part_size,
                extra,
                owner,
                dict(condition or {}),
                part_algorithm,
            )
    finally:
        body.close()
    return CopiedObject(
        primary_etag=etag,
        shadow_etag=result.get("ETag"),
        size=size,
        fingerprint=_fingerprint(obj, tags),
        tagged=bool(tags),
    )


def _tags(client: Any, bucket: str, key: str, **owner: str) -> tuple[tuple[str, str], ...]:
    tag_set = client.get_object_tagging(Bucket=bucket, Key=key, **owner).get("TagSet", [])
    return tuple(sorted((str(t["Key"]), str(t["Value"])) for t in tag_set))


def _urlencode(tags: tuple[tuple[str, str], ...]) -> str:
    from urllib.parse import urlencode  # noqa: PLC0415 - repair and backfill only

    return urlencode(tags)


def _carried(
    obj: Mapping[str, Any], kms_keys: Mapping[str, str] | Callable[[str], str | None] | None
) -> dict[str, Any]:
    """The shadow's parameters for the primary object's lock, hold, class and KMS key."""
    import datetime  # noqa: PLC0415

    carried: dict[str, Any] = {}
    mode, until = obj.get("ObjectLockMode"), obj.get("ObjectLockRetainUntilDate")
    # A retention that has run out cannot be set again (S3 refuses a date in the past).
    if isinstance(until, datetime.datetime) and until.tzinfo is None:
        until = until.replace(tzinfo=datetime.timezone.utc)  # S3 dates are UTC
    now = datetime.datetime.now(datetime.timezone.utc)
    if mode and isinstance(until, datetime.datetime) and until > now:
        carried["ObjectLockMode"] = mode
        carried["ObjectLockRetainUntilDate"] = until
    if obj.get("ObjectLockLegalHoldStatus") == "ON":
        carried["ObjectLockLegalHoldStatus"] = "ON"
    if obj.get("StorageClass"):
        carried["StorageClass"] = obj["StorageClass"]
    encryption = str(obj.get("ServerSideEncryption") or "")
    key_id = obj.get("SSEKMSKeyId")
    if encryption.startswith("aws:kms") and isinstance(key_id, str):
        mapped = _map_kms_id(kms_keys, key_id)
        if mapped is not None:
            carried["ServerSideEncryption"] = encryption
            carried["SSEKMSKeyId"] = mapped
            if obj.get("BucketKeyEnabled") is not None:
                carried["BucketKeyEnabled"] = bool(obj["BucketKeyEnabled"])
    return carried


def _map_kms_id(
    kms_keys: Mapping[str, str] | Callable[[str], str | None] | None, key_id: str
) -> str | None:
    """The shadow's key for the primary's ``key_id``: looked up as S3 reports it (an ARN), then
    by its bare key id (the map may name keys either way)."""
    options = Options(kms_keys=kms_keys)
    mapped = _map_kms(options, key_id)
    if mapped is None and ":key/" in key_id:
        mapped = _map_kms(options, key_id.rsplit(":key/", 1)[1])
    return mapped


def _checksum_algorithm(obj: Mapping[str, Any]) -> str | None:
    """The primary object's checksum algorithm (``"SHA256"``...), if it reported one."""
    for name, value in obj.items():
        if name.startswith("Checksum") and name != "ChecksumType" and value:
            return name[len("Checksum") :]
    return None


def _single_part_checksum(obj: Mapping[str, Any], algorithm: str | None) -> dict[str, Any]:
    """The primary's full-object checksum, sent with the shadow's PutObject: S3 then verifies
    the bytes it receives against the primary's digest (a composite checksum, ``...-N``, is not
    a digest of the bytes and is not sent)."""
    if algorithm is None:
        return {}
    value = str(obj.get(f"Checksum{algorithm}") or "")
    if not value or "-" in value or obj.get("ChecksumType") not in (None, "FULL_OBJECT"):
        return {"ChecksumAlgorithm": algorithm} if algorithm in _COMPUTABLE else {}
    return {"ChecksumAlgorithm": algorithm, f"Checksum{algorithm}": value}


def _fingerprint(obj: Mapping[str, Any], tags: tuple[tuple[str, str], ...]) -> object:
    """What a GetObject or HeadObject says of an object's state, tags added, as one value.

    Neither ``VersionId`` nor ``LastModified``: a rewrite of the same state is the same state.
    """
    import datetime  # noqa: PLC0415

    values: list[object] = [str(obj.get("ETag"))]
    for name in _STATE_FIELDS:
        value = obj.get(name)
        if name == "StorageClass":
            value = value or "STANDARD"
        if isinstance(value, Mapping):
            value = tuple(sorted((str(k), str(v)) for k, v in value.items()))
        elif isinstance(value, datetime.datetime):
            value = value.timestamp()
        values.append(value)
    values.append(tags)
    return tuple(values)


def object_fingerprint(client: Any, bucket: str, key: str, *, tagged: bool = False) -> object:
    """The object's state now (see :func:`_fingerprint`), or ``None`` when there is none.

    A ``HeadObject``, plus a ``GetObjectTagging`` when the object has tags (``TagCount``) or
    ``tagged`` says it had some (a store that does not report ``TagCount`` on HEAD still
    settles): tags and metadata change without the ETag (``PutObjectTagging``, a copy onto
    itself), so the ETag alone cannot tell that a newer state arrived.
    """
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _error_code(exc) in MISSING_CODES:
            return None
        raise
    tags = _tags(client, bucket, key) if head.get("TagCount") or tagged else ()
    return _fingerprint(head, tags)


def _part_size(primary: Any, bucket: str, key: str, etag: str, size: int) -> int | None:
    """The primary's part size for a multipart object (``None``: a single-part object)."""
    _, dash, count = etag.strip('"').rpartition("-")
    if not dash or not count.isdigit():
        return None
    try:
        head = primary.head_object(Bucket=bucket, Key=key, PartNumber=1)
        part = int(head["ContentLength"])
        if int(head.get("PartsCount") or count) != int(count):
            part = _DEFAULT_PART  # a newer version with another layout was written meanwhile
    except Exception:  # noqa: BLE001 - the layout only keeps ETags equal; the bytes are the same
        part = _DEFAULT_PART
    if part <= 0 or -(-size // part) > _MAX_PARTS:
        part = max(_DEFAULT_PART, -(-size // _MAX_PARTS))
    return part


def _spool(stream: Any, length: int) -> Any:
    """Read exactly ``length`` bytes of ``stream`` into a seekable spool, positioned at 0."""
    import tempfile  # noqa: PLC0415

    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)
    remaining = length
    while remaining > 0:
        chunk = stream.read(min(_READ_CHUNK, remaining))
        if not chunk:
            spool.close()
            msg = f"the primary's body ended {remaining} byte(s) early"
            raise OSError(msg)
        spool.write(chunk)
        remaining -= len(chunk)
    spool.seek(0)
    return spool


def _upload_parts(
    shadow: Any,
    target: Mapping[str, str],
    body: Any,
    size: int,
    part_size: int,
    extra: Mapping[str, Any],
    owner: Mapping[str, str],
    condition: Mapping[str, str],
    algorithm: str = _PART_CHECKSUM,
) -> Any:
    created = shadow.create_multipart_upload(**target, **extra, ChecksumAlgorithm=algorithm)
    upload_id = created["UploadId"]
    ids = {**target, "UploadId": upload_id, **owner}
    try:
        parts = []
        for number in range(1, max(1, -(-size // part_size)) + 1):
            length = min(part_size, size - (number - 1) * part_size)
            with _spool(body, length) as data:
                result = shadow.upload_part(
                    **ids, PartNumber=number, Body=data, ChecksumAlgorithm=algorithm
                )
            kept = {k: v for k, v in result.items() if k == "ETag" or k.startswith("Checksum")}
            parts.append({"PartNumber": number, **kept})
        return shadow.complete_multipart_upload(
            **ids, MultipartUpload={"Parts": parts}, **condition
        )
    except BaseException:
        # Best effort: the shadow bucket's lifecycle rule is the backstop for orphaned parts.
        with contextlib.suppress(Exception):
            shadow.abort_multipart_upload(**ids)
        raise


def repair_object(
    mirror: Mirror,
    bucket: str,
    key: str,
    *,
    attempts: int | None = None,
    deadline: float | None = None,
) -> str:
    """Make the shadow's copy of ``bucket/key`` equal to the primary's current object.

    The object is copied by :func:`copy_object_state` (body in the primary's part layout,
    attributes, tags, object lock, legal hold, storage class, checksum algorithm, the KMS key
    mapped through the pair's ``kms_keys``, ``ACL="bucket-owner-full-control"``); when the
    primary has no such object the shadow's is deleted. Then the primary's state is read again
    (:func:`object_fingerprint`: ETag, attributes, tags, lock, class, encryption); if it moved,
    the copy is redone, at most ``attempts`` times in all.

    No lock of the live write path is held: a live write of the key that lands between the
    copy's read and its write makes the primary's fingerprint move, so the copy is redone; one
    that lands later reaches the shadow after the copy. Unrelated keys never wait for a repair.

    Args:
        mirror: the wrapped pair.
        bucket: the primary bucket.
        key: the object key.
        attempts: copies at most (default: :data:`dualwrite._core.converge.ATTEMPTS`).
        deadline: a ``time.monotonic()`` instant after which no new attempt starts.

    Returns:
        ``"copied"`` or ``"deleted"``.

    Raises:
        RepairError: no shadow bucket, the key kept changing on the primary, or the deadline
            passed.
        botocore.exceptions.ClientError: a read or write failed (e.g. an SSE-C object, which
            cannot be read without its key; a lock carried to a shadow bucket without Object
            Lock).
    """

    shadow_bucket = mirror.shadow_name(bucket)
    if shadow_bucket is None:
        msg = f"no shadow name for bucket {bucket!r}"
        raise RepairError(msg)
    primary, shadow = mirror.primary, mirror.shadow
    owner = owner_params(mirror)
    options: Options = mirror.state.options
    tagged = [False]

    def copy_once() -> tuple[str, object]:
        copied = copy_object_state(
            primary, shadow, bucket, key, shadow_bucket, owner=owner, kms_keys=options.kms_keys
        )
        if copied is None:
            shadow.delete_object(Bucket=shadow_bucket, Key=key, **owner)
            tagged[0] = False
            return "deleted", None
        tagged[0] = copied.tagged
        return "copied", copied.fingerprint

    return retry_until_stable(
        copy_once,
        lambda: object_fingerprint(primary, bucket, key, tagged=tagged[0]),
        attempts=attempts,
        deadline=deadline,
    )


def owner_params(mirror: Mirror) -> dict[str, str]:
    """``{"ExpectedBucketOwner": <shadow account>}`` when the pair knows it, else ``{}``."""
    options: Options = mirror.state.options
    return {"ExpectedBucketOwner": options.shadow_account} if options.shadow_account else {}


def head_etag(client: Any, bucket: str, key: str) -> str | None:
    """The current ETag of ``bucket/key``, or ``None`` when there is no such object."""
    try:
        return str(client.head_object(Bucket=bucket, Key=key)["ETag"])
    except Exception as exc:
        if _error_code(exc) in MISSING_CODES:
            return None
        raise
