"""Pre-flight checks of a bucket or table pair, against the real accounts.

Each check is one :class:`Check`: ``PASS``, ``FAIL`` (with what to fix), ``WARN`` (works, but
something will bite later) or ``INFO`` (a setting worth seeing side by side). The S3 probe object
is written exactly as the wrapper writes (through :func:`dualwrite._s3.translate`, so with
``ACL="bucket-owner-full-control"``), read back and deleted; the DynamoDB probe item is put with a
condition that it did not exist, read back and deleted with a condition that it is the probe, so
a check never touches real data.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from dualwrite._mirror import Mirror, describe_error
from dualwrite._s3 import OWNER_ACL, owner_params, translate

STATUSES = ("PASS", "FAIL", "WARN", "INFO")


@attrs.frozen(kw_only=True)
class Check:
    """The outcome of one check.

    Attributes:
        status: ``"PASS"``, ``"FAIL"``, ``"WARN"`` or ``"INFO"``.
        name: what was checked.
        detail: what was found.
        fix: for a failure or a warning, what to change.
    """

    status: str
    name: str
    detail: str = ""
    fix: str = ""

    def line(self) -> str:
        """One line: status, name, detail and, if any, the fix."""
        text = f"{self.status:<4}  {self.name}"
        if self.detail:
            text += f": {self.detail}"
        if self.fix:
            text += f" -- fix: {self.fix}"
        return text


def _error(exc: BaseException) -> str:
    info = describe_error(exc)
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, Mapping) else None
    if info.code and isinstance(error, Mapping) and error.get("Message"):
        return f"{info.code}: {error['Message']}"
    return f"{info.code or info.type}: {info.message}"


def _code(exc: BaseException) -> str:
    return describe_error(exc).code or type(exc).__name__


# Failures of the credentials themselves: no IAM grant fixes these.
_CREDENTIAL_ERRORS = frozenset(
    {
        "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
        "NoAuthTokenError", "TokenRetrievalError", "SSOTokenLoadError", "UnauthorizedSSOTokenError",
        "InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
        "ExpiredTokenException", "UnrecognizedClientException", "InvalidToken",
        "AuthFailure", "RequestExpired",
    }
)  # fmt: skip


def _access_fix(exc: BaseException, side: str, grant: str) -> str:
    """What to fix for a denied or failed call of ``side``: its credentials, or a grant."""
    if _code(exc) in _CREDENTIAL_ERRORS or type(exc).__name__ in _CREDENTIAL_ERRORS:
        return (
            f"the {side}'s credentials are missing, invalid or expired: set --{side}-profile "
            f"or --{side}-role-arn, or the AWS_* environment of the {side} account"
        )
    return f"grant {grant} to the {side}'s credentials"


# -- S3 ------------------------------------------------------------------------------------------

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
            access are checked too (:func:`dualwrite._follow_s3.check_notifications`).
    """
    primary, shadow = mirror.primary, mirror.shadow
    checks = _check_s3_primary(primary, bucket)
    if queue_url is not None:
        from dualwrite._follow_s3 import check_notifications  # noqa: PLC0415

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
        code = _code(exc)
        fix = (
            f"create bucket {shadow_bucket} in the shadow account"
            if code in _NOT_FOUND
            else _access_fix(exc, "shadow", f"s3:ListBucket on arn:aws:s3:::{shadow_bucket}")
            + (" (and check --shadow-account, sent as ExpectedBucketOwner)" if owner else "")
        )
        checks.append(
            Check(status="FAIL", name="shadow bucket reachable", detail=_error(exc), fix=fix)
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
            if _code(exc) in _NOT_FOUND
            else _access_fix(exc, "primary", f"s3:ListBucket on arn:aws:s3:::{bucket}")
        )
        return [Check(status="FAIL", name="primary bucket listable", detail=_error(exc), fix=fix)]
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
                    detail=f"{key}: {_error(exc)}",
                    fix=_access_fix(
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
        if _code(exc) == "OwnershipControlsNotFoundError":
            setting = "ObjectWriter"
        else:
            return Check(status="WARN", name=name, detail=f"not readable ({_error(exc)})", fix=fix)
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
        code = _code(exc)
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
                detail=_error(exc),
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
        if _code(exc) in ("PreconditionFailed", "412"):
            return Check(
                status="PASS", name=name, detail="a second create of the probe was refused"
            )
        return Check(
            status="FAIL",
            name=name,
            detail=_error(exc),
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
            detail=_error(exc),
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
        if _code(exc) in _DENIED:
            return Check(
                status="FAIL",
                name=name,
                detail=_error(exc),
                fix=f"grant s3:DeleteObject on arn:aws:s3:::{shadow_bucket}/* (deletes are "
                f"mirrored too), then remove {key} by hand",
            )
        try:
            shadow.delete_object(Bucket=shadow_bucket, Key=key, **owner)
        except Exception as again:  # noqa: BLE001 - every failure is a check's outcome
            return Check(
                status="FAIL",
                name=name,
                detail=_error(again),
                fix=f"grant s3:DeleteObject on arn:aws:s3:::{shadow_bucket}/*, then remove "
                f"{key} by hand",
            )
        return Check(
            status="WARN",
            name=name,
            detail=f"deleted, but If-Match on DeleteObject failed ({_error(exc)})",
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
            if _code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
                detail = "none configured (S3 applies SSE-S3)"
            else:
                detail = f"not readable ({_error(exc)})"
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
            state = f"not readable ({_error(exc)})"
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


# -- DynamoDB ------------------------------------------------------------------------------------


def _describe(client: Any, table: str) -> dict[str, Any]:
    return dict(client.describe_table(TableName=table)["Table"])


def _key_schema(desc: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    types = {a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions", [])}
    return [
        (k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?"))
        for k in sorted(desc.get("KeySchema", []), key=lambda k: k["KeyType"] != "HASH")
    ]


def _show_schema(schema: list[tuple[str, str, str]]) -> str:
    return ", ".join(f"{name} ({kind}, {typ})" for name, kind, typ in schema)


def _indexes(desc: Mapping[str, Any]) -> dict[str, str]:
    types = {a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions", [])}
    found = {}
    for kind, field in (("GSI", "GlobalSecondaryIndexes"), ("LSI", "LocalSecondaryIndexes")):
        for index in desc.get(field, []) or []:
            keys = ", ".join(
                f"{k['AttributeName']} {k['KeyType']} {types.get(k['AttributeName'], '?')}"
                for k in sorted(index["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
            )
            projection = index.get("Projection", {})
            also = sorted(projection.get("NonKeyAttributes", []))
            shown = projection.get("ProjectionType", "?") + (f" {also}" if also else "")
            found[index["IndexName"]] = f"{kind} keys ({keys}) projection {shown}"
    return found


def _capacity(desc: Mapping[str, Any]) -> tuple[str, int | None]:
    mode = desc.get("BillingModeSummary", {}).get("BillingMode")
    throughput = desc.get("ProvisionedThroughput", {})
    wcu = throughput.get("WriteCapacityUnits")
    if mode == "PAY_PER_REQUEST" or (mode is None and not wcu):
        return "PAY_PER_REQUEST (on demand)", None
    rcu = throughput.get("ReadCapacityUnits")
    return f"PROVISIONED, {rcu} RCU / {wcu} WCU", int(wcu or 0)


def _ttl(client: Any, table: str) -> str:
    try:
        ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        return f"not readable ({_code(exc)})"
    status = str(ttl.get("TimeToLiveStatus", "DISABLED"))
    attribute = ttl.get("AttributeName")
    return f"{status} on {attribute}" if attribute and status != "DISABLED" else status


def _probe_value(attr_type: str) -> dict[str, Any]:
    token = uuid.uuid4()
    if attr_type == "N":
        return {"N": f"-{token.int % 10**37}"}
    if attr_type == "B":
        return {"B": token.bytes}
    return {"S": f"dualwrite-check#{token.hex}"}


def check_dynamodb(mirror: Mirror, table: str) -> list[Check]:
    """Check that ``table`` and its shadow have the same shape and that the shadow takes writes.

    Args:
        mirror: the wrapped DynamoDB pair (names and both clients).
        table: the primary table.
    """
    primary, shadow = mirror.primary, mirror.shadow
    checks = []
    shadow_table = mirror.shadow_name(table) or table
    descs = {}
    for side, client, name in (("primary", primary, table), ("shadow", shadow, shadow_table)):
        try:
            descs[side] = _describe(client, name)
        except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
            fix = (
                f"create table {name} in the {side} account with the primary's key schema"
                if _code(exc) == "ResourceNotFoundException"
                else _access_fix(exc, side, f"dynamodb:DescribeTable on table {name}")
            )
            checks.append(
                Check(status="FAIL", name=f"{side} table exists", detail=_error(exc), fix=fix)
            )
    if len(descs) < 2:
        return checks
    for side, name in (("primary", table), ("shadow", shadow_table)):
        desc = descs[side]
        checks.append(
            Check(
                status="PASS",
                name=f"{side} table exists",
                detail=f"{name}, {desc.get('TableStatus')}, about {desc.get('ItemCount', 0)} items",
            )
        )
    p_schema, s_schema = _key_schema(descs["primary"]), _key_schema(descs["shadow"])
    if p_schema == s_schema:
        checks.append(Check(status="PASS", name="same key schema", detail=_show_schema(p_schema)))
    else:
        checks.append(
            Check(
                status="FAIL",
                name="same key schema",
                detail=f"primary {_show_schema(p_schema)}; shadow {_show_schema(s_schema)}",
                fix=f"recreate {shadow_table} with the primary's key schema: items are copied "
                "by key",
            )
        )
    checks.append(_compare_indexes(descs["primary"], descs["shadow"], shadow_table))
    checks.extend(_compare_capacity(descs["primary"], descs["shadow"], shadow_table))
    checks.extend(_compare_ttl(primary, table, shadow, shadow_table))
    checks.append(_primary_readable(primary, table))
    if p_schema == s_schema:
        checks.extend(_item_probe(shadow, shadow_table, s_schema))
    return checks


def _compare_indexes(
    primary: Mapping[str, Any], shadow: Mapping[str, Any], shadow_table: str
) -> Check:
    p_idx, s_idx = _indexes(primary), _indexes(shadow)
    if p_idx == s_idx:
        detail = ", ".join(sorted(p_idx)) if p_idx else "no secondary indexes on either side"
        return Check(status="PASS", name="same secondary indexes", detail=detail)
    problems = []
    for name in sorted(set(p_idx) - set(s_idx)):
        problems.append(f"missing on the shadow: {name} ({p_idx[name]})")
    for name in sorted(set(p_idx) & set(s_idx)):
        if p_idx[name] != s_idx[name]:
            problems.append(f"{name} differs: primary {p_idx[name]}; shadow {s_idx[name]}")
    for name in sorted(set(s_idx) - set(p_idx)):
        problems.append(f"only on the shadow: {name}")
    return Check(
        status="FAIL",
        name="same secondary indexes",
        detail="; ".join(problems),
        fix=f"create or fix the indexes on {shadow_table} (update-table "
        "--global-secondary-index-updates; an LSI needs the table recreated) so that queries "
        "behave the same after cutover",
    )


def _compare_capacity(
    primary: Mapping[str, Any], shadow: Mapping[str, Any], shadow_table: str
) -> list[Check]:
    (p_mode, p_wcu), (s_mode, s_wcu) = _capacity(primary), _capacity(shadow)
    checks = [
        Check(status="INFO", name="billing mode (primary)", detail=p_mode),
        Check(status="INFO", name="billing mode (shadow)", detail=s_mode),
    ]
    if s_wcu is not None and (p_wcu is None or s_wcu < p_wcu):
        checks.append(
            Check(
                status="WARN",
                name="shadow write capacity",
                detail=f"shadow {s_mode}; primary {p_mode}",
                fix=f"give {shadow_table} at least the primary's write capacity, or on-demand: "
                "it takes every dual-write plus the backfill's (copy --max-rps paces the "
                "backfill)",
            )
        )
    return checks


def _compare_ttl(primary: Any, table: str, shadow: Any, shadow_table: str) -> list[Check]:
    p_ttl, s_ttl = _ttl(primary, table), _ttl(shadow, shadow_table)
    if p_ttl == s_ttl:
        return [Check(status="INFO", name="time to live", detail=f"{p_ttl} on both sides")]
    return [
        Check(
            status="WARN",
            name="time to live",
            detail=f"primary {p_ttl}; shadow {s_ttl}",
            fix=f"configure TTL on {shadow_table} as on the primary: expiry deletions happen in "
            "each account on its own and are not dual-written",
        )
    ]


def _primary_readable(primary: Any, table: str) -> Check:
    name = "primary table readable"
    try:
        primary.scan(TableName=table, Limit=1)
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        return Check(
            status="FAIL",
            name=name,
            detail=_error(exc),
            fix=f"grant dynamodb:Scan, Query, GetItem and BatchGetItem on table {table} to the "
            "primary's credentials (diff, copy and repair read it)",
        )
    return Check(status="PASS", name=name, detail="Scan")


def _item_probe(shadow: Any, table: str, schema: list[tuple[str, str, str]]) -> list[Check]:
    key = {name: _probe_value(attr_type) for name, _, attr_type in schema}
    token = uuid.uuid4().hex
    hash_name = schema[0][0]
    try:
        shadow.put_item(
            TableName=table,
            Item={**key, "dualwrite_probe": {"S": token}},
            ConditionExpression="attribute_not_exists(#k)",
            ExpressionAttributeNames={"#k": hash_name},
        )
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        return [
            Check(
                status="FAIL",
                name="probe item written",
                detail=_error(exc),
                fix=f"grant dynamodb:PutItem, UpdateItem, DeleteItem, BatchWriteItem and "
                f"BatchGetItem on table {table} to the shadow's credentials",
            )
        ]
    checks = [Check(status="PASS", name="probe item written", detail="conditional PutItem")]
    try:
        found = shadow.batch_get_item(
            RequestItems={table: {"Keys": [key], "ConsistentRead": True}}
        )["Responses"].get(table, [])
        if found and found[0].get("dualwrite_probe") == {"S": token}:
            checks.append(Check(status="PASS", name="probe item read back", detail="BatchGetItem"))
        else:
            checks.append(
                Check(
                    status="FAIL",
                    name="probe item read back",
                    detail="a consistent read did not return the probe",
                    fix="check that --shadow-endpoint-url and the shadow table are the same",
                )
            )
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        checks.append(
            Check(
                status="FAIL",
                name="probe item read back",
                detail=_error(exc),
                fix=f"grant dynamodb:BatchGetItem and GetItem on table {table} (copy and diff "
                "read the shadow)",
            )
        )
    try:
        shadow.delete_item(
            TableName=table,
            Key=key,
            ConditionExpression="dualwrite_probe = :t",
            ExpressionAttributeValues={":t": {"S": token}},
        )
    except Exception as exc:  # noqa: BLE001 - every failure is a check's outcome
        checks.append(
            Check(
                status="FAIL",
                name="probe item deleted",
                detail=_error(exc),
                fix=f"grant dynamodb:DeleteItem on table {table}, then delete the item whose "
                "dualwrite_probe attribute is set",
            )
        )
    else:
        checks.append(Check(status="PASS", name="probe item deleted", detail="conditional"))
    return checks
