"""The one-pass key of a put (``plain_key``) against the general path it shortcuts.

``plain_key`` must give exactly what ``snapshot(key_of(...))`` gives once ``well_formed_key``
passed, share nothing mutable with the item, and decline (``None``) whatever it does not
recognise, so that the general path (and its "malformed" verdict) still decides it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from dualwrite._core.snapshot import snapshot
from dualwrite._dynamodb.items import _checked_key, _decide_keyed
from dualwrite._dynamodb.keys import State, plain_key, well_formed_key

NAMES = ("pk", "sk")

typed_values = st.one_of(
    st.fixed_dictionaries({"S": st.text(max_size=5)}),
    st.fixed_dictionaries({"N": st.sampled_from(["1", "1.0", "-3", "x"])}),
    st.fixed_dictionaries({"B": st.binary(max_size=4)}),
    st.fixed_dictionaries({"B": st.binary(max_size=4).map(bytearray)}),
    st.fixed_dictionaries({"S": st.integers()}),
    st.fixed_dictionaries({"BOOL": st.booleans()}),
    st.dictionaries(st.sampled_from(["S", "N"]), st.text(max_size=2), max_size=2),
    st.none(),
    st.text(max_size=3),
)
python_values = st.one_of(
    st.text(max_size=5),
    st.integers(),
    st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.binary(max_size=4),
    st.binary(max_size=4).map(bytearray),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


def general(item: dict[str, Any], level: str) -> dict[str, Any] | None:
    """What _put_item did before the shortcut: the key, if well formed, copied; else None."""
    try:
        key = {name: item[name] for name in NAMES}
    except KeyError:
        return None
    return snapshot(key) if well_formed_key(key, level, NAMES) else None  # type: ignore[arg-type]


def check(item: dict[str, Any], level: str) -> None:
    fast = plain_key(item, NAMES, level)  # type: ignore[arg-type]
    if fast is None:
        return  # declined: the general path decides, as before
    assert fast == general(item, level)
    for name in NAMES:  # shares no mutable container or buffer with the caller's item
        assert fast[name] is not item[name] or type(item[name]) in (str, int, Decimal, bytes)
        if level == "client":
            assert all(type(inner) in (str, bytes) for inner in fast[name].values())


@settings(deadline=None)  # the machine is shared: a slow example is not a failure
@given(st.dictionaries(st.sampled_from([*NAMES, "other"]), typed_values, max_size=3))
def test_client_level_matches_the_general_path(item: dict[str, Any]) -> None:
    check(item, "client")


@settings(deadline=None)
@given(st.dictionaries(st.sampled_from([*NAMES, "other"]), python_values, max_size=3))
def test_resource_level_matches_the_general_path(item: dict[str, Any]) -> None:
    check(item, "resource")


def test_the_common_shapes_take_the_shortcut() -> None:
    item = {"pk": {"S": "a"}, "sk": {"N": "1"}, "n": {"L": []}}
    key = plain_key(item, NAMES, "client")
    assert key == {"pk": {"S": "a"}, "sk": {"N": "1"}}
    assert key is not None
    assert key["pk"] is not item["pk"]
    assert plain_key({"pk": "a", "sk": Decimal(1)}, NAMES, "resource") == {
        "pk": "a",
        "sk": Decimal(1),
    }


def test_what_it_declines() -> None:
    assert plain_key({"pk": {"S": "a"}}, NAMES, "client") is None  # a key attribute missing
    assert plain_key({"pk": {"B": bytearray(b"x")}, "sk": {"S": "b"}}, NAMES, "client") is None
    assert plain_key({"pk": True, "sk": "b"}, NAMES, "resource") is None  # bool is no key value


# -- the decide phase of UpdateItem/DeleteItem against _checked_key --------------------------------


class _Schemas:
    def __init__(self, described: dict[str, tuple[str, ...]]) -> None:
        self.described = described

    def known(self, table: str) -> tuple[str, ...] | None:
        return self.described.get(table)


class _Mirror:
    """What the decide phase reads of a mirror; the flag says on, the Write is the key's."""

    def __init__(self, level: str, schema: tuple[str, ...] | None) -> None:
        self.state = State(
            level=level,  # type: ignore[arg-type]
            schemas=_Schemas({} if schema is None else {"t": schema}),  # type: ignore[arg-type]
        )

    def decide(self, write: Any) -> tuple[Any, bool]:
        return write, True


def _decided_key(level: str, schema: tuple[str, ...] | None, key: Any) -> Any:
    mirror = _Mirror(level, schema)
    with patch("dualwrite._dynamodb.items._write_of", lambda m, op, table, key: key):
        decided = _decide_keyed("UpdateItem")(mirror, {"TableName": "t", "Key": key})  # type: ignore[arg-type]
    return None if decided is None else decided[1]


key_names = st.one_of(st.sampled_from([*NAMES, "other"]), st.integers(0, 1))


@settings(deadline=None)
@given(
    st.sampled_from([None, ("pk",), NAMES]),
    st.dictionaries(key_names, typed_values, max_size=3),
)
def test_the_keyed_decide_phase_matches_checked_key(
    schema: tuple[str, ...] | None, key: dict[Any, Any]
) -> None:
    """Known schema or not, the decide phase takes a key only where ``_checked_key`` would
    accept it, and copies it the same way; otherwise it declines (the handler decides)."""
    fast = _decided_key("client", schema, key)
    if fast is None:
        return
    state = _Mirror("client", schema).state
    assert fast == _checked_key(state, "t", key)
    for name, value in key.items():
        assert fast[name] is not value


def test_the_keyed_decide_phase_takes_the_common_key_of_an_undescribed_table() -> None:
    key = {"pk": {"S": "a"}, "sk": {"N": "1"}}
    assert _decided_key("client", None, key) == key
    assert _decided_key("client", None, {}) is None
    assert _decided_key("client", None, {1: {"S": "a"}}) is None  # a name that is no str
    assert _decided_key("client", ("pk",), key) is None  # not the schema's size
