"""S3: the stage-routing hooks of the :class:`~dualwrite._core.service.Service` (CUTOVER, DONE).

Which ``(bucket, key)`` a call's stage is asked for, where a multipart upload started, a call's
parameters for the new account, the caller's bucket names in its response, and the reverse
mirror that writes the new account first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dualwrite._core.mirror import Mirror
from dualwrite._s3.multipart import _uploads
from dualwrite._s3.requests import (
    Options,
    _other_account,
    _requested_keys,
    _target,
    force_owner_acl,
    parse_copy_source,
)
from dualwrite._s3.state import new_state

UPLOAD_OPS = frozenset(
    {"UploadPart", "UploadPartCopy", "CompleteMultipartUpload", "AbortMultipartUpload", "ListParts"}
)
"""The calls on a multipart upload: the ones :func:`upload_owner` may answer for."""
SOURCED_OPS = frozenset({"CopyObject", "UploadPartCopy"})
"""The calls that read a source object: the ones :func:`stage_sources` may name one for."""


def stage_targets(
    mirror: Mirror, api: str, params: Mapping[str, Any]
) -> tuple[tuple[str, Any], ...]:
    """The ``(bucket, key)`` a call's stage is asked for; empty when the call names none."""
    del mirror, api
    target = _target(params)
    return () if target is None else (target,)


def stage_sources(mirror: Mirror, api: str, params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The ``(bucket, key)`` a call reads from: a copy's source."""
    del mirror
    if api not in SOURCED_OPS:
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
    if api not in UPLOAD_OPS:
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
