"""Every handler site that writes the primary flag-on journals its intent before the call.

The sites here call the primary outside :meth:`Mirror.call` (operations reported
``unsupported``, parts and completions of uploads the wrapper did not create, requests whose
key cannot be read, PartiQL statements without a readable key). An ``after-call`` handler on
the primary client stands for the process dying right after the primary's ack: it reads the
journal by a separate connection (what a SIGKILL at that instant would leave behind), then
raises :class:`Died`, a ``BaseException`` the library must not swallow. The key (or, where it
cannot be read, the bucket or table) must already be in the journal at that instant; where the
key is known, one ``repair()`` then makes the shadow equal the primary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from conftest import DynamoEnv, S3Env

import dualwrite
from dualwrite._s3 import multipart as _s3
from dualwrite.journal import Entry, SQLiteJournal

MODES = [pytest.param("sync", id="sync"), pytest.param("background", id="background")]
NO_VALIDATION = Config(parameter_validation=False)


def _needs_a_non_str_key_sent(primary: Any) -> None:
    """Skip where this botocore refuses a non-str ``Key`` before sending it.

    Older botocore (1.39, the floor) resolves S3 endpoints from ``Key`` and raises
    ``EndpointResolutionError`` in the caller's thread: the primary is then never called, which
    the wrapper passes through unchanged (tests/test_malformed_s3.py compares that outcome).
    """
    try:
        primary.head_object(Bucket="no-such-bucket-for-the-probe", Key=123)
    except BotoCoreError as exc:
        if type(exc).__name__ == "EndpointResolutionError":
            pytest.skip("this botocore refuses a non-str Key before sending it")
    except ClientError:
        pass  # sent: the service answered


TABLE_LEVEL: dict[str, Any] = {}


class Died(BaseException):
    """The process died right after the primary acknowledged the write."""


class KillAfterAck:
    """An ``after-call`` handler on the primary: note the journal, then die (raise Died)."""

    def __init__(self, client: Any, path: Path, operation: str) -> None:
        self.path = path
        self.left: list[Entry] | None = None
        service = client.meta.service_model.endpoint_prefix
        client.meta.events.register(
            f"after-call.{service}.{operation}", self._die, unique_id=f"tests-die-{operation}"
        )

    def _die(self, **_: Any) -> None:
        journal = SQLiteJournal(self.path)
        try:
            self.left = list(journal.entries())
        finally:
            journal.close()
        raise Died

    def journaled(self) -> list[tuple[str, Any, str]]:
        """What the journal held when the process died: (resource, key, reason)."""
        assert self.left is not None, "the primary was never called"
        return [(e.resource, e.key, e.reason) for e in self.left]


def _journal(path: Path) -> list[tuple[str, Any, str]]:
    journal = SQLiteJournal(path)
    try:
        return [(e.resource, e.key, e.reason) for e in journal.entries()]
    finally:
        journal.close()


def _object(client: Any, bucket: str, key: str) -> bytes | None:
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]
    except client.exceptions.NoSuchKey:
        return None


def _repaired_s3(s3: S3Env, writer: dualwrite.DualWriter, key: str) -> None:
    """One repair leaves the key equal in both accounts and nothing in the journal for it."""
    writer.repair()
    assert _object(s3.shadow, "photos-acct2", key) == _object(s3.primary, "photos", key)
    assert [e for e in _journal_of(writer) if e[1] == key] == []


def _journal_of(writer: dualwrite.DualWriter) -> list[tuple[str, Any, str]]:
    assert writer.journal is not None
    return [(e.resource, e.key, e.reason) for e in writer.journal.entries()]


def _s3_writer(
    s3: S3Env, tmp_path: Path, mode: str, primary: Any | None = None
) -> tuple[dualwrite.DualWriter, Any, Path]:
    path = tmp_path / "j.db"
    writer = dualwrite.DualWriter(flag=True, mode=mode, journal=path)
    client = writer.wrap(primary or s3.primary, shadow=s3.shadow, names=s3.names)
    return writer, client, path


# -- S3 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_s3_operation_reported_unsupported(s3: S3Env, tmp_path: Path, mode: str) -> None:
    writer, client, path = _s3_writer(s3, tmp_path, mode)
    kill = KillAfterAck(s3.primary, path, "RenameObject")
    with pytest.raises(Died):
        client.rename_object(Bucket="photos", Key="renamed", RenameSource="photos/src")
    assert ("photos", "renamed", "pending") in kill.journaled()
    _repaired_s3(s3, writer, "renamed")
    writer.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("operation", ["UploadPart", "UploadPartCopy", "CompleteMultipartUpload"])
def test_s3_upload_not_created_through_the_wrapper(
    s3: S3Env, tmp_path: Path, mode: str, operation: str
) -> None:
    s3.primary.put_object(Bucket="photos", Key="src", Body=b"source")
    upload = s3.primary.create_multipart_upload(Bucket="photos", Key="m")["UploadId"]
    part = s3.primary.upload_part(
        Bucket="photos", Key="m", UploadId=upload, PartNumber=1, Body=b"part one"
    )
    decided: list[str] = []
    path = tmp_path / "j.db"
    writer = dualwrite.DualWriter(
        flag=lambda write: decided.append(write.operation) or True, mode=mode, journal=path
    )
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    kill = KillAfterAck(s3.primary, path, operation)
    calls = {
        "UploadPart": lambda: client.upload_part(
            Bucket="photos", Key="m", UploadId=upload, PartNumber=2, Body=b"2"
        ),
        "UploadPartCopy": lambda: client.upload_part_copy(
            Bucket="photos", Key="m", UploadId=upload, PartNumber=2, CopySource="photos/src"
        ),
        "CompleteMultipartUpload": lambda: client.complete_multipart_upload(
            Bucket="photos",
            Key="m",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        ),
    }
    with pytest.raises(Died):
        calls[operation]()
    # The flag was asked before the primary call, in the caller's thread.
    assert decided == [operation]
    assert ("photos", "m", "pending") in kill.journaled()
    if operation == "CompleteMultipartUpload":
        assert _object(s3.primary, "photos", "m") == b"part one"
        assert _object(s3.shadow, "photos-acct2", "m") is None
    _repaired_s3(s3, writer, "m")
    writer.close()


@pytest.mark.parametrize("mode", MODES)
def test_s3_completion_of_a_forgotten_upload(
    s3: S3Env, tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_s3, "_MAX_UPLOADS", 1)
    writer, client, path = _s3_writer(s3, tmp_path, mode)
    upload = client.create_multipart_upload(Bucket="photos", Key="m")["UploadId"]
    part = client.upload_part(Bucket="photos", Key="m", UploadId=upload, PartNumber=1, Body=b"1")
    client.create_multipart_upload(Bucket="photos", Key="n")  # "m" is forgotten
    writer.flush()
    writer.repair()  # the eviction's entry: "m" has no object yet on either side
    assert [e for e in _journal(path) if e[1] == "m"] == []
    kill = KillAfterAck(s3.primary, path, "CompleteMultipartUpload")
    with pytest.raises(Died):
        client.complete_multipart_upload(
            Bucket="photos",
            Key="m",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
    assert ("photos", "m", "pending") in kill.journaled()
    _repaired_s3(s3, writer, "m")
    writer.close()


@pytest.mark.parametrize("mode", MODES)
def test_s3_completion_whose_key_cannot_be_read(s3: S3Env, tmp_path: Path, mode: str) -> None:
    primary = s3.accounts.client("primary", "s3", config=NO_VALIDATION)
    _needs_a_non_str_key_sent(primary)
    writer, client, path = _s3_writer(s3, tmp_path, mode, primary)
    upload = client.create_multipart_upload(Bucket="photos", Key="m")["UploadId"]
    writer.flush()
    kill = KillAfterAck(primary, path, "CompleteMultipartUpload")
    with pytest.raises(Died):
        client.complete_multipart_upload(
            Bucket="photos", Key=123, UploadId=upload, MultipartUpload={"Parts": []}
        )
    assert ("photos", "m", "pending") in kill.journaled()
    writer.close()


@pytest.mark.parametrize("mode", MODES)
def test_s3_write_whose_key_cannot_be_read_journals_its_bucket(
    s3: S3Env, tmp_path: Path, mode: str
) -> None:
    primary = s3.accounts.client("primary", "s3", config=NO_VALIDATION)
    _needs_a_non_str_key_sent(primary)
    decided: list[str] = []
    path = tmp_path / "j.db"
    writer = dualwrite.DualWriter(
        flag=lambda write: decided.append(write.operation) or True, mode=mode, journal=path
    )
    client = writer.wrap(primary, shadow=s3.shadow, names=s3.names)
    kill = KillAfterAck(primary, path, "PutObject")
    with pytest.raises(Died):
        client.put_object(Bucket="photos", Key=123, Body=b"x")
    assert decided == ["PutObject"]
    assert ("photos", "", "pending") in kill.journaled()  # the bucket: the key is unknown
    assert s3.keys("primary") == ["123"]
    assert [e for e in _journal(path) if e[:2] == ("photos", "")]  # still there, for diff/copy
    writer.close()


@pytest.mark.parametrize("mode", MODES)
def test_s3_delete_objects_whose_keys_cannot_be_read_journals_its_bucket(
    s3: S3Env, tmp_path: Path, mode: str
) -> None:
    primary = s3.accounts.client("primary", "s3", config=NO_VALIDATION)
    writer, client, path = _s3_writer(s3, tmp_path, mode, primary)
    kill = KillAfterAck(primary, path, "DeleteObjects")
    with pytest.raises(Died):
        client.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": 5}]})
    assert ("photos", "", "pending") in kill.journaled()
    writer.close()


def test_s3_refused_write_whose_key_cannot_be_read_leaves_no_entry(
    s3: S3Env, tmp_path: Path
) -> None:
    primary = s3.accounts.client("primary", "s3", config=NO_VALIDATION)
    writer, client, path = _s3_writer(s3, tmp_path, "sync", primary)
    with pytest.raises(primary.exceptions.NoSuchBucket):
        client.delete_objects(Bucket="missing", Delete={"Objects": [{"Key": 5}]})
    assert _journal(path) == []  # a definite refusal: the intent is removed
    writer.close()


# -- DynamoDB ----------------------------------------------------------------------------------


def _ddb_writer(
    ddb: DynamoEnv, tmp_path: Path, mode: str
) -> tuple[dualwrite.DualWriter, Any, Path]:
    path = tmp_path / "j.db"
    writer = dualwrite.DualWriter(flag=True, mode=mode, journal=path)
    client = writer.wrap(ddb.primary, shadow=ddb.shadow)
    return writer, client, path


UNKNOWN_KEY = "UPDATE orders SET x = 'v' WHERE pk = 'a' AND pk = 'a'"  # no key the parser reads
KNOWN_KEY = "UPDATE orders SET x = 'w' WHERE pk = 'b'"


@pytest.mark.parametrize("mode", MODES)
def test_ddb_statement_without_a_readable_key_journals_its_table(
    ddb: DynamoEnv, tmp_path: Path, mode: str
) -> None:
    writer, client, path = _ddb_writer(ddb, tmp_path, mode)
    kill = KillAfterAck(ddb.primary, path, "ExecuteStatement")
    with pytest.raises(Died):
        client.execute_statement(Statement=UNKNOWN_KEY)
    assert ("orders", TABLE_LEVEL, "pending") in kill.journaled()
    writer.close()


@pytest.mark.parametrize("mode", MODES)
def test_ddb_transaction_without_a_readable_key_journals_its_table(
    ddb: DynamoEnv, tmp_path: Path, mode: str
) -> None:
    writer, client, path = _ddb_writer(ddb, tmp_path, mode)
    kill = KillAfterAck(ddb.primary, path, "ExecuteTransaction")
    with pytest.raises(Died):
        client.execute_transaction(TransactStatements=[{"Statement": UNKNOWN_KEY}])
    assert ("orders", TABLE_LEVEL, "pending") in kill.journaled()
    writer.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("operation", ["ExecuteTransaction", "BatchExecuteStatement"])
def test_ddb_partiql_mixing_readable_and_unreadable_keys_journals_both(
    ddb: DynamoEnv, tmp_path: Path, mode: str, operation: str
) -> None:
    ddb.p_raw.put_item(TableName="orders", Item={"pk": {"S": "b"}})
    writer, client, path = _ddb_writer(ddb, tmp_path, mode)
    kill = KillAfterAck(ddb.primary, path, operation)
    statements = [{"Statement": KNOWN_KEY}, {"Statement": UNKNOWN_KEY}]
    calls = {
        "ExecuteTransaction": lambda: client.execute_transaction(TransactStatements=statements),
        "BatchExecuteStatement": lambda: client.batch_execute_statement(Statements=statements),
    }
    with pytest.raises(Died):
        calls[operation]()
    journaled = kill.journaled()
    assert ("orders", {"pk": {"S": "b"}}, "pending") in journaled
    assert ("orders", TABLE_LEVEL, "pending") in journaled
    writer.flush()
    writer.repair()
    key = {"pk": {"S": "b"}}
    assert ddb.get("shadow", key) == ddb.get("primary", key)
    assert [e for e in _journal(path) if e[1] == key] == []
    writer.close()


@pytest.mark.parametrize("mode", MODES)
def test_ddb_operation_reported_unsupported_journals_its_table(
    ddb: DynamoEnv, tmp_path: Path, mode: str
) -> None:
    writer, client, path = _ddb_writer(ddb, tmp_path, mode)
    kill = KillAfterAck(ddb.primary, path, "RestoreTableToPointInTime")
    with pytest.raises(Died):
        client.restore_table_to_point_in_time(SourceTableName="orders", TargetTableName="restored")
    assert ("restored", TABLE_LEVEL, "pending") in kill.journaled()
    writer.close()


@pytest.mark.parametrize("mode", MODES)
def test_ddb_malformed_request_journals_its_table(
    ddb: DynamoEnv, tmp_path: Path, mode: str
) -> None:
    writer, client, path = _ddb_writer(ddb, tmp_path, mode)
    client.put_item(TableName="orders", Item={"pk": {"S": "a"}})  # learns the key schema
    writer.flush()
    kill = KillAfterAck(ddb.primary, path, "PutItem")
    with pytest.raises(Died):
        client.put_item(TableName="orders", Item={"n": {"N": "1"}})  # no key attribute
    assert ("orders", TABLE_LEVEL, "pending") in kill.journaled()
    writer.close()
