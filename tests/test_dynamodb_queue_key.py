"""A DynamoDB key's lock and its background queue are chosen from one canonical form.

A background ``batch_write_item`` computes each key's canonical form once, for its lock
(``_canon_key`` at the pair's level), and takes its queue from it too (``QueuedKeys``); every
other write's queue comes from ``queue_key``, which tells the level from the value's shape. The
two must agree on every key a primary can accept, or a batch's job and a later write of the same
key would sit on different queues and the older could overwrite the newer on the shadow.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import boto3
import pytest
from boto3.dynamodb.types import Binary
from hypothesis import given, settings
from hypothesis import strategies as st

import dualwrite
from dualwrite import Stage
from dualwrite._core.entries import QueuedKeys, shards
from dualwrite._dynamodb.batch import _queues
from dualwrite._dynamodb.converge import _Change, new_change
from dualwrite._dynamodb.keys import (
    _canon_key,
    _canon_map,
    _canon_python,
    _canon_typed,
    item_key,
    queue_key,
    well_formed_key,
)
from dualwrite._dynamodb.service import DynamoDB
from dualwrite.events import Write

numbers = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["1", "1.0", "01", "1e0", "-0", "0.10", "100E-2", "3.14159"]),
)
typed_values = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(min_size=1, max_size=6)),
    st.builds(lambda n: {"N": n}, numbers),
    st.builds(lambda b: {"B": b}, st.binary(min_size=1, max_size=4)),
)
python_values = st.one_of(
    st.text(min_size=1, max_size=6),
    st.integers(-(10**12), 10**12),
    numbers.map(Decimal),
    st.binary(min_size=1, max_size=4),
    st.binary(min_size=1, max_size=4).map(Binary),
)


def keys(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(["pk", "sk"]), values, min_size=1, max_size=2)


@settings(max_examples=300, deadline=None)
@given(keys(typed_values))
def test_client_level_lock_and_queue_forms_agree(key: dict[str, Any]) -> None:
    assert well_formed_key(key, "client")
    assert _canon_key(key, "client") == queue_key(key)


@settings(max_examples=300, deadline=None)
@given(keys(python_values))
def test_resource_level_lock_and_queue_forms_agree(key: dict[str, Any]) -> None:
    assert well_formed_key(key, "resource")
    assert _canon_key(key, "resource") == queue_key(key)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["orders", "arn:aws:dynamodb:us-east-1:1:table/orders", "events"]),
            keys(typed_values),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([None, Stage.DUAL_WRITE, Stage.CUTOVER]),
)
def test_a_batch_s_queues_are_those_every_other_write_of_its_keys_takes(
    pairs: list[tuple[str, dict[str, Any]]], stage: Stage | None
) -> None:
    """What the batch handler computes from its locks' keys is what ``shards`` computes for a
    one-key write of each key (a table's name and its ARN are one table; a write handled
    new-first is queued under its old account's name)."""
    service = DynamoDB()
    writes = [
        Write(
            tenant=None,
            service="dynamodb",
            operation="BatchWriteItem",
            resource=table,
            shadow_resource=f"{table}-old",
            key=key,
            stage=stage,
        )
        for table, key in pairs
    ]
    batch = attrs.evolve(writes[0], key=None)
    canons = [_canon_key(write.key, "client") for write in writes]
    queued = QueuedKeys(writes, _queues(writes, canons))
    assert shards(service, batch, queued) == [shards(service, write, None) for write in writes]
    assert shards(service, batch, queued) == shards(service, batch, list(writes))


# -- the batch path's one-pass helpers, held to the general path they shortcut -----------------

any_typed = st.one_of(
    typed_values,
    st.fixed_dictionaries({"S": st.integers()}),
    st.fixed_dictionaries({"BOOL": st.booleans()}),
    st.fixed_dictionaries({"B": st.binary(max_size=3).map(bytearray)}),
    st.dictionaries(st.sampled_from(["S", "N"]), st.text(max_size=2), max_size=2),
    st.none(),
    st.text(max_size=3),
)
any_python = st.one_of(
    python_values, st.booleans(), st.none(), st.lists(st.integers(), max_size=2), st.floats()
)


def _general_canon(key: Any, level: str) -> Any:
    """``_canon_key`` before its one-pass branch."""
    try:
        return _canon_map(key, _canon_typed if level == "client" else _canon_python)
    except Exception:
        return ("?",)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["pk", "sk", "x"]), any_typed, max_size=3))
def test_canon_key_one_pass_is_the_general_form(key: dict[str, Any]) -> None:
    assert _canon_key(key, "client") == _general_canon(key, "client")


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["pk", "sk", "other"]), any_typed, max_size=3),
    st.sampled_from([("pk",), ("pk", "sk")]),
)
def test_item_key_is_key_of_once_well_formed(item: dict[str, Any], names: tuple[str, ...]) -> None:
    _check_item_key(item, names, "client")


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["pk", "sk", "other"]), any_python, max_size=3),
    st.sampled_from([("pk",), ("pk", "sk")]),
)
def test_item_key_is_key_of_once_well_formed_resource_level(
    item: dict[str, Any], names: tuple[str, ...]
) -> None:
    _check_item_key(item, names, "resource")


def _check_item_key(item: dict[str, Any], names: tuple[str, ...], level: Any) -> None:
    read = item_key(item, names, level)
    if read is None:
        return  # declined: the general path decides
    fast, canon = read
    general = {name: item[name] for name in names}
    assert fast == general
    assert canon == _canon_key(general, level)
    assert well_formed_key(general, level, names)
    assert all(fast[name] is item[name] for name in names)  # the snapshot's own values


def test_new_change_is_the_attrs_change() -> None:
    write = Write(
        tenant="t",
        service="dynamodb",
        operation="BatchWriteItem",
        resource="orders",
        shadow_resource="orders",
        key={"pk": {"S": "a"}},
    )
    for generation in ((), (7,)):
        built = new_change(write, "orders", {"pk": {"S": "a"}}, {"v": {"N": "1"}}, *generation)
        reference = _Change(
            write=write,
            table="orders",
            key={"pk": {"S": "a"}},
            item={"v": {"N": "1"}},
            **({"generation": generation[0]} if generation else {}),
        )
        assert type(built) is _Change
        assert built == reference
        assert repr(built) == repr(reference)
        assert attrs.evolve(built, item=None) == attrs.evolve(reference, item=None)


def test_key_locks_are_each_key_lock_once_in_one_order() -> None:
    writer = dualwrite.DualWriter(flag=True, journal=None)
    clients = [
        boto3.client(
            "dynamodb", region_name="us-east-1", aws_access_key_id=k, aws_secret_access_key=k
        )
        for k in ("primary", "shadow")
    ]
    mirror = writer.wrap(clients[0], shadow=clients[1])._self_mirror
    targets: list[tuple[str, object]] = [("orders", i % 7) for i in range(20)]
    targets += [("events", 3), ("orders", "k"), ("orders", {"pk": "not an int"})]
    locks = mirror.key_locks(targets)
    expected = {id(mirror.key_lock(r, k)): mirror.key_lock(r, k) for r, k in targets}
    assert locks == [expected[ident] for ident in sorted(expected)]
    assert len(locks) == len({id(lock) for lock in locks})


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**38 - 1), st.sampled_from(["{}", "0{}", "{}.0", "{}E0", "{}.000"]))
def test_every_spelling_of_an_integer_key_has_one_canonical_form_and_hash(
    number: int, spelling: str
) -> None:
    """A plain integer ("42") is canonicalised as an int, other spellings as a Decimal: equal,
    and hashed equal, so they share one lock (``hash(canon)``) and one queue."""
    plain = _canon_key({"pk": {"S": "a"}, "sk": {"N": str(number)}}, "client")
    spelled = _canon_key({"sk": {"N": spelling.format(number)}, "pk": {"S": "a"}}, "client")
    resource = _canon_key({"pk": "a", "sk": Decimal(number)}, "resource")
    assert plain == spelled == resource
    assert hash(plain) == hash(spelled) == hash(resource)
    assert type(dict(plain)["sk"][1]) is int  # type: ignore[call-overload]
    assert hash(plain) == hash(queue_key({"pk": {"S": "a"}, "sk": {"N": spelling.format(number)}}))


@pytest.mark.parametrize("digits", ["\u00b2", "\u0661\u0662", "1_000", " 1", "+1"])
def test_digits_int_would_refuse_or_python_would_misread_are_not_taken_as_integers(
    digits: str,
) -> None:
    """``"²".isdigit()`` is true and ``int("²")`` raises; ``int("1_000")`` is 1000 where
    DynamoDB refuses the number: only ASCII digits take the ``int`` form."""
    canon = _canon_key({"pk": {"N": digits}}, "client")
    assert type(dict(canon)["pk"][1]) is not int  # type: ignore[call-overload]
