"""Malformed DynamoDB requests reach the primary unchanged, whatever the wrapper computes first.

A client built with ``Config(parameter_validation=False)`` sends what the caller gives it and
the service answers with its own error. Through the wrapper the caller must see exactly that:
same exception class, error code and message as an unwrapped client of the same account gets
for the same request. Every handler of ``_dynamodb.HANDLERS`` is fed wrong types in keys,
attribute values, nested maps, ``RequestItems``, ``TransactItems`` and statements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore import xform_name
from botocore.config import Config
from conftest import REGION, Accounts, create_table, drop_tables

import dualwrite
from dualwrite._dynamodb import operations as _dynamodb
from dualwrite.testing import RecordingHook

NO_VALIDATION = Config(parameter_validation=False, retries={"max_attempts": 1})
TWIN_REGION = "eu-west-1"


class Pair:
    """A wrapped client and a plain twin (same account, another region), both unvalidated."""

    def __init__(self, accounts: Accounts) -> None:
        for region in (REGION, TWIN_REGION):
            create_table(accounts.client("primary", "dynamodb", region_name=region), "orders")
        create_table(accounts.client("shadow", "dynamodb"), "orders")
        self.recorder = RecordingHook()
        self.writer = dualwrite.DualWriter(flag=True, hooks=[self.recorder], journal=None)
        self.wrapped = self.writer.wrap(
            accounts.client("primary", "dynamodb", config=NO_VALIDATION),
            shadow=accounts.client("shadow", "dynamodb", config=NO_VALIDATION),
        )
        self.plain = accounts.client(
            "primary", "dynamodb", config=NO_VALIDATION, region_name=TWIN_REGION
        )


@pytest.fixture(scope="module")
def pair(shared_accounts: Accounts) -> Iterator[Pair]:
    """One pair for the module: every case below is refused by the service, so changes nothing
    (a case that succeeds on both sides writes the same item to each)."""
    made = Pair(shared_accounts)
    yield made
    made.writer.close()
    drop_tables(shared_accounts)


@pytest.fixture(scope="module")
def staged(pair: Pair, shared_accounts: Accounts) -> Iterator[Any]:
    """A wrapped client of a ``stage=`` writer at CUTOVER: calls go to the new account first,
    through the routing of ``dualwrite._core.routing`` (names, keys and stages derived first)."""
    writer = dualwrite.DualWriter(stage=lambda write: dualwrite.Stage.CUTOVER, journal=None)
    yield writer.wrap(
        shared_accounts.client("primary", "dynamodb", config=NO_VALIDATION),
        shadow=shared_accounts.client("shadow", "dynamodb", config=NO_VALIDATION),
    )
    writer.close()


@pytest.fixture
def fresh(pair: Pair) -> Pair:
    pair.recorder.clear()
    return pair


BAD_VALUES: list[Any] = [
    {"S": {"S": "asdf"}},  # issue 16: a map where a string belongs
    {"S": 123},
    {"N": "not a number"},
    {"N": ["1"]},
    {"S": "a", "N": "1"},  # two types in one value
    {"SS": [{"S": "x"}]},
    {"M": {"inner": {"S": {"S": "x"}}}},  # nested maps
    {"L": [{"M": [1, 2]}]},
    {"BOOL": {"S": "x"}},
    ["a"],
    "plain",
    None,
    {},
]


def _items(bad: Any) -> list[Any]:
    """Items carrying ``bad`` in the key, in another attribute, or being it."""
    return [{"pk": bad}, {"pk": {"S": "a"}, "other": bad}, bad]


CASES: list[tuple[str, dict[str, Any]]] = []
for _bad in BAD_VALUES:
    for _item in _items(_bad):
        CASES += [
            ("PutItem", {"TableName": "orders", "Item": _item}),
            ("DeleteItem", {"TableName": "orders", "Key": _item}),
            (
                "UpdateItem",
                {
                    "TableName": "orders",
                    "Key": _item,
                    "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": "x"}},
                },
            ),
            ("BatchWriteItem", {"RequestItems": {"orders": [{"PutRequest": {"Item": _item}}]}}),
            ("BatchWriteItem", {"RequestItems": {"orders": [{"DeleteRequest": {"Key": _item}}]}}),
            (
                "TransactWriteItems",
                {"TransactItems": [{"Put": {"TableName": "orders", "Item": _item}}]},
            ),
            (
                "TransactWriteItems",
                {
                    "TransactItems": [
                        {
                            "Update": {
                                "TableName": "orders",
                                "Key": _item,
                                "UpdateExpression": "SET v = :v",
                                "ExpressionAttributeValues": {":v": {"S": "x"}},
                            }
                        }
                    ]
                },
            ),
        ]
    CASES += [
        (
            "UpdateItem",
            {
                "TableName": "orders",
                "Key": {"pk": {"S": "a"}},
                "UpdateExpression": "SET v = :v",
                "ExpressionAttributeValues": {":v": _bad},
            },
        ),
        (
            "ExecuteStatement",
            {"Statement": "UPDATE orders SET v = 1 WHERE pk = ?", "Parameters": [_bad]},
        ),
        (
            "BatchExecuteStatement",
            {
                "Statements": [
                    {"Statement": "DELETE FROM orders WHERE pk = ?", "Parameters": [_bad]}
                ]
            },
        ),
        (
            "ExecuteTransaction",
            {
                "TransactStatements": [
                    {"Statement": "DELETE FROM orders WHERE pk = ?", "Parameters": [_bad]}
                ]
            },
        ),
    ]
CASES += [
    ("PutItem", {"TableName": {"S": "orders"}, "Item": {"pk": {"S": "a"}}}),
    ("PutItem", {"TableName": "orders", "Item": {"pk": {"S": "a"}}, "Expected": {"pk": 5}}),
    (
        "UpdateItem",
        {
            "TableName": "orders",
            "Key": {"pk": {"S": "a"}},
            "UpdateExpression": "SET #n = :v",
            "ExpressionAttributeNames": {"#n": 5},
            "ExpressionAttributeValues": {":v": {"S": "x"}},
        },
    ),
    ("UpdateItem", {"TableName": "orders", "Key": {"pk": {"S": "a"}}, "ReturnValues": 5}),
    ("DeleteItem", {"TableName": ["orders"], "Key": {"pk": {"S": "a"}}}),
    ("BatchWriteItem", {"RequestItems": "orders"}),
    ("BatchWriteItem", {"RequestItems": {"orders": "x"}}),
    ("BatchWriteItem", {"RequestItems": {"orders": [{"PutRequest": "x"}]}}),
    ("BatchWriteItem", {"RequestItems": {"orders": [{"PutRequest": {}, "DeleteRequest": {}}]}}),
    ("BatchWriteItem", {"RequestItems": {"orders": [5, None]}}),
    (
        "BatchWriteItem",
        {"RequestItems": {"missing": [{"PutRequest": {"Item": {"pk": {"S": "a"}}}}]}},
    ),
    ("TransactWriteItems", {"TransactItems": "x"}),
    ("TransactWriteItems", {"TransactItems": [{"Put": "x"}]}),
    ("TransactWriteItems", {"TransactItems": [{"Put": {"TableName": 5, "Item": {}}}]}),
    (
        "TransactWriteItems",
        {
            "TransactItems": [
                {
                    "Put": {"TableName": "orders", "Item": {"pk": {"S": "a"}}},
                    "Delete": {"TableName": "orders", "Key": {"pk": {"S": "a"}}},
                }
            ]
        },
    ),
    ("ExecuteStatement", {"Statement": 123}),
    ("ExecuteStatement", {"Statement": {"S": "DELETE FROM orders WHERE pk = 'a'"}}),
    ("ExecuteStatement", {"Statement": "DELETE FROM orders WHERE pk = ?", "Parameters": "x"}),
    ("ExecuteStatement", {"Statement": "INSERT INTO orders VALUE {'pk': 'a'", "Parameters": []}),
    ("BatchExecuteStatement", {"Statements": "x"}),
    ("BatchExecuteStatement", {"Statements": [{"Statement": 5}, "x"]}),
    ("ExecuteTransaction", {"TransactStatements": [{"Statement": ["DELETE"]}]}),
    (
        "ImportTable",
        {
            "S3BucketSource": "x",
            "InputFormat": 5,
            "TableCreationParameters": {"TableName": {"S": 1}},
        },
    ),
    ("RestoreTableFromBackup", {"TargetTableName": 5, "BackupArn": [1]}),
    ("RestoreTableToPointInTime", {"TargetTableName": {"S": "x"}}),
    ("StartBulkPutItems", {"TableName": ["x"]}),
]


def _id(case: tuple[str, dict[str, Any]]) -> str:
    return f"{case[0]}-{repr(case[1])[:80]}"


def _outcome(call: Callable[[], Any]) -> tuple[str, ...]:
    """What the caller sees: the response's data, or the exception's class, code and message."""
    try:
        response = call()
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return ("error", type(exc).__name__, str(code), str(exc))
    return ("ok", repr({k: v for k, v in response.items() if k != "ResponseMetadata"}))


def test_every_handler_is_covered() -> None:
    assert {api for api, _ in CASES} == set(_dynamodb.HANDLERS)


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_a_malformed_request_gets_the_unwrapped_clients_outcome(
    fresh: Pair, case: tuple[str, dict[str, Any]]
) -> None:
    api, params = case
    method = xform_name(api)
    got = _outcome(lambda: getattr(fresh.wrapped, method)(**params))
    expected = _outcome(lambda: getattr(fresh.plain, method)(**params))
    assert got == expected
    if got[0] == "error":  # refused by the primary: the shadow side did nothing at all
        assert fresh.recorder.events == []
        return
    # moto accepted what AWS would refuse: the shadow side reports it, never raises. A key it
    # cannot read is reported unsupported with no key (a table-level journal entry); a well-
    # formed key with a value the shadow refuses is a shadow failure of that key.
    kinds = fresh.recorder.kinds()
    assert kinds
    assert set(kinds) <= {"unsupported", "shadow_failed", "circuit_opened"}
    for event in fresh.recorder.of_kind("unsupported"):
        assert (event.reason, event.write.key) == ("unreadable-request", None)  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_nothing_the_wrapper_derives_before_the_primary_call_raises(
    fresh: Pair, case: tuple[str, dict[str, Any]]
) -> None:
    """The bare handler (without the safety net of ``_guarded``) reaches the primary call with
    the request as given."""
    api, params = case
    mirror = fresh.wrapped._self_mirror

    class Reached(Exception):
        pass

    def primary(**given: Any) -> Any:
        raise Reached(given)

    bare = _dynamodb.HANDLERS[api].__wrapped__  # type: ignore[attr-defined]
    with pytest.raises(Reached) as reached:
        bare(mirror, primary, dict(params), None)
    sent = dict(reached.value.args[0])
    if api == "UpdateItem":  # the one change the wrapper makes: ask for the resulting item
        sent.pop("ReturnValues", None)
        params = {k: v for k, v in params.items() if k != "ReturnValues"}
    assert sent == params


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_a_malformed_request_routed_by_stage_gets_the_unwrapped_clients_outcome(
    fresh: Pair, staged: Any, case: tuple[str, dict[str, Any]]
) -> None:
    api, params = case
    method = xform_name(api)
    got = _outcome(lambda: getattr(staged, method)(**params))
    assert got == _outcome(lambda: getattr(fresh.plain, method)(**params))
