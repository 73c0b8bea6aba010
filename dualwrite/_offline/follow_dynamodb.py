"""Follow DynamoDB writes made outside the wrapper, from the table's DynamoDB stream.

Every stream record names its item's key (``dynamodb.Keys``), whatever the stream's view type
(``KEYS_ONLY`` is enough). Each key is converged from the primary's *current* item
(:func:`converge_item`): a consistent ``GetItem`` of each account, nothing written when they
are equal, else the repair's put or delete (:func:`dualwrite._dynamodb.repair_item`). Records
are therefore never replayed, and order only matters for the checkpoint.

:func:`follow_stream` reads every shard of the table's latest stream, parents before their
children (a shard split closes the parent; its children hold the later records of its keys),
and checkpoints, per shard, the last sequence number whose keys all converged (or were
journaled) to a local JSON file, written atomically after each batch; a restart resumes after
it. A key that could neither converge nor be journaled stops its shard at that record: the
next pass starts there again. A checkpoint older than the stream's 24-hour retention is
reported (a ``TrimmedDataAccessException``), and the shard restarts at its oldest record: the
changes in between need a ``dualwrite copy dynamodb``.

On moto (the tests): one shard per table that never splits or closes; shard iterators of every
type, ``GetRecords`` with ``Limit``. Splits and closed shards (``NextShardIterator`` absent)
are handled by the same code, tested on shard lists alone.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from dualwrite._core.errors import describe_error, error_code
from dualwrite._dynamodb.converge import read_item, repair_item
from dualwrite._dynamodb.keys import _key_for_level, _state, canonical_item
from dualwrite._offline.follow import _PAUSE, Follower, FollowReport, Notice, Stop
from dualwrite.exceptions import ConfigurationError

if TYPE_CHECKING:
    from dualwrite._core.mirror import Mirror
    from dualwrite._writer import DualWriter

logger = logging.getLogger("dualwrite")


def converge_item(mirror: Mirror, table: str, key: Mapping[str, Any]) -> str:
    """Make the shadow's item of ``key`` equal to the primary's current item, at least cost.

    Returns:
        ``"equal"`` (one consistent read of each account, nothing written), ``"copied"`` or
        ``"deleted"``.

    Raises:
        RepairError: no shadow table, or the item kept changing.
        botocore.exceptions.ClientError: a read or write failed.
    """
    shadow_table = mirror.shadow_name(table)
    if shadow_table is not None:
        level = _state(mirror).level
        item_key = _key_for_level(key, level)
        primary = read_item(mirror.primary, table, item_key)
        shadow = read_item(mirror.shadow, shadow_table, item_key)
        if (primary is None and shadow is None) or (
            primary is not None
            and shadow is not None
            and canonical_item(primary, level) == canonical_item(shadow, level)
        ):
            return "equal"
    return repair_item(mirror, table, key)


class DynamoFollower(Follower):
    """A :class:`~dualwrite._offline.follow.Follower` of DynamoDB keys (see converge_item)."""

    service = "dynamodb"

    def converge(self, mirror: Mirror, resource: str, key: Any) -> str:
        """Converge one item; ``"equal"``, ``"copied"`` or ``"deleted"``."""
        return converge_item(mirror, resource, key)


def table_of_arn(arn: str) -> str:
    """The table name of a table or stream ARN (``arn:aws:dynamodb:r:a:table/NAME/stream/...``)."""
    _, _, rest = arn.partition(":table/")
    return rest.split("/", 1)[0] if rest else arn


def notices_of(records: Sequence[Mapping[str, Any]], table: str | None = None) -> list[Notice]:
    """The keys of DynamoDB stream records (``GetRecords`` or a Lambda event's ``Records``)."""
    notices = []
    for record in records:
        data = record.get("dynamodb") or {}
        keys = data.get("Keys")
        if not isinstance(keys, Mapping) or not keys:
            continue
        created = data.get("ApproximateCreationDateTime")
        at: float | None = None
        if isinstance(created, datetime.datetime):
            at = created.timestamp()
        elif isinstance(created, (int, float)):
            at = float(created)
        name = table or table_of_arn(str(record.get("eventSourceARN", "")))
        notices.append(
            Notice(bucket=name, key=dict(keys), event=str(record.get("eventName", "")), at=at)
        )
    return notices


# -- shards and checkpoints -----------------------------------------------------------------


def ordered_shards(shards: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``shards`` with every parent before its children (a shard's parent may be gone).

    Stable otherwise: DescribeStream's order is kept among shards with no order between them.
    """
    by_id = {shard["ShardId"]: shard for shard in shards}
    placed: set[str] = set()
    out: list[Mapping[str, Any]] = []

    def place(shard: Mapping[str, Any], seen: frozenset[str]) -> None:
        shard_id = shard["ShardId"]
        if shard_id in placed or shard_id in seen:
            return
        parent = shard.get("ParentShardId")
        if parent in by_id:
            place(by_id[parent], seen | {shard_id})
        placed.add(shard_id)
        out.append(shard)

    for shard in shards:
        place(shard, frozenset())
    return out


class Checkpoint:
    """Per-shard positions of one stream, in a JSON file written atomically.

    ``{"stream": ARN, "shards": {shard id: {"after": sequence number or null, "done": bool}}}``.
    A file of another stream (the table's stream was disabled and enabled again) is started
    afresh.
    """

    def __init__(self, path: Path, stream: str) -> None:
        self.path = path
        self.stream = stream
        self.shards: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            msg = f"checkpoint {path} cannot be read: {exc}"
            raise ConfigurationError(msg) from exc
        if isinstance(data, dict) and data.get("stream") == stream:
            self.shards = {str(k): dict(v) for k, v in data.get("shards", {}).items()}
        else:
            logger.warning(
                "dualwrite follow: checkpoint %s is of another stream; starting this one afresh",
                path,
            )

    def after(self, shard_id: str) -> str | None:
        value = self.shards.get(shard_id, {}).get("after")
        return str(value) if value is not None else None

    def done(self, shard_id: str) -> bool:
        return bool(self.shards.get(shard_id, {}).get("done"))

    def advance(self, shard_id: str, sequence: str | None, *, done: bool = False) -> None:
        entry = self.shards.setdefault(shard_id, {"after": None, "done": False})
        if sequence is not None:
            entry["after"] = sequence
        entry["done"] = entry["done"] or done
        self.save()

    def save(self) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"stream": self.stream, "shards": self.shards}, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@attrs.frozen(kw_only=True)
class StreamReport:
    """What ``dualwrite follow dynamodb`` did.

    Attributes:
        stream: the stream's ARN.
        shards: shards read.
        records: stream records read.
        trimmed: shards whose checkpoint was older than the stream's retention (changes lost
            in between: run a ``copy``).
        keys: the keys' outcomes.
        seconds: how long it ran.
    """

    stream: str = ""
    shards: int = 0
    records: int = 0
    trimmed: int = 0
    keys: FollowReport = attrs.field(factory=FollowReport)
    seconds: float = 0.0


def _all_shards(streams: Any, arn: str) -> list[Mapping[str, Any]]:
    shards: list[Mapping[str, Any]] = []
    params: dict[str, Any] = {"StreamArn": arn}
    while True:
        description = streams.describe_stream(**params)["StreamDescription"]
        shards.extend(description.get("Shards", []))
        last = description.get("LastEvaluatedShardId")
        if not last:
            return shards
        params["ExclusiveStartShardId"] = last


def follow_stream(
    writer: DualWriter,
    dynamodb: Any,
    streams: Any,
    table: str,
    *,
    checkpoint: Path,
    once: bool,
    stop: Stop | None = None,
    poll: float = 1.0,
    limit: int = 1000,
) -> StreamReport:
    """Follow ``table``'s stream: converge the key of every record, checkpointing per shard.

    Args:
        writer: a writer that wrapped the table's pair.
        dynamodb: a DynamoDB client of the primary (to find the table's stream).
        streams: a DynamoDB Streams client of the primary.
        table: the primary table.
        checkpoint: the checkpoint file.
        once: one pass over every shard up to its end, then return.
        stop: ends the loop after the current batch once set.
        poll: seconds to sleep after a pass that read nothing (without ``once``).
        limit: records per ``GetRecords``.

    Returns:
        The totals.

    Raises:
        ConfigurationError: the table has no stream, or the checkpoint file is unreadable.
    """
    started = time.perf_counter()
    stop = stop if stop is not None else Stop()
    arn = dynamodb.describe_table(TableName=table)["Table"].get("LatestStreamArn")
    if not arn:
        msg = (
            f"table {table!r} has no stream: enable one (StreamSpecification StreamEnabled=true, "
            "any StreamViewType; KEYS_ONLY is enough)"
        )
        raise ConfigurationError(msg)
    state = Checkpoint(checkpoint, arn)
    follower = DynamoFollower(writer)
    totals = {"records": 0, "trimmed": 0}
    seen_shards: set[str] = set()
    keys = FollowReport()
    while not stop:
        progressed = False
        try:
            shards = ordered_shards(_all_shards(streams, arn))
        except Exception as exc:
            if once:
                raise
            info = describe_error(exc)
            logger.warning(
                "dualwrite follow: describing %s failed (%s: %s); retrying",
                arn,
                info.code or info.type,
                info.message,
            )
            stop.wait(max(poll, _PAUSE))
            continue
        known = {shard["ShardId"] for shard in shards}
        for shard in shards:
            if stop:
                break
            shard_id = shard["ShardId"]
            parent = shard.get("ParentShardId")
            if state.done(shard_id) or (parent in known and not state.done(str(parent))):
                continue  # finished, or its parent's records come first
            seen_shards.add(shard_id)
            try:
                read, report = _read_shard(
                    streams, arn, shard_id, state, follower, table, limit, stop, totals
                )
            except Exception as exc:
                if once:
                    raise
                # A throttled or unreachable stream must not end a long-running follower;
                # the shard is read again from its checkpoint on the next pass.
                info = describe_error(exc)
                logger.warning(
                    "dualwrite follow: shard %s of %s failed (%s: %s); retrying",
                    shard_id,
                    arn,
                    info.code or info.type,
                    info.message,
                )
                stop.wait(max(poll, _PAUSE))
                continue
            keys += report
            progressed = progressed or read > 0
        if once and not progressed:
            break
        if not progressed:
            stop.wait(poll)
    return StreamReport(
        stream=arn,
        shards=len(seen_shards),
        records=totals["records"],
        trimmed=totals["trimmed"],
        keys=keys,
        seconds=time.perf_counter() - started,
    )


def _iterator(streams: Any, arn: str, shard_id: str, after: str | None) -> tuple[str, bool]:
    """A shard iterator after the checkpoint (or at the shard's oldest record); and whether the
    checkpoint was past the stream's retention."""
    params: dict[str, Any] = {"StreamArn": arn, "ShardId": shard_id}
    if after is not None:
        try:
            response = streams.get_shard_iterator(
                **params, ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after
            )
            return str(response["ShardIterator"]), False
        except Exception as exc:
            if error_code(exc) != "TrimmedDataAccessException":
                raise
            logger.warning(
                "dualwrite follow: shard %s of %s: the checkpoint is older than the stream's "
                "retention; restarting at its oldest record (run a copy for the changes lost)",
                shard_id,
                arn,
            )
            response = streams.get_shard_iterator(**params, ShardIteratorType="TRIM_HORIZON")
            return str(response["ShardIterator"]), True
    response = streams.get_shard_iterator(**params, ShardIteratorType="TRIM_HORIZON")
    return str(response["ShardIterator"]), False


def _read_shard(
    streams: Any,
    arn: str,
    shard_id: str,
    state: Checkpoint,
    follower: DynamoFollower,
    table: str,
    limit: int,
    stop: Stop,
    totals: dict[str, int],
) -> tuple[int, FollowReport]:
    """Read one shard from its checkpoint to its present end (or its close); return the
    records read and the keys' outcomes."""
    iterator, trimmed = _iterator(streams, arn, shard_id, state.after(shard_id))
    totals["trimmed"] += int(trimmed)
    read = 0
    report = FollowReport()
    while iterator and not stop:
        response = streams.get_records(ShardIterator=iterator, Limit=limit)
        records = response.get("Records", [])
        following = response.get("NextShardIterator")
        if records:
            batch = follower.follow(notices_of(records, table))
            report += batch
            read += len(records)
            totals["records"] += len(records)
            if batch.unjournaled_keys:
                # The checkpoint stays before this batch: the next pass converges it again
                # (converging is idempotent; its other keys then cost a comparison).
                return read, report
            state.advance(shard_id, str(records[-1]["dynamodb"]["SequenceNumber"]))
        if following is None:
            state.advance(shard_id, None, done=True)  # a closed shard, read to its end
            return read, report
        if not records:
            return read, report  # caught up with an open shard
        iterator = following
    return read, report
