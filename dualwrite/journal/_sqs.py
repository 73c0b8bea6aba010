"""A fleet's shared backend: :class:`SQSJournal`, an Amazon SQS queue."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from dualwrite.journal._model import Entry, Journal, decode_key, encode_key


class SQSJournal:
    """A journal on an Amazon SQS queue, shared by a fleet of hosts.

    Each entry is one message (JSON, keys only). :meth:`entries` receives messages with a
    visibility timeout, so several repair processes split the backlog; :meth:`remove` deletes the
    received ones. SQS cannot delete a message it has not handed out, so ``pending`` intents of
    background mode are not sent here: they are kept by the local ``intents`` journal when one is
    given (an :class:`SQLiteJournal`), else only in memory (a crash of the host then loses the
    writes that were still queued). Failures are always sent to the queue.

    Args:
        client: a boto3 SQS client (of the account that owns the queue).
        queue_url: the queue's URL.
        visibility_timeout: seconds a received entry stays hidden from other repairers.
        intents: an optional local journal for ``pending`` intents.
    """

    def __init__(
        self,
        client: Any,
        queue_url: str,
        *,
        visibility_timeout: int = 300,
        intents: Journal | None = None,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.visibility_timeout = visibility_timeout
        self.intents = intents
        self._receipts: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, entries: Sequence[Entry]) -> list[str]:
        """Send ``entries`` (``pending`` ones to the local intents journal, if any)."""
        ids: list[str] = []
        for entry in entries:
            if entry.reason == "pending":
                if self.intents is not None:
                    ids.append("local:" + self.intents.add([entry])[0])
                else:
                    ids.append("memory:" + uuid.uuid4().hex)
                continue
            body = json.dumps(
                {
                    "service": entry.service,
                    "resource": entry.resource,
                    "key": encode_key(entry.key),
                    "reason": entry.reason,
                    "tenant": entry.tenant,
                    "detail": entry.detail,
                    "at": entry.at,
                    "first": entry.first,
                    "owner": entry.owner,
                    "expires": entry.expires,
                }
            )
            response = self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)
            ids.append("sqs:" + response["MessageId"])
        return ids

    def remove(self, ids: Sequence[str]) -> None:
        """Delete received messages and local intents (these in one call)."""
        local = [i.partition(":")[2] for i in ids if i.startswith("local:")]
        if local and self.intents is not None:
            self.intents.remove(local)
        for entry_id in ids:
            kind, _, rest = entry_id.partition(":")
            if kind == "sqs":
                with self._lock:
                    receipt = self._receipts.pop(rest, None)
                if receipt is not None:
                    self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)

    def entries(self, limit: int | None = None) -> Iterator[Entry]:
        """Receive entries until the queue looks empty (or ``limit``)."""
        seen = 0
        if self.intents is not None:
            for entry in self.intents.entries(limit):
                yield attrs.evolve(entry, id=f"local:{entry.id}")
                seen += 1
        while limit is None or seen < limit:
            batch = min(10, (limit - seen) if limit is not None else 10)
            response = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=batch,
                VisibilityTimeout=self.visibility_timeout,
                WaitTimeSeconds=0,
            )
            messages = response.get("Messages", [])
            if not messages:
                return
            for message in messages:
                body = json.loads(message["Body"])
                with self._lock:
                    self._receipts[message["MessageId"]] = message["ReceiptHandle"]
                yield Entry(
                    id="sqs:" + message["MessageId"],
                    service=body["service"],
                    resource=body["resource"],
                    key=decode_key(body["key"]),
                    reason=body["reason"],
                    tenant=body.get("tenant"),
                    detail=body.get("detail", ""),
                    at=float(body.get("at", 0.0)),
                    first=str(body.get("first", "primary")),
                    owner=body.get("owner"),
                    expires=body.get("expires"),
                )
                seen += 1

    def count(self) -> int:
        """Approximate number of entries (SQS counts are approximate)."""
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        local = self.intents.count() if self.intents is not None else 0
        return local + sum(int(v) for v in attributes.values())

    def close(self) -> None:
        """Close the local intents journal, if any."""
        if self.intents is not None:
            self.intents.close()

    def __repr__(self) -> str:
        return f"SQSJournal({self.queue_url!r})"
