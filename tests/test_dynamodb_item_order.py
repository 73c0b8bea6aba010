"""Whole items compare by value, not by the order of their attributes.

DynamoDB does not promise to return an item's attributes (or a set's elements) in the order
they were written. The fleet check, the follower and repair compare items the primary returns
with the image written or with another read: two equal items in another order must be equal,
or every check would see a key "moved" and rewrite it.
"""

from __future__ import annotations

from decimal import Decimal

from dualwrite._dynamodb.fleet import _same_item
from dualwrite._dynamodb.keys import canonical_item

ITEM = {
    "pk": {"S": "a"},
    "n": {"N": "1.50"},
    "tags": {"SS": ["x", "y"]},
    "doc": {"M": {"b": {"BOOL": True}, "a": {"L": [{"S": "z"}]}}},
}
REORDERED = {
    "doc": {"M": {"a": {"L": [{"S": "z"}]}, "b": {"BOOL": True}}},
    "tags": {"SS": ["y", "x"]},
    "n": {"N": "1.5"},
    "pk": {"S": "a"},
}


def test_client_items_in_another_order_are_the_same_item() -> None:
    assert canonical_item(ITEM, "client") == canonical_item(REORDERED, "client")
    assert _same_item(ITEM, REORDERED, "client")


def test_a_changed_attribute_is_another_item() -> None:
    changed = {**REORDERED, "n": {"N": "2"}}
    assert not _same_item(ITEM, changed, "client")
    assert not _same_item(ITEM, {k: v for k, v in ITEM.items() if k != "doc"}, "client")
    assert not _same_item(ITEM, None, "client")
    assert _same_item(None, None, "client")


def test_resource_items_in_another_order_are_the_same_item() -> None:
    item = {"pk": "a", "n": Decimal("1.50"), "tags": {"x", "y"}}
    reordered = {"tags": {"y", "x"}, "n": Decimal("1.5"), "pk": "a"}
    assert _same_item(item, reordered, "resource")
    assert not _same_item(item, {**reordered, "n": Decimal(2)}, "resource")
