"""A fresh process that runs one ``DualWriter.repair()`` over a journal, as an operator would.

Usage: ``python kill_repair.py WORLD_JSON JOURNAL``

Wraps the world's S3 and DynamoDB pairs with a new writer over the same journal, repairs once,
and prints the report as one JSON line.
"""

from __future__ import annotations

import json
import sys

import attrs
from kill_world import World

import dualwrite


def main() -> None:
    world = World.from_json(sys.argv[1])
    journal = sys.argv[2]
    primary, shadow = world.sessions()
    with dualwrite.DualWriter(flag=True, journal=journal) as writer:
        writer.wrap(
            primary.client("s3", endpoint_url=world.url),
            shadow=shadow.client("s3", endpoint_url=world.url),
            names={world.bucket: world.shadow_bucket},
        )
        writer.wrap(
            primary.client("dynamodb", endpoint_url=world.url),
            shadow=shadow.client("dynamodb", endpoint_url=world.url),
        )
        report = writer.repair()
    sys.stdout.write(json.dumps(attrs.asdict(report)) + "\n")


if __name__ == "__main__":
    main()
