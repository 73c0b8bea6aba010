"""Convergence under random writes: after any sequence, the shadow equals the primary.

Every sequence runs on fresh tables where each key already exists on the primary and not on the
shadow, which is where replaying requests goes wrong (an ``ADD`` on a missing item, a condition
that passes on one side only). After the sequence, every key the primary acknowledged a write
for must be equal on both sides, and every other key must still be absent from the shadow: no
failed, cancelled or unprocessed write may leak.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import attrs
import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from conftest import Accounts, LeaveUnprocessed, create_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dualwrite
from dualwrite.testing import RecordingHook

# moto applies a transaction item by item and undoes it when a condition fails: a background
# worker reading an item at that moment saw a state DynamoDB (whose transactions are isolated)
# never shows, and copied it (the rare failure of the background property test). Each request
# to moto is made atomic, as each request to DynamoDB is.
pytestmark = pytest.mark.usefixtures("atomic_moto_module")

KEYS = ("k0", "k1", "k2", "k3")
SEED = {"n": 10, "l": [0], "tag": "seed"}
EXPECTED_ERRORS = {
    "ConditionalCheckFailedException",
    "TransactionCanceledException",
    "ValidationException",
}
SERIALIZER = TypeSerializer()
DESERIALIZER = TypeDeserializer()
_tables = itertools.count()

# No example database: nothing is written into the working tree, and each run draws afresh.
FAST = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# The default run stays fast (pyproject deselects "slow"); `pytest -m slow` runs the long ones.
THOROUGH = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- operations --------------------------------------------------------------------------------


@attrs.frozen
class Put:
    key: str
    n: int
    condition: str | None  # None, "attribute_exists(pk)" or "attribute_not_exists(pk)"


@attrs.frozen
class Update:
    key: str
    kind: str
    amount: int
    return_values: str | None


@attrs.frozen
class Delete:
    key: str
    at_least: int | None  # ConditionExpression "n >= :min"


@attrs.frozen
class Batch:
    entries: tuple[tuple[str, str, int], ...]  # (key, "put" | "delete", n)
    leave: frozenset[str]  # keys the primary leaves unprocessed


@attrs.frozen
class Transact:
    entries: tuple[tuple[str, str], ...]  # (key, "Put" | "Update" | "Delete" | "ConditionCheck")
    at_least: int  # the ConditionCheck's (or the Update's) "n >= :min"


UPDATE_KINDS = ("add", "set_plus", "if_not_exists", "list_append", "remove", "conditional")
RETURN_VALUES = (None, "NONE", "ALL_NEW", "ALL_OLD", "UPDATED_NEW", "UPDATED_OLD")

keys = st.sampled_from(KEYS)
amounts = st.integers(-3, 6)
thresholds = st.integers(5, 16)


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    chosen = draw(st.lists(keys, min_size=1, max_size=4, unique=True))
    entries = tuple(
        (key, draw(st.sampled_from(("put", "delete"))), draw(amounts)) for key in chosen
    )
    leave = frozenset(draw(st.sets(st.sampled_from(chosen))))
    return Batch(entries=entries, leave=leave)


@st.composite
def transactions(draw: st.DrawFn) -> Transact:
    chosen = draw(st.lists(keys, min_size=1, max_size=4, unique=True))
    kinds = st.sampled_from(("Put", "Update", "Delete", "ConditionCheck"))
    return Transact(entries=tuple((k, draw(kinds)) for k in chosen), at_least=draw(thresholds))


operations = st.one_of(
    st.builds(
        Put,
        keys,
        amounts,
        st.sampled_from((None, "attribute_exists(pk)", "attribute_not_exists(pk)")),
    ),
    st.builds(Update, keys, st.sampled_from(UPDATE_KINDS), amounts, st.sampled_from(RETURN_VALUES)),
    st.builds(Delete, keys, st.none() | thresholds),
    batches(),
    transactions(),
)
sequences = st.lists(operations, min_size=1, max_size=15)


# -- the two surfaces ------------------------------------------------------------------------------


class Harness:
    """Wrapped primary (low-level or resource), raw readers, and fresh tables per sequence."""

    def __init__(self, accounts: Accounts, level: str, mode: str = "sync") -> None:
        self.level = level
        self.p_raw = accounts.client("primary", "dynamodb")
        self.s_raw = accounts.client("shadow", "dynamodb")
        self.recorder = RecordingHook()
        if level == "client":
            primary = accounts.client("primary", "dynamodb")
            shadow = accounts.client("shadow", "dynamodb")
            primary_client = primary
        else:
            primary = accounts.resource("primary", "dynamodb")
            shadow = accounts.resource("shadow", "dynamodb")
            primary_client = primary.meta.client
        self.leave = LeaveUnprocessed(primary_client, self.p_raw)
        self.writer = dualwrite.DualWriter(flag=True, hooks=[self.recorder], mode=mode)
        self.wrapped = self.writer.wrap(primary, shadow=shadow)
        self.table = ""

    def fresh(self) -> None:
        self.table = f"prop{next(_tables)}"
        create_table(self.p_raw, self.table)
        create_table(self.s_raw, self.table)
        for key in KEYS:
            self.p_raw.put_item(TableName=self.table, Item=self.typed({"pk": key, **SEED}))
        self.recorder.clear()
        self.leave.choose = lambda table, request: False

    def drop(self) -> None:
        self.p_raw.delete_table(TableName=self.table)
        self.s_raw.delete_table(TableName=self.table)

    # values in the level's format
    def typed(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: SERIALIZER.serialize(v) for k, v in item.items()}

    def conv(self, item: dict[str, Any]) -> dict[str, Any]:
        return self.typed(item) if self.level == "client" else item

    @property
    def client(self) -> Any:
        return self.wrapped if self.level == "client" else self.wrapped.meta.client

    def read(self, side: str, key: str) -> dict[str, Any] | None:
        client = self.p_raw if side == "primary" else self.s_raw
        item = client.get_item(
            TableName=self.table, Key=self.typed({"pk": key}), ConsistentRead=True
        ).get("Item")
        return None if item is None else {k: DESERIALIZER.deserialize(v) for k, v in item.items()}


def apply(h: Harness, op: Any) -> set[str]:
    """Run one operation through the wrapper; return the keys the primary acknowledged."""
    try:
        return _apply(h, op)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
    assert code in EXPECTED_ERRORS, (code, op)
    return set()


def _apply(h: Harness, op: Any) -> set[str]:
    c, t, conv = h.client, h.table, h.conv
    if isinstance(op, Put):
        extra = {} if op.condition is None else {"ConditionExpression": op.condition}
        c.put_item(TableName=t, Item=conv({"pk": op.key, "n": op.n, "tag": "put"}), **extra)
        return {op.key}
    if isinstance(op, Update):
        params = _update_params(op, conv)
        if op.return_values is not None:
            params["ReturnValues"] = op.return_values
        c.update_item(TableName=t, Key=conv({"pk": op.key}), **params)
        return {op.key}
    if isinstance(op, Delete):
        extra: dict[str, Any] = {}
        if op.at_least is not None:
            extra = {
                "ConditionExpression": "n >= :min",
                "ExpressionAttributeValues": conv({":min": op.at_least}),
            }
        c.delete_item(TableName=t, Key=conv({"pk": op.key}), **extra)
        return {op.key}
    if isinstance(op, Batch):
        return _batch(h, op)
    assert isinstance(op, Transact)
    c.transact_write_items(TransactItems=[_transact_item(h, op, k, kind) for k, kind in op.entries])
    return {k for k, kind in op.entries if kind != "ConditionCheck"}


def _update_params(op: Update, conv: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    v = {":v": op.amount}
    if op.kind == "add":
        return {"UpdateExpression": "ADD n :v", "ExpressionAttributeValues": conv(v)}
    if op.kind == "set_plus":  # fails (ValidationException) where n was removed
        return {"UpdateExpression": "SET n = n + :v", "ExpressionAttributeValues": conv(v)}
    if op.kind == "if_not_exists":
        return {
            "UpdateExpression": "SET n = if_not_exists(n, :zero) + :v",
            "ExpressionAttributeValues": conv({**v, ":zero": 0}),
        }
    if op.kind == "list_append":
        return {
            "UpdateExpression": "SET l = list_append(if_not_exists(l, :empty), :v)",
            "ExpressionAttributeValues": conv({":v": [op.amount], ":empty": []}),
        }
    if op.kind == "remove":
        return {"UpdateExpression": "REMOVE n, tag"}
    return {  # conditional: passes or fails depending on the primary's current n
        "UpdateExpression": "SET n = :v, tag = :t",
        "ConditionExpression": "n >= :min",
        "ExpressionAttributeValues": conv({**v, ":t": "cond", ":min": 9}),
    }


def _batch(h: Harness, op: Batch) -> set[str]:
    requests = []
    for key, kind, n in op.entries:
        if kind == "put":
            requests.append({"PutRequest": {"Item": h.conv({"pk": key, "n": n, "tag": "batch"})}})
        else:
            requests.append({"DeleteRequest": {"Key": h.conv({"pk": key})}})
    if h.level == "client":
        # The primary leaves op.leave unprocessed; the caller does not retry: those keys stay
        # unwritten on the primary, so they must not reach the shadow either.
        h.leave.choose = lambda table, request: _pk(request) in op.leave
        h.client.batch_write_item(RequestItems={h.table: requests})
        h.leave.choose = lambda table, request: False
        return {key for key, _, _ in op.entries} - op.leave
    # Through Table.batch_writer: left unprocessed once, then re-sent by boto3 itself.
    pending = set(op.leave)

    def once(table: str, request: dict[str, Any]) -> bool:
        pk = _pk(request)
        if pk in pending:
            pending.discard(pk)
            return True
        return False

    h.leave.choose = once
    with h.wrapped.Table(h.table).batch_writer() as writer:
        for key, kind, n in op.entries:
            if kind == "put":
                writer.put_item(Item={"pk": key, "n": n, "tag": "batch"})
            else:
                writer.delete_item(Key={"pk": key})
    h.leave.choose = lambda table, request: False
    assert not pending
    return {key for key, _, _ in op.entries}


def _pk(request: dict[str, Any]) -> str:
    body = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
    return str(body["pk"]["S"])


def _transact_item(h: Harness, op: Transact, key: str, kind: str) -> dict[str, Any]:
    conv, t = h.conv, h.table
    if kind == "Put":
        return {"Put": {"TableName": t, "Item": conv({"pk": key, "n": 1, "tag": "tx"})}}
    if kind == "Delete":
        return {"Delete": {"TableName": t, "Key": conv({"pk": key})}}
    if kind == "Update":
        return {
            "Update": {
                "TableName": t,
                "Key": conv({"pk": key}),
                "UpdateExpression": "ADD n :one SET l = list_append(if_not_exists(l, :e), :one_l)",
                "ExpressionAttributeValues": conv({":one": 1, ":e": [], ":one_l": [1]}),
            }
        }
    return {
        "ConditionCheck": {
            "TableName": t,
            "Key": conv({"pk": key}),
            "ConditionExpression": "n >= :min",
            "ExpressionAttributeValues": conv({":min": op.at_least}),
        }
    }


def check_sequence(h: Harness, ops: list[Any]) -> None:
    h.fresh()
    try:
        touched: set[str] = set()
        for op in ops:
            touched |= apply(h, op)
        assert h.writer.flush(timeout=60)
        for key in KEYS:
            primary, shadow = h.read("primary", key), h.read("shadow", key)
            if key in touched:
                assert shadow == primary, (key, ops)
            else:
                assert shadow is None, (key, ops)
        assert set(h.recorder.kinds()) <= {"shadow_written"}, h.recorder.events
    finally:
        h.drop()


@pytest.fixture(scope="module")
def client_harness(shared_accounts: Accounts) -> Iterator[Harness]:
    harness = Harness(shared_accounts, "client")
    yield harness
    harness.writer.close()


@pytest.fixture(scope="module")
def resource_harness(shared_accounts: Accounts) -> Iterator[Harness]:
    harness = Harness(shared_accounts, "resource")
    yield harness
    harness.writer.close()


@pytest.fixture(scope="module")
def background_harness(shared_accounts: Accounts) -> Iterator[Harness]:
    harness = Harness(shared_accounts, "client", mode="background")
    yield harness
    harness.writer.close()


@FAST
@given(ops=sequences)
def test_low_level_client_converges(client_harness: Harness, ops: list[Any]) -> None:
    check_sequence(client_harness, ops)


@FAST
@given(ops=sequences)
def test_table_resource_and_batch_writer_converge(
    resource_harness: Harness, ops: list[Any]
) -> None:
    check_sequence(resource_harness, ops)


@FAST
@given(ops=sequences)
def test_background_mode_converges_after_flush(background_harness: Harness, ops: list[Any]) -> None:
    check_sequence(background_harness, ops)


@pytest.mark.slow
@THOROUGH
@given(ops=sequences)
def test_low_level_client_converges_thoroughly(client_harness: Harness, ops: list[Any]) -> None:
    check_sequence(client_harness, ops)


@pytest.mark.slow
@THOROUGH
@given(ops=sequences)
def test_table_resource_converges_thoroughly(resource_harness: Harness, ops: list[Any]) -> None:
    check_sequence(resource_harness, ops)


def test_the_sequences_exercise_what_they_claim(client_harness: Harness) -> None:
    """A fixed sequence hitting each tricky case, with the outcomes the property relies on."""
    h = client_harness
    h.fresh()
    try:
        assert apply(h, Update("k0", "add", 1, None)) == {"k0"}  # shadow lacked k0: gets 11
        assert h.read("shadow", "k0") == {"pk": "k0", "n": 11, "l": [0], "tag": "seed"}
        assert apply(h, Update("k0", "remove", 0, "ALL_OLD")) == {"k0"}
        assert apply(h, Update("k0", "set_plus", 1, None)) == set()  # n is gone: fails
        assert apply(h, Update("k1", "conditional", 3, "UPDATED_NEW")) == {"k1"}  # 10 >= 9
        assert apply(h, Update("k1", "conditional", 3, None)) == set()  # 3 < 9
        assert apply(h, Put("k2", 1, "attribute_not_exists(pk)")) == set()
        assert apply(h, Batch((("k3", "delete", 0), ("k2", "put", 5)), frozenset({"k2"}))) == {"k3"}
        assert apply(h, Transact((("k2", "Put"), ("k1", "ConditionCheck")), 4)) == set()
        assert apply(h, Transact((("k2", "Update"), ("k0", "ConditionCheck")), 4)) == set()
        assert apply(h, Transact((("k2", "Update"), ("k1", "ConditionCheck")), 16)) == set()
        assert apply(h, Transact((("k2", "Update"), ("k1", "Delete")), 16)) == {"k1", "k2"}
        assert (
            h.read("shadow", "k2")
            == h.read("primary", "k2")
            == {
                "pk": "k2",
                "n": 11,
                "l": [0, 1],
                "tag": "seed",
            }
        )
        assert h.read("shadow", "k3") is None
        assert h.read("primary", "k3") is None
        assert set(h.recorder.kinds()) == {"shadow_written"}
    finally:
        h.drop()


# -- threads ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"mode": "sync"}, id="sync"),
        pytest.param({"mode": "background"}, id="background"),
        # Callers block for room after queueing, with their key locks released.
        pytest.param({"mode": "background", "workers": 2, "queue_size": 2}, id="tiny-queue"),
    ],
)
def test_sixteen_threads_adding_to_four_keys(
    shared_accounts: Accounts, options: dict[str, Any]
) -> None:
    p_raw = shared_accounts.client("primary", "dynamodb")
    s_raw = shared_accounts.client("shadow", "dynamodb")
    table = f"threads{next(_tables)}"
    create_table(p_raw, table)
    create_table(s_raw, table)
    for key in KEYS:  # on the primary only: a replayed ADD would give the shadow the wrong sum
        p_raw.put_item(TableName=table, Item={"pk": {"S": key}, "n": {"N": "1000"}})
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, hooks=[recorder], **options)
    wrapped = writer.wrap(
        shared_accounts.client("primary", "dynamodb"),
        shadow=shared_accounts.client("shadow", "dynamodb"),
    )
    per_thread = 20
    added = dict.fromkeys(KEYS, 0)
    transactions = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait()
        for _ in range(per_thread):
            key, amount = rng.choice(KEYS), rng.randint(1, 9)
            if rng.random() < 0.2:  # a transaction over two keys takes both keys' locks
                other = rng.choice([k for k in KEYS if k != key])
                wrapped.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": table,
                                "Key": {"pk": {"S": k}},
                                "UpdateExpression": "ADD n :v",
                                "ExpressionAttributeValues": {":v": {"N": str(amount)}},
                            }
                        }
                        for k in (key, other)
                    ]
                )
                with lock:
                    added[key] += amount
                    added[other] += amount
                    transactions[0] += 1
                continue
            wrapped.update_item(
                TableName=table,
                Key={"pk": {"S": key}},
                UpdateExpression="ADD n :v",
                ExpressionAttributeValues={":v": {"N": str(amount)}},
            )
            with lock:
                added[key] += amount

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.flush(timeout=60)
    writer.close()
    for key in KEYS:
        primary = p_raw.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True)
        shadow = s_raw.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True)
        assert Decimal(primary["Item"]["n"]["N"]) == 1000 + added[key]
        assert shadow["Item"] == primary["Item"], key
    # Sync mode reports a transaction once; background mode converges (and reports) each key.
    per_transaction = 1 if options["mode"] == "sync" else 2
    expected = 16 * per_thread + (per_transaction - 1) * transactions[0]
    assert recorder.kinds() == ["shadow_written"] * expected
    assert not any(t.is_alive() for t in threads)
