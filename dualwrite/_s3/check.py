"""Pre-flight checks of an S3 bucket pair, against the real accounts.

The probe object is written exactly as the wrapper writes (through
:func:`dualwrite._s3.requests.translate`, so with ``ACL="bucket-owner-full-control"``), read back
and deleted, in the shadow bucket only, under a prefix of its own: a check never touches real
data.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dualwrite._core.checks import Check, access_fix, failure, failure_code
from dualwrite._core.errors import describe_error
from dualwrite._s3.requests import OWNER_ACL, owner_params, translate

if TYPE_CHECKING:
    from dualwrite._core.mirror import Mirror

_ACL_REJECTED = frozenset({"AccessControlListNotSupported", "InvalidRequest", "InvalidArgument"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden"})
_NOT_FOUND = frozenset({"NoSuchBucket", "404", "NotFound"})


def check_s3(
    mirror: Mirror,
    bucket: str,
    *,
    probe_prefix: str = ".dualwrite-check/",
    sqs: Any = None,
    queue_url: str | None = None,
) -> list[Check]:
    """Check that ``bucket`` and its shadow are ready for dual-writes, diff and copy.

    Args:
        mirror: the wrapped S3 pair (names, ``shadow_account``, both clients).
        bucket: the primary bucket.
        probe_prefix: where in the shadow bucket the probe object is written (then deleted).
        sqs: with ``queue_url``, the SQS client ``dualwrite follow s3`` reads it with.
        queue_url: the follower's queue: the bucket's notifications to it and the queue's
            access are checked too (:func:`check_notifications`).
    """
    primary, shadow = mirror.primary, mirror.shadow
    checks = _check_s3_primary(primary, bucket)
    if queue_url is not None:
        checks.extend(check_notifications(primary, sqs, bucket, queue_url))
    shadow_bucket = mirror.shadow_name(bucket)
    if shadow_bucket is None:
        checks.append(
            Check(
                status="FAIL",
                name="shadow bucket name",
                detail=f"no shadow name for bucket {bucket!r}",
                fix=f'add "{bucket}": "<shadow bucket>" to the "s3" map of the --names file',
            )
        )
        return checks
    owner = owner_params(mirror)
    try:
        shadow.head_bucket(Bucket=shadow_bucket, **owner)
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        code = failure_code(exc)
        fix = (
            f"create bucket {shadow_bucket} in the shadow account"
            if code in _NOT_FOUND
            else access_fix(exc, "shadow", f"s3:ListBucket on arn:aws:s3:::{shadow_bucket}")
            + (" (and check --shadow-account, sent as ExpectedBucketOwner)" if owner else "")
        )
        checks.append(
            Check(status="FAIL", name="shadow bucket reachable", detail=failure(exc), fix=fix)
        )
        return checks
    checks.append(Check(status="PASS", name="shadow bucket reachable", detail=shadow_bucket))
    checks.append(_ownership(shadow, shadow_bucket, owner))
    checks.extend(_probe(mirror, bucket, shadow_bucket, owner, probe_prefix))
    checks.extend(_encryption(primary, bucket, shadow, shadow_bucket, owner))
    checks.extend(_versioning(primary, bucket, shadow, shadow_bucket, owner))
    return checks


def _check_s3_primary(primary: Any, bucket: str) -> list[Check]:
    try:
        listed = primary.list_objects_v2(Bucket=bucket, MaxKeys=1)
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        fix = (
            f"bucket {bucket} does not exist in the primary account"
            if failure_code(exc) in _NOT_FOUND
            else access_fix(exc, "primary", f"s3:ListBucket on arn:aws:s3:::{bucket}")
        )
        return [Check(status="FAIL", name="primary bucket listable", detail=failure(exc), fix=fix)]
    checks = [Check(status="PASS", name="primary bucket listable", detail=bucket)]
    contents = listed.get("Contents", [])
    if contents:
        key = contents[0]["Key"]
        try:
            primary.head_object(Bucket=bucket, Key=key)
            primary.get_object_tagging(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
            checks.append(
                Check(
                    status="FAIL",
                    name="primary objects readable",
                    detail=f"{key}: {failure(exc)}",
                    fix=access_fix(
                        exc,
                        "primary",
                        f"s3:GetObject and s3:GetObjectTagging on arn:aws:s3:::{bucket}/*",
                    )
                    + " (SSE-KMS objects also need kms:Decrypt)",
                )
            )
        else:
            checks.append(
                Check(
                    status="PASS",
                    name="primary objects readable",
                    detail=f"HeadObject and GetObjectTagging of {key}",
                )
            )
    return checks


def ownership_command(bucket: str) -> str:
    """The AWS CLI command that sets ``bucket``'s Object Ownership to BucketOwnerEnforced."""
    return (
        f"aws s3api put-bucket-ownership-controls --bucket {bucket} "
        "--ownership-controls 'Rules=[{ObjectOwnership=BucketOwnerEnforced}]'"
    )


def _ownership(shadow: Any, shadow_bucket: str, owner: Mapping[str, str]) -> Check:
    name = "shadow Object Ownership"
    fix = (
        f"set Object Ownership of {shadow_bucket} to BucketOwnerEnforced, with the shadow "
        f"account's credentials: {ownership_command(shadow_bucket)}"
    )
    try:
        rules = shadow.get_bucket_ownership_controls(Bucket=shadow_bucket, **owner)[
            "OwnershipControls"
        ]["Rules"]
        setting = str(rules[0]["ObjectOwnership"]) if rules else "ObjectWriter"
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        if failure_code(exc) == "OwnershipControlsNotFoundError":
            setting = "ObjectWriter"
        else:
            return Check(status="WARN", name=name, detail=f"not readable ({failure(exc)})", fix=fix)
    if setting == "BucketOwnerEnforced":
        return Check(
            status="PASS",
            name=name,
            detail="BucketOwnerEnforced: ACLs are off and the bucket owner owns every object",
        )
    if setting == "BucketOwnerPreferred":
        return Check(
            status="PASS",
            name=name,
            detail="BucketOwnerPreferred: objects written with bucket-owner-full-control become "
            "the bucket owner's",
        )
    return Check(
        status="WARN",
        name=name,
        detail=f"{setting}: objects written by another account stay that account's",
        fix=fix,
    )


def _probe(
    mirror: Mirror, bucket: str, shadow_bucket: str, owner: Mapping[str, str], prefix: str
) -> list[Check]:
    shadow = mirror.shadow
    key = f"{prefix}{uuid.uuid4().hex}"
    body = f"dualwrite check probe {key}".encode()
    write = mirror.describe("PutObject", bucket, key)
    params = translate(mirror, write, {"Bucket": bucket, "Key": key}, creates=True)
    try:
        put = shadow.put_object(**params, Body=body, IfNoneMatch="*")
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        code = failure_code(exc)
        if code in _ACL_REJECTED:
            fix = (
                f"the shadow bucket rejects ACL={OWNER_ACL}, which every shadow write carries: "
                "set its Object Ownership to BucketOwnerEnforced or BucketOwnerPreferred (both "
                "accept it), and remove any bucket-policy Deny on s3:x-amz-acl"
            )
        elif code in _DENIED:
            fix = (
                f"grant s3:PutObject and s3:PutObjectAcl on arn:aws:s3:::{shadow_bucket}/* to "
                f"the shadow writer, and allow x-amz-acl={OWNER_ACL} in the bucket policy"
            )
        else:
            fix = "see the error; the wrapper's shadow writes would fail the same way"
        return [
            Check(
                status="FAIL",
                name=f"probe object accepted with ACL={OWNER_ACL}",
                detail=failure(exc),
                fix=fix,
            )
        ]
    etag = str(put.get("ETag"))
    encryption = put.get("ServerSideEncryption")
    checks = [
        Check(
            status="PASS",
            name=f"probe object accepted with ACL={OWNER_ACL}",
            detail=f"{shadow_bucket}/{key}" + (f", stored with {encryption}" if encryption else ""),
        )
    ]
    checks.append(_conditional_put(shadow, shadow_bucket, key, owner))
    checks.append(_read_back(shadow, shadow_bucket, key, body, owner))
    checks.append(_delete_probe(shadow, shadow_bucket, key, etag, owner))
    return checks


def _conditional_put(shadow: Any, shadow_bucket: str, key: str, owner: Mapping[str, str]) -> Check:
    name = "conditional writes honoured (If-None-Match)"
    try:
        shadow.put_object(
            Bucket=shadow_bucket, Key=key, Body=b"second", ACL=OWNER_ACL, IfNoneMatch="*", **owner
        )
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        if failure_code(exc) in ("PreconditionFailed", "412"):
            return Check(
                status="PASS", name=name, detail="a second create of the probe was refused"
            )
        return Check(
            status="FAIL",
            name=name,
            detail=failure(exc),
            fix="copy relies on conditional writes to never overwrite a live write",
        )
    return Check(
        status="FAIL",
        name=name,
        detail="the shadow overwrote the probe despite If-None-Match: *",
        fix="copy relies on S3 conditional writes to never overwrite a live write; run it on a "
        "store that supports them (Amazon S3 does), or only while no tenant is dual-writing",
    )


def _read_back(
    shadow: Any, shadow_bucket: str, key: str, body: bytes, owner: Mapping[str, str]
) -> Check:
    name = "probe readable by the shadow account"
    try:
        got = shadow.get_object(Bucket=shadow_bucket, Key=key, **owner)["Body"].read()
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        return Check(
            status="FAIL",
            name=name,
            detail=failure(exc),
            fix="the shadow account cannot read what its writer stored: set Object Ownership "
            f"to BucketOwnerEnforced and grant s3:GetObject on arn:aws:s3:::{shadow_bucket}/* "
            "(and kms:Decrypt on the bucket's KMS key)",
        )
    if got != body:
        return Check(
            status="FAIL",
            name=name,
            detail=f"read {len(got)} bytes, wrote {len(body)}",
            fix="the shadow returned other bytes than were written; check the endpoint",
        )
    return Check(status="PASS", name=name, detail=f"{len(got)} bytes, equal")


def _delete_probe(
    shadow: Any, shadow_bucket: str, key: str, etag: str, owner: Mapping[str, str]
) -> Check:
    name = "probe deleted (conditional delete, If-Match)"
    try:
        shadow.delete_object(Bucket=shadow_bucket, Key=key, IfMatch=etag, **owner)
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        if failure_code(exc) in _DENIED:
            return Check(
                status="FAIL",
                name=name,
                detail=failure(exc),
                fix=f"grant s3:DeleteObject on arn:aws:s3:::{shadow_bucket}/* (deletes are "
                f"mirrored too), then remove {key} by hand",
            )
        try:
            shadow.delete_object(Bucket=shadow_bucket, Key=key, **owner)
        except Exception as again:  # noqa: BLE001 - every failure is a check's outcome
            return Check(
                status="FAIL",
                name=name,
                detail=failure(again),
                fix=f"grant s3:DeleteObject on arn:aws:s3:::{shadow_bucket}/*, then remove "
                f"{key} by hand",
            )
        return Check(
            status="WARN",
            name=name,
            detail=f"deleted, but If-Match on DeleteObject failed ({failure(exc)})",
            fix="copy --delete-extra is not protected against live writes on this store",
        )
    return Check(status="PASS", name=name, detail=key)


def _encryption(
    primary: Any, bucket: str, shadow: Any, shadow_bucket: str, owner: Mapping[str, str]
) -> list[Check]:
    checks = []
    kms = False
    for side, client, name, extra in (
        ("primary", primary, bucket, {}),
        ("shadow", shadow, shadow_bucket, owner),
    ):
        try:
            rules = client.get_bucket_encryption(Bucket=name, **extra)[
                "ServerSideEncryptionConfiguration"
            ]["Rules"]
            default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
            algorithm = str(default.get("SSEAlgorithm", "none"))
            key = default.get("KMSMasterKeyID")
            detail = algorithm + (f", KMS key {key}" if key else "")
            kms = kms or algorithm.startswith("aws:kms")
        except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
            if failure_code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
                detail = "none configured (S3 applies SSE-S3)"
            else:
                detail = f"not readable ({failure(exc)})"
        checks.append(Check(status="INFO", name=f"default encryption ({side})", detail=detail))
    if kms:
        checks.append(
            Check(
                status="WARN",
                name="ETags comparable",
                detail="SSE-KMS objects have ETags that are not MD5 digests of their bytes",
                fix="run diff and copy with --compare size (add --metadata to compare checksums)",
            )
        )
    return checks


def _versioning(
    primary: Any, bucket: str, shadow: Any, shadow_bucket: str, owner: Mapping[str, str]
) -> list[Check]:
    states = {}
    checks = []
    for side, client, name, extra in (
        ("primary", primary, bucket, {}),
        ("shadow", shadow, shadow_bucket, owner),
    ):
        try:
            state = str(client.get_bucket_versioning(Bucket=name, **extra).get("Status", "Off"))
        except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
            state = f"not readable ({failure(exc)})"
        states[side] = state
        checks.append(Check(status="INFO", name=f"versioning ({side})", detail=state))
    if states["primary"] != states["shadow"]:
        checks.append(
            Check(
                status="WARN",
                name="versioning matches",
                detail=f"primary {states['primary']}, shadow {states['shadow']}",
                fix=f"enable the same versioning on {shadow_bucket} if the application relies "
                "on versions after cutover (version ids are per account either way)",
            )
        )
    return checks


# -- the follower's queue (dualwrite follow s3) ------------------------------------------------


def _covers(events: Sequence[str], family: str) -> bool:
    """Whether notification ``events`` cover every event of ``family`` (``"s3:ObjectCreated"``)."""
    return f"{family}:*" in events


def check_notifications(primary: Any, sqs: Any, bucket: str, queue_url: str) -> list[Check]:
    """Check that ``bucket``'s event notifications reach ``queue_url`` and the queue is usable.

    Args:
        primary: the primary's S3 client.
        sqs: an SQS client with the follower's credentials.
        bucket: the primary bucket.
        queue_url: the queue ``dualwrite follow s3`` reads.

    Returns:
        The checks: the queue reachable (and its ARN), the bucket's notification configuration
        sending created and removed events to it (or EventBridge on), the queue's policy and
        dead-letter queue.
    """
    checks: list[Check] = []
    grant = "sqs:GetQueueAttributes, sqs:ReceiveMessage, sqs:DeleteMessage"
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])[
            "Attributes"
        ]
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        info = describe_error(exc)
        checks.append(
            Check(
                status="FAIL",
                name="follow queue reachable",
                detail=f"{info.code or info.type}: {info.message}",
                fix=f"check --queue-url; grant the follower {grant} on the queue",
            )
        )
        return checks
    arn = str(attributes.get("QueueArn", ""))
    checks.append(Check(status="PASS", name="follow queue reachable", detail=arn))
    try:
        config = primary.get_bucket_notification_configuration(Bucket=bucket)
    except Exception as exc:  # noqa: BLE001
        info = describe_error(exc)
        checks.append(
            Check(
                status="FAIL",
                name="bucket notifications",
                detail=f"{info.code or info.type}: {info.message}",
                fix=f"grant the primary s3:GetBucketNotification on arn:aws:s3:::{bucket}",
            )
        )
        return checks
    queues = [q for q in config.get("QueueConfigurations", []) if q.get("QueueArn") == arn]
    events = [e for q in queues for e in q.get("Events", [])]
    eventbridge = "EventBridgeConfiguration" in config
    command = (
        f"aws s3api put-bucket-notification-configuration --bucket {bucket} "
        '--notification-configuration \'{"QueueConfigurations": [{"QueueArn": "'
        + arn
        + '", "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]}\''
    )
    if queues:
        missing = [f for f in ("s3:ObjectCreated", "s3:ObjectRemoved") if not _covers(events, f)]
        filtered = [q for q in queues if q.get("Filter")]
        if missing:
            checks.append(
                Check(
                    status="WARN",
                    name="bucket notifications",
                    detail=f"sent to the queue: {', '.join(sorted(set(events)))}; not every "
                    f"event of {', '.join(missing)}",
                    fix=command,
                )
            )
        else:
            checks.append(
                Check(
                    status="PASS",
                    name="bucket notifications",
                    detail="s3:ObjectCreated:* and s3:ObjectRemoved:* go to the queue",
                )
            )
        if filtered:
            checks.append(
                Check(
                    status="INFO",
                    name="notification filter",
                    detail="only keys matching the configuration's filter are followed",
                )
            )
    elif eventbridge:
        checks.append(
            Check(
                status="INFO",
                name="bucket notifications",
                detail="EventBridge is on for the bucket: a rule must send its aws.s3 "
                '"Object Created" and "Object Deleted" events to the queue (not checked here)',
            )
        )
    else:
        checks.append(
            Check(
                status="FAIL",
                name="bucket notifications",
                detail="the bucket sends no notification to the queue, and EventBridge is off",
                fix=command,
            )
        )
    if queues and "Policy" not in attributes:
        checks.append(
            Check(
                status="WARN",
                name="queue policy",
                detail="the queue has no policy: S3 cannot send to it",
                fix='allow "Service": "s3.amazonaws.com" sqs:SendMessage on the queue, with '
                f'"aws:SourceArn": "arn:aws:s3:::{bucket}"',
            )
        )
    if "RedrivePolicy" not in attributes:
        checks.append(
            Check(
                status="WARN",
                name="dead-letter queue",
                detail="none: a notification whose key keeps failing is received again forever",
                fix="set a RedrivePolicy (maxReceiveCount 5 to 10) to a dead-letter queue",
            )
        )
    return checks
