"""A process killed right after the primary's ack loses nothing that ``repair()`` cannot restore.

A child process dual-writes through a wrapped client whose *primary* client carries an
``after-call`` handler that SIGKILLs the process: the primary has stored the write, the shadow
has not been called, and nothing after that line runs. The child uses the default journal
(``journal="auto"``: ``$DUALWRITE_JOURNAL``, set per test by conftest). A fresh process-like
writer then repairs from that journal, and every key must be equal in both accounts.
Both accounts live on one ``ThreadedMotoServer``, so the child's writes are visible here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.servers import MotoServer
from conftest import Accounts, create_table

import dualwrite
from dualwrite.journal import SQLiteJournal, owner_alive

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import boto3
    import dualwrite

    server, mode, operation, bucket, shadow_bucket, table = sys.argv[1:7]
    primary = boto3.Session(region_name="us-east-1")
    creds = primary.client("sts", endpoint_url=server).assume_role(
        RoleArn="arn:aws:iam::111111111111:role/dualwrite-shadow", RoleSessionName="kill"
    )["Credentials"]
    shadow = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    )
    writer = dualwrite.DualWriter(flag=True, mode=mode)  # journal="auto"
    service = "s3" if operation == "PutObject" else "dynamodb"
    p_client = primary.client(service, endpoint_url=server)
    s_client = shadow.client(service, endpoint_url=server)

    def die(**_):
        os.kill(os.getpid(), signal.SIGKILL)

    p_client.meta.events.register(f"after-call.{service}.{operation}", die)
    client = writer.wrap(p_client, shadow=s_client, names={bucket: shadow_bucket})
    if operation == "PutObject":
        client.put_object(Bucket=bucket, Key="killed", Body=b"stored before the kill")
    elif operation == "UpdateItem":
        client.update_item(
            TableName=table,
            Key={"pk": {"S": "killed"}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
    else:
        client.batch_write_item(RequestItems={table: [
            {"PutRequest": {"Item": {"pk": {"S": f"killed-{i:02d}"}, "n": {"N": str(i)}}}}
            for i in range(25)
        ]})
    print("survived")
    """
)


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    moto = MotoServer()
    yield moto
    moto.stop()


def _items(client: Any, table: str) -> dict[str, Any]:
    pages = client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
    return {item["pk"]["S"]: item for page in pages for item in page["Items"]}


@pytest.mark.parametrize("mode", ["sync", "background"])
@pytest.mark.parametrize("operation", ["PutObject", "UpdateItem", "BatchWriteItem"])
def test_sigkill_right_after_the_primary_ack_is_repaired(
    server: MotoServer, hermetic_journal: str, tmp_path: Path, mode: str, operation: str
) -> None:
    accounts = Accounts(endpoint_url=server.url)
    suffix = uuid.uuid4().hex[:10]
    bucket, shadow_bucket, table = f"kill-p-{suffix}", f"kill-s-{suffix}", f"kill-{suffix}"
    p_s3, s_s3 = accounts.client("primary", "s3"), accounts.client("shadow", "s3")
    p_ddb, s_ddb = accounts.client("primary", "dynamodb"), accounts.client("shadow", "dynamodb")
    p_s3.create_bucket(Bucket=bucket)
    s_s3.create_bucket(Bucket=shadow_bucket)
    create_table(p_ddb, table)
    create_table(s_ddb, table)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, server.url, mode, operation, bucket, shadow_bucket, table],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "survived" not in child.stdout

    # The primary has the write; the shadow does not; the journal names every key.
    if operation == "PutObject":
        assert p_s3.get_object(Bucket=bucket, Key="killed")["Body"].read()
        assert "Contents" not in s_s3.list_objects_v2(Bucket=shadow_bucket)
        expected_keys = {"killed"}
    else:
        written = _items(p_ddb, table)
        assert written
        assert _items(s_ddb, table) == {}
        expected_keys = set(written)
    journal = SQLiteJournal(hermetic_journal)
    entries = list(journal.entries())
    journal.close()
    keys = {e.key if isinstance(e.key, str) else e.key["pk"]["S"] for e in entries}
    assert keys == expected_keys
    assert {e.reason for e in entries} == {"pending"}
    assert {owner_alive(e.owner) for e in entries} == {False}  # the owner is dead

    with dualwrite.DualWriter(flag=True) as writer:  # the same default journal
        writer.wrap(p_s3, shadow=s_s3, names={bucket: shadow_bucket})
        writer.wrap(p_ddb, shadow=s_ddb)
        report = writer.repair()
        assert (report.failed, report.remaining) == (0, 0)
        assert writer.journal is not None
        assert writer.journal.count() == 0
    if operation == "PutObject":
        assert (
            s_s3.get_object(Bucket=shadow_bucket, Key="killed")["Body"].read()
            == p_s3.get_object(Bucket=bucket, Key="killed")["Body"].read()
        )
    else:
        assert _items(s_ddb, table) == _items(p_ddb, table)
