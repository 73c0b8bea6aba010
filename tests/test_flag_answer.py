"""A flag whose answer cannot be read as a bool is a failing flag, like one that raises.

The answer's ``__bool__`` is the user's code as much as the flag: it is contained, reported
``flag_failed``, the key journaled, and the caller's write goes to the primary unchanged.
"""

from __future__ import annotations

from pathlib import Path

from conftest import Accounts, DynamoEnv, S3Env

import dualwrite
from dualwrite.testing import RecordingHook


class Unreadable:
    def __bool__(self) -> bool:
        raise RuntimeError("no answer")


def test_an_unreadable_answer_is_a_flag_failure(aws: Accounts, tmp_path: Path) -> None:
    s3, ddb = S3Env(aws), DynamoEnv(aws)
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=lambda write: Unreadable(), hooks=[recorder], journal=tmp_path / "j.db"
    )
    bucket = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    table = writer.wrap(ddb.primary, shadow=ddb.shadow)
    with dualwrite.tenant("acme"):
        bucket.put_object(Bucket="photos", Key="a", Body=b"x")
        table.put_item(TableName="orders", Item={"pk": {"S": "a"}})
    assert s3.primary_body("a") == b"x"
    assert ddb.scan("primary") == [{"pk": {"S": "a"}}]
    assert ddb.scan("shadow") == []
    failed = [e for e in recorder.events if e.kind == "flag_failed"]
    assert [(e.write.service, e.error_type) for e in failed] == [
        ("s3", "RuntimeError"),
        ("dynamodb", "RuntimeError"),
    ]
    assert writer.journal is not None
    assert sorted(e.reason for e in writer.journal.entries()) == ["flag_failed", "flag_failed"]
    writer.close()
