"""S3 requests as the handlers see them: the shadow's parameters, the decision, the snapshot.

Every shadow request that creates an object carries ``ACL="bucket-owner-full-control"`` with the
caller's ``ACL``/``Grant*`` removed (:func:`translate`), and every account-specific parameter is
translated or dropped. Also here: the pair's S3 :class:`Options`, a managed transfer's
:class:`Pin`, reading a request's target, freezing it for a shadow write that runs later, and
comparing the primary's response with the shadow's.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from dualwrite._core.decide import routed, with_stage
from dualwrite._core.errors import UnsupportedWrite
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


# botocore's own split of a str CopySource (botocore.handlers.VERSION_ID_SUFFIX).
_VERSION_SUFFIX = re.compile(r"\?versionId=([^\s]+)$")


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
    if not _ACCOUNT_PARAMS.isdisjoint(shadow):
        _other_account(options, shadow)
    if creates:
        for grant in _GRANTS:
            shadow.pop(grant, None)
        shadow["ACL"] = OWNER_ACL
    return shadow


_ACCOUNT_PARAMS = frozenset({"ExpectedBucketOwner", "ExpectedSourceBucketOwner", "SSEKMSKeyId"})
"""The parameters :func:`_other_account` translates: without any, it has nothing to do."""


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
    if "SSECustomerKey" not in params and "CopySourceSSECustomerKey" not in params:
        return ()  # no SSE-C key: the common case, without the loop
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


# -- deciding ----------------------------------------------------------------------------------


def _decide(
    mirror: Mirror, operation: str, bucket: str, key: str | None, pin: Pin | None
) -> tuple[Write, bool]:
    if pin is not None:
        return with_stage(mirror.describe(operation, bucket, key), pin.tenant, pin.stage), pin.on
    if mirror.writer.stage is not None:
        taken = routed(operation, bucket, key)  # decided by the proxy, before this handler
        if taken is not None:
            return taken
    return mirror.decide(mirror.describe(operation, bucket, key))


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
    return {
        name: BODY
        if name == "Body"
        else value
        if type(value) in _LEAVES  # most parameters: no call
        else snapshot(value)
        for name, value in params.items()
    }


_LEAVES = frozenset((str, bytes, int, float, bool, type(None)))


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


def _requested_keys(delete: Any) -> list[str]:
    """The keys a ``Delete`` parameter names; never raises, whatever its shape."""
    objects = delete.get("Objects") if isinstance(delete, Mapping) else None
    if not isinstance(objects, (list, tuple)):
        return []
    return [o["Key"] for o in objects if isinstance(o, Mapping) and isinstance(o.get("Key"), str)]


def force_owner_acl(params: dict[str, Any]) -> None:
    """Give a request that creates an object in the new account its only ACL, in place.

    Whether the new account gets the write as the shadow (``DUAL_WRITE``) or first
    (``CUTOVER``, ``DONE``), its objects carry ``bucket-owner-full-control`` and no grants, so
    they are the same at every stage (and accepted by buckets whose ACLs are disabled).
    """
    for grant in _GRANTS:
        params.pop(grant, None)
    params["ACL"] = OWNER_ACL


def owner_params(mirror: Mirror) -> dict[str, str]:
    """``{"ExpectedBucketOwner": <shadow account>}`` when the pair knows it, else ``{}``."""
    options: Options = mirror.state.options
    return {"ExpectedBucketOwner": options.shadow_account} if options.shadow_account else {}
