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
from boto3.dynamodb.types import Binary
from hypothesis import given, settings
from hypothesis import strategies as st

from dualwrite import Stage
from dualwrite._core.entries import QueuedKeys, shards
from dualwrite._dynamodb.batch import _queues
from dualwrite._dynamodb.keys import _canon_key, queue_key, well_formed_key
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
