"""Per-call fast paths: what a write builds only when something needs it.

A write the flag leaves alone copies nothing of its request but the key the flag is asked with:
the call-time snapshot (semantics 10) is taken after the decision: a DynamoDB handler with the
flag off must never copy the caller's item, batch entries or transaction entries. A spy
replaces ``snapshot`` in each handler module and fails on a copy of any object the caller
passed (the key a ``PutItem`` is decided with is the wrapper's own, derived from the item).
Flag on, the same spy shows that the copy is still taken. And a ``no_tenant`` event is built
only when a hook asks for such events, a ``shadow_written`` event only when a hook listens, and
the canonical key's shortcuts for strings and numbers agree with the general form.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from conftest import Accounts, DynamoEnv, create_table, drop_tables

import dualwrite
import dualwrite._core.decide
import dualwrite._core.shadow
import dualwrite._dynamodb.batch
import dualwrite._dynamodb.items
import dualwrite._dynamodb.transactions
from dualwrite._core.snapshot import snapshot
from dualwrite._dynamodb.keys import _canon_key, canonical
from dualwrite.events import NoTenant, ShadowWritten
from dualwrite.hooks import MetricsHook
from dualwrite.testing import RecordingHook

MODULES = [dualwrite._dynamodb.items, dualwrite._dynamodb.batch, dualwrite._dynamodb.transactions]


@pytest.fixture
def aws(shared_accounts: Accounts) -> Iterator[Accounts]:
    yield shared_accounts
    drop_tables(shared_accounts)


class Spy:
    """Records every container ``snapshot`` copies, by identity."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.copied: list[int] = []
        for module in MODULES:
            monkeypatch.setattr(module, "snapshot", self)

    def __call__(self, value: Any) -> Any:
        self._record(value)
        return snapshot(value)

    def _record(self, value: Any) -> None:
        """Every container reached by the copy: ``value`` and what it holds."""
        self.copied.append(id(value))
        if isinstance(value, dict):
            for inner in value.values():
                self._record(inner)
        elif isinstance(value, (list, tuple)):
            for inner in value:
                self._record(inner)

    def copied_any(self, *values: Any) -> bool:
        return any(id(v) in self.copied for v in values)


def _request(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "tags": {"L": [{"S": "a"}]}}


@pytest.mark.parametrize("flag", [False, True])
def test_put_item_copies_the_item_only_when_mirrored(
    aws: Accounts, monkeypatch: pytest.MonkeyPatch, flag: bool
) -> None:
    env = DynamoEnv(aws)
    wrapped = env.wrap(flag=lambda write: flag, journal=None)
    spy = Spy(monkeypatch)
    item = _request("k1")
    wrapped.put_item(TableName="orders", Item=item)
    assert spy.copied_any(item) is flag
    assert env.get("primary", {"pk": {"S": "k1"}}) == item
    assert (env.get("shadow", {"pk": {"S": "k1"}}) == item) is flag


@pytest.mark.parametrize("flag", [False, True])
def test_batch_and_transaction_copy_only_mirrored_tables(
    aws: Accounts, monkeypatch: pytest.MonkeyPatch, flag: bool
) -> None:
    env = DynamoEnv(aws)
    for client in (env.p_raw, env.s_raw):
        create_table(client, "audit")
    # "audit" is never mirrored; "orders" as the parameter says.
    wrapped = env.wrap(flag=lambda write: flag and write.resource == "orders", journal=None)
    spy = Spy(monkeypatch)
    orders = [{"PutRequest": {"Item": _request("b1")}}]
    audit = [{"PutRequest": {"Item": _request("b2")}}]
    wrapped.batch_write_item(RequestItems={"orders": orders, "audit": audit})
    put = {"TableName": "orders", "Item": _request("t1")}
    put_audit = {"TableName": "audit", "Item": _request("t2")}
    wrapped.transact_write_items(TransactItems=[{"Put": put}, {"Put": put_audit}])

    assert not spy.copied_any(audit, put_audit)
    assert spy.copied_any(orders, put) is flag
    shadow_keys = {i["pk"]["S"] for i in env.scan("shadow")}
    assert shadow_keys == ({"b1", "t1"} if flag else set())
    audit_shadow = env.s_raw.scan(TableName="audit")["Items"]
    assert audit_shadow == []
    assert {i["pk"]["S"] for i in env.scan("primary")} == {"b1", "t1"}


@pytest.mark.parametrize("listening", [False, True])
def test_no_tenant_event_built_only_for_a_hook_that_asks(
    aws: Accounts, monkeypatch: pytest.MonkeyPatch, listening: bool
) -> None:
    built: list[NoTenant] = []

    def spy(**fields: Any) -> NoTenant:
        built.append(NoTenant(**fields))
        return built[-1]

    monkeypatch.setattr(dualwrite._core.decide, "NoTenant", spy)
    env = DynamoEnv(aws)
    hooks = [MetricsHook()] if listening else [RecordingHook()]
    wrapped = env.wrap(flag=lambda write: write.tenant is not None, journal=None, hooks=hooks)
    wrapped.put_item(TableName="orders", Item=_request("n1"))
    assert len(built) == (1 if listening else 0)
    assert env.get("primary", {"pk": {"S": "n1"}}) is not None
    assert env.get("shadow", {"pk": {"S": "n1"}}) is None


@pytest.mark.parametrize(
    ("typed_value", "python_value"),
    [
        ({"N": "1.50"}, Decimal("1.5")),
        ({"N": "7"}, 7),
        ({"N": "7"}, Decimal("7.000")),
        ({"N": "-0"}, 0),
        ({"S": "7"}, "7"),
    ],
)
def test_canonical_key_fast_paths_agree_across_levels(typed_value: Any, python_value: Any) -> None:
    client = _canon_key({"pk": {"S": "a"}, "sk": typed_value}, "client")
    resource = _canon_key({"pk": "a", "sk": python_value}, "resource")
    assert client == resource
    assert hash(client) == hash(resource)  # the key's lock stripe


def test_canonical_key_fast_paths_keep_kinds_apart() -> None:
    assert canonical({"N": "7"}, "client") != canonical({"S": "7"}, "client")
    assert canonical(True, "resource") != canonical(1, "resource")
    # A number DynamoDB would refuse: the primary judges it; the wrapper never raises.
    assert canonical({"N": "seven"}, "client") == ("N?", "'seven'")
    assert canonical({"N": "seven"}, "client") != canonical({"N": "7"}, "client")


@pytest.mark.parametrize("listening", [False, True])
def test_shadow_written_event_built_only_for_a_hook(
    aws: Accounts, monkeypatch: pytest.MonkeyPatch, listening: bool
) -> None:
    built: list[ShadowWritten] = []

    def spy(**fields: Any) -> ShadowWritten:
        built.append(ShadowWritten(**fields))
        return built[-1]

    monkeypatch.setattr(dualwrite._core.shadow, "ShadowWritten", spy)
    env = DynamoEnv(aws)
    recorder = RecordingHook()
    wrapped = env.wrap(journal=None, hooks=[recorder] if listening else [])
    item = _request("w1")
    wrapped.put_item(TableName="orders", Item=item)
    assert len(built) == (1 if listening else 0)
    assert recorder.kinds() == (["shadow_written"] if listening else [])
    assert env.get("shadow", {"pk": {"S": "w1"}}) == item


# -- the one-key handlers' decide phase (calls._guarded) ------------------------------------------


class _Item(dict):  # type: ignore[type-arg] # not exactly a dict: the handler's general path
    pass


_SHAPES = {
    "common": lambda value: value,
    "dict subclass": _Item,
    "key value not of the common shape": lambda value: {
        **value,
        "pk": {"S": value["pk"]["S"], "extra": None},
    },
}


def _one_key_calls(shape: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("put_item", {"TableName": "orders", "Item": shape({"pk": {"S": "k1"}, "n": {"N": "1"}})}),
        (
            "update_item",
            {
                "TableName": "orders",
                "Key": shape({"pk": {"S": "k1"}}),
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            },
        ),
        ("delete_item", {"TableName": "orders", "Key": shape({"pk": {"S": "k1"}})}),
    ]


@pytest.mark.parametrize("shape", list(_SHAPES), ids=list(_SHAPES))
@pytest.mark.parametrize("flag", [False, True])
def test_one_key_writes_ask_the_flag_once_whatever_the_request_s_shape(
    aws: Accounts, flag: bool, shape: str
) -> None:
    """The decide phase takes the common shape; any other goes the handler's whole way: either
    way the flag is asked once, with the key, and the outcome is plain boto3's."""
    env = DynamoEnv(aws)
    asked: list[tuple[str, Any]] = []

    def answer(write: Any) -> bool:
        asked.append((write.operation, write.key))
        return flag

    wrapped = env.wrap(flag=answer, journal=None)
    plain = aws.client("primary", "dynamodb")
    for method, params in _one_key_calls(_SHAPES[shape]):
        got: list[Any] = []
        for client in (wrapped, plain):
            try:
                got.append(getattr(client, method)(**params)["ResponseMetadata"]["HTTPStatusCode"])
            except Exception as exc:
                got.append(type(exc).__name__)
        assert got[0] == got[1], method
    well_formed = shape != "key value not of the common shape"
    if well_formed:
        key = {"pk": {"S": "k1"}}
        assert asked == [("PutItem", key), ("UpdateItem", key), ("DeleteItem", key)]
        assert env.get("primary", key) is None  # deleted last
        assert env.scan("shadow") == []
    else:  # refused by the primary; reported on the table with no key, asked once each
        assert asked == [("PutItem", None), ("UpdateItem", None), ("DeleteItem", None)]
        assert env.scan("primary") == []
        assert env.scan("shadow") == []


@pytest.mark.parametrize("flag", [False, True])
def test_a_decide_phase_that_raises_leaves_the_call_to_the_primary(
    aws: Accounts, monkeypatch: pytest.MonkeyPatch, flag: bool
) -> None:
    """Should reading the request fail in the decide phase, the primary gets the request as
    given, once, and a flag-on write is reported ``unreadable-request``; nothing is raised."""
    env = DynamoEnv(aws)
    recorder = RecordingHook()
    wrapped = env.wrap(flag=lambda write: flag, journal=None, hooks=[recorder])
    wrapped.put_item(TableName="orders", Item={"pk": {"S": "first"}})  # the table's key schema

    def broken(*args: Any) -> Any:
        raise RuntimeError("plain_key failed")

    monkeypatch.setattr(dualwrite._dynamodb.items, "plain_key", broken)
    sent: list[str] = []
    env.primary.meta.events.register("before-send", lambda request, **_: sent.append("sent"))
    item = {"pk": {"S": "k1"}, "n": {"N": "1"}}
    wrapped.put_item(TableName="orders", Item=item)
    assert sent == ["sent"]
    assert env.get("primary", {"pk": {"S": "k1"}}) == item
    assert env.get("shadow", {"pk": {"S": "k1"}}) is None
    reasons = [e.reason for e in recorder.of_kind("unsupported")]  # type: ignore[attr-defined]
    assert reasons == (["unreadable-request"] if flag else [])


# -- a mirrored put whose shadow call ends before the call returns reads the caller's item ------


def _python(item: dict[str, Any]) -> dict[str, Any]:
    """The resource-level form of ``_request``'s item."""
    return {"pk": item["pk"]["S"], "tags": [v["S"] for v in item["tags"]["L"]]}


@pytest.mark.parametrize("level", ["client", "resource"])
@pytest.mark.parametrize("shadow_timeout", [None, 2.0])
def test_put_item_copies_the_item_only_when_the_shadow_may_outlive_the_call(
    aws: Accounts, monkeypatch: pytest.MonkeyPatch, level: str, shadow_timeout: float | None
) -> None:
    """Sync mode with no ``shadow_timeout``: the shadow put (and the fleet check) run before the
    call returns, so they read the caller's item, not a copy; with a timeout the shadow call may
    outlive the call, and the item is copied (semantics 10). Either way both accounts hold the
    item as it was at call time, and a change the caller makes afterwards reaches neither."""
    env = DynamoEnv(aws, level=level)
    writer = dualwrite.DualWriter(flag=True, journal=None, shadow_timeout=shadow_timeout)
    wrapped = writer.wrap(env.primary, shadow=env.shadow)
    spy = Spy(monkeypatch)
    if level == "client":
        item = _request("c1")
        wrapped.put_item(TableName="orders", Item=item)
        item["tags"]["L"].append({"S": "later"})
        item["extra"] = {"S": "later"}
    else:
        item = _python(_request("c1"))
        wrapped.Table("orders").put_item(Item=item)
        item["tags"].append("later")
        item["extra"] = "later"
    assert spy.copied_any(item) is (shadow_timeout is not None)
    for side in ("primary", "shadow"):
        assert env.get(side, {"pk": {"S": "c1"}}) == _request("c1")
    writer.close()


def test_a_borrowed_item_is_mirrored_in_the_call_even_if_shadow_timeout_is_set_meanwhile(
    aws: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler reads the caller's item when no ``shadow_timeout`` is set; a timeout set
    during the call (here, from the primary's own request) applies from the next call on, so
    this one still waits for the shadow rather than leaving it with the caller's dict."""
    env = DynamoEnv(aws)
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, journal=None, shadow_timeout=None, hooks=[recorder])
    wrapped = writer.wrap(env.primary, shadow=env.shadow)
    spy = Spy(monkeypatch)

    def set_a_timeout(**_: Any) -> None:
        writer.shadow_timeout = 0.01

    released = threading.Event()

    def slow_shadow(**_: Any) -> None:
        released.wait(0.3)  # far past the 0.01 s set meanwhile; until released, the second time

    env.primary.meta.events.register("before-call.dynamodb.PutItem", set_a_timeout)
    env.shadow.meta.events.register("before-send.dynamodb.PutItem", slow_shadow)
    item = _request("t1")
    wrapped.put_item(TableName="orders", Item=item)
    item["pk"]["S"] = "changed"
    assert not spy.copied_any(item)
    assert recorder.kinds() == ["shadow_written"]
    assert env.get("shadow", {"pk": {"S": "t1"}}) == _request("t1")
    assert env.get("shadow", {"pk": {"S": "changed"}}) is None
    # The next call takes the new setting: its shadow call is late, and reads a copy.
    later = _request("t2")
    wrapped.put_item(TableName="orders", Item=later)
    assert spy.copied_any(later)
    assert [e.kind for e in recorder.events[1:]] == ["shadow_failed"]
    later["pk"]["S"] = "changed"
    # The late call ends (and reports) before the test leaves moto: it must not outlive it.
    released.set()
    deadline = time.monotonic() + 30
    while len(recorder.of_kind("shadow_written")) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert env.get("shadow", {"pk": {"S": "t2"}}) == _request("t2")
    assert env.get("shadow", {"pk": {"S": "changed"}}) is None
    writer.close()
