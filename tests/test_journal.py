"""The journal: SQLite from threads and processes, keys never payloads, DynamoDB keys, SQS."""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
import sqlite3
import threading
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from _support.journal_worker import add_many
from _support.shadow import Breakdown
from boto3.dynamodb.types import Binary
from conftest import Accounts, S3Env

import dualwrite
from dualwrite.exceptions import JournalError
from dualwrite.journal import (
    Entry,
    Journal,
    MemoryJournal,
    SQLiteJournal,
    SQSJournal,
    decode_key,
    encode_key,
)


def entry(key: Any, reason: str = "shadow_failed", **kwargs: Any) -> Entry:
    kwargs.setdefault("service", "s3")
    kwargs.setdefault("resource", "photos")
    return Entry(key=key, reason=reason, **kwargs)


# -- SQLite -------------------------------------------------------------------------------------


def test_sqlite_round_trips_every_field(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    assert isinstance(journal, Journal)
    written = entry("a/b.txt", "unsupported", tenant="acme", detail="version-specific", at=12.5)
    ids = journal.add([written, entry("c")])
    assert len(ids) == 2
    first, second = journal.entries()
    assert first == Entry(
        id=ids[0],
        service="s3",
        resource="photos",
        key="a/b.txt",
        reason="unsupported",
        tenant="acme",
        detail="version-specific",
        at=12.5,
    )
    assert (second.key, second.id) == ("c", ids[1])
    assert [e.key for e in journal.entries(limit=1)] == ["a/b.txt"]
    journal.remove([ids[0], "999999"])  # an unknown id is ignored
    assert journal.count() == 1
    journal.close()
    # A closed journal still records (a write after DualWriter.close() is journaled "closed"),
    # with a connection of its own each time.
    (late,) = journal.add([entry("late", "closed")])
    assert journal.count() == 2
    journal.remove([late])
    assert journal.count() == 1


def test_sqlite_from_many_threads_loses_nothing(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    barrier = threading.Barrier(16)

    def work(thread: int) -> None:
        barrier.wait()
        for i in range(60):
            batch = [entry(f"t{thread}-{i}-{n}") for n in range(1 + i % 3)]
            ids = journal.add(batch)
            if i % 4 == 0:
                journal.remove(ids)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = {
        f"t{t}-{i}-{n}" for t in range(16) for i in range(60) if i % 4 for n in range(1 + i % 3)
    }
    keys = [e.key for e in journal.entries()]
    assert len(keys) == len(expected) == journal.count()
    assert set(keys) == expected
    journal.close()


def test_sqlite_keeps_no_connection_per_finished_thread(tmp_path: Path) -> None:
    # A service with a thread per request journals intents from a new thread every time.
    journal = SQLiteJournal(tmp_path / "j.db")
    journal.count()
    before = len(os.listdir("/proc/self/fd"))
    for i in range(200):
        thread = threading.Thread(target=journal.add, args=([entry(f"k{i}", "pending")],))
        thread.start()
        thread.join()
    assert len(os.listdir("/proc/self/fd")) - before < 10
    assert journal.count() == 200
    journal.close()


def test_sqlite_from_several_processes_at_once_loses_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "j.db")
    # spawn, not fork: the test process has threads (moto, other tests' pools).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=context) as pool:
        futures = [pool.submit(add_many, path, worker, 300) for worker in range(3)]
        # This process writes at the same time, through its own connection.
        here = add_many(path, 99, 300)
        kept = [future.result(timeout=120) for future in futures]
    journal = SQLiteJournal(path)
    expected = {f"p{w}-{i}" for w in (0, 1, 2, 99) for i in range(300) if i % 3}
    assert sum(kept) + here == len(expected) == journal.count()
    assert {e.key for e in journal.entries()} == expected
    journal.close()


def _bytes_on_disk(directory: Path) -> bytes:
    """Everything SQLite wrote: the database, its WAL and its shared-memory index."""
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


@pytest.mark.parametrize("mode", ["sync", "background"])
def test_journal_holds_keys_never_payloads_or_sse_c_keys(
    s3: S3Env, tmp_path: Path, mode: str
) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    payload = b"PAYLOAD-" + os.urandom(16).hex().encode() + b"-END"
    customer_key = os.urandom(32)
    writer = dualwrite.DualWriter(
        flag=True, mode=mode, journal=directory / "j.db", circuit_breaker=None
    )
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    Breakdown(s3.shadow).broken = True
    client.put_object(Bucket="photos", Key="plain-key", Body=payload)
    client.put_object(
        Bucket="photos",
        Key="sse-c-key",
        Body=payload,
        SSECustomerAlgorithm="AES256",
        SSECustomerKey=customer_key,
    )
    # An unsupported write (a delete by version) with a journaled key, too.
    client.delete_object(Bucket="photos", Key="versioned-key", VersionId="v1")
    writer.flush()
    assert writer.journal is not None
    assert {e.key for e in writer.journal.entries()} == {"plain-key", "sse-c-key", "versioned-key"}
    raw = _bytes_on_disk(directory)
    assert b"sse-c-key" in raw  # the journal's own file: the keys are there
    secrets = [
        payload,
        payload[8:-4],
        customer_key,
        base64.b64encode(customer_key),
        base64.b64encode(hashlib.md5(customer_key).digest()),
        base64.b64encode(payload),
    ]
    for secret in secrets:
        assert secret not in raw
    writer.close()


# -- DynamoDB keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "typed"),
    [
        pytest.param({"pk": {"S": "a"}}, {"pk": {"S": "a"}}, id="typed-string"),
        pytest.param(
            {"pk": {"S": "a"}, "sk": {"N": "5"}}, {"pk": {"S": "a"}, "sk": {"N": "5"}}, id="typed"
        ),
        pytest.param({"pk": "a", "sk": 5}, {"pk": {"S": "a"}, "sk": {"N": "5"}}, id="python-int"),
        pytest.param({"sk": Decimal("1.50")}, {"sk": {"N": "1.50"}}, id="python-decimal"),
        pytest.param({"sk": 2.5}, {"sk": {"N": "2.5"}}, id="python-float"),
        pytest.param({"b": {"B": b"\x00\xff"}}, {"b": {"B": b"\x00\xff"}}, id="typed-binary"),
        pytest.param({"b": b"\x00\xff\n"}, {"b": {"B": b"\x00\xff\n"}}, id="python-bytes"),
        pytest.param({"b": Binary(b"\x01")}, {"b": {"B": b"\x01"}}, id="python-binary"),
        pytest.param({"b": bytearray(b"\x02")}, {"b": {"B": b"\x02"}}, id="python-bytearray"),
        pytest.param({"b": {"B": "text"}}, {"b": {"B": b"text"}}, id="typed-binary-str"),
        pytest.param({"pk": "ünï/cødé"}, {"pk": {"S": "ünï/cødé"}}, id="unicode"),
    ],
)
def test_dynamodb_keys_round_trip(tmp_path: Path, key: dict[str, Any], typed: Any) -> None:
    assert decode_key(encode_key(key)) == typed
    # Python-level and typed forms of one key are one identity: repair groups them.
    assert encode_key(key) == encode_key(typed)
    journal = SQLiteJournal(tmp_path / "j.db")
    journal.add([entry(key, service="dynamodb", resource="orders")])
    (read,) = journal.entries()
    assert read.key == typed
    assert read.identity() == ("dynamodb", "orders", encode_key(typed))
    journal.close()


def test_s3_keys_are_plain_strings() -> None:
    for key in ["a", "dir/file.txt", '{"pk": 1}', "ünï", " spaced "]:
        assert decode_key(encode_key(key)) == key


# -- SQS ------------------------------------------------------------------------------------------


def sqs_journal(aws: Accounts, tmp_path: Path, name: str = "journal") -> tuple[Any, str]:
    client = aws.client("primary", "sqs")
    url = client.create_queue(QueueName=name)["QueueUrl"]
    return client, url


def test_sqs_journal_add_entries_remove(aws: Accounts, tmp_path: Path) -> None:
    client, url = sqs_journal(aws, tmp_path)
    journal = SQSJournal(client, url, intents=SQLiteJournal(tmp_path / "intents.db"))
    assert isinstance(journal, Journal)
    ids = journal.add(
        [
            entry("pending-key", "pending"),
            entry("failed-key", tenant="acme", detail="SlowDown"),
            entry({"pk": "a", "sk": 1}, "unsupported", service="dynamodb", resource="orders"),
        ]
    )
    assert ids[0].startswith("local:")
    assert all(i.startswith("sqs:") for i in ids[1:])
    # The intent stays on this host: SQS holds only the failures.
    assert (
        client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
        == "2"
    )
    assert journal.count() == 3
    got = list(journal.entries())
    assert [(e.key, e.reason) for e in got] == [
        ("pending-key", "pending"),
        ("failed-key", "shadow_failed"),
        ({"pk": {"S": "a"}, "sk": {"N": "1"}}, "unsupported"),
    ]
    assert got[1].tenant == "acme"
    assert got[1].detail == "SlowDown"
    assert all(e.id for e in got)
    # Received entries are hidden from another repairer until removed or timed out.
    other = SQSJournal(client, url)
    assert list(other.entries()) == []
    journal.remove([e.id for e in got if e.id is not None])
    assert journal.count() == 0
    journal.close()


def test_sqs_journal_without_local_intents_keeps_them_in_memory(
    aws: Accounts, tmp_path: Path
) -> None:
    client, url = sqs_journal(aws, tmp_path)
    journal = SQSJournal(client, url)
    (pending,) = journal.add([entry("k", "pending")])
    assert pending.startswith("memory:")
    journal.remove([pending])
    assert journal.count() == 0


def test_writer_with_an_sqs_journal_repairs_from_it(aws: Accounts, tmp_path: Path) -> None:
    s3 = S3Env(aws)
    client, url = sqs_journal(aws, tmp_path)
    journal = SQSJournal(client, url, intents=SQLiteJournal(tmp_path / "intents.db"))
    writer = dualwrite.DualWriter(
        flag=True, mode="background", journal=journal, circuit_breaker=None
    )
    wrapped = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    breakdown = Breakdown(s3.shadow)
    breakdown.broken = True
    for i in range(12):
        wrapped.put_object(Bucket="photos", Key=f"k{i}", Body=f"v{i}".encode())
    assert writer.flush(timeout=30)
    assert journal.intents is not None
    assert journal.intents.count() == 0  # intents cleared, failures sent to SQS
    assert journal.count() == 12
    breakdown.broken = False
    report = writer.repair()
    assert (report.keys, report.copied, report.failed, report.remaining) == (12, 12, 0, 0)
    assert s3.keys("primary") == s3.keys("shadow")
    writer.close()
    journal.close()


def test_entries_keep_the_account_written_first(aws: Accounts, tmp_path: Path) -> None:
    client, url = sqs_journal(aws, tmp_path, name="first")
    for journal in (SQLiteJournal(tmp_path / "j.db"), SQSJournal(client, url)):
        journal.add([entry("old-first"), attrs.evolve(entry("new-first"), first="shadow")])
        got = sorted(journal.entries(), key=lambda e: str(e.key))
        assert [(e.key, e.first) for e in got] == [
            ("new-first", "shadow"),
            ("old-first", "primary"),
        ]
        journal.close()


def test_a_journal_of_an_earlier_release_gains_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, service TEXT NOT NULL, "
            "resource TEXT NOT NULL, key TEXT NOT NULL, reason TEXT NOT NULL, tenant TEXT, "
            "detail TEXT NOT NULL DEFAULT '', at REAL NOT NULL)"
        )
        connection.execute(
            "INSERT INTO entries (service, resource, key, reason, at) "
            """VALUES ('s3', 'photos', '"k"', 'shadow_failed', 1.0)"""
        )
    connection.close()
    journal = SQLiteJournal(path)
    (old,) = journal.entries()
    assert (old.key, old.first) == ("k", "primary")
    journal.add([attrs.evolve(entry("new"), first="shadow")])
    assert [e.first for e in journal.entries()] == ["primary", "shadow"]
    journal.close()


def test_memory_journal_round_trips_and_refuses_what_sqlite_refuses() -> None:
    journal = MemoryJournal()
    assert isinstance(journal, Journal)
    ids = journal.add([entry("a", "pending"), entry("b")])
    assert [(e.key, e.reason, e.id) for e in journal.entries()] == [
        ("a", "pending", ids[0]),
        ("b", "shadow_failed", ids[1]),
    ]
    assert [e.key for e in journal.entries(limit=1)] == ["a"]
    journal.remove([ids[0], "12345"])
    assert journal.count() == 1
    with pytest.raises(AttributeError):
        journal.add([attrs.evolve(entry("x"), key=12)])  # type: ignore[arg-type]
    assert journal.count() == 1


def test_sqlite_group_commit_serves_many_threads_with_distinct_ids(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.db")
    barrier = threading.Barrier(8)
    ids: list[str] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        barrier.wait()
        for i in range(50):
            mine = journal.add([entry(f"t{thread}-{i}", "pending")])
            journal.remove(mine[:0])  # an empty remove is a no-op
            with lock:
                ids.extend(mine)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 400
    assert journal.count() == 400
    journal.remove(ids[:200])
    assert journal.count() == 200
    journal.close()


def test_sqlite_writes_one_entry_in_one_statement_and_several_in_one_transaction(
    tmp_path: Path,
) -> None:
    """A lone add or remove of one entry (one write's intent) is one statement, SQLite's own
    transaction: each statement releases the GIL, which a busy process may take milliseconds to
    give back. Several entries still go in one transaction, all or none."""
    journal = SQLiteJournal(tmp_path / "j.db")
    journal.remove(journal.add([entry("warm", "pending")]))
    assert journal._writer is not None
    statements: list[str] = []
    journal._writer.set_trace_callback(lambda sql: statements.append(sql.split()[0]))
    one = journal.add([entry("a", "pending")])
    journal.remove(one)
    assert statements == ["INSERT", "DELETE"]
    statements.clear()
    several = journal.add([entry("b", "pending"), entry("c", "pending")])
    journal.remove(several)
    assert statements == [
        "BEGIN",
        "INSERT",
        "INSERT",
        "COMMIT",
        "BEGIN",
        "DELETE",
        "DELETE",
        "COMMIT",
    ]
    assert journal.count() == 0
    # All or none: the second of two rows cannot be written (NOT NULL), so neither is.
    with pytest.raises(JournalError):
        journal.add([entry("d", "pending"), attrs.evolve(entry("e", "pending"), service=None)])
    assert journal.count() == 0
    journal.close()
