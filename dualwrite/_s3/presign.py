"""Presigned writes: journaled when signed, converged by ``repair()`` once uploaded.

A presigned URL or POST lets its holder (a browser, another service) write straight to the
account it was signed for: the upload never passes through the wrapper. The key is known at
signing, though, so a wrapped client whose tenant's flag is on journals it then (reason
``presigned``, with the URL's expiry; :func:`record`) and sends a
:class:`~dualwrite.events.PresignedWrite` event. The return value is boto3's, untouched.

``repair()`` settles such an entry (:func:`settle`):

* the object was written since signing (its ``LastModified`` is not older than the signing
  time, less :data:`SKEW` for clocks and S3's whole seconds; a presigned delete: the object is
  gone): the key is converged (one comparison; a copy with ``bucket-owner-full-control``, or a
  delete, when the shadow differs) and the entry removed;
* not yet, and the URL still works: the entry stays (counted ``presigned_waiting``);
* the URL expired: the key is converged if the primary holds it (a clock off by more than
  :data:`SKEW` then still loses nothing), and the entry removed; an upload that never came is
  counted ``presigned_expired``.

A POST whose key ends in ``${filename}`` names a key prefix (``Entry.detail == "prefix"``):
the holder may upload several keys until it expires. Each repair run lists the prefix on the
primary and converges every key written since signing; the entry stays until the expiry. Cost:
one ``ListObjectsV2`` page per 1,000 keys under the prefix per run, plus a ``HeadObject`` of
each account per key written since signing (a copy only when they differ). Keep such prefixes
narrow (``uploads/<tenant>/<request id>/${filename}``).

A URL used again after its entry was settled (a presigned PUT replayed) is not seen here:
``dualwrite follow s3`` covers every write, whatever signed it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from dualwrite._core.errors import describe_error
from dualwrite._s3.follow import converge_key, head_object
from dualwrite._stage import REVERSED
from dualwrite.events import PresignedWrite
from dualwrite.journal import Entry

if TYPE_CHECKING:
    from dualwrite._core.mirror import Mirror

REASON = "presigned"
"""The journal reason of a presigned write."""

PREFIX = "prefix"
"""``Entry.detail`` of an entry that names a key prefix (a ``${filename}`` POST)."""

SKEW = 2.0
"""Seconds an object's ``LastModified`` may precede the signing time and still count as the
upload (S3 reports whole seconds; the host's clock and S3's differ a little)."""

FILENAME = "${filename}"
_READ_METHODS = frozenset({"GET", "HEAD"})
_DELETES = frozenset({"DeleteObject", "DeleteObjects"})
_READ_POSTS = frozenset({"SelectObjectContent"})  # a POST that only reads the object


def writes(client: Any, api: str) -> bool:
    """Whether operation ``api`` of ``client`` writes an object key (not a read, not a bucket
    operation): its HTTP method is not GET/HEAD and its input has a ``Key``."""
    if not api:
        return False
    try:
        model = client.meta.service_model.operation_model(api)
    except Exception:  # noqa: BLE001 - an operation botocore does not know: not ours to sign
        return False
    if model.http.get("method", "GET") in _READ_METHODS or api in _READ_POSTS:
        return False
    members = model.input_shape.members if model.input_shape is not None else {}
    return "Key" in members


def record(
    mirror: Mirror,
    pin: Any,
    *,
    operation: str,
    bucket: Any,
    key: Any,
    expires_in: Any,
    reversed_: bool,
) -> None:
    """Journal a presigned write and send its event, when the tenant's flag is on. Never raises.

    Args:
        mirror: the wrapped pair (forward: the caller's names).
        pin: the proxy's pinned decision (a managed transfer's worker), or ``None``.
        operation: the signed operation (``"PutObject"``, ``"PostObject"``...).
        bucket: the bucket as the caller named it.
        key: the key as the caller named it (for a POST, possibly ending in ``${filename}``).
        expires_in: the URL's lifetime in seconds.
        reversed_: the URL was signed for the new account (a tenant at ``CUTOVER``).
    """
    try:
        _record(
            mirror,
            pin,
            operation=operation,
            bucket=bucket,
            key=key,
            expires_in=expires_in,
            reversed_=reversed_,
        )
    except Exception as exc:  # noqa: BLE001 - the caller's URL is never at stake
        info = describe_error(exc)
        logging.getLogger("dualwrite").warning(
            "dualwrite: a presigned %s on %r could not be recorded: %s: %s",
            operation,
            bucket,
            info.type,
            info.message,
        )


def _record(
    mirror: Mirror,
    pin: Any,
    *,
    operation: str,
    bucket: Any,
    key: Any,
    expires_in: Any,
    reversed_: bool,
) -> None:
    if not isinstance(bucket, str) or not isinstance(key, str):
        return
    prefix = operation == "PostObject" and key.endswith(FILENAME)
    name = key[: -len(FILENAME)] if prefix else key
    write = mirror.describe(operation, bucket, name)
    if write.shadow_resource is None:
        return  # an unmapped bucket: nothing the shadow could get
    first = "primary"
    if pin is not None:
        on = bool(pin.on)
        write = attrs.evolve(write, tenant=pin.tenant)
    elif mirror.writer.stage is not None:
        write, stage = mirror.writer.decider.stage(write)
        write = attrs.evolve(write, stage=stage)
        on = stage.mirrored
        first = "shadow" if stage in REVERSED or reversed_ else "primary"
    else:
        write, on = mirror.decide(write)
    if not on:
        return
    try:
        lifetime = float(expires_in)
    except (TypeError, ValueError):
        lifetime = 3600.0
    expires = time.time() + max(0.0, lifetime)
    writer = mirror.writer
    journaled = False
    if writer.journal is not None:
        entry = Entry(
            service="s3",
            resource=bucket,
            key=name,
            reason=REASON,
            tenant=write.tenant,
            detail=PREFIX if prefix else operation,
            first=first,
            expires=expires,
        )
        journaled = writer._journal_add([entry], write) is not None
    writer.emit(PresignedWrite(write=write, expires=expires, prefix=prefix, journaled=journaled))


# -- repair ----------------------------------------------------------------------------------


def settle(mirror: Mirror, resource: str, entry: Entry, now: float) -> tuple[dict[str, int], bool]:
    """Settle one ``presigned`` entry through ``mirror`` (the source account's pair).

    Args:
        mirror: the pair to converge through (its primary is the account the URL was signed
            for).
        resource: the bucket there.
        entry: the entry.
        now: the time of the repair run.

    Returns:
        ``(counts, done)``: counts by outcome (``copied``, ``deleted``, ``equal``,
        ``presigned_waiting``, ``presigned_expired``) and whether the entry can be removed.

    Raises:
        Exception: a read or the convergence failed (the entry stays).
    """
    expired = entry.expires is not None and now >= entry.expires
    since = entry.at - SKEW
    key = str(entry.key)
    counts: dict[str, int] = {}

    def add(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1

    if entry.detail == PREFIX:
        for name, modified in _listed(mirror.primary, resource, key):
            if modified >= since:
                add(converge_key(mirror, resource, name))
        if not expired:
            add("presigned_waiting")
        return counts, expired
    head = head_object(mirror.primary, resource, key)
    if entry.detail in _DELETES:
        written = head is None
    else:
        written = head is not None and _modified(head) >= since
    if written or (expired and head is not None):
        add(converge_key(mirror, resource, key))
        return counts, True
    if expired:
        add("presigned_expired")
        return counts, True
    add("presigned_waiting")
    return counts, False


def _modified(head: Mapping[str, Any]) -> float:
    value = head.get("LastModified")
    return float(value.timestamp()) if value is not None else 0.0


def _listed(client: Any, bucket: str, prefix: str) -> list[tuple[str, float]]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [
        (str(item["Key"]), float(item["LastModified"].timestamp()))
        for page in pages
        for item in page.get("Contents", [])
    ]
