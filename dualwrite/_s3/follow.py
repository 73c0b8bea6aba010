"""One S3 key made equal on the shadow at the least cost: the follower's and presign's step.

Two ``HeadObject`` calls decide whether anything must be written; only a key that differs is
copied (or deleted) by the repair's convergence (:func:`dualwrite._s3.converge.repair_object`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dualwrite._core.errors import error_code
from dualwrite._s3.converge import COPIED_ATTRIBUTES, MISSING_CODES, _tags, repair_object

if TYPE_CHECKING:
    from dualwrite._core.mirror import Mirror

_COMPARED = (*COPIED_ATTRIBUTES, "StorageClass", "ObjectLockMode",
             "ObjectLockRetainUntilDate", "ObjectLockLegalHoldStatus")  # fmt: skip


# -- converging one key --------------------------------------------------------------------


def head_object(client: Any, bucket: str, key: str) -> Mapping[str, Any] | None:
    """``HeadObject`` of ``bucket/key``; ``None`` when there is no such object."""
    try:
        return client.head_object(Bucket=bucket, Key=key)  # type: ignore[no-any-return]
    except Exception as exc:
        if error_code(exc) in MISSING_CODES:
            return None
        raise


def _same(primary: Mapping[str, Any], shadow: Mapping[str, Any]) -> bool:
    """Whether two ``HeadObject`` answers describe the same object state.

    ETag, size, the attributes a copy carries, storage class and object lock; not the
    encryption (each account has its own keys) nor ``LastModified``/``VersionId``.
    """
    if primary.get("ETag") != shadow.get("ETag"):
        return False
    for name in _COMPARED:
        p, s = primary.get(name), shadow.get(name)
        if name == "StorageClass":
            p, s = p or "STANDARD", s or "STANDARD"
        if p != s:
            return False
    return bool(primary.get("TagCount") or 0) == bool(shadow.get("TagCount") or 0)


def converge_key(mirror: Mirror, bucket: str, key: str) -> str:
    """Make the shadow's ``key`` equal to the primary's current state, at the least cost.

    A ``HeadObject`` of each account first (plus each side's tags when either has some): when
    they agree, nothing is written (``"equal"``). Otherwise the repair's convergence copies the
    object (with ``bucket-owner-full-control``) or deletes the shadow's copy.

    Returns:
        ``"equal"``, ``"copied"`` or ``"deleted"``.

    Raises:
        RepairError: no shadow bucket, or the key kept changing.
        botocore.exceptions.ClientError: a read or write failed.
    """
    shadow_bucket = mirror.shadow_name(bucket)
    if shadow_bucket is not None:
        primary = head_object(mirror.primary, bucket, key)
        shadow = head_object(mirror.shadow, shadow_bucket, key)
        if primary is None and shadow is None:
            return "equal"
        if primary is not None and shadow is not None and _same(primary, shadow):
            tagged = primary.get("TagCount") or shadow.get("TagCount")
            if not tagged or _tags(mirror.primary, bucket, key) == _tags(
                mirror.shadow, shadow_bucket, key
            ):
                return "equal"
    return repair_object(mirror, bucket, key)
