"""S3: multipart uploads, the table of those in progress and the handlers of their calls.

The shadow gets its own upload, created when the primary's is; parts and completion follow it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import attrs

from dualwrite._core.bodies import Body
from dualwrite._core.errors import SkipShadow, UnsupportedWrite, describe_error
from dualwrite._core.mirror import Mirror, ShadowContext
from dualwrite._s3.fleet import Stamp, _read_params, _written, settle
from dualwrite._s3.requests import (
    Call,
    Handler,
    Pin,
    _call,
    _copy_diverged,
    _decided,
    _frozen,
    _map_copy_source,
    _readable,
    _secrets,
    _shown,
    _target,
    _unreadable,
    compare,
    translate,
)
from dualwrite.events import Write


class IncompleteShadowUpload(Exception):  # noqa: N818 - its name is the event's error_type
    """The shadow's copy of a multipart upload is incomplete; the object is not on the shadow."""


_MAX_UPLOADS = 10_000
"""Multipart uploads in progress remembered per wrapped client (the oldest is forgotten first)."""
_MAX_UPLOAD_AGE = 7 * 24 * 3600.0
"""Seconds after which an upload that was neither completed nor aborted is forgotten."""
# Flag-off multipart decisions are remembered so that their parts are not reported as unknown;
# the table is bounded because an upload that is never completed or aborted leaves its entry.
_MAX_OFF_UPLOADS = 10_000


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
