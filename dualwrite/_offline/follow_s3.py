"""Follow S3 writes made outside the wrapper, from the primary buckets' event notifications.

Browsers with presigned URLs, services in other languages, scripts and the console write to the
primary bucket without the wrapper. S3 tells of each such write in an event notification; this
module turns notifications into keys and converges each key from the primary's *current* state
(:func:`converge_key`): one comparison (a ``HeadObject`` of each account) when the shadow is
already equal, else the repair's copy or delete (:func:`dualwrite._s3.follow.converge_key`).
Order and repetition do not matter: a notification seen twice, late, or for a key the wrapper
already mirrored costs the comparison only.

Shapes understood (:func:`parse_body`), as an SQS message body or a Lambda record:

* S3 to SQS directly: ``{"Records": [{"eventName": "ObjectCreated:Put", "s3": {...}}]}``, keys
  URL-encoded with ``+`` for a space; the ``s3:TestEvent`` S3 sends when a notification is
  configured (no key: nothing to do);
* S3 to SNS to SQS: the same, inside an SNS envelope (``{"Type": "Notification", "Message":
  "..."}``);
* S3 to EventBridge to SQS: ``{"source": "aws.s3", "detail-type": "Object Created", "detail":
  {...}}``. Whether EventBridge URL-encodes the key is not stated the same way everywhere, so
  the key is converged as given and, when it differs, URL-decoded too: converging a key the
  primary does not hold only deletes a stale copy from the shadow, so the extra candidate is
  harmless and costs one comparison.

:class:`S3Follower` is shared by ``dualwrite follow s3`` (:func:`follow_queue`) and the Lambda
handler (:mod:`dualwrite.aws_lambda`).
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import attrs

from dualwrite._core.errors import describe_error
from dualwrite._offline.follow import _PAUSE, Follower, FollowReport, Notice, Stop
from dualwrite._s3.follow import converge_key
from dualwrite.journal import encode_key

if TYPE_CHECKING:
    from dualwrite._core.mirror import Mirror

logger = logging.getLogger("dualwrite")

__all__ = ["S3Follower", "follow_queue", "parse_body"]

# -- parsing ---------------------------------------------------------------------------------


def _epoch(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parse_body(body: str | Mapping[str, Any]) -> list[Notice]:
    """The keys named by one notification (an SQS message body, or its parsed JSON).

    Returns:
        The notices, in the notification's order; empty for an ``s3:TestEvent`` or a message
        that names no key.

    Raises:
        ValueError: the body is not JSON, or not a shape this module knows.
    """
    data: Any = json.loads(body) if isinstance(body, str) else body
    if not isinstance(data, Mapping):
        msg = f"not an S3 notification: a JSON {type(data).__name__}"
        raise ValueError(msg)  # noqa: TRY004 - a malformed message, not a caller's type error
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        return parse_body(data["Message"])  # through SNS
    if data.get("Event") == "s3:TestEvent":
        return []
    if "Records" in data:
        notices = []
        for record in data["Records"] or ():
            s3 = record.get("s3") if isinstance(record, Mapping) else None
            if not isinstance(s3, Mapping):
                continue
            bucket = s3.get("bucket", {}).get("name")
            key = s3.get("object", {}).get("key")
            if isinstance(bucket, str) and isinstance(key, str):
                notices.append(
                    Notice(
                        bucket=bucket,
                        key=unquote_plus(key),
                        event=str(record.get("eventName", "")),
                        at=_epoch(record.get("eventTime")),
                    )
                )
        return notices
    if data.get("source") == "aws.s3" and isinstance(data.get("detail"), Mapping):
        detail = data["detail"]
        bucket = detail.get("bucket", {}).get("name")
        key = detail.get("object", {}).get("key")
        if not isinstance(bucket, str) or not isinstance(key, str):
            return []
        event = str(data.get("detail-type", ""))
        at = _epoch(data.get("time"))
        candidates = dict.fromkeys((key, unquote_plus(key)))
        return [Notice(bucket=bucket, key=k, event=event, at=at) for k in candidates]
    msg = "not an S3 notification (neither S3's Records, an SNS envelope nor EventBridge)"
    raise ValueError(msg)


class S3Follower(Follower):
    """A :class:`Follower` of S3 keys (see :func:`converge_key`)."""

    service = "s3"

    def converge(self, mirror: Mirror, resource: str, key: Any) -> str:
        """Converge one key; ``"equal"``, ``"copied"`` or ``"deleted"``."""
        return converge_key(mirror, resource, str(key))


# -- the queue -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class QueueReport:
    """What ``dualwrite follow s3`` did.

    Attributes:
        messages: messages received.
        deleted_messages: messages deleted (all their keys converged or were journaled).
        kept_messages: messages left on the queue (a key failed and was not journaled; SQS
            hands them out again after the visibility timeout).
        malformed: messages that are not S3 notifications (deleted, with a log line).
        keys: the keys' outcomes.
        seconds: how long it ran.
    """

    messages: int = 0
    deleted_messages: int = 0
    kept_messages: int = 0
    malformed: int = 0
    keys: FollowReport = attrs.field(factory=FollowReport)
    seconds: float = 0.0


def follow_queue(
    follower: S3Follower,
    sqs: Any,
    queue_url: str,
    *,
    once: bool,
    stop: Stop | None = None,
    wait: int = 10,
    visibility_timeout: int | None = None,
    on_batch: Callable[[QueueReport], None] | None = None,
) -> QueueReport:
    """Receive notifications from ``queue_url`` and follow their keys, batch by batch.

    A message is deleted only once every key it names converged, was skipped, or was journaled
    as failed; otherwise it stays and SQS hands it out again after its visibility timeout (a
    redrive policy then moves a message that keeps failing to its dead-letter queue).

    Args:
        follower: the follower.
        sqs: an SQS client of the account that owns the queue.
        queue_url: the queue.
        once: stop when a receive returns no message, or only messages this run kept
            already (the queue looks drained).
        stop: ends the loop after the current batch once set (a signal handler sets it).
        wait: long-poll seconds of each receive when not ``once``.
        visibility_timeout: the receive's visibility timeout (default: the queue's).
        on_batch: called with the running totals after each batch.

    Returns:
        The totals.
    """
    started = time.perf_counter()
    total = QueueReport()
    stop = stop if stop is not None else Stop()
    seen: set[Any] = set()
    while not stop:
        params: dict[str, Any] = {
            "QueueUrl": queue_url,
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": 0 if once else wait,
        }
        if visibility_timeout is not None:
            params["VisibilityTimeout"] = visibility_timeout
        try:
            messages = sqs.receive_message(**params).get("Messages", [])
        except Exception as exc:
            if once:
                raise
            # A throttled or unreachable queue must not end a long-running follower.
            info = describe_error(exc)
            logger.warning(
                "dualwrite follow: receiving from %s failed (%s: %s); retrying in %s s",
                queue_url,
                info.code or info.type,
                info.message,
                _PAUSE,
            )
            stop.wait(_PAUSE)
            continue
        if not messages:
            if once:
                break
            continue
        if once:
            ids = {m.get("MessageId") for m in messages}
            if ids <= seen:
                break  # only messages kept earlier in this run came back: drained
            seen.update(ids)
        batch = _batch(follower, sqs, queue_url, messages)
        total = QueueReport(
            messages=total.messages + batch.messages,
            deleted_messages=total.deleted_messages + batch.deleted_messages,
            kept_messages=total.kept_messages + batch.kept_messages,
            malformed=total.malformed + batch.malformed,
            keys=total.keys + batch.keys,
        )
        if on_batch is not None:
            on_batch(total)
    return attrs.evolve(total, seconds=time.perf_counter() - started)


def _batch(follower: S3Follower, sqs: Any, queue_url: str, messages: Sequence[Any]) -> QueueReport:
    parsed: list[tuple[Any, list[Notice]]] = []
    malformed = 0
    for message in messages:
        try:
            parsed.append((message, parse_body(message.get("Body", ""))))
        except ValueError as exc:
            malformed += 1
            logger.warning(
                "dualwrite follow: message %s is not an S3 notification (%s); deleted",
                message.get("MessageId"),
                exc,
            )
            parsed.append((message, []))
    report = follower.follow(n for _, notices in parsed for n in notices)
    unsettled = set(report.unjournaled_keys)
    deletes = []
    kept = 0
    for message, notices in parsed:
        if any((n.bucket, encode_key(n.key)) in unsettled for n in notices):
            kept += 1
            continue
        deletes.append(message)
    for chunk in _chunks(deletes, 10):
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
            ],
        )
    return QueueReport(
        messages=len(messages),
        deleted_messages=len(deletes),
        kept_messages=kept,
        malformed=malformed,
        keys=report,
    )


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
