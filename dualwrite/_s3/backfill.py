"""S3 diff and copy: merge the two listings by key, compare, copy conditionally.

Both buckets are listed in key order (S3 lists in UTF-8 binary order, which is Python's order
of ``str``) and merged, one page of each side at a time: memory stays bounded whatever the
bucket's size. Keys are compared by size and ETag (``--compare size`` for buckets whose ETags are
not content digests, e.g. SSE-KMS), and with ``metadata`` by a ``HeadObject`` of each side.

A copy never writes over a newer shadow value: the shadow's state as listed becomes the write's
precondition (``IfNoneMatch="*"`` when the shadow lacked the key, ``IfMatch=<ETag listed>`` when
it held another version), the primary is read after that state was seen, and after the write the
primary's state (ETag, attributes, tags, object lock, storage class, encryption) is read again
(:func:`dualwrite._core.converge.retry_until_stable`). What is copied with the body is what repair
copies (:func:`dualwrite._s3.converge.copy_object_state`): attributes, tags, object lock and
legal hold, storage class, checksum algorithm, and the KMS key mapped through ``kms_keys``. A
``PreconditionFailed`` means a live dual-write got there first: the key is left as it is and
counted ``skipped_changed``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from dualwrite._core.converge import retry_until_stable
from dualwrite._core.errors import ShadowChanged, error_code
from dualwrite._core.scan import Batch, Difference, StateFile, Tally, Unit, read_ahead
from dualwrite._s3.converge import (
    COPIED_ATTRIBUTES,
    MISSING_CODES,
    CopiedObject,
    copy_object_state,
    object_fingerprint,
)

_BATCH_KEYS = 100  # equal keys at most between two resume points
_PREFIX = "prefix:"

CHANGED_CODES = frozenset(
    {"PreconditionFailed", "412", "ConditionalRequestConflict", "NoSuchKey", "404"}
)
"""Errors of a conditional shadow write that mean "the shadow's key changed since it was read"."""


def converge_object(
    primary: Any,
    shadow: Any,
    bucket: str,
    shadow_bucket: str,
    key: str,
    *,
    seen: str | None,
    owner: Mapping[str, str],
    kms_keys: Mapping[str, str] | Callable[[str], str | None] | None = None,
    copy: Callable[..., CopiedObject | None] = copy_object_state,
) -> tuple[str, int]:
    """Make ``shadow_bucket/key`` equal to the primary's current object, unless a live write wins.

    Args:
        seen: the shadow's ETag when it was listed, or ``None`` if it lacked the key.
        owner: ``{"ExpectedBucketOwner": ...}`` for the shadow's calls, or empty.
        kms_keys: the writer's ``kms_keys`` map, for SSE-KMS objects.
        copy: what copies the object (:func:`copy_object_state`, or the server-side copy of
            :mod:`dualwrite._s3.server_copy`).

    Returns:
        ``(outcome, bytes copied)``; outcome ``"copied"``, ``"deleted"`` (the primary has no
        such object any more) or ``"gone"`` (neither side has it).

    Raises:
        ShadowChanged: the shadow's key changed after it was read (the precondition failed).
        RepairError: the key kept changing on the primary.
        botocore.exceptions.ClientError: a read or write failed.
    """
    expect: list[str | None] = [seen]
    copied_bytes = [0]
    tagged = [False]

    def copy_once() -> tuple[str, object]:
        etag = expect[0]
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            copied = copy(
                primary,
                shadow,
                bucket,
                key,
                shadow_bucket,
                owner=owner,
                condition=condition,
                kms_keys=kms_keys,
            )
            if copied is None:
                if etag is None:
                    return "gone", None
                shadow.delete_object(Bucket=shadow_bucket, Key=key, IfMatch=etag, **owner)
                expect[0] = None
                return "deleted", None
        except Exception as exc:
            if error_code(exc) in CHANGED_CODES:
                raise ShadowChanged(key) from exc
            raise
        # A second attempt (the primary changed meanwhile) is conditional on what was written.
        expect[0] = copied.shadow_etag
        copied_bytes[0] += copied.size
        tagged[0] = copied.tagged
        return "copied", copied.fingerprint

    outcome = retry_until_stable(
        copy_once, lambda: object_fingerprint(primary, bucket, key, tagged=tagged[0])
    )
    return outcome, copied_bytes[0]


@attrs.frozen(kw_only=True)
class S3Job:
    """A diff or copy of one bucket pair, scoped by key prefixes.

    Attributes:
        command: ``"diff"`` or ``"copy"``.
        primary: the primary's S3 client.
        shadow: the shadow's S3 client.
        resource: the primary bucket.
        shadow_resource: the shadow bucket.
        prefixes: key prefixes (tenants); ``("",)`` is the whole bucket. One stream each.
        compare: ``"etag"`` (size and ETag) or ``"size"`` (size only).
        metadata: also compare content type, user metadata, tags and checksums (a
            ``HeadObject`` of each side per key).
        delete_extra: copy deletes the shadow's keys the primary lacks.
        dry_run: copy writes nothing and says what it would do.
        owner: ``{"ExpectedBucketOwner": ...}`` for the shadow's calls, or empty.
        kms_keys: the writer's ``kms_keys`` map: an SSE-KMS object is written with the mapped
            key (unmapped: the shadow bucket's default encryption).
        copier: what copies one object (``copy --server-side``: a
            :class:`dualwrite._s3.server_copy.ServerSideCopy`).
    """

    command: str
    primary: Any
    shadow: Any
    resource: str
    shadow_resource: str
    prefixes: tuple[str, ...] = ("",)
    compare: str = "etag"
    metadata: bool = False
    delete_extra: bool = False
    dry_run: bool = False
    owner: Mapping[str, str] = attrs.field(factory=dict)
    kms_keys: Mapping[str, str] | Callable[[str], str | None] | None = None
    service: str = "s3"
    copier: Callable[..., CopiedObject | None] = copy_object_state

    def identity(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "service": "s3",
            "bucket": self.resource,
            "shadow_bucket": self.shadow_resource,
            "compare": self.compare,
            "metadata": self.metadata,
        }

    def streams(self) -> list[str]:
        return [_PREFIX + prefix for prefix in dict.fromkeys(self.prefixes)]

    def batches(self, stream: str, start: Any, tally: Tally) -> Iterator[Batch]:
        prefix = stream[len(_PREFIX) :]
        listed = _merge(
            _objects(self.primary, self.resource, prefix, start, {}),
            _objects(self.shadow, self.shadow_resource, prefix, start, self.owner),
        )
        # A key that needs work ends its batch, so that the resume point moves key by key; a run
        # of equal keys is one batch of up to _BATCH_KEYS.
        settled = 0
        for key, p, s in listed:
            unit = self._unit(key, p, s, tally)
            if unit is None:
                tally.record(None)
                settled += 1
                if settled < _BATCH_KEYS:
                    continue
            yield Batch(units=[unit] if unit is not None else [], settled=settled, position=key)
            settled = 0
        yield Batch(units=[], settled=settled, position=None)

    def estimate(self, streams: Sequence[str], state: StateFile) -> int | None:
        total = 0
        for stream in streams:
            _, start = state.start(stream)
            kwargs = {"Bucket": self.resource, "Prefix": stream[len(_PREFIX) :]}
            if start:
                kwargs["StartAfter"] = start
            for page in self.primary.get_paginator("list_objects_v2").paginate(**kwargs):
                total += int(page.get("KeyCount", len(page.get("Contents", []))))
        return total

    # -- one key -------------------------------------------------------------------------------

    def _difference(
        self,
        kind: str,
        key: str,
        p: Mapping[str, Any] | None,
        s: Mapping[str, Any] | None,
        fields: tuple[str, ...] = (),
    ) -> Difference:
        return Difference(
            kind=kind,
            service="s3",
            resource=self.resource,
            shadow_resource=self.shadow_resource,
            key=key,
            fields=fields,
            primary=_summary(p),
            shadow=_summary(s),
        )

    def _unit(
        self, key: str, p: Mapping[str, Any] | None, s: Mapping[str, Any] | None, tally: Tally
    ) -> tuple[Unit, int] | None:
        if p is not None and s is not None:
            fields = self._listed_fields(p, s)
            if fields:
                diff = self._difference("different", key, p, s, fields)
                return (lambda: self._resolve(diff, str(s["ETag"]), tally)), 1
            if self.metadata:
                return (lambda: self._check_metadata(key, tally)), 1
            return None
        if p is not None:
            diff = self._difference("missing_in_shadow", key, p, None)
            return (lambda: self._resolve(diff, None, tally)), 1
        assert s is not None
        diff = self._difference("extra_in_shadow", key, None, s)
        return (lambda: self._resolve(diff, str(s["ETag"]), tally)), 0

    def _listed_fields(self, p: Mapping[str, Any], s: Mapping[str, Any]) -> tuple[str, ...]:
        fields = []
        if p.get("Size") != s.get("Size"):
            fields.append("size")
        if self.compare == "etag" and p.get("ETag") != s.get("ETag"):
            fields.append("etag")
        return tuple(fields)

    def _resolve(self, diff: Difference, seen: str | None, tally: Tally) -> None:
        """Report a difference (diff), or make the shadow's key equal (copy)."""
        if self.command == "diff":
            tally.record(diff)
            return
        extra = diff.kind == "extra_in_shadow"
        if extra and not self.delete_extra:
            tally.record(diff, "kept")
            return
        if self.dry_run:
            tally.record(diff, "would_delete" if extra else "would_copy")
            return
        try:
            outcome, size = converge_object(
                self.primary,
                self.shadow,
                self.resource,
                self.shadow_resource,
                str(diff.key),
                seen=seen,
                owner=self.owner,
                kms_keys=self.kms_keys,
                copy=self.copier,
            )
        except ShadowChanged:
            outcome, size = "skipped_changed", 0
        except Exception as exc:  # noqa: BLE001 - one key's failure must not stop the run
            tally.record(diff, "failed")
            tally.error(f"s3 {self.resource}/{diff.key}", exc, count=False)
            return
        tally.add("bytes_copied", size)
        tally.record(diff, outcome)

    def _check_metadata(self, key: str, tally: Tally) -> None:
        """Compare one key (equal by listing) by ``HeadObject`` of each side, and tags."""
        try:
            p = _head(self.primary, self.resource, key, {})
            s = _head(self.shadow, self.shadow_resource, key, self.owner)
            fields: tuple[str, ...] = ()
            if p is not None and s is not None:
                fields = self._listed_fields(_listed(p), _listed(s)) + _metadata_fields(p, s)
                # HeadObject tells how many tags, not which: read them only where there are some.
                if (p.get("TagCount") or s.get("TagCount")) and self._tags_differ(key):
                    fields = (*fields, "tags")
        except Exception as exc:  # noqa: BLE001 - one key's failure must not stop the run
            tally.error(f"s3 {self.resource}/{key}", exc)
            return
        # Either side may have changed since the listing: the heads decide.
        if p is not None and s is None:
            self._resolve(self._difference("missing_in_shadow", key, _listed(p), None), None, tally)
        elif p is None and s is not None:
            diff = self._difference("extra_in_shadow", key, None, _listed(s))
            self._resolve(diff, str(s["ETag"]), tally)
        elif p is not None and s is not None and fields:
            diff = self._difference("different", key, _listed(p), _listed(s), fields)
            self._resolve(diff, str(s["ETag"]), tally)
        else:
            tally.record(None)  # equal, or deleted on both sides since the listing

    def _tags_differ(self, key: str) -> bool:
        p = self.primary.get_object_tagging(Bucket=self.resource, Key=key)
        s = self.shadow.get_object_tagging(Bucket=self.shadow_resource, Key=key, **self.owner)
        return _tag_set(p) != _tag_set(s)


def _tag_set(response: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {(str(t.get("Key")), str(t.get("Value"))) for t in response.get("TagSet", [])}


def _summary(listed: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if listed is None:
        return None
    return {"size": listed.get("Size"), "etag": listed.get("ETag")}


def _listed(head: Mapping[str, Any]) -> dict[str, Any]:
    """A ``HeadObject`` response in the shape of a listing entry."""
    return {"Size": head.get("ContentLength"), "ETag": head.get("ETag")}


def _metadata_fields(p: Mapping[str, Any], s: Mapping[str, Any]) -> tuple[str, ...]:
    fields = [name for name in COPIED_ATTRIBUTES if p.get(name) != s.get(name)]
    # Checksums of the same algorithm and type only: a copy may add its own (CRC32).
    if p.get("ChecksumType") == s.get("ChecksumType"):
        for name, value in p.items():
            checksum = name.startswith("Checksum") and name != "ChecksumType"
            if checksum and name in s and s[name] != value:
                fields.append(name)
    return tuple(fields)


def _head(client: Any, bucket: str, key: str, owner: Mapping[str, str]) -> dict[str, Any] | None:
    try:
        return dict(client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **owner))
    except Exception as exc:
        if error_code(exc) in MISSING_CODES:
            return None
        raise


def _objects(
    client: Any, bucket: str, prefix: str, start_after: str | None, owner: Mapping[str, str]
) -> Iterator[Mapping[str, Any]]:
    """The objects under ``prefix`` after ``start_after``, in key order, a page read ahead."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, **owner}
    if start_after:
        kwargs["StartAfter"] = start_after
    pages = client.get_paginator("list_objects_v2").paginate(**kwargs)
    for page in read_ahead(iter(pages)):
        yield from page.get("Contents", [])


def _merge(
    primary: Iterator[Mapping[str, Any]], shadow: Iterator[Mapping[str, Any]]
) -> Iterator[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]]:
    """Merge two key-ordered listings: ``(key, primary entry or None, shadow entry or None)``."""
    p = next(primary, None)
    s = next(shadow, None)
    while p is not None or s is not None:
        if s is None or (p is not None and p["Key"] < s["Key"]):
            assert p is not None
            yield p["Key"], p, None
            p = next(primary, None)
        elif p is None or s["Key"] < p["Key"]:
            yield s["Key"], None, s
            s = next(shadow, None)
        else:
            yield p["Key"], p, s
            p, s = next(primary, None), next(shadow, None)
