"""A fleet: two writers of one key whose shadow calls land in the other order still end equal.

Each writer is a separate ``DualWriter`` with its own primary and shadow clients, on one
in-process moto with two accounts. The first writer's shadow client holds its call at a gate
(a ``before-call`` handler) until the second writer's whole write, primary and shadow, is done:
the second write's shadow call lands first, as when two processes race. Without the fleet check
the shadow keeps the first (older) write: the ``single_writer=True`` cases prove the scenario
diverges when the check is off, so each ``single_writer=False`` case fails without it.

DualWriter instances in one process share the process's key locks (``dualwrite._core.mirror``'s
striped locks), so in sync mode the second writer would wait for the first's shadow call. A real
second process has locks of its own: :func:`own_locks` gives the second writer a private lock,
which is what a separate process has.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from _support.shadow import Gate
from conftest import Accounts, enforce_owner_acl

import dualwrite
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once", "atomic_moto")

BUCKET, SHADOW_BUCKET = "photos", "photos-acct2"


class Writer:
    """One "process": its own DualWriter, primary client and shadow client."""

    def __init__(self, aws: Accounts, mode: str, *, single_writer: bool) -> None:
        self.primary = aws.client("primary", "s3")
        self.shadow = aws.client("shadow", "s3")
        enforce_owner_acl(self.shadow)
        self.hook = RecordingHook()
        self.writer = dualwrite.DualWriter(
            flag=True,
            mode=mode,
            hooks=[self.hook],
            single_writer=single_writer,
            journal=None,
        )
        self.client = self.writer.wrap(
            self.primary, shadow=self.shadow, names={BUCKET: SHADOW_BUCKET}
        )


def own_locks(writer: Writer) -> None:
    """Give ``writer`` key locks of its own, as a writer in another process has."""
    mirror = writer.client._self_mirror
    locks = [threading.RLock() for _ in range(64)]
    mirror.key_lock = lambda resource, key: locks[hash((resource, key)) % len(locks)]


@pytest.fixture
def raw(aws: Accounts) -> tuple[Any, Any]:
    """Unwrapped clients of both accounts, with the bucket pair created."""
    primary, shadow = aws.client("primary", "s3"), aws.client("shadow", "s3")
    primary.create_bucket(Bucket=BUCKET)
    shadow.create_bucket(Bucket=SHADOW_BUCKET)
    return primary, shadow


def state(client: Any, bucket: str) -> dict[str, tuple[Any, ...]]:
    """Every object of ``bucket``: body, metadata, content type and tag set."""
    found = {}
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        key = item["Key"]
        obj = client.get_object(Bucket=bucket, Key=key)
        tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        found[key] = (
            obj["Body"].read(),
            obj.get("Metadata"),
            obj.get("ContentType"),
            sorted((t["Key"], t["Value"]) for t in tags),
        )
    return found


def both(primary: Any, shadow: Any, key: str, body: bytes, **extra: Any) -> None:
    """An object that both accounts already hold (written before the race)."""
    primary.put_object(Bucket=BUCKET, Key=key, Body=body, **extra)
    shadow.put_object(Bucket=SHADOW_BUCKET, Key=key, Body=body, **extra)


def complete_upload(client: Any, key: str, body: bytes) -> None:
    upload = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    part = client.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=body)
    client.complete_multipart_upload(
        Bucket=BUCKET,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )


Step = Callable[[Any], Any]

# (first writer's call, the shadow operation its gate holds, second writer's call, setup)
SCENARIOS: dict[str, tuple[Step, str, Step, bool]] = {
    "put-then-put": (
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"first"),
        "PutObject",
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"second"),
        False,
    ),
    "same-body-other-metadata": (
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"same", Metadata={"v": "1"}),
        "PutObject",
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"same", Metadata={"v": "2"}),
        False,
    ),
    "same-body-other-content-type": (
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"same", ContentType="text/plain"),
        "PutObject",
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"same"),
        False,
    ),
    "same-body-other-tags": (
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"same", Tagging="t=1"),
        "PutObject",
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"same", Tagging="t=2"),
        False,
    ),
    "put-then-delete": (
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"first"),
        "PutObject",
        lambda c: c.delete_object(Bucket=BUCKET, Key="k"),
        False,
    ),
    "delete-then-put": (
        lambda c: c.delete_object(Bucket=BUCKET, Key="k"),
        "DeleteObject",
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"second"),
        True,
    ),
    "delete-objects-then-put": (
        lambda c: c.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "k"}]}),
        "DeleteObjects",
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"second"),
        True,
    ),
    "copy-then-put": (
        lambda c: c.copy_object(Bucket=BUCKET, Key="k", CopySource=f"{BUCKET}/source"),
        "CopyObject",
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"second"),
        True,
    ),
    "tagging-then-put": (
        lambda c: c.put_object_tagging(
            Bucket=BUCKET, Key="k", Tagging={"TagSet": [{"Key": "t", "Value": "1"}]}
        ),
        "PutObjectTagging",
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"second", Tagging="t=2"),
        True,
    ),
    "untagging-then-put": (
        lambda c: c.delete_object_tagging(Bucket=BUCKET, Key="k"),
        "DeleteObjectTagging",
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"old", Tagging="t=2"),
        True,
    ),
    "multipart-then-put": (
        lambda c: complete_upload(c, "k", b"first"),
        "CompleteMultipartUpload",
        lambda c: c.put_object(Bucket=BUCKET, Key="k", Body=b"second"),
        False,
    ),
}


@pytest.mark.parametrize("mode", ["sync", "background"])
@pytest.mark.parametrize("single_writer", [False, True], ids=["fleet-check", "no-check"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_overtaken_shadow_write_ends_equal(
    aws: Accounts, raw: tuple[Any, Any], scenario: str, mode: str, single_writer: bool
) -> None:
    first_call, gated, second_call, existing = SCENARIOS[scenario]
    primary, shadow = raw
    both(primary, shadow, "source", b"copied")
    if existing:
        both(primary, shadow, "k", b"old", Tagging="t=0")
    first = Writer(aws, mode, single_writer=single_writer)
    second = Writer(aws, mode, single_writer=single_writer)
    own_locks(second)
    gate = Gate(first.shadow, gated)
    failures: list[BaseException] = []

    def run_first() -> None:
        try:
            first_call(first.client)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    thread = threading.Thread(target=run_first)
    thread.start()
    assert gate.wait_arrivals(1), "the first writer's shadow call never started"
    second_call(second.client)  # primary and shadow, both done while the first one waits
    assert second.writer.flush(timeout=30)
    gate.open()
    thread.join(timeout=30)
    assert first.writer.flush(timeout=30)
    assert not failures
    first.writer.close()
    second.writer.close()

    expected = state(primary, BUCKET)
    if single_writer:
        # Without the fleet check the first writer's older write is what the shadow keeps.
        assert state(shadow, SHADOW_BUCKET) != expected
    else:
        assert state(shadow, SHADOW_BUCKET) == expected
        kinds = first.hook.kinds() + second.hook.kinds()
        assert "shadow_failed" not in kinds
        assert "mismatch" not in kinds


def test_separate_writers_in_one_process_share_key_locks(aws: Accounts, raw: Any) -> None:
    """Checked, not assumed: the striped key locks are per process, not per DualWriter."""
    first = Writer(aws, "sync", single_writer=False)
    second = Writer(aws, "sync", single_writer=False)
    lock_a = first.client._self_mirror.key_lock(BUCKET, "k")
    lock_b = second.client._self_mirror.key_lock(BUCKET, "k")
    assert lock_a is lock_b


def test_fleet_check_costs_one_head_per_put(aws: Accounts, raw: Any) -> None:
    """The price in docs/s3.md: one HeadObject of the primary per put without tags; none with
    single_writer=True."""
    from conftest import record_requests  # noqa: PLC0415

    for single_writer, expected in ((False, ["PutObject", "HeadObject"]), (True, ["PutObject"])):
        writer = Writer(aws, "sync", single_writer=single_writer)
        sent = record_requests(writer.primary)
        writer.client.put_object(Bucket=BUCKET, Key="k", Body=b"x", Metadata={"a": "b"})
        assert sent == expected
        sent.clear()
        writer.client.put_object(Bucket=BUCKET, Key="t", Body=b"x", Tagging="a=b")
        tagged = ["PutObject", "HeadObject", "GetObjectTagging"] if not single_writer else None
        assert sent == (tagged or ["PutObject"])
        writer.writer.close()


# -- two real processes over HTTP ---------------------------------------------------------------

_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from conftest import Accounts
import dualwrite

accounts = Accounts(sys.argv[2])
primary, shadow = accounts.client("primary", "s3"), accounts.client("shadow", "s3")

held = []

def hold(**_):
    if held:
        return                  # the first shadow call only (not the convergence's)
    held.append(1)
    print("held", flush=True)   # the parent now writes the key, primary and shadow
    sys.stdin.readline()        # ... and lets this shadow call go on when it is done

shadow.meta.events.register("before-call.s3.PutObject", hold, unique_id="hold")
writer = dualwrite.DualWriter(flag=True, single_writer=sys.argv[3] == "1", journal=None)
client = writer.wrap(primary, shadow=shadow, names={"photos": "photos-acct2"})
client.put_object(Bucket="photos", Key="k", Body=b"first")
writer.close()
print("done", flush=True)
"""


@pytest.mark.slow  # a moto server and a second Python process: a few seconds
@pytest.mark.parametrize("single_writer", [False, True], ids=["fleet-check", "no-check"])
def test_two_processes_over_http_end_equal(single_writer: bool) -> None:
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from _support.servers import MotoServer  # noqa: PLC0415

    server = MotoServer()
    try:
        accounts = Accounts(server.url)
        primary, shadow = accounts.client("primary", "s3"), accounts.client("shadow", "s3")
        primary.create_bucket(Bucket=BUCKET)
        shadow.create_bucket(Bucket=SHADOW_BUCKET)
        tests = str(Path(__file__).resolve().parent)
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, tests, server.url, "1" if single_writer else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "held"
            writer = dualwrite.DualWriter(flag=True, single_writer=single_writer, journal=None)
            client = writer.wrap(primary, shadow=shadow, names={BUCKET: SHADOW_BUCKET})
            client.put_object(Bucket=BUCKET, Key="k", Body=b"second")
            writer.close()
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "done"
        finally:
            child.stdin.close()
            child.wait(30)
            child.stdout.close()
        assert child.returncode == 0
        on_primary = primary.get_object(Bucket=BUCKET, Key="k")["Body"].read()
        on_shadow = shadow.get_object(Bucket=SHADOW_BUCKET, Key="k")["Body"].read()
        assert on_primary == b"second"
        assert (on_shadow == on_primary) is not single_writer
    finally:
        server.stop()
