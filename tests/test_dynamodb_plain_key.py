"""The one-pass key of a put (``plain_key``) against the general path it shortcuts.

``plain_key`` must give exactly what ``snapshot(key_of(...))`` gives once ``well_formed_key``
passed, share nothing mutable with the item, and decline (``None``) whatever it does not
recognise, so that the general path (and its "malformed" verdict) still decides it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dualwrite._core.snapshot import snapshot
from dualwrite._dynamodb.keys import plain_key, well_formed_key

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
