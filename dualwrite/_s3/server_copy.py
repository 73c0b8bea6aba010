"""Server-side copy for backfill: S3 copies the primary's object, no byte passes through the host.

``dualwrite copy s3 --server-side`` copies each object with the SHADOW's credentials, as a
``CopyObject`` (a single-part object; at most 5 GiB, the most a single-part object can hold) or
as ``UploadPartCopy`` parts in the primary's own part layout (a multipart object: equal parts
give equal ETags on both sides), with the primary bucket as ``CopySource``. It needs the
primary to grant the shadow's account read (``s3:GetObject`` on the objects in its bucket
policy, ``kms:Decrypt`` on an SSE-KMS object's key).

What is carried is what :func:`dualwrite._s3.copy_object_state` carries, read the same way
(one ``HeadObject`` of the primary with its own credentials, tags when it has some): the
:data:`~dualwrite._s3.COPIED_ATTRIBUTES` (``MetadataDirective=REPLACE``), the tags
(``TaggingDirective=REPLACE``), object lock, legal hold, storage class, the checksum algorithm,
the KMS key mapped through ``kms_keys``, and ``ACL="bucket-owner-full-control"``. The copy is
pinned to the version that was read (``CopySourceIfMatch`` on its ETag, and its ``VersionId``
on a versioned bucket), so the shadow never gets the bytes of one version with the attributes
of another; the shadow's precondition (``IfNoneMatch``/``IfMatch``) goes on the request that
makes the object visible, as in the copy through the host.

When S3 refuses the copy (``AccessDenied``: the shadow cannot read the primary's object or its
KMS key), :class:`ServerSideCopy` copies that object through the host instead
(:func:`~dualwrite._s3.converge.copy_object_state`) and counts it: a policy that grants read on some
prefixes only still gets every key copied.

``dualwrite repair --server-side`` (``DualWriter.repair(server_side=True)``) copies each
journaled S3 key the same way, through :func:`dualwrite._s3.converge.repair_object`: without a
shadow precondition, as repair's copy through the host (repair reads the primary's state again
after the copy and redoes it if a live write moved it), deletes still deletes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from dualwrite._core.errors import RepairError, error_code
from dualwrite._s3.converge import (
    _COMPUTABLE,
    _PART_CHECKSUM,
    COPIED_ATTRIBUTES,
    MISSING_CODES,
    CopiedObject,
    _carried,
    _checksum_algorithm,
    _fingerprint,
    _part_size,
    _tags,
    _urlencode,
    copy_object_state,
    multipart_upload,
)
from dualwrite._s3.requests import OWNER_ACL

logger = logging.getLogger("dualwrite")

DENIED_CODES = frozenset({"AccessDenied", "403", "AllAccessDisabled"})
"""Error codes of a server-side copy that mean "the shadow may not read the primary's object"."""

_COPY_OPERATIONS = frozenset({"CopyObject", "UploadPartCopy"})
_CHANGED_CODES = frozenset({"PreconditionFailed", "412"})
_SOURCE_ATTEMPTS = 5  # reads of the primary's object when it keeps changing under the copy

KmsKeys = Mapping[str, str] | Callable[[str], str | None] | None


class _SourceChanged(Exception):  # noqa: N818 - a signal, not an error
    """The primary's object changed between its ``HeadObject`` and the copy: read it again."""


def server_copy_object_state(
    primary: Any,
    shadow: Any,
    bucket: str,
    key: str,
    shadow_bucket: str,
    *,
    owner: Mapping[str, str] | None = None,
    condition: Mapping[str, str] | None = None,
    kms_keys: KmsKeys = None,
) -> CopiedObject | None:
    """Copy the primary's current object ``bucket/key`` to ``shadow_bucket/key`` inside S3.

    The arguments, result and errors are those of :func:`dualwrite._s3.copy_object_state`;
    only the bytes take another path (the shadow's client asks S3 to copy them).

    Args:
        primary: the primary's S3 client (reads the object's state).
        shadow: the shadow's S3 client (issues the copy; needs read on the primary's object).
        bucket: the primary bucket.
        key: the object key.
        shadow_bucket: the shadow bucket.
        owner: ``{"ExpectedBucketOwner": account}`` sent with every shadow call, or ``None``.
        condition: ``{"IfNoneMatch": "*"}`` or ``{"IfMatch": etag}``: the shadow precondition.
        kms_keys: the writer's ``kms_keys`` map, or ``None``.

    Returns:
        What was copied, or ``None`` when the primary has no such object (nothing was written).

    Raises:
        botocore.exceptions.ClientError: a read or the copy failed: ``AccessDenied`` when the
            shadow may not read the primary's object; ``PreconditionFailed`` when ``condition``
            no longer holds on the shadow. A multipart upload is aborted before the error is
            raised.
    """
    for attempt in range(_SOURCE_ATTEMPTS):
        try:
            return _copy_once(
                primary, shadow, bucket, key, shadow_bucket, dict(owner or {}), condition, kms_keys
            )
        except _SourceChanged:
            if attempt == _SOURCE_ATTEMPTS - 1:
                msg = f"s3 {bucket}/{key}: the primary's object kept changing during the copy"
                raise RepairError(msg) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _copy_once(
    primary: Any,
    shadow: Any,
    bucket: str,
    key: str,
    shadow_bucket: str,
    owner: dict[str, str],
    condition: Mapping[str, str] | None,
    kms_keys: KmsKeys,
) -> CopiedObject | None:
    try:
        head = primary.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception as exc:
        if error_code(exc) in MISSING_CODES:
            return None
        raise
    etag = str(head["ETag"])
    size = int(head.get("ContentLength") or 0)
    extra: dict[str, Any] = {k: head[k] for k in COPIED_ATTRIBUTES if head.get(k)}
    tags = _tags(primary, bucket, key) if head.get("TagCount") else ()
    extra.update(_carried(head, kms_keys))
    extra["ACL"] = OWNER_ACL
    extra.update(owner)
    source: dict[str, str] = {"Bucket": bucket, "Key": key}
    version = head.get("VersionId")
    if isinstance(version, str) and version and version != "null":
        source["VersionId"] = version
    target = {"Bucket": shadow_bucket, "Key": key}
    algorithm = _checksum_algorithm(head)
    part_size = _part_size(primary, bucket, key, etag, size)
    try:
        if part_size is None:
            checksum = {"ChecksumAlgorithm": algorithm} if algorithm in _COMPUTABLE else {}
            result = shadow.copy_object(
                **target,
                CopySource=source,
                CopySourceIfMatch=etag,
                MetadataDirective="REPLACE",
                TaggingDirective="REPLACE",
                **({"Tagging": _urlencode(tags)} if tags else {}),
                **extra,
                **checksum,
                **(condition or {}),
            )
            shadow_etag = result.get("CopyObjectResult", {}).get("ETag")
        else:
            if tags:
                extra["Tagging"] = _urlencode(tags)
            part_algorithm = algorithm if algorithm in _COMPUTABLE else _PART_CHECKSUM
            result = _copy_parts(
                shadow,
                target,
                source,
                etag,
                size,
                part_size,
                extra,
                owner,
                dict(condition or {}),
                part_algorithm,
            )
            shadow_etag = result.get("ETag")
    except Exception as exc:
        # One 412 for two conditions: the source's (the primary moved: read it again) or the
        # shadow's (a live write got there first: the caller's ShadowChanged).
        # NoSuchKey likewise: the source deleted meanwhile, or the shadow's IfMatch key.
        code = error_code(exc)
        if (code in _CHANGED_CODES or code in MISSING_CODES) and _moved(primary, bucket, key, etag):
            raise _SourceChanged(key) from exc
        raise
    return CopiedObject(
        primary_etag=etag,
        shadow_etag=shadow_etag,
        size=size,
        fingerprint=_fingerprint(head, tags),
        tagged=bool(tags),
    )


def _moved(primary: Any, bucket: str, key: str, etag: str) -> bool:
    """Whether the primary's object is no longer the version whose ETag was ``etag``."""
    try:
        return str(primary.head_object(Bucket=bucket, Key=key)["ETag"]) != etag
    except Exception as exc:
        if error_code(exc) in MISSING_CODES:
            return True
        raise


def _copy_parts(
    shadow: Any,
    target: Mapping[str, str],
    source: Mapping[str, str],
    etag: str,
    size: int,
    part_size: int,
    extra: Mapping[str, Any],
    owner: Mapping[str, str],
    condition: Mapping[str, str],
    algorithm: str,
) -> Any:
    """A multipart upload whose parts S3 copies from ``source``, in the primary's layout."""

    def send(ids: Mapping[str, Any], number: int, first: int, last: int) -> Mapping[str, Any]:
        result = shadow.upload_part_copy(
            **ids,
            PartNumber=number,
            CopySource=source,
            CopySourceIfMatch=etag,
            CopySourceRange=f"bytes={first}-{last}",
        )
        return result.get("CopyPartResult", {})  # type: ignore[no-any-return]

    return multipart_upload(
        shadow, target, size, part_size, extra, owner, condition, algorithm, send
    )


class ServerSideCopy:
    """:func:`dualwrite._s3.copy_object_state`'s drop-in that copies inside S3 when it may.

    Each object is copied by :func:`server_copy_object_state`; one that S3 refuses to copy for
    the shadow (:data:`DENIED_CODES`) is copied through the host instead. Thread-safe: the
    workers of a backfill (``copy --server-side``) or of a repair (``server_side=True``) share
    one instance.

    Attributes:
        server_side: objects copied inside S3.
        through_host: objects copied through the host because the shadow could not read them,
            or because the installed botocore cannot make ``CopyObject`` conditional.
    """

    def __init__(self, command: str = "dualwrite copy --server-side") -> None:
        """Count nothing yet.

        Args:
            command: what the warnings name as the run (``copy --server-side`` or repair's).
        """
        self.command = command
        self.server_side = 0
        self.through_host = 0
        self._lock = threading.Lock()
        self._conditional: bool | None = None  # whether the shadow's botocore has the condition

    def _can_copy_conditionally(self, shadow: Any) -> bool:
        """Whether the shadow client's botocore knows ``IfNoneMatch``/``IfMatch`` on
        ``CopyObject`` and ``CompleteMultipartUpload`` (botocore 1.39 lacks them on CopyObject).

        Without them a copy inside S3 could overwrite a newer live write, so every object goes
        through the host instead (its conditional ``PutObject``), with one warning per run.
        """
        if self._conditional is None:
            try:
                model = shadow.meta.service_model
                known = all(
                    {"IfNoneMatch", "IfMatch"} <= set(model.operation_model(op).input_shape.members)
                    for op in ("CopyObject", "CompleteMultipartUpload")
                )
            except Exception:  # noqa: BLE001 - an unusual client: take the safe path
                known = False
            if not known:
                logger.warning(
                    "%s: this botocore cannot make CopyObject "
                    "conditional (IfNoneMatch/IfMatch), which keeps a copy from overwriting a "
                    "newer live write; copying every object through this host instead "
                    "(upgrade botocore to copy inside S3)",
                    self.command,
                )
            self._conditional = known
        return self._conditional

    def __call__(
        self,
        primary: Any,
        shadow: Any,
        bucket: str,
        key: str,
        shadow_bucket: str,
        *,
        owner: Mapping[str, str] | None = None,
        condition: Mapping[str, str] | None = None,
        kms_keys: KmsKeys = None,
    ) -> CopiedObject | None:
        """Copy one object; see :func:`dualwrite._s3.copy_object_state` for the contract."""
        if condition and not self._can_copy_conditionally(shadow):
            with self._lock:
                self.through_host += 1
            return copy_object_state(
                primary,
                shadow,
                bucket,
                key,
                shadow_bucket,
                owner=owner,
                condition=condition,
                kms_keys=kms_keys,
            )
        try:
            copied = server_copy_object_state(
                primary,
                shadow,
                bucket,
                key,
                shadow_bucket,
                owner=owner,
                condition=condition,
                kms_keys=kms_keys,
            )
        except Exception as exc:
            # Only the copy's own refusal: a primary that refuses its owner's HeadObject, or a
            # shadow bucket that refuses the write, would refuse the copy through the host too.
            copying = getattr(exc, "operation_name", None) in _COPY_OPERATIONS
            if not copying or error_code(exc) not in DENIED_CODES:
                raise
            with self._lock:
                self.through_host += 1
                first = self.through_host == 1
            if first:  # once per run: the policy is the likely cause for every such key
                logger.warning(
                    "%s: the shadow may not read s3://%s/%s (%s): "
                    "copying such objects through this host; grant the shadow's account "
                    "s3:GetObject on the primary bucket (and kms:Decrypt on its KMS key) to "
                    "copy them inside S3",
                    self.command,
                    bucket,
                    key,
                    error_code(exc),
                )
            return copy_object_state(
                primary,
                shadow,
                bucket,
                key,
                shadow_bucket,
                owner=owner,
                condition=condition,
                kms_keys=kms_keys,
            )
        if copied is not None:  # None: the primary has no such object, nothing was copied
            with self._lock:
                self.server_side += 1
        return copied
