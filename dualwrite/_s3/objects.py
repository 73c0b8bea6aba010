"""S3: the handlers of writes on whole objects (put, copy, delete, tags, ACL, lock, annotations).

Each handler takes the caller's request, asks the flag, calls the primary through
:meth:`Mirror.call` and gives it the action that writes the shadow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from dualwrite._core.bodies import Body
from dualwrite._core.errors import ErrorInfo, UnsupportedWrite, error_code
from dualwrite._core.mirror import Mirror, ShadowContext
from dualwrite._s3.converge import MISSING_CODES
from dualwrite._s3.fleet import (
    Expected,
    Stamp,
    _copied,
    _read_params,
    _tag_set,
    _tags_of_query,
    _written,
    settle,
)
from dualwrite._s3.requests import (
    OWNER_ACL,
    Call,
    Handler,
    Pin,
    _call,
    _copy_diverged,
    _decide,
    _decided,
    _frozen,
    _map_copy_source,
    _readable,
    _requested_keys,
    _secrets,
    _shown,
    _unreadable,
    _verifiable,
    compare,
    translate,
)
from dualwrite.events import Write


def _put_object(mirror: Mirror, call: Call, params: dict[str, Any], pin: Pin | None) -> Any:
    if not _readable(params):
        return _unreadable(mirror, "PutObject", call, params, pin)
    write, on = _decide(mirror, "PutObject", params["Bucket"], params["Key"], pin)
    if not on:
        return call(**params)
    body = Body(params.get("Body"))
    view = _frozen(params)
    stamp = _stamp(mirror, write)

    def action(ctx: ShadowContext, response: Any) -> None:
        if view.get("WriteOffsetBytes") is not None:
            raise UnsupportedWrite(
                "append", "an append (WriteOffsetBytes) depends on the shadow's current size"
            )
        shadow_params = translate(mirror, write, view, creates=True)
        if "Body" in view:
            shadow_params["Body"] = body.for_shadow()
        compare(ctx, response, ctx.shadow.put_object(**shadow_params))
        if stamp is not None or not mirror.writer.single_writer:
            settle(ctx, _written(view, response), stamp)

    primary = call if stamp is None else stamp.primary(call, lambda: [str(write.key)])
    primary_params = params
    if "Body" in params:
        given = body.for_primary()
        if given is not params["Body"]:  # a spool of a body that cannot rewind
            primary_params = {**params, "Body": given}
    return mirror.call(
        write,
        primary,
        primary_params,
        action,
        secrets=_secrets(params),
        body=body,
        deferred=pin.errors if pin is not None else None,
    )


def _stamp(mirror: Mirror, write: Write) -> Stamp | None:
    """The write's :class:`Stamp`, or ``None`` with ``single_writer`` (no fleet check to skip).

    Should ``single_writer`` be turned off before the shadow write, the check runs unstamped
    (it is then never skipped, which is only slower).
    """
    return None if mirror.writer.single_writer else Stamp(mirror, write.resource)


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
            if error_code(exc) not in MISSING_CODES:
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

    stamp = _stamp(mirror, write)
    primary = call if stamp is None else stamp.primary(call, lambda: [str(write.key)])
    return _call(mirror, pin, write, primary, params, action, secrets=_secrets(params))


def _same_tags(mirror: Mirror, write: Write) -> bool:
    tags = mirror.primary.get_object_tagging(Bucket=write.resource, Key=write.key)
    shadow_tags = mirror.shadow.get_object_tagging(Bucket=write.shadow_resource, Key=write.key)
    return _tag_set(tags) == _tag_set(shadow_tags)


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
            if stamp is None and mirror.writer.single_writer:
                return
            expected = expect(view)
            if expected is not None:
                settle(ctx, expected, stamp)

        stamp = _stamp(mirror, write) if whole else None
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
        ctx.written()
        for key in keys:
            if key not in errors:
                # No stamp: a later write of this client may reach the shadow before this
                # unordered delete does, so "a later write checks after this one" does not hold
                # here; each key is always checked.
                _settle_key(ctx, attrs.evolve(write, key=key), _deleted(view), None)

    # Many keys: no per-key ordering (it would take up to 1,000 locks); see docs/s3.md. For the
    # same reason the keys are not stamped: a stamp says "this write reached the shadow after
    # every earlier one of the key", which only the per-key lock makes true. Stamping them would
    # let an ordered write of the key skip its check while this delete may still land after it.
    return _call(mirror, pin, write, call, params, action, ordered=False, keys=requested)


def _settle_key(ctx: ShadowContext, write: Write, expected: Expected, stamp: Stamp | None) -> None:
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
