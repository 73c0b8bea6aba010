"""``dualwrite follow s3``: S3 notifications on SQS converge writes made outside the wrapper.

A ThreadedMotoServer holds both accounts and sends the primary bucket's notifications to an SQS
queue of the primary account, as S3 does. The shadow is reached through a proxy that records
every request and refuses object writes without ``bucket-owner-full-control``.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.cli import Accounts, enforce_owner_acl
from _support.proxy import Fault, FaultProxy
from _support.servers import MotoServer

import dualwrite
from dualwrite._offline.follow import Notice
from dualwrite._offline.follow_s3 import S3Follower, follow_queue, parse_body
from dualwrite.events import Followed
from dualwrite.hooks import MetricsHook
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")

NAMES = {"s3": {"photos": "photos-acct2"}}
OWNER_ACL = "bucket-owner-full-control"


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServer]:
    srv = MotoServer()
    yield srv
    srv.stop()


class World:
    """Both accounts, a notified primary bucket, and a recording proxy before the shadow."""

    def __init__(self, server: MotoServer, tmp_path: Path) -> None:
        self.accounts = Accounts(server, tmp_path, NAMES)
        self.p_s3 = self.accounts.p_s3
        self.s_s3 = self.accounts.s_s3
        self.p_s3.create_bucket(Bucket="photos")
        self.s_s3.create_bucket(Bucket="photos-acct2")
        self.sqs = self.accounts.primary_session.client("sqs", endpoint_url=server.url)
        self.queue = self.sqs.create_queue(QueueName="photos-events")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.p_s3.put_bucket_notification_configuration(
            Bucket="photos",
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": arn,
                        "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                    }
                ]
            },
        )
        self.proxy = FaultProxy((server.host, server.port))
        self.seen: list[tuple[str, str]] = []
        acl = enforce_owner_acl().when

        def record(method: str, path: str, headers: Any) -> bool:
            self.seen.append((method, path))
            return bool(acl(method, path, headers))

        self.proxy.set(Fault("error", 400, "AccessControlListNotSupported", when=record))

    def follow(self, *extra: str) -> Any:
        return self.accounts.cli.run(
            "follow", "s3", "--queue-url", self.queue, "--once", "--json", *extra,
            shadow_url=self.proxy.url,
        )  # fmt: skip

    def shadow_keys(self) -> list[str]:
        contents = self.s_s3.list_objects_v2(Bucket="photos-acct2").get("Contents", [])
        return sorted(o["Key"] for o in contents)

    def shadow_body(self, key: str) -> bytes:
        return self.s_s3.get_object(Bucket="photos-acct2", Key=key)["Body"].read()  # type: ignore[no-any-return]

    def queued(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def writes_to_shadow(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.seen if m in ("PUT", "POST", "DELETE")]


@pytest.fixture
def world(server: MotoServer, tmp_path: Path) -> Iterator[World]:
    w = World(server, tmp_path)
    yield w
    w.proxy.close()


def test_follow_once_converges_unwrapped_writes_and_deletions(world: World) -> None:
    keys = {
        "plain.txt": b"plain",
        "with space.txt": b"space",
        "a+b.txt": b"plus",
        "dir/x y+z%41.txt": b"mixed",
    }
    for key, body in keys.items():
        world.p_s3.put_object(Bucket="photos", Key=key, Body=body)
    # A key both accounts held, deleted on the primary outside the wrapper.
    world.s_s3.put_object(Bucket="photos-acct2", Key="gone.txt", Body=b"old", ACL=OWNER_ACL)
    world.p_s3.put_object(Bucket="photos", Key="gone.txt", Body=b"old")
    world.p_s3.delete_object(Bucket="photos", Key="gone.txt")
    assert world.shadow_keys() == ["gone.txt"]

    result = world.follow()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert world.shadow_keys() == sorted(keys)
    for key, body in keys.items():
        assert world.shadow_body(key) == body
    assert report["keys"]["copied"] == 4
    assert report["keys"]["deleted"] == 1
    assert report["keys"]["failed"] == 0
    assert report["deleted_messages"] == report["messages"]
    assert world.queued() == 0
    # Every object written to the shadow carried the owner ACL (the proxy refuses others).
    assert not [p for m, p in world.seen if m == "PUT" and "AccessControl" in p]

    # A second run finds nothing to do.
    again = json.loads(world.follow().stdout)
    assert again["messages"] == 0


def test_key_the_wrapper_mirrored_costs_one_comparison(world: World) -> None:
    with dualwrite.DualWriter(flag=True, journal=None) as writer:
        wrapped = writer.wrap(
            world.p_s3,
            shadow=world.accounts.shadow_session.client(
                "s3", endpoint_url=world.accounts.server.url
            ),
            names=NAMES["s3"],
        )
        wrapped.put_object(Bucket="photos", Key="mirrored.txt", Body=b"both")
    before = world.s_s3.head_object(Bucket="photos-acct2", Key="mirrored.txt")
    world.p_s3.put_object(Bucket="photos", Key="outside.txt", Body=b"primary only")

    result = world.follow()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["keys"]["equal"] == 1
    assert report["keys"]["copied"] == 1
    # Nothing was written for the mirrored key: one HEAD, no PUT.
    assert not [p for m, p in world.writes_to_shadow() if "mirrored.txt" in p]
    assert [m for m, p in world.seen if "mirrored.txt" in p] == ["HEAD"]
    after = world.s_s3.head_object(Bucket="photos-acct2", Key="mirrored.txt")
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])
    assert world.shadow_body("outside.txt") == b"primary only"


def test_failed_key_keeps_its_message_unless_journaled(world: World, tmp_path: Path) -> None:
    world.p_s3.put_object(Bucket="photos", Key="k.txt", Body=b"x")
    world.proxy.set(Fault("error", 403, "AccessDenied"))
    result = world.follow("--visibility-timeout", "0")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["keys"]["failed"] == 1
    assert report["kept_messages"] == 1
    assert world.queued() == 1

    # With a journal, the key is journaled and the message let go; repair finishes it.
    journal = tmp_path / "journal.sqlite3"
    dualwrite.journal.SQLiteJournal(journal).close()
    result = world.follow("--visibility-timeout", "0", "--journal", str(journal))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["keys"]["journaled"] == 1
    assert world.queued() == 0
    [entry] = dualwrite.journal.SQLiteJournal(journal).entries()
    assert (entry.reason, entry.key) == ("shadow_failed", "k.txt")
    world.proxy.set(Fault("pass"))
    assert world.accounts.cli.run("repair", "--journal", str(journal)).returncode == 0
    assert world.shadow_body("k.txt") == b"x"


def test_flag_and_unmapped_buckets_are_skipped(world: World, tmp_path: Path) -> None:
    (tmp_path / "tenantflag.py").write_text(
        "def only_acme(write):\n    return write.key.startswith('acme/')\n"
    )
    world.accounts.cli.env["PYTHONPATH"] = (
        f"{tmp_path}:{world.accounts.cli.env.get('PYTHONPATH', '')}"
    )
    world.p_s3.put_object(Bucket="photos", Key="acme/1", Body=b"a")
    world.p_s3.put_object(Bucket="photos", Key="globex/1", Body=b"g")
    result = world.follow("--flag", "tenantflag:only_acme")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["keys"]["copied"], report["keys"]["skipped"]) == (1, 1)
    assert world.shadow_keys() == ["acme/1"]
    assert world.queued() == 0


def test_bad_flag_is_a_usage_error(world: World) -> None:
    result = world.follow("--flag", "no_such_module_here:flag")
    assert result.returncode == 2
    assert "--flag" in result.stderr


def test_follower_in_process_emits_followed_events(world: World) -> None:
    recorder, metrics = RecordingHook(), MetricsHook()
    world.p_s3.put_object(Bucket="photos", Key="one", Body=b"1")
    shadow = world.accounts.shadow_session.client("s3", endpoint_url=world.accounts.server.url)
    with dualwrite.DualWriter(flag=True, journal=None, hooks=[recorder, metrics]) as writer:
        writer.wrap(world.p_s3, shadow=shadow, names=NAMES["s3"])
        report = follow_queue(S3Follower(writer), world.sqs, world.queue, once=True)
        again = S3Follower(writer).follow([Notice(bucket="photos", key="one", event="x")])
    assert report.keys.copied == 1
    assert again.equal == 1
    outcomes = [e.outcome for e in recorder.events if isinstance(e, Followed)]
    assert outcomes == ["copied", "equal"]
    assert metrics.snapshot().total("followed_copied") == 1
    assert metrics.snapshot().total("followed_equal") == 1


# -- message shapes (AWS's documented samples) ----------------------------------------------

S3_DIRECT = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2024-05-01T12:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": {"name": "photos", "arn": "arn:aws:s3:::photos"},
                "object": {"key": "red+flower%28v2%29.jpg", "size": 1024, "eTag": "d41d8"},
            },
        }
    ]
}
TEST_EVENT = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2024-05-01T12:00:00.000Z",
    "Bucket": "photos",
    "RequestId": "5582815E1AEA5ADF",
    "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
}
EVENTBRIDGE_DELETED = {
    "version": "0",
    "id": "2ee9cc15-d022-99ea-1fb8-1b1bac4850f9",
    "detail-type": "Object Deleted",
    "source": "aws.s3",
    "account": "123456789012",
    "time": "2024-05-01T12:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:s3:::photos"],
    "detail": {
        "version": "0",
        "bucket": {"name": "photos"},
        "object": {"key": "a b+c", "sequencer": "617f0837b476e463"},
        "request-id": "0BH729840619AG5K",
        "requester": "123456789012",
        "reason": "DeleteObject",
        "deletion-type": "Delete Marker Created",
    },
}


def test_parse_the_three_shapes() -> None:
    [notice] = parse_body(json.dumps(S3_DIRECT))
    assert (notice.bucket, notice.key, notice.event) == (
        "photos",
        "red flower(v2).jpg",
        "ObjectCreated:Put",
    )
    assert notice.at == pytest.approx(1714564800.0)
    assert parse_body(json.dumps(TEST_EVENT)) == []
    keys = [n.key for n in parse_body(json.dumps(EVENTBRIDGE_DELETED))]
    assert keys == ["a b+c", "a b c"]  # as given, and URL-decoded: both converged
    sns = {"Type": "Notification", "Message": json.dumps(S3_DIRECT)}
    assert [n.key for n in parse_body(json.dumps(sns))] == ["red flower(v2).jpg"]
    with pytest.raises(ValueError, match="not an S3 notification"):
        parse_body('{"hello": 1}')
    with pytest.raises(ValueError):
        parse_body("not json")


def test_check_verifies_the_notifications_and_the_queue(world: World) -> None:
    args = ("check", "s3", "--bucket", "photos", "--json", "--queue-url", world.queue)
    result = world.accounts.cli.run(*args, shadow_url=world.proxy.url)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["follow queue reachable"]["status"] == "PASS"
    assert checks["follow queue reachable"]["detail"].endswith(":photos-events")
    assert checks["bucket notifications"]["status"] == "PASS"
    assert checks["dead-letter queue"]["status"] == "WARN"

    # Without the bucket's notification configuration, the check fails and says what to run.
    world.p_s3.put_bucket_notification_configuration(Bucket="photos", NotificationConfiguration={})
    result = world.accounts.cli.run(*args, shadow_url=world.proxy.url)
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["bucket notifications"]["status"] == "FAIL"
    assert "put-bucket-notification-configuration" in checks["bucket notifications"]["fix"]

    # A queue that is not there.
    missing = world.queue.rsplit("/", 1)[0] + "/no-such-queue"
    result = world.accounts.cli.run(
        "check", "s3", "--bucket", "photos", "--json", "--queue-url", missing,
        shadow_url=world.proxy.url,
    )  # fmt: skip
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["follow queue reachable"]["status"] == "FAIL"


def test_without_once_it_runs_until_sigterm(world: World) -> None:
    process = world.accounts.cli.start(
        "follow", "s3", "--queue-url", world.queue, "--wait", "1", "--json",
        shadow_url=world.proxy.url,
    )  # fmt: skip
    try:
        world.p_s3.put_object(Bucket="photos", Key="live.txt", Body=b"live")
        for _ in range(300):  # until the follower copied it (or the process died)
            if "live.txt" in world.shadow_keys() or process.poll() is not None:
                break
            time.sleep(0.1)
        assert process.poll() is None, process.communicate()
        assert world.shadow_keys() == ["live.txt"]
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert json.loads(stdout)["keys"]["copied"] == 1
