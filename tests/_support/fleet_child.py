"""One process of a fleet: dual-writes hot keys that other processes write at the same time.

Usage: ``python fleet_child.py CONFIG_JSON`` with keys ``world`` (a :class:`kill_world.World` as
JSON), ``journal`` (path, shared by the fleet as processes of one host share the default
journal), ``mode``, ``script`` and:

- ``script="one"``: ``service`` (``"s3"``/``"dynamodb"``), ``op`` and ``value``: one write of
  ``value`` to the key ``hot`` (see :func:`write_one`; ``put`` is, for S3, a body and metadata,
  for DynamoDB ``SET v = :value ADD n :one``).
  ``default_timeout`` keeps the writer's default ``shadow_timeout`` (else ``None``).
- ``script="random"``: ``seed`` and ``ops``: that many seeded random writes on three hot keys of
  each service (see :func:`write_random`).

Environment (the test's levers on this process's shadow client, set per process):

- ``FLEET_HOLD_SHADOW=DIR``: the first shadow write request waits, just before it is sent, until
  ``DIR/release`` exists, after creating ``DIR/held``: another process can then write the same
  key on both accounts first, and this (older) shadow write lands last. ``DIR/returned`` is
  created once the caller's write call returned.
- ``FLEET_SHADOW_JITTER=SECONDS``: each shadow request waits a random time up to that.
- ``FLEET_GO=FILE``: after printing ``ready``, wait until ``FILE`` exists (a start barrier).

Prints ``ready`` when wrapped, ``done`` after ``flush()`` and ``close()`` returned.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from kill_world import World

import dualwrite

HOT = ["hot0", "hot1", "hot2"]
WRITES = frozenset(
    {
        "PutObject",
        "CopyObject",
        "DeleteObject",
        "DeleteObjects",
        "PutObjectTagging",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
    }
)
WAIT_LIMIT = 150.0  # never hang for ever: the test's own timeouts report the failure


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def hold_first_write(clients: list[Any], hold: Path) -> None:
    """Hold the first shadow write request (of any of ``clients``) until the test releases it."""
    lock = threading.Lock()
    held = False

    def before_send(event_name: str, **_: Any) -> None:
        nonlocal held
        if event_name.rsplit(".", 1)[-1] not in WRITES:
            return
        with lock:
            if held:
                return
            held = True
        (hold / "held").touch()
        wait_for(hold / "release")

    for client in clients:
        client.meta.events.register("before-send", before_send, unique_id="fleet-hold")


def jitter(clients: list[Any], seconds: float, rng: random.Random) -> None:
    lock = threading.Lock()

    def before_send(**_: Any) -> None:
        with lock:
            pause = rng.uniform(0, seconds)
        time.sleep(pause)

    for client in clients:
        client.meta.events.register("before-send", before_send, unique_id="fleet-jitter")


def write_one(s3: Any, ddb: Any, world: World, service: str, op: str, value: str) -> None:
    """One write of ``op`` to the key ``hot`` (``batch``: with other keys, in one call)."""
    if service == "s3":
        if op == "put":
            s3.put_object(
                Bucket=world.bucket,
                Key="hot",
                Body=f"body {value}".encode(),
                Metadata={"by": value},
            )
        elif op == "meta":  # the same bytes (the same ETag), other metadata
            s3.put_object(Bucket=world.bucket, Key="hot", Body=b"same", Metadata={"by": value})
        elif op == "tags":  # the same bytes (the same ETag), other tags
            s3.put_object(Bucket=world.bucket, Key="hot", Body=b"same", Tagging=f"by={value}")
        elif op == "delete":
            s3.delete_object(Bucket=world.bucket, Key="hot")
        else:  # batch
            s3.delete_objects(
                Bucket=world.bucket, Delete={"Objects": [{"Key": "hot"}, {"Key": "other"}]}
            )
    elif op == "put":
        ddb.update_item(
            TableName=world.table,
            Key={"pk": {"S": "hot"}},
            UpdateExpression="SET v = :v ADD n :one",
            ExpressionAttributeValues={":v": {"S": value}, ":one": {"N": "1"}},
        )
    elif op == "delete":
        ddb.delete_item(TableName=world.table, Key={"pk": {"S": "hot"}})
    else:  # batch: the hot key and 24 others
        ddb.batch_write_item(
            RequestItems={
                world.table: [
                    {"PutRequest": {"Item": {"pk": {"S": pk}, "v": {"S": value}}}}
                    for pk in ["hot", *(f"cold{i:02d}" for i in range(24))]
                ]
            }
        )


def write_random(s3: Any, ddb: Any, world: World, rng: random.Random, ops: int, me: str) -> None:
    """``ops`` seeded random writes on the hot keys, single-key and multi-key.

    S3 bodies come from a small set, so that two writes often share an ETag and differ only in
    metadata or tags; DynamoDB gets batches and transactions across the hot keys too.
    """
    for n in range(ops):
        key = rng.choice(HOT)
        roll = rng.random()
        try:
            if roll < 0.3:
                extra: dict[str, Any] = {"Metadata": {"by": me, "op": str(n)}}
                if rng.random() < 0.3:
                    extra = {"Tagging": f"by={me}&op={n}"}
                s3.put_object(
                    Bucket=world.bucket, Key=key, Body=rng.choice([b"", b"one", b"two"]), **extra
                )
            elif roll < 0.37:
                s3.delete_object(Bucket=world.bucket, Key=key)
            elif roll < 0.42:
                s3.delete_objects(
                    Bucket=world.bucket,
                    Delete={"Objects": [{"Key": k} for k in rng.sample(HOT, 2)]},
                )
            elif roll < 0.57:
                ddb.put_item(
                    TableName=world.table,
                    Item={"pk": {"S": key}, "by": {"S": me}, "op": {"N": str(n)}},
                )
            elif roll < 0.77:
                ddb.update_item(
                    TableName=world.table,
                    Key={"pk": {"S": key}},
                    UpdateExpression="SET #by = :me ADD n :one",
                    ExpressionAttributeNames={"#by": "by"},
                    ExpressionAttributeValues={":me": {"S": me}, ":one": {"N": "1"}},
                )
            elif roll < 0.84:
                ddb.delete_item(TableName=world.table, Key={"pk": {"S": key}})
            elif roll < 0.92:
                ddb.batch_write_item(
                    RequestItems={
                        world.table: [
                            {"PutRequest": {"Item": {"pk": {"S": k}, "by": {"S": me}}}}
                            if rng.random() < 0.7
                            else {"DeleteRequest": {"Key": {"pk": {"S": k}}}}
                            for k in rng.sample(HOT, 2)
                        ]
                    }
                )
            else:
                first, second = rng.sample(HOT, 2)
                ddb.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": world.table,
                                "Key": {"pk": {"S": first}},
                                "UpdateExpression": "ADD n :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}},
                            }
                        },
                        {
                            "Put": {
                                "TableName": world.table,
                                "Item": {"pk": {"S": second}, "by": {"S": me}},
                            }
                        },
                    ]
                )
        except ClientError:
            pass  # the primary refused (e.g. a transaction conflict): nothing to mirror


def main() -> None:
    config = json.loads(sys.argv[1])
    world = World.from_json(config["world"])
    primary, shadow = world.sessions()
    s_s3 = shadow.client("s3", endpoint_url=world.url)
    s_ddb = shadow.client("dynamodb", endpoint_url=world.url)
    if os.environ.get("FLEET_HOLD_SHADOW"):
        hold_first_write([s_s3, s_ddb], Path(os.environ["FLEET_HOLD_SHADOW"]))
    if os.environ.get("FLEET_SHADOW_JITTER"):
        rng = random.Random(config.get("seed", 0) + 7)
        jitter([s_s3, s_ddb], float(os.environ["FLEET_SHADOW_JITTER"]), rng)
    # By default a held shadow write waits for its release, not cut short: the overtaking itself
    # is what the test looks at. With "default_timeout", sync mode's shadow_timeout ends the
    # caller's wait first (the key is journaled) while the held write still lands later.
    timeout: dict[str, Any] = {} if config.get("default_timeout") else {"shadow_timeout": None}
    writer = dualwrite.DualWriter(
        flag=True, mode=config["mode"], journal=config["journal"], **timeout
    )
    s3 = writer.wrap(
        primary.client("s3", endpoint_url=world.url),
        shadow=s_s3,
        names={world.bucket: world.shadow_bucket},
    )
    ddb = writer.wrap(primary.client("dynamodb", endpoint_url=world.url), shadow=s_ddb)
    say("ready")
    if os.environ.get("FLEET_GO"):
        wait_for(Path(os.environ["FLEET_GO"]))
    if config["script"] == "one":
        write_one(s3, ddb, world, config["service"], config.get("op", "put"), config["value"])
        if os.environ.get("FLEET_HOLD_SHADOW"):
            (Path(os.environ["FLEET_HOLD_SHADOW"]) / "returned").touch()
    else:
        me = f"w{config['seed']}"
        write_random(s3, ddb, world, random.Random(config["seed"]), config["ops"], me)
    writer.flush()
    writer.close()
    say("done")


if __name__ == "__main__":
    main()
