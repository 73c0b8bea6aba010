"""S3: copying an object's current state from the primary to the shadow (repair, backfill).

:func:`copy_object_state` streams one object with its attributes, tags, lock and encryption;
:func:`object_fingerprint` reads an object's state as one value; :func:`repair_object` copies
until the primary holds still (:func:`~dualwrite._core.converge.retry_until_stable`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from dualwrite._core.converge import retry_until_stable
from dualwrite._core.errors import RepairError, error_code
from dualwrite._core.mirror import Mirror
from dualwrite._s3.requests import OWNER_ACL, Options, _map_kms, owner_params

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
        if error_code(exc) in MISSING_CODES:
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
        if error_code(exc) in MISSING_CODES:
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
    """A multipart upload of ``body``'s bytes, read part by part, in the primary's layout."""

    def send(ids: Mapping[str, Any], number: int, first: int, last: int) -> Mapping[str, Any]:
        with _spool(body, last - first + 1) as data:
            return shadow.upload_part(  # type: ignore[no-any-return]
                **ids, PartNumber=number, Body=data, ChecksumAlgorithm=algorithm
            )

    return multipart_upload(
        shadow, target, size, part_size, extra, owner, condition, algorithm, send
    )


def multipart_upload(
    shadow: Any,
    target: Mapping[str, str],
    size: int,
    part_size: int,
    extra: Mapping[str, Any],
    owner: Mapping[str, str],
    condition: Mapping[str, str],
    algorithm: str,
    send_part: Callable[[Mapping[str, Any], int, int, int], Mapping[str, Any]],
) -> Any:
    """Create a multipart upload on the shadow, send its parts, complete it; abort on failure.

    The skeleton shared by the copy through the host (``UploadPart``) and the server-side copy
    (``UploadPartCopy``): parts of ``part_size`` bytes (the last one shorter), so equal bytes
    in the primary's layout give equal ETags; ``condition`` goes on the request that makes the
    object visible (``CompleteMultipartUpload``).

    Args:
        shadow: the shadow's S3 client.
        target: ``{"Bucket": ..., "Key": ...}`` of the shadow's object.
        size: the object's size in bytes.
        part_size: bytes per part.
        extra: the object's attributes (``CreateMultipartUpload`` parameters).
        owner: ``{"ExpectedBucketOwner": account}`` for the part calls, or empty.
        condition: ``{"IfNoneMatch": "*"}``, ``{"IfMatch": etag}`` or empty.
        algorithm: the parts' checksum algorithm.
        send_part: ``send_part(ids, number, first, last)`` sends part ``number`` (bytes
            ``first`` to ``last``, inclusive) with ``ids`` (bucket, key, upload id, owner)
            and returns the response, whose ``ETag`` and checksums name the part.

    Returns:
        The ``CompleteMultipartUpload`` response.

    Raises:
        botocore.exceptions.ClientError: a call failed (the upload is aborted first).
    """
    created = shadow.create_multipart_upload(**target, **extra, ChecksumAlgorithm=algorithm)
    ids = {**target, "UploadId": created["UploadId"], **owner}
    try:
        parts = []
        for number in range(1, max(1, -(-size // part_size)) + 1):
            first = (number - 1) * part_size
            last = min(size, first + part_size) - 1
            result = send_part(ids, number, first, last)
            # ChecksumType describes the object, not the part: CompletedPart has no such field.
            kept = {
                k: v
                for k, v in result.items()
                if k == "ETag" or (k.startswith("Checksum") and k != "ChecksumType")
            }
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
    copy: Callable[..., CopiedObject | None] = copy_object_state,
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
        copy: what copies the object, with :func:`copy_object_state`'s contract (``repair
            --server-side``: a :class:`dualwrite._s3.server_copy.ServerSideCopy`).

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
        copied = copy(
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
