"""DynamoDB diff and copy: read one side page by page, look the other side up by key.

Two tables holding the same keys do not scan in the same order, so the sides are not merged:
each page of the primary (a ``Scan`` segment, or a ``Query`` of one partition key value) is looked
up on the shadow with ``BatchGetItem`` (consistent reads) and compared item by item; extra keys
are found the other way round, a page of the shadow looked up on the primary. Each stream's
resume point is its ``LastEvaluatedKey``.

A copy never writes over a newer shadow value. For each key found missing or different, the
shadow's item as read is the write's condition (``attribute_not_exists`` of the hash key when
it was missing; equality of every attribute read, and absence of the attributes it lacked, when
it differed), and the item written is the primary's, read again with a consistent read *after*
the shadow's state was read (a scan is eventually consistent). After the writes the primary is
read once more; a key that changed meanwhile is redone through
:func:`dualwrite._core.converge.retry_until_stable`, conditional on what was written. A failed
condition means a live dual-write got there first: counted ``skipped_changed``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from dualwrite._core.converge import retry_until_stable
from dualwrite._core.errors import ShadowChanged, error_code
from dualwrite._core.scan import (
    Batch,
    Difference,
    StateFile,
    Tally,
    Unit,
    chunked,
    read_ahead,
    to_jsonable,
)
from dualwrite._dynamodb.converge import read_item
from dualwrite._dynamodb.keys import canonical

_PAGE = 1000  # items per Scan/Query page (a page is also cut at 1 MB by DynamoDB)
_LOOKUP = 100  # BatchGetItem's limit
_LOOKUP_ATTEMPTS = 8
_LOOKUP_BACKOFF = 0.05
_MAX_CONDITION = 4000  # DynamoDB's limit on an expression is 4 KB
_CHANGED = "ConditionalCheckFailedException"


def _canon(item: Mapping[str, Any] | None) -> Hashable:
    return None if item is None else canonical({"M": item}, "client")


def condition_on(
    expected: Mapping[str, Any] | None,
    key_names: Sequence[str],
    writing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The condition that the shadow's item is still ``expected`` (``None``: still absent).

    For a present item: the hash key exists, every non-key attribute read still has the value
    read, and each attribute of ``writing`` that ``expected`` lacked is still absent. An
    attribute that a live write added and that neither side had is not seen by the condition
    (the re-read of the primary covers that case). The expression is cut at DynamoDB's 4 KB
    limit: attributes past it are not checked.

    Returns:
        ``ConditionExpression`` and its ``ExpressionAttributeNames``/``Values``.
    """
    names = {"#k0": key_names[0]}
    if expected is None:
        return {
            "ConditionExpression": "attribute_not_exists(#k0)",
            "ExpressionAttributeNames": names,
        }
    terms = ["attribute_exists(#k0)"]
    values: dict[str, Any] = {}
    length = len(terms[0])
    candidates: list[tuple[str, Any]] = [
        (name, value) for name, value in sorted(expected.items()) if name not in key_names
    ]
    candidates += [(name, None) for name in sorted(set(writing or {}) - set(expected))]
    for i, (name, value) in enumerate(candidates):
        term = f"#a{i} = :a{i}" if value is not None else f"attribute_not_exists(#a{i})"
        if length + len(term) + 5 > _MAX_CONDITION:
            break
        terms.append(term)
        length += len(term) + 5
        names[f"#a{i}"] = name
        if value is not None:
            values[f":a{i}"] = value
    params: dict[str, Any] = {
        "ConditionExpression": " AND ".join(terms),
        "ExpressionAttributeNames": names,
    }
    if values:
        params["ExpressionAttributeValues"] = values
    return params


@attrs.frozen(kw_only=True)
class DynamoJob:
    """A diff or copy of one table pair: whole (scan segments) or by partition key values.

    Attributes:
        command: ``"diff"`` or ``"copy"``.
        primary: the primary's low-level DynamoDB client.
        shadow: the shadow's low-level DynamoDB client.
        resource: the primary table.
        shadow_resource: the shadow table.
        key_names: the key attribute names, hash key first.
        partition_values: typed hash key values (``{"S": "acme"}``): one ``Query`` stream each;
            empty for a scan.
        filter: a ``FilterExpression`` for the reads of both sides (with ``filter_names`` and
            typed ``filter_values``).
        segments: the scan segments this run reads, of ``total_segments``.
        delete_extra: copy deletes the shadow's items the primary lacks.
        dry_run: copy writes nothing and says what it would do.
        item_count: the primary's approximate item count (``DescribeTable``), for the estimate.
        page_size: items per ``Scan``/``Query`` page: each page is a resume point.
    """

    command: str
    primary: Any
    shadow: Any
    resource: str
    shadow_resource: str
    key_names: tuple[str, ...]
    partition_values: tuple[Mapping[str, Any], ...] = ()
    filter: str | None = None
    filter_names: Mapping[str, str] = attrs.field(factory=dict)
    filter_values: Mapping[str, Any] = attrs.field(factory=dict)
    segments: tuple[int, ...] = (0,)
    total_segments: int = 1
    delete_extra: bool = False
    dry_run: bool = False
    item_count: int | None = None
    page_size: int = _PAGE
    service: str = "dynamodb"

    def identity(self) -> dict[str, Any]:
        job: dict[str, Any] = {
            "command": self.command,
            "service": "dynamodb",
            "table": self.resource,
            "shadow_table": self.shadow_resource,
            "filter": self.filter,
            "filter_names": dict(self.filter_names),
            "filter_values": to_jsonable(self.filter_values),
        }
        if not self.partition_values:
            job["total_segments"] = self.total_segments
        return job

    def streams(self) -> list[str]:
        if self.partition_values:
            own = [
                "query:" + json.dumps(to_jsonable(v), sort_keys=True) for v in self.partition_values
            ]
        else:
            own = [f"scan:{s}/{self.total_segments}" for s in self.segments]
        extra = self.command == "diff" or self.delete_extra
        return list(dict.fromkeys(own + (["shadow-" + s for s in own] if extra else [])))

    def estimate(self, streams: Sequence[str], state: StateFile) -> int | None:
        if self.partition_values or self.item_count is None:
            return None
        own = [s for s in streams if s.startswith("scan:")]
        return self.item_count * len(own) // max(self.total_segments, 1)

    def batches(self, stream: str, start: Any, tally: Tally) -> Iterator[Batch]:
        shadow_side = stream.startswith("shadow-")
        client = self.shadow if shadow_side else self.primary
        table = self.shadow_resource if shadow_side else self.resource
        spec = stream.removeprefix("shadow-")
        params: dict[str, Any] = {"TableName": table, "Limit": self.page_size}
        names = dict(self.filter_names)
        values = dict(self.filter_values)
        if self.filter:
            params["FilterExpression"] = self.filter
        if spec.startswith("query:"):
            read = client.query
            params["KeyConditionExpression"] = "#dwpk = :dwpk"
            names["#dwpk"] = self.key_names[0]
            values[":dwpk"] = self.partition_values[self._query_index(spec)]
        else:
            read = client.scan
            if self.total_segments > 1:
                segment = int(spec.removeprefix("scan:").split("/")[0])
                params.update(Segment=segment, TotalSegments=self.total_segments)
        if names:
            params["ExpressionAttributeNames"] = names
        if values:
            params["ExpressionAttributeValues"] = values

        def pages() -> Iterator[dict[str, Any]]:
            position = start
            while True:
                page = read(**params, **({"ExclusiveStartKey": position} if position else {}))
                yield page
                position = page.get("LastEvaluatedKey")
                if not position:
                    return

        chunk = self._shadow_chunk if shadow_side else self._primary_chunk
        for page in read_ahead(pages(), depth=1):
            items = list(page.get("Items", []))
            units: list[tuple[Unit, int]] = [
                (functools.partial(chunk, part, tally), 0 if shadow_side else len(part))
                for part in chunked(items, _LOOKUP)
            ]
            yield Batch(units=units, settled=0, position=page.get("LastEvaluatedKey") or None)

    def _query_index(self, spec: str) -> int:
        wanted = spec.removeprefix("query:")
        for i, value in enumerate(self.partition_values):
            if json.dumps(to_jsonable(value), sort_keys=True) == wanted:
                return i
        msg = f"unknown stream {spec!r}"
        raise KeyError(msg)

    # -- keys and lookups ------------------------------------------------------------------------

    def _key(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.key_names}

    def _lookup(
        self, client: Any, table: str, keys: Sequence[Mapping[str, Any]], *, keys_only: bool
    ) -> dict[Hashable, dict[str, Any]]:
        """Consistent reads of ``keys``: canonical key -> item (absent keys are missing)."""
        found: dict[Hashable, dict[str, Any]] = {}
        for part in chunked(list(keys), _LOOKUP):
            request: dict[str, Any] = {"Keys": list(part), "ConsistentRead": True}
            if keys_only:
                request["ProjectionExpression"] = ", ".join(
                    f"#k{i}" for i in range(len(self.key_names))
                )
                request["ExpressionAttributeNames"] = {
                    f"#k{i}": name for i, name in enumerate(self.key_names)
                }
            pending: Mapping[str, Any] = {table: request}
            for attempt in range(_LOOKUP_ATTEMPTS):
                response = client.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(table, []):
                    found[_canon(self._key(item))] = item
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                time.sleep(_LOOKUP_BACKOFF * 2**attempt)
            else:
                msg = f"BatchGetItem left keys unprocessed after {_LOOKUP_ATTEMPTS} attempts"
                raise RuntimeError(msg)
        return found

    def _difference(
        self, kind: str, item: Mapping[str, Any], fields: tuple[str, ...] = ()
    ) -> Difference:
        return Difference(
            kind=kind,
            service="dynamodb",
            resource=self.resource,
            shadow_resource=self.shadow_resource,
            key=self._key(item),
            fields=fields,
        )

    def _where(self, key: Mapping[str, Any]) -> str:
        return f"dynamodb {self.resource} {json.dumps(to_jsonable(key), sort_keys=True)}"

    # -- units -----------------------------------------------------------------------------------

    def _primary_chunk(self, items: Sequence[Mapping[str, Any]], tally: Tally) -> None:
        """Compare up to 100 primary items with the shadow's; copy what differs."""
        try:
            shadow_items = self._lookup(
                self.shadow, self.shadow_resource, [self._key(i) for i in items], keys_only=False
            )
        except Exception as exc:  # noqa: BLE001 - one chunk's failure must not stop the run
            tally.add("failed", len(items))
            tally.error(f"dynamodb {self.shadow_resource}: {len(items)} keys", exc, count=False)
            return
        todo: list[tuple[Difference, Mapping[str, Any] | None, Mapping[str, Any] | None]] = []
        for item in items:
            shadow = shadow_items.get(_canon(self._key(item)))
            if shadow is None:
                todo.append((self._difference("missing_in_shadow", item), None, item))
                continue
            fields = _differing(item, shadow)
            if fields:
                todo.append((self._difference("different", item, fields), shadow, item))
            else:
                tally.record(None)
        self._resolve(todo, tally)

    def _shadow_chunk(self, items: Sequence[Mapping[str, Any]], tally: Tally) -> None:
        """Find which of up to 100 shadow items the primary lacks."""
        try:
            present = self._lookup(
                self.primary, self.resource, [self._key(i) for i in items], keys_only=True
            )
        except Exception as exc:  # noqa: BLE001 - one chunk's failure must not stop the run
            tally.add("failed", len(items))
            tally.error(f"dynamodb {self.resource}: {len(items)} keys", exc, count=False)
            return
        todo = [
            (self._difference("extra_in_shadow", item), item, None)
            for item in items
            if _canon(self._key(item)) not in present
        ]
        self._resolve(todo, tally)

    def _resolve(
        self,
        todo: Sequence[tuple[Difference, Mapping[str, Any] | None, Mapping[str, Any] | None]],
        tally: Tally,
    ) -> None:
        """Report the differences (diff) or converge their keys conditionally (copy).

        Each entry of ``todo`` is a difference, the shadow's item as read (``None``: absent)
        and the primary's item as scanned (``None`` where the shadow was the side scanned).
        """
        if not todo:
            return
        if self.command == "diff":
            for diff, _, _ in todo:
                tally.record(diff)
            return
        if self.dry_run:
            for diff, _, _ in todo:
                tally.record(
                    diff, "would_delete" if diff.kind == "extra_in_shadow" else "would_copy"
                )
            return
        # Where the shadow held an item, the primary's is read again, consistently, after the
        # shadow's was: the scan's copy may be stale, and only a value read now is at least as
        # new as any the shadow could have received before. Where the shadow lacked the key, the
        # scanned item is written as is: the write is conditional on the key's absence, so it
        # cannot overwrite anything, and the re-read after the writes catches a stale copy.
        keys = [diff.key for diff, shadow, _ in todo if shadow is not None]
        try:
            current = self._lookup(self.primary, self.resource, keys, keys_only=False)
        except Exception as exc:  # noqa: BLE001 - one chunk's failure must not stop the run
            for diff, _, _ in todo:
                tally.record(diff, "failed")
            tally.error(f"dynamodb {self.resource}: {len(keys)} keys", exc, count=False)
            return
        written: list[tuple[Difference, Mapping[str, Any] | None]] = []
        for diff, shadow, scanned in todo:
            item = scanned if shadow is None else current.get(_canon(diff.key))
            try:
                outcome = self._write(diff.key, item, shadow)
            except ShadowChanged:
                outcome = "skipped_changed"
            except Exception as exc:  # noqa: BLE001 - one key's failure must not stop the run
                tally.record(diff, "failed")
                tally.error(self._where(diff.key), exc, count=False)
                continue
            if outcome == "equal":
                outcome = "skipped_changed"  # the read was stale: a live write made them equal
            if outcome in ("copied", "deleted"):
                written.append((diff, item))
            else:
                tally.record(diff, outcome)
        self._recheck(written, tally)

    def _write(
        self,
        key: Mapping[str, Any],
        item: Mapping[str, Any] | None,
        shadow: Mapping[str, Any] | None,
    ) -> str:
        """Give the shadow ``item`` (``None``: delete) if it still holds ``shadow``."""
        if item is not None and shadow is not None and _canon(item) == _canon(shadow):
            return "equal"
        if item is None and shadow is None:
            return "gone"
        try:
            if item is None:
                self.shadow.delete_item(
                    TableName=self.shadow_resource,
                    Key=dict(key),
                    **condition_on(shadow, self.key_names),
                )
                return "deleted"
            self.shadow.put_item(
                TableName=self.shadow_resource,
                Item=dict(item),
                **condition_on(shadow, self.key_names, item),
            )
        except Exception as exc:
            if error_code(exc) == _CHANGED:
                raise ShadowChanged from exc
            raise
        return "copied"

    def _recheck(
        self, written: Sequence[tuple[Difference, Mapping[str, Any] | None]], tally: Tally
    ) -> None:
        """Read the written keys on the primary again; redo those that changed meanwhile."""
        if not written:
            return
        try:
            now = self._lookup(
                self.primary, self.resource, [d.key for d, _ in written], keys_only=False
            )
        except Exception as exc:  # noqa: BLE001 - the writes stand; the keys are reported
            for diff, _ in written:
                tally.record(diff, "failed")
            tally.error(
                f"dynamodb {self.resource}: re-read of {len(written)} keys", exc, count=False
            )
            return
        for diff, item in written:
            outcome = "copied" if item is not None else "deleted"
            if _canon(now.get(_canon(diff.key))) != _canon(item):
                try:
                    outcome = self._settle(diff.key, item)
                except ShadowChanged:
                    outcome = "skipped_changed"
                except Exception as exc:  # noqa: BLE001 - one key's failure must not stop the run
                    tally.record(diff, "failed")
                    tally.error(self._where(diff.key), exc, count=False)
                    continue
            tally.record(diff, outcome)

    def _settle(self, key: Mapping[str, Any], written: Mapping[str, Any] | None) -> str:
        """Copy a key whose primary item changed while it was copied, until it holds still."""
        expect = [written]

        def copy_once() -> tuple[str, Hashable]:
            item = read_item(self.primary, self.resource, key)
            outcome = self._write(key, item, expect[0])
            expect[0] = item
            return ("copied" if outcome == "equal" else outcome), _canon(item)

        def version_now() -> Hashable:
            return _canon(read_item(self.primary, self.resource, key))

        return retry_until_stable(copy_once, version_now)


def _differing(primary: Mapping[str, Any], shadow: Mapping[str, Any]) -> tuple[str, ...]:
    """The attribute names whose values differ (or that one side lacks), sorted."""
    names = set(primary) | set(shadow)
    return tuple(
        sorted(
            name
            for name in names
            if name not in primary
            or name not in shadow
            or canonical(primary[name], "client") != canonical(shadow[name], "client")
        )
    )
