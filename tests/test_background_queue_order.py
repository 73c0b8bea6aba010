"""Background jobs of one key stay in order in the two cases a review found them overtaken.

* One DynamoDB key spelled two ways (``{"N": "1.0"}`` and ``{"N": "1"}``): the key's lock
  already treated them as one key, its queue did not, so the later write's job ran first and
  the older one then overwrote the shadow.
* A write made while :meth:`DualWriter.close` drains the queue: it runs in the caller's thread,
  and went to the shadow before an older queued job of the same key.

Both left the shadow behind the primary with nothing journaled.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from conftest import Accounts, DynamoEnv

import dualwrite
from dualwrite.journal import MemoryJournal


def _hold_first_shadow_write(env: DynamoEnv) -> threading.Event:
    """Hold the shadow's next BatchWriteItem or PutItem until the returned event is set."""
    release, armed = threading.Event(), [True]

    def hold(**_: Any) -> None:
        if armed[0]:
            armed[0] = False
            release.wait(10)

    for operation in ("BatchWriteItem", "PutItem"):
        env.shadow.meta.events.register(f"before-call.dynamodb.{operation}", hold)
    return release


@pytest.mark.parametrize("single_writer", [False, True])
def test_one_number_key_spelled_two_ways_keeps_one_queue(
    aws: Accounts, single_writer: bool
) -> None:
    env = DynamoEnv(aws, sort_key=True)
    writer = dualwrite.DualWriter(
        flag=True,
        mode="background",
        journal=MemoryJournal(),
        workers=2,
        single_writer=single_writer,
    )
    ddb = writer.wrap(env.primary, shadow=env.shadow)
    release = _hold_first_shadow_write(env)
    older = {"pk": {"S": "a"}, "sk": {"N": "1.0"}, "v": {"N": "1"}}
    ddb.batch_write_item(RequestItems={"orders": [{"PutRequest": {"Item": older}}]})
    ddb.put_item(TableName="orders", Item={"pk": {"S": "a"}, "sk": {"N": "1"}, "v": {"N": "2"}})
    time.sleep(0.3)  # the put's job would run now, were it on another queue
    release.set()
    assert writer.flush(timeout=30)
    assert env.scan("shadow") == env.scan("primary")
    assert [item["v"] for item in env.scan("shadow")] == [{"N": "2"}]
    writer.close()


@pytest.mark.parametrize("single_writer", [False, True])
def test_a_write_made_while_close_drains_waits_for_its_keys_queued_jobs(
    aws: Accounts, single_writer: bool
) -> None:
    env = DynamoEnv(aws)
    journal = MemoryJournal()
    writer = dualwrite.DualWriter(
        flag=True, mode="background", journal=journal, workers=2, single_writer=single_writer
    )
    ddb = writer.wrap(env.primary, shadow=env.shadow)
    release = _hold_first_shadow_write(env)
    ddb.put_item(TableName="orders", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    closing = threading.Thread(target=writer.close, kwargs={"timeout": 20})
    closing.start()
    time.sleep(0.3)  # close() is draining: calls now run their shadow write in this thread
    late = threading.Thread(
        target=ddb.put_item,
        kwargs={"TableName": "orders", "Item": {"pk": {"S": "a"}, "n": {"N": "5"}}},
    )
    late.start()
    time.sleep(0.3)
    release.set()
    late.join(30)
    closing.join(30)
    assert env.scan("primary") == [{"pk": {"S": "a"}, "n": {"N": "5"}}]
    assert env.scan("shadow") == env.scan("primary")
    assert list(journal.entries()) == []


def test_a_write_whose_older_job_outlives_close_is_journaled(aws: Accounts) -> None:
    """close() timed out with the key's job still held: the late write may not race it to the
    shadow, so it goes to the primary and is journaled (reason ``closed``) for repair."""
    env = DynamoEnv(aws)
    journal = MemoryJournal()
    writer = dualwrite.DualWriter(flag=True, mode="background", journal=journal, workers=2)
    ddb = writer.wrap(env.primary, shadow=env.shadow)
    release = _hold_first_shadow_write(env)
    ddb.put_item(TableName="orders", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    closing = threading.Thread(target=writer.close, kwargs={"timeout": 0.5})
    closing.start()
    time.sleep(0.2)
    ddb.put_item(TableName="orders", Item={"pk": {"S": "a"}, "n": {"N": "5"}})  # waits, then
    closing.join(30)
    reasons = sorted(entry.reason for entry in journal.entries())
    assert "closed" in reasons
    release.set()
    time.sleep(0.5)  # the held job finishes on its daemon thread
    assert writer.repair().failed == 0
    assert env.scan("shadow") == env.scan("primary") == [{"pk": {"S": "a"}, "n": {"N": "5"}}]
