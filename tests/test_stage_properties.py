"""Convergence under random writes and stage flips: DUAL_WRITE <-> CUTOVER, any sequence.

The operations of ``test_dynamodb_properties`` (conditional puts, every kind of update, deletes,
batches with unprocessed items, transactions) are interleaved with flips of the tenant between
DUAL_WRITE (old account first) and CUTOVER (new account first). Both accounts start equal, as
the playbook requires before a cutover, and the new account's table has another name
(``names=`` a callable, so the reverse direction must invert it). After any sequence, every key
is equal in both accounts and the only events are ``shadow_written``.

moto's requests are made atomic here (``atomic_moto_module``): moto applies a transaction item
by item and undoes it when a condition fails, so a background worker reading the item at that
moment saw a state DynamoDB (whose transactions are isolated) never shows, and copied it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from conftest import Accounts, create_table
from hypothesis import given
from hypothesis import strategies as st
from test_dynamodb_properties import FAST, KEYS, SEED, THOROUGH, Harness, apply, operations

import dualwrite
from dualwrite import Stage


@attrs.frozen
class Flip:
    """Move the tenant to the other one of DUAL_WRITE and CUTOVER."""


staged_sequences = st.lists(st.one_of(operations, st.just(Flip())), min_size=1, max_size=20)


class StagedHarness(Harness):
    """The property harness with a ``stage=`` writer and a renamed table in the new account."""

    def __init__(self, accounts: Accounts, mode: str) -> None:
        super().__init__(accounts, "client", mode=mode)
        self.writer.close()
        self.stage = Stage.DUAL_WRITE
        self.writer = dualwrite.DualWriter(
            stage=lambda write: self.stage, hooks=[self.recorder], mode=mode
        )
        self.wrapped = self.writer.wrap(
            accounts.client("primary", "dynamodb"),
            shadow=accounts.client("shadow", "dynamodb"),
            names=lambda table: f"{table}-v2",
        )
        self.leave.choose = lambda table, request: False

    def fresh(self) -> None:
        super().fresh()
        self.stage = Stage.DUAL_WRITE
        create_table(self.s_raw, f"{self.table}-v2")
        for key in KEYS:
            item = self.typed({"pk": key, **SEED})
            self.s_raw.put_item(TableName=f"{self.table}-v2", Item=item)

    def drop(self) -> None:
        super().drop()
        self.s_raw.delete_table(TableName=f"{self.table}-v2")

    def read(self, side: str, key: str) -> dict[str, Any] | None:
        if side == "primary":
            return super().read(side, key)
        item = self.s_raw.get_item(
            TableName=f"{self.table}-v2", Key=self.typed({"pk": key}), ConsistentRead=True
        ).get("Item")
        from test_dynamodb_properties import DESERIALIZER  # noqa: PLC0415

        return None if item is None else {k: DESERIALIZER.deserialize(v) for k, v in item.items()}


def check_staged(h: StagedHarness, ops: list[Any]) -> None:
    h.fresh()
    try:
        for op in ops:
            if isinstance(op, Flip):
                h.stage = Stage.CUTOVER if h.stage is Stage.DUAL_WRITE else Stage.DUAL_WRITE
            else:
                apply(h, op)
        assert h.writer.flush(timeout=60)
        for key in KEYS:
            assert h.read("shadow", key) == h.read("primary", key), (key, ops)
        assert set(h.recorder.kinds()) <= {"shadow_written"}, h.recorder.events
    finally:
        h.drop()


pytestmark = pytest.mark.usefixtures("atomic_moto_module")


@pytest.fixture(scope="module")
def sync_staged(shared_accounts: Accounts) -> Iterator[StagedHarness]:
    harness = StagedHarness(shared_accounts, "sync")
    yield harness
    harness.writer.close()


@pytest.fixture(scope="module")
def background_staged(shared_accounts: Accounts) -> Iterator[StagedHarness]:
    harness = StagedHarness(shared_accounts, "background")
    yield harness
    harness.writer.close()


@FAST
@given(ops=staged_sequences)
def test_flips_converge_in_sync_mode(sync_staged: StagedHarness, ops: list[Any]) -> None:
    check_staged(sync_staged, ops)


@FAST
@given(ops=staged_sequences)
def test_flips_converge_in_background_mode(
    background_staged: StagedHarness, ops: list[Any]
) -> None:
    check_staged(background_staged, ops)


@pytest.mark.slow
@THOROUGH
@given(ops=staged_sequences)
def test_flips_converge_thoroughly(background_staged: StagedHarness, ops: list[Any]) -> None:
    check_staged(background_staged, ops)
