"""Fleet convergence: several processes writing one DynamoDB key at once end equal.

Two ``DualWriter`` instances on one moto stand in for two processes. In one process, writers
share the striped key locks of ``dualwrite._core.mirror``, which would serialise them and hide the
race; so each stand-in gets locks of its own (as a separate process has), and every test checks
that the race really happened: the second writer's shadow write landed while the first's was
held up at a gate on the first writer's own shadow client.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.shadow import Gate
from boto3.dynamodb.types import TypeSerializer
from conftest import Accounts, DynamoEnv, drop_tables

import dualwrite
from dualwrite.testing import RecordingHook

SERIALIZER = TypeSerializer()
SHADOW_WRITES = ("PutItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


@pytest.fixture
def aws(shared_accounts: Accounts) -> Iterator[Accounts]:
    yield shared_accounts
    drop_tables(shared_accounts)


def typed(item: dict[str, Any]) -> dict[str, Any]:
    return {k: SERIALIZER.serialize(v) for k, v in item.items()}


class Process:
    """One stand-in process: its own clients, its own DualWriter, its own key locks."""

    def __init__(
        self, accounts: Accounts, *, mode: str = "sync", level: str = "client", **options: Any
    ) -> None:
        self.level = level
        self.recorder = RecordingHook()
        options.setdefault("journal", None)
        self.writer = dualwrite.DualWriter(flag=True, mode=mode, hooks=[self.recorder], **options)
        if level == "client":
            self.shadow_client = accounts.client("shadow", "dynamodb")
            self.client = self.writer.wrap(
                accounts.client("primary", "dynamodb"), shadow=self.shadow_client
            )
            mirror = self.client._self_mirror
        else:
            shadow = accounts.resource("shadow", "dynamodb")
            self.shadow_client = shadow.meta.client
            wrapped = self.writer.wrap(accounts.resource("primary", "dynamodb"), shadow=shadow)
            self.client = wrapped.Table("orders")
            mirror = wrapped.meta.client._self_mirror
        # A process's own lock table (see the module docstring).
        self.locks = tuple(threading.RLock() for _ in range(64))
        mirror.key_lock = lambda resource, key: self.locks[hash((resource, key)) % 64]
        self.mirror = mirror

    def lock_of(self, key: dict[str, Any]) -> Any:
        from dualwrite._dynamodb.calls import _holding  # noqa: PLC0415 - the lock a write holds

        return _holding(self.mirror, self.mirror.state.level, [("orders", key)])

    def close(self) -> None:
        self.writer.close()


def _write_v1(op: str) -> Callable[[Process], Any]:
    """The first (overtaken) writer's write of key ``hot``, leaving ``v = 1`` (or no item)."""

    def run(p: Process) -> Any:
        c = p.client
        if p.level != "client":
            if op == "put":
                return c.put_item(Item={"pk": "hot", "v": 1})
            if op == "update":
                return c.update_item(
                    Key={"pk": "hot"},
                    UpdateExpression="SET v = :v",
                    ExpressionAttributeValues={":v": 1},
                )
            return c.delete_item(Key={"pk": "hot"})
        item, key = typed({"pk": "hot", "v": 1}), typed({"pk": "hot"})
        if op == "put":
            return c.put_item(TableName="orders", Item=item)
        if op == "update":
            return c.update_item(
                TableName="orders",
                Key=key,
                UpdateExpression="SET v = :v",
                ExpressionAttributeValues=typed({":v": 1}),
                ReturnValues="UPDATED_OLD",
            )
        if op == "delete":
            return c.delete_item(TableName="orders", Key=key)
        if op == "batch":
            return c.batch_write_item(RequestItems={"orders": [{"PutRequest": {"Item": item}}]})
        if op == "transaction":
            return c.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "orders", "Item": item}},
                    {"Put": {"TableName": "orders", "Item": typed({"pk": "other"})}},
                ]
            )
        if op == "partiql":
            return c.execute_statement(
                Statement="UPDATE orders SET v = ? WHERE pk = ?",
                Parameters=[{"N": "1"}, {"S": "hot"}],
            )
        raise AssertionError(op)

    return run


def _write_v2(p: Process) -> None:
    if p.level == "client":
        p.client.put_item(TableName="orders", Item=typed({"pk": "hot", "v": 2}))
    else:
        p.client.put_item(Item={"pk": "hot", "v": 2})


def overtake(
    aws: Accounts, op: str, *, mode: str, level: str = "client", single_writer: bool = False
) -> DynamoEnv:
    """Writer 1 writes ``hot``; its shadow write is held until writer 2's write is complete."""
    env = DynamoEnv(aws)
    env.p_raw.put_item(TableName="orders", Item=typed({"pk": "hot", "v": 0}))
    env.s_raw.put_item(TableName="orders", Item=typed({"pk": "hot", "v": 0}))
    first = Process(aws, mode=mode, level=level, single_writer=single_writer)
    second = Process(aws, level=level)
    key = typed({"pk": "hot"}) if level == "client" else {"pk": "hot"}
    assert first.lock_of(key) is not second.lock_of(key)  # as two processes: no shared lock
    gate = Gate(first.shadow_client, *SHADOW_WRITES)
    thread = threading.Thread(target=_write_v1(op), args=(first,))
    thread.start()
    try:
        assert gate.wait_arrivals(1)  # writer 1's primary write is done; its shadow's is held
        done = threading.Thread(target=_write_v2, args=(second,))
        done.start()
        done.join(timeout=20)
        # Writer 2 was not held by writer 1's lock: the race is real.
        assert not done.is_alive()
        assert env.get("shadow", typed({"pk": "hot"})) == typed({"pk": "hot", "v": 2})
    finally:
        gate.open()
        thread.join(timeout=30)
    assert first.writer.flush(timeout=30)
    first.close()
    second.close()
    assert env.get("primary", typed({"pk": "hot"})) == typed({"pk": "hot", "v": 2})
    assert set(first.recorder.kinds()) <= {"shadow_written"}
    assert set(second.recorder.kinds()) == {"shadow_written"}
    return env


OPS = ["put", "update", "delete", "batch", "transaction", "partiql"]


@pytest.mark.parametrize("mode", ["sync", "background"])
@pytest.mark.parametrize("op", OPS)
def test_an_overtaken_shadow_write_still_ends_equal(aws: Accounts, op: str, mode: str) -> None:
    env = overtake(aws, op, mode=mode)
    assert env.scan("shadow") == env.scan("primary")


@pytest.mark.parametrize("op", ["put", "update", "delete"])
def test_an_overtaken_table_level_write_still_ends_equal(aws: Accounts, op: str) -> None:
    env = overtake(aws, op, mode="sync", level="resource")
    assert env.scan("shadow") == env.scan("primary")


@pytest.mark.parametrize("op", ["put", "delete", "batch"])
def test_single_writer_skips_the_check_and_so_the_race_leaves_the_shadow_stale(
    aws: Accounts, op: str
) -> None:
    """The control: without the check the race above does diverge (what the check is for)."""
    env = overtake(aws, op, mode="sync", single_writer=True)
    assert env.get("shadow", typed({"pk": "hot"})) != typed({"pk": "hot", "v": 2})


def test_the_check_costs_one_consistent_read_of_the_primary(aws: Accounts) -> None:
    env = DynamoEnv(aws)
    p = Process(aws)
    sent: list[tuple[str, Any]] = []
    p.client.meta.events.register(
        "provide-client-params.dynamodb",
        lambda model, params, **_: sent.append((model.name, dict(params))),
        unique_id="count",
    )
    p.client.put_item(TableName="orders", Item=typed({"pk": "a", "v": 1}))
    p.client.batch_write_item(
        RequestItems={"orders": [{"PutRequest": {"Item": typed({"pk": k})}} for k in "bcd"]}
    )
    assert [name for name, _ in sent] == [
        "DescribeTable",
        "PutItem",
        "GetItem",  # one consistent read after the shadow's put
        "BatchWriteItem",
        "BatchGetItem",  # one consistent read of every key of the batch
    ]
    assert sent[2][1] == {
        "TableName": "orders",
        "Key": typed({"pk": "a"}),
        "ConsistentRead": True,
    }
    assert sent[4][1] == {
        "RequestItems": {
            "orders": {"Keys": [typed({"pk": k}) for k in "bcd"], "ConsistentRead": True}
        }
    }
    assert env.scan("shadow") == env.scan("primary")
    p.close()


# -- hot keys, random timing -----------------------------------------------------------------------


def _jitter(rng: random.Random) -> Callable[..., None]:
    def pause(**_: Any) -> None:
        time.sleep(rng.random() * 0.01)

    return pause


@pytest.mark.usefixtures("atomic_moto")
@pytest.mark.parametrize("mode", ["sync", "background"])
@pytest.mark.parametrize("seed", [1, 2])
def test_hot_keys_written_by_several_processes_end_equal(
    aws: Accounts, tmp_path: Path, seed: int, mode: str
) -> None:
    """Three stand-in processes, two threads each, random writes to three hot keys, with random
    delays before every shadow call: after flush every key is equal on both accounts, or (a key
    that kept changing through every round of convergence) journaled, and equal after repair."""
    env = DynamoEnv(aws)
    rng = random.Random(seed)
    processes = [
        Process(aws, mode=mode, journal=str(tmp_path / f"journal-{n}.db")) for n in range(3)
    ]
    for p in processes:
        p.shadow_client.meta.events.register(
            "before-call.dynamodb", _jitter(random.Random(rng.random())), unique_id="jitter"
        )

    burst = threading.Barrier(6, timeout=60)

    def work(p: Process, seed: float) -> None:
        local = random.Random(seed)
        for n in range(20):
            key = typed({"pk": f"hot{local.randrange(3)}"})
            choice = local.randrange(4)
            if choice == 0:
                p.client.put_item(TableName="orders", Item={**key, "v": {"N": str(n)}})
            elif choice == 1:
                p.client.update_item(
                    TableName="orders",
                    Key=key,
                    UpdateExpression="ADD v :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
            elif choice == 2:
                p.client.delete_item(TableName="orders", Key=key)
            else:
                p.client.batch_write_item(
                    RequestItems={"orders": [{"PutRequest": {"Item": {**key, "b": {"N": "1"}}}}]}
                )
        # A last burst, every thread at once: the writes whose shadow calls decide the end.
        burst.wait()
        mark = int(seed * 1e9)
        for k in local.sample(range(3), 3):
            p.client.put_item(TableName="orders", Item=typed({"pk": f"hot{k}", "last": mark}))

    threads = [
        threading.Thread(target=work, args=(p, rng.random())) for p in processes for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for p in processes:
        assert p.writer.flush(timeout=60)
    primary = {i["pk"]["S"]: i for i in env.scan("primary")}
    shadow = {i["pk"]["S"]: i for i in env.scan("shadow")}
    diverged = {k for k in primary.keys() | shadow.keys() if primary.get(k) != shadow.get(k)}
    journaled = set()
    for p in processes:
        assert p.writer.journal is not None
        journaled |= {e.key["pk"]["S"] for e in p.writer.journal.entries()}  # type: ignore[index]
        failed = p.recorder.of_kind("shadow_failed")
        assert {e.error_code for e in failed} <= {"Unsettled"}  # type: ignore[attr-defined]
    assert diverged <= journaled
    for p in processes:
        p.writer.repair()
        p.close()
    assert env.scan("shadow") == env.scan("primary")
