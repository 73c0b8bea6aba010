"""Write-ahead intents: a flag-on write's key is durable in the journal before the primary is
called, and leaves it only once the shadow holds the state or its replacement entry is durable.

The journal is read while the primary call is in flight, from a ``before-call`` handler on the
primary client, by a separate connection: what it sees there is what a crash at that instant
would leave behind.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from _support.shadow import Breakdown
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ParamValidationError
from conftest import DynamoEnv, S3Env

import dualwrite
from dualwrite.journal import Entry, Journal, MemoryJournal, SQLiteJournal, process_token

MODES = [pytest.param("sync", id="sync"), pytest.param("background", id="background")]


class Peek:
    """Read the journal file whenever the primary client is about to send a call."""

    def __init__(self, client: Any, path: Path, operation: str) -> None:
        self.path = path
        self.seen: list[list[Entry]] = []
        client.meta.events.register(
            f"before-call.{client.meta.service_model.endpoint_prefix}.{operation}",
            self._peek,
            unique_id=f"tests-peek-journal-{operation}",
        )

    def _peek(self, **_: Any) -> None:
        journal = SQLiteJournal(self.path)
        self.seen.append(list(journal.entries()))
        journal.close()


def remaining(path: Path) -> list[tuple[Any, str]]:
    journal = SQLiteJournal(path)
    try:
        return [(e.key, e.reason) for e in journal.entries()]
    finally:
        journal.close()


@pytest.mark.parametrize("mode", MODES)
def test_put_object_intent_is_durable_before_the_primary_call(
    s3: S3Env, tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "j.db"
    peek = Peek(s3.primary, path, "PutObject")
    writer = dualwrite.DualWriter(flag=True, mode=mode, journal=path)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="k1", Body=b"one")
    assert writer.flush(timeout=30)
    ((intent,),) = peek.seen
    assert (intent.key, intent.reason, intent.resource) == ("k1", "pending", "photos")
    assert intent.owner == process_token()
    assert remaining(path) == []  # the shadow holds it: the intent is gone
    assert s3.shadow_body("k1") == b"one"
    writer.close()


@pytest.mark.parametrize("mode", MODES)
def test_flag_off_records_nothing(s3: S3Env, tmp_path: Path, mode: str) -> None:
    path = tmp_path / "j.db"
    peek = Peek(s3.primary, path, "PutObject")
    writer = dualwrite.DualWriter(flag=False, mode=mode, journal=path)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="k1", Body=b"one")
    writer.close()
    assert peek.seen == [[]]
    assert remaining(path) == []


@pytest.mark.parametrize("mode", MODES)
def test_dynamodb_update_and_batch_intents_come_first(
    ddb: DynamoEnv, tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "j.db"
    update_peek = Peek(ddb.primary, path, "UpdateItem")
    batch_peek = Peek(ddb.primary, path, "BatchWriteItem")
    writer = dualwrite.DualWriter(flag=True, mode=mode, journal=path)
    client = writer.wrap(ddb.primary, shadow=ddb.shadow)
    client.update_item(
        TableName="orders",
        Key={"pk": {"S": "u1"}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    # The update's own intent is removed when its (background) shadow job is done: wait for
    # it, so that the batch's peek sees the batch's intents only.
    assert writer.flush(timeout=30)
    items = [{"PutRequest": {"Item": {"pk": {"S": f"b{i:02d}"}}}} for i in range(25)]
    client.batch_write_item(RequestItems={"orders": items})
    assert writer.flush(timeout=30)
    ((update,),) = update_peek.seen
    assert (update.key, update.reason, update.owner) == (
        {"pk": {"S": "u1"}},
        "pending",
        process_token(),
    )
    (batch,) = batch_peek.seen
    assert sorted(e.key["pk"]["S"] for e in batch if e.reason == "pending") == [  # type: ignore[index]
        f"b{i:02d}" for i in range(25)
    ]
    assert remaining(path) == []
    for i in range(25):
        assert ddb.get("shadow", {"pk": {"S": f"b{i:02d}"}}) == {"pk": {"S": f"b{i:02d}"}}
    writer.close()


def test_delete_objects_intents_name_every_key(s3: S3Env, tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    for key in ("d1", "d2"):
        s3.primary.put_object(Bucket="photos", Key=key, Body=b"x")
    peek = Peek(s3.primary, path, "DeleteObjects")
    writer = dualwrite.DualWriter(flag=True, journal=path)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "d1"}, {"Key": "d2"}]})
    (seen,) = peek.seen
    assert sorted((e.key, e.reason) for e in seen) == [("d1", "pending"), ("d2", "pending")]
    assert remaining(path) == []
    writer.close()


# -- primary failures --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_definite_primary_failure_removes_the_intent(
    s3: S3Env, tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "j.db"
    writer = dualwrite.DualWriter(flag=True, mode=mode, journal=path)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names={"nope": "nope-2", **s3.names})
    with pytest.raises(ClientError) as refused:  # a 404: the write did not happen
        client.put_object(Bucket="nope", Key="k", Body=b"x")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ParamValidationError):  # nothing was sent
        client.put_object(Bucket="photos", Key="k", Body=b"x", ContentLength="many")
    writer.close()
    assert remaining(path) == []


def _flaky_primary(s3: S3Env, failure: str) -> Any:
    """A primary client that fails every PutObject after the request left: a dropped
    connection, or a 503 answer. No retries, so one failure is the caller's outcome."""
    client = s3.accounts.client("primary", "s3", config=Config(retries={"total_max_attempts": 1}))

    def fail(request: Any, **_: Any) -> Any:
        if failure == "connection":
            raise ConnectionClosedError(endpoint_url=request.url)
        return AWSResponse(request.url, 503, {}, _Raw(b"<Error><Code>SlowDown</Code></Error>"))

    client.meta.events.register_first("before-send.s3.PutObject", fail)
    return client


class _Raw:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@pytest.mark.parametrize("failure", ["connection", "503"])
@pytest.mark.parametrize("mode", MODES)
def test_an_ambiguous_primary_failure_is_journaled_uncertain(
    s3: S3Env, tmp_path: Path, mode: str, failure: str
) -> None:
    path = tmp_path / "j.db"
    writer = dualwrite.DualWriter(flag=True, mode=mode, journal=path)
    client = writer.wrap(_flaky_primary(s3, failure), shadow=s3.shadow, names=s3.names)
    with pytest.raises((ClientError, ConnectionClosedError)):
        client.put_object(Bucket="photos", Key="maybe", Body=b"x")
    writer.close()
    # The write may have happened: repair compares and copies if it did.
    assert remaining(path) == [("maybe", "uncertain")]


# -- shadow failures: the intent leaves only once its replacement is durable ------------------


class RefusingJournal:
    """A journal that records intents but refuses every other entry (a disk that filled up
    between the intent and the failure)."""

    def __init__(self) -> None:
        self.inner = MemoryJournal()

    def add(self, entries: Sequence[Entry]) -> list[str]:
        if any(e.reason != "pending" for e in entries):
            raise OSError(28, "No space left on device")
        return self.inner.add(entries)

    def remove(self, ids: Sequence[str]) -> None:
        self.inner.remove(ids)

    def entries(self, limit: int | None = None) -> Iterator[Entry]:
        return self.inner.entries(limit)

    def count(self) -> int:
        return self.inner.count()

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("mode", MODES)
def test_a_shadow_failure_replaces_the_intent(s3: S3Env, tmp_path: Path, mode: str) -> None:
    path = tmp_path / "j.db"
    Breakdown(s3.shadow).broken = True
    breakdown = Breakdown(s3.shadow)
    breakdown.broken = True
    writer = dualwrite.DualWriter(flag=True, mode=mode, journal=path, circuit_breaker=None)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="down", Body=b"x")
    writer.close()
    assert remaining(path) == [("down", "shadow_failed")]


@pytest.mark.parametrize("mode", MODES)
def test_the_intent_stays_when_the_failure_cannot_be_journaled(s3: S3Env, mode: str) -> None:
    journal = RefusingJournal()
    assert isinstance(journal, Journal)
    breakdown = Breakdown(s3.shadow)
    breakdown.broken = True
    writer = dualwrite.DualWriter(flag=True, mode=mode, journal=journal, circuit_breaker=None)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="down", Body=b"x")
    writer.close()
    assert [(e.key, e.reason) for e in journal.entries()] == [("down", "pending")]


# -- every known divergence is journaled --------------------------------------------------------


def test_a_mismatch_is_journaled(s3: S3Env, tmp_path: Path) -> None:
    path = tmp_path / "j.db"

    def corrupt(params: dict[str, Any], **_: Any) -> None:
        params["Body"] = b"other bytes"

    s3.shadow.meta.events.register("provide-client-params.s3.PutObject", corrupt)
    writer = dualwrite.DualWriter(flag=True, journal=path)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="m", Body=b"right bytes")
    writer.close()
    assert remaining(path) == [("m", "mismatch")]


def test_a_raising_flag_journals_the_key(s3: S3Env, tmp_path: Path) -> None:
    path = tmp_path / "j.db"

    def flag(write: dualwrite.Write) -> bool:
        raise RuntimeError("flag service down")

    writer = dualwrite.DualWriter(flag=flag, journal=path)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    client.put_object(Bucket="photos", Key="f", Body=b"x")
    writer.close()
    assert remaining(path) == [("f", "flag_failed")]
    with dualwrite.DualWriter(flag=True, journal=path) as repairer:
        repairer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
        assert repairer.repair().copied == 1
    assert s3.shadow_body("f") == b"x"


def test_an_unknown_key_is_journaled_at_table_level(ddb: DynamoEnv, tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    writer = dualwrite.DualWriter(flag=True, journal=path)
    client = writer.wrap(ddb.primary, shadow=ddb.shadow)
    client.put_item(TableName="orders", Item={"pk": {"S": "a"}})
    # A PartiQL delete whose WHERE clause this library does not parse: no key can be read.
    client.execute_statement(Statement="DELETE FROM \"orders\" WHERE (pk = 'a')")
    writer.close()
    entries = SQLiteJournal(path)
    found = [(e.resource, e.key, e.reason, e.resource_level) for e in entries.entries()]
    entries.close()
    assert found == [("orders", {}, "unsupported", True)]


@pytest.mark.parametrize("journaled", [False, True])
def test_the_primary_s_sends_are_counted_only_for_a_journal(
    s3: S3Env, tmp_path: Path, journaled: bool
) -> None:
    """Only an intent reads the count of the primary's sent requests (to tell a failure before
    the request left from one after): without a journal there is no intent, and the primary
    client gets no before-send handler, which every one of its calls would pay for."""
    from dualwrite._core import intent  # noqa: PLC0415 - the per-thread count under test

    writer = dualwrite.DualWriter(flag=False, journal=tmp_path / "j.db" if journaled else None)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    intent._sent.count = 0
    client.put_object(Bucket="photos", Key="k", Body=b"x")
    s3.primary.head_object(Bucket="photos", Key="k")
    writer.close()
    assert intent._sent.count == (2 if journaled else 0)
