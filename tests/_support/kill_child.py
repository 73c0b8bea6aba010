"""The child of the kill tests: a dual-write burst through wrapped clients, until it is killed.

Usage: ``python kill_child.py CONFIG_JSON`` with keys ``world`` (a :class:`kill_world.World` as
JSON), ``journal`` (path), ``mode`` (``"sync"``/``"background"``), ``seed``, ``script`` and, for
the deterministic scripts, ``kill_on``; ``shadow_delay`` (seconds, optional) slows each shadow
request by a random delay up to that, so that shadow writes lag (and queue up in background mode).

Scripts:

- ``random``: a seeded mix on a small key space, so that keys are overwritten and deleted:
  ``put_object`` (bytes, str and file bodies, metadata, content types, tags), ``delete_object``,
  DynamoDB ``put_item``, ``update_item`` (ADD counters), ``delete_item``, a 25-item
  ``batch_write_item`` and a ``transact_write_items``. Prints ``ready``, then ``op N NAME`` after
  each call returned, forever (the parent kills it).
- ``put`` / ``delete`` / ``update`` / ``batch`` / ``transact``: a few writes of that kind; the
  process SIGKILLs itself during the ``kill_on``-th, at the point ``kill_at`` names (see
  :class:`Trap`; by default right after the primary's ack).
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import sys
import time
from typing import Any

from botocore.exceptions import ClientError
from kill_world import World

import dualwrite

S3_KEYS = [f"k{i:02d}" for i in range(24)]
PKS = [f"p{i:02d}" for i in range(40)]
SHADOW_WRITES = frozenset(
    {"PutObject", "CopyObject", "DeleteObject", "PutItem", "UpdateItem", "DeleteItem"}
    | {"BatchWriteItem", "TransactWriteItems", "PutObjectTagging"}
)
KILL_OPERATIONS = {
    "put": "s3.PutObject",
    "update": "dynamodb.UpdateItem",
    "batch": "dynamodb.BatchWriteItem",
    "delete": "s3.DeleteObject",
    "transact": "dynamodb.TransactWriteItems",
}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def slow_shadow(client: Any, delay: float, rng: random.Random) -> None:
    """Make each request of ``client`` wait up to ``delay`` seconds before it is sent."""

    def wait(**_: Any) -> None:
        time.sleep(rng.uniform(0, delay))

    client.meta.events.register("before-send", wait, unique_id="kill-child-slow-shadow")


class Trap:
    """SIGKILLs this process at one point of the ``kill_on``-th scripted call, once armed.

    Points: ``primary-ack`` (the primary client's ``after-call`` of the script's operation: the
    primary holds the write, the wrapper never saw its answer), ``shadow-send`` (the shadow
    client's first write request, just before it is sent) and ``shadow-ack`` (the shadow
    client's ``after-call`` of its first write: the shadow holds it, the wrapper does not know).
    """

    def __init__(self, point: str) -> None:
        self.point = point
        self.armed = False

    def kill(self) -> None:
        if self.armed:
            os.kill(os.getpid(), signal.SIGKILL)

    def install(self, primary: Any, shadow: list[Any], operation: str) -> None:
        def primary_ack(http_response: Any, **_: Any) -> None:
            if http_response.status_code < 300:  # an error is not an ack
                self.kill()

        def shadow_send(event_name: str, **_: Any) -> None:
            if event_name.rsplit(".", 1)[-1] in SHADOW_WRITES:
                self.kill()

        def shadow_ack(event_name: str, http_response: Any, **_: Any) -> None:
            if event_name.rsplit(".", 1)[-1] in SHADOW_WRITES and http_response.status_code < 300:
                self.kill()

        if self.point == "primary-ack":
            primary.meta.events.register(f"after-call.{operation}", primary_ack, unique_id="trap")
        for client in shadow:
            if self.point == "shadow-send":
                client.meta.events.register("before-send", shadow_send, unique_id="trap")
            elif self.point == "shadow-ack":
                client.meta.events.register("after-call", shadow_ack, unique_id="trap")


def body_for(rng: random.Random, n: int) -> tuple[Any, bytes]:
    """A put_object body of a random kind, and the bytes it stands for."""
    data = f"op {n} ".encode() + rng.randbytes(rng.choice([0, 10, 300, 5000]))
    kind = rng.choice(["bytes", "str", "file", "file-at-offset"])
    if kind == "str":
        text = data.hex()
        return text, text.encode()
    if kind == "bytes":
        return data, data
    buffer = io.BytesIO(b"skip me" + data)
    if kind == "file-at-offset":
        buffer.seek(7)
        return buffer, data
    return io.BytesIO(data), data


def typed_item(pk: str, n: int, rng: random.Random) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": pk}, "v": {"N": str(n)}}
    if rng.random() < 0.5:
        item["blob"] = {"B": rng.randbytes(rng.randint(1, 64))}
    if rng.random() < 0.3:
        item["tags"] = {"SS": sorted({f"t{rng.randint(0, 9)}" for _ in range(3)})}
    return item


def random_burst(s3: Any, ddb: Any, world: World, rng: random.Random) -> None:
    for n in range(1, 1_000_000):
        roll = rng.random()
        try:
            if roll < 0.30:
                body, _ = body_for(rng, n)
                extra: dict[str, Any] = {"Metadata": {"op": str(n)}}
                if rng.random() < 0.5:
                    extra["ContentType"] = rng.choice(["text/plain", "image/png"])
                if rng.random() < 0.3:
                    extra["Tagging"] = f"op={n}"
                s3.put_object(Bucket=world.bucket, Key=rng.choice(S3_KEYS), Body=body, **extra)
                name = "put_object"
            elif roll < 0.40:
                s3.delete_object(Bucket=world.bucket, Key=rng.choice(S3_KEYS))
                name = "delete_object"
            elif roll < 0.55:
                ddb.put_item(TableName=world.table, Item=typed_item(rng.choice(PKS), n, rng))
                name = "put_item"
            elif roll < 0.75:
                ddb.update_item(
                    TableName=world.table,
                    Key={"pk": {"S": rng.choice(PKS)}},
                    UpdateExpression="ADD n :one SET last_op = :n",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":n": {"N": str(n)}},
                )
                name = "update_item"
            elif roll < 0.82:
                ddb.delete_item(TableName=world.table, Key={"pk": {"S": rng.choice(PKS)}})
                name = "delete_item"
            elif roll < 0.92:
                requests: list[dict[str, Any]] = []
                for pk in rng.sample(PKS, 25):
                    if rng.random() < 0.8:
                        requests.append({"PutRequest": {"Item": typed_item(pk, n, rng)}})
                    else:
                        requests.append({"DeleteRequest": {"Key": {"pk": {"S": pk}}}})
                ddb.batch_write_item(RequestItems={world.table: requests})
                name = "batch_write_item"
            else:
                put, update, delete = rng.sample(PKS, 3)
                ddb.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": world.table, "Item": typed_item(put, n, rng)}},
                        {
                            "Update": {
                                "TableName": world.table,
                                "Key": {"pk": {"S": update}},
                                "UpdateExpression": "ADD n :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}},
                            }
                        },
                        {"Delete": {"TableName": world.table, "Key": {"pk": {"S": delete}}}},
                    ]
                )
                name = "transact_write_items"
        except ClientError as exc:
            # A primary refusal reaches the caller unchanged; nothing to mirror then.
            name = f"refused-{exc.response['Error']['Code']}"
        say(f"op {n} {name}")


def scripted(
    script: str, s3: Any, ddb: Any, world: World, writer: Any, trap: Trap, kill_on: int
) -> None:
    """A few writes of one kind; ``trap`` kills the process during the ``kill_on``-th.

    Each write is flushed before the next: the earlier writes are on the shadow (and out of the
    journal) when the kill comes, so only the killed write itself can be journaled.
    """
    for n in range(1, 6):
        writer.flush()
        trap.armed = n == kill_on
        if script == "put":
            key = ["d0", "d1", "d0", "d1", "d0"][n - 1]
            s3.put_object(
                Bucket=world.bucket, Key=key, Body=f"version {n}".encode(), Metadata={"n": str(n)}
            )
        elif script == "delete":
            if n == kill_on:
                s3.delete_object(Bucket=world.bucket, Key="d0")
            else:
                s3.put_object(Bucket=world.bucket, Key="d0", Body=f"version {n}".encode())
        elif script == "update":
            ddb.update_item(
                TableName=world.table,
                Key={"pk": {"S": "u0"}},
                UpdateExpression="ADD n :one SET last_op = :n",
                ExpressionAttributeValues={":one": {"N": "1"}, ":n": {"N": str(n)}},
            )
        elif script == "transact":
            ddb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": world.table,
                            "Key": {"pk": {"S": f"t{i}"}},
                            "UpdateExpression": "ADD n :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    }
                    for i in range(3)
                ]
            )
        else:
            ddb.batch_write_item(
                RequestItems={
                    world.table: [
                        {"PutRequest": {"Item": {"pk": {"S": f"b{i:02d}"}, "v": {"N": str(n)}}}}
                        for i in range(25)
                    ]
                }
            )
        say(f"op {n} {script}")


def main() -> None:
    config = json.loads(sys.argv[1])
    world = World.from_json(config["world"])
    rng = random.Random(config["seed"])
    primary, shadow = world.sessions()
    p_s3 = primary.client("s3", endpoint_url=world.url)
    p_ddb = primary.client("dynamodb", endpoint_url=world.url)
    s_s3 = shadow.client("s3", endpoint_url=world.url)
    s_ddb = shadow.client("dynamodb", endpoint_url=world.url)
    if config.get("shadow_delay"):
        delays = random.Random(config["seed"] + 1)
        slow_shadow(s_s3, config["shadow_delay"], delays)
        slow_shadow(s_ddb, config["shadow_delay"], delays)
    script = config["script"]
    trap = Trap(config.get("kill_at", "primary-ack"))
    if script in KILL_OPERATIONS:
        client = p_s3 if KILL_OPERATIONS[script].startswith("s3.") else p_ddb
        trap.install(client, [s_s3, s_ddb], KILL_OPERATIONS[script])
    writer = dualwrite.DualWriter(
        flag=True, mode=config["mode"], journal=config["journal"], workers=4, queue_size=64
    )
    s3 = writer.wrap(p_s3, shadow=s_s3, names={world.bucket: world.shadow_bucket})
    ddb = writer.wrap(p_ddb, shadow=s_ddb)
    say("ready")
    if script == "random":
        random_burst(s3, ddb, world, rng)
    else:
        scripted(script, s3, ddb, world, writer, trap, config["kill_on"])
    writer.close()
    say("done")


if __name__ == "__main__":
    main()
