"""What the kill and fleet tests share: two accounts on one moto server, and whole-state reads.

The child processes (``kill_child.py``, ``kill_repair.py``, ``fleet_child.py``) import this module
by its file name (their own directory is on ``sys.path``); the tests import it as
``_support.kill_world``. It depends on boto3 and the public ``dualwrite`` API only.

A :class:`World` names one bucket pair and one table (the same name in each account: DynamoDB
table names are per account); :func:`state` reads EVERY object and item of one side, so a
comparison covers keys no process reported, not only acknowledged ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import attrs
import boto3
from botocore.config import Config

REGION = "us-east-1"
SHADOW_ROLE = "arn:aws:iam::111111111111:role/dualwrite-shadow"
SUPPORT = Path(__file__).resolve().parent
ROOT = SUPPORT.parents[1]  # the checkout whose dualwrite the children import

# Generous: a loaded 2-core machine can take seconds to start a Python process with boto3.
CHILD_TIMEOUT = 180.0


@attrs.frozen(kw_only=True)
class World:
    """One moto server, a bucket in each account, a table in each account."""

    url: str
    bucket: str
    shadow_bucket: str
    table: str

    @classmethod
    def fresh(cls, url: str, prefix: str) -> World:
        """Names no other test uses, on the server at ``url`` (nothing is created yet)."""
        suffix = uuid.uuid4().hex[:10]
        return cls(
            url=url,
            bucket=f"{prefix}-p-{suffix}",
            shadow_bucket=f"{prefix}-s-{suffix}",
            table=f"{prefix}-{suffix}",
        )

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> World:
        return cls(**json.loads(text))

    def sessions(self) -> tuple[boto3.Session, boto3.Session]:
        """Sessions for the primary (moto's default account) and the shadow (assumed role)."""
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        os.environ.pop("AWS_PROFILE", None)
        primary = boto3.Session(region_name=REGION)
        creds = primary.client("sts", endpoint_url=self.url).assume_role(
            RoleArn=SHADOW_ROLE, RoleSessionName="dualwrite-kill-tests"
        )["Credentials"]
        shadow = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=REGION,
        )
        return primary, shadow

    def clients(self) -> dict[str, Any]:
        """Plain (never wrapped) clients: ``s3``/``ddb`` of the primary, ``s3s``/``ddbs`` of the
        shadow."""
        primary, shadow = self.sessions()
        # Reads take the stored bytes as they are. A SIGKILL in the middle of a request's body
        # can leave moto holding a truncated object under the request's checksum header (S3
        # itself refuses an incomplete body); botocore's default validation would raise on it,
        # where the tests must see it as the divergence it is.
        reader = Config(response_checksum_validation="when_required")
        return {
            "s3": primary.client("s3", endpoint_url=self.url, config=reader),
            "ddb": primary.client("dynamodb", endpoint_url=self.url),
            "s3s": shadow.client("s3", endpoint_url=self.url, config=reader),
            "ddbs": shadow.client("dynamodb", endpoint_url=self.url),
        }

    def create(self) -> None:
        """Create the bucket and the table in each account."""
        c = self.clients()
        c["s3"].create_bucket(Bucket=self.bucket)
        c["s3s"].create_bucket(Bucket=self.shadow_bucket)
        for client in (c["ddb"], c["ddbs"]):
            client.create_table(
                TableName=self.table,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )


def side_state(world: World, side: str, clients: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every object (body digest, metadata, content type, tags) and every item of one side.

    Returns:
        ``{"s3:KEY": (...), "dynamodb:PK": item}`` for all keys of ``side`` (``"primary"`` or
        ``"shadow"``).
    """
    c = clients or world.clients()
    s3, ddb = (c["s3"], c["ddb"]) if side == "primary" else (c["s3s"], c["ddbs"])
    bucket = world.bucket if side == "primary" else world.shadow_bucket
    found: dict[str, Any] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for listed in page.get("Contents", []):
            key = listed["Key"]
            got = s3.get_object(Bucket=bucket, Key=key)
            body = got["Body"].read()
            tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
            found[f"s3:{key}"] = (
                len(body),
                hashlib.sha256(body).hexdigest()[:16],
                sorted(got.get("Metadata", {}).items()),
                got.get("ContentType"),
                sorted((t["Key"], t["Value"]) for t in tags),
            )
    pages = ddb.get_paginator("scan").paginate(TableName=world.table, ConsistentRead=True)
    for page in pages:
        for item in page["Items"]:
            found[f"dynamodb:{item['pk']['S']}"] = item
    return found


def differences(world: World, clients: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every key whose state differs between the primary and the shadow.

    Returns:
        ``{key: (primary state or None, shadow state or None)}``; empty when the shadow equals
        the primary, key for key.
    """
    c = clients or world.clients()
    primary, shadow = side_state(world, "primary", c), side_state(world, "shadow", c)
    return {
        key: (primary.get(key), shadow.get(key))
        for key in sorted(primary.keys() | shadow.keys())
        if primary.get(key) != shadow.get(key)
    }


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this checkout's ``dualwrite`` first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    env.pop("AWS_PROFILE", None)
    # Never the user's state directory: a journal this test did not name must not be shared.
    env.pop("DUALWRITE_JOURNAL", None)
    env.update(extra)
    return env


def repair_in_fresh_process(world: World, journal: Path | str) -> dict[str, Any]:
    """Run one ``DualWriter.repair()`` over ``journal`` in a new process; return its report.

    Raises:
        AssertionError: the repair process failed (its output is in the message).
    """
    done = subprocess.run(
        [sys.executable, str(SUPPORT / "kill_repair.py"), world.to_json(), str(journal)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"repair process failed:\n{done.stdout}\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def journal_keys(journal: Path | str) -> set[str]:
    """The keys (``s3:KEY`` / ``dynamodb:PK``) named by the journal's entries, read as they are.

    A resource-level entry (no key: the whole bucket or table) shows as ``s3:*``/``dynamodb:*``.
    """
    from dualwrite.journal import SQLiteJournal  # noqa: PLC0415 - children need not import it

    journal_file = SQLiteJournal(journal)
    try:
        keys = set()
        for entry in journal_file.entries():
            if entry.service == "s3":
                keys.add(f"s3:{entry.key or '*'}")
            else:
                pk = entry.key.get("pk", {}) if isinstance(entry.key, dict) else {}
                keys.add(f"dynamodb:{pk.get('S', '*') if isinstance(pk, dict) else pk}")
        return keys
    finally:
        journal_file.close()


def assert_equal_or_repaired(
    world: World, journal: Path, *, when: str, repair_anyway: bool = False
) -> None:
    """The shadow equals the primary; else each diverged key is journaled and one ``repair()``
    in a fresh process makes every key equal.

    Args:
        world: the accounts to compare (every object and item of each).
        journal: the journal the writers used.
        when: what just happened, for the failure message (e.g. ``"after the kill"``).
        repair_anyway: repair (and compare again) even when nothing differs: a repair must
            never make an equal key differ.

    Raises:
        AssertionError: naming the keys that diverged without an entry, and those still
            different after the repair.
    """
    diverged = differences(world)
    if not diverged and not repair_anyway:
        return
    journaled = journal_keys(journal) if journal.exists() else set()
    unjournaled = sorted(
        key
        for key in diverged
        if key not in journaled and f"{key.split(':', 1)[0]}:*" not in journaled
    )
    report = repair_in_fresh_process(world, journal)
    after = differences(world)
    problems = []
    if unjournaled:
        problems.append(
            f"{len(diverged)} keys diverged {when}, {len(unjournaled)} of them not journaled: "
            f"{unjournaled[:10]}"
        )
    if after:
        problems.append(
            f"after one repair ({report}) {len(after)} keys still differ (primary, shadow): "
            f"{json.dumps(after, default=str)[:1500]}"
        )
    assert not problems, "; ".join(problems)
