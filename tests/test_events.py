"""``dualwrite.events._new_write``, the hot paths' constructor of :class:`dualwrite.Write`, builds
exactly what ``Write(...)`` builds."""

from __future__ import annotations

import pickle
import weakref
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dualwrite import Stage, Write
from dualwrite.events import _new_write

fields = st.fixed_dictionaries(
    {
        "tenant": st.none() | st.text(max_size=4),
        "service": st.sampled_from(["s3", "dynamodb", "job"]),
        "operation": st.sampled_from(["PutObject", "PutItem", "RunsHere"]),
        "resource": st.text(max_size=4),
        "shadow_resource": st.none() | st.text(max_size=4),
        "key": st.none() | st.text(max_size=4) | st.fixed_dictionaries({"pk": st.text(max_size=2)}),
        "stage": st.none() | st.sampled_from(list(Stage)),
    }
)


@given(fields)
def test_new_write_is_the_attrs_write(values: dict[str, Any]) -> None:
    built = _new_write(**values)
    reference = Write(**values)
    assert type(built) is Write
    assert attrs.asdict(built, recurse=False) == attrs.asdict(reference, recurse=False)
    assert built == reference
    assert (
        hash(built) == hash(reference)
        if values["key"] is None or isinstance(values["key"], str)
        else True
    )
    assert repr(built) == repr(reference)
    assert attrs.evolve(built, tenant="t") == attrs.evolve(reference, tenant="t")


def test_new_write_is_frozen_picklable_and_weakly_referenced() -> None:
    built = _new_write(None, "s3", "PutObject", "b", "b2", "k")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.key = "other"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(built)) == built
    assert weakref.ref(built)() is built
    assert _new_write(None, "s3", "PutObject", "b", None) == Write(
        tenant=None, service="s3", operation="PutObject", resource="b", shadow_resource=None
    )
