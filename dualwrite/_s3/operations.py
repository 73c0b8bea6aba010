"""S3: which operation is mirrored how.

Three tables classify every operation of botocore's S3 model (a test walks the model and fails on
any operation missing from them):

* ``HANDLERS``: object writes mirrored to the shadow, each by a handler of
  :mod:`dualwrite._s3.objects` or :mod:`dualwrite._s3.multipart`;
* ``UNSUPPORTED``: object writes that cannot be mirrored and are reported as ``unsupported``;
* ``PRIMARY_ONLY``: reads and control-plane calls, which go to the primary only.

``ROUTED_READS`` names the reads that follow a tenant's stage to the account that owns it.
"""

from __future__ import annotations

from typing import Any

from dualwrite._core.mirror import Mirror
from dualwrite._s3.multipart import (
    _abort_multipart,
    _complete_multipart,
    _create_multipart,
    _part,
)
from dualwrite._s3.objects import (
    _copy_object,
    _delete_objects,
    _deleted,
    _held,
    _put_object,
    _put_object_acl,
    _retained,
    _simple,
    _tagged,
    _unchecked,
    _untagged,
)
from dualwrite._s3.requests import Call, Handler, Pin, _decide, _target, _unreadable

_READ_METHODS = frozenset({"GET", "HEAD"})


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


# -- reads routed by the stage (CUTOVER, DONE: see dualwrite._s3.routing) ---------------------

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
