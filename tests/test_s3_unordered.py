"""DeleteObjects takes no per-key lock: a write of one of its keys from another thread may reach
the shadow before or after it. Whatever the order, the shadow must end as the primary.

Found by the async convergence property (tests/test_async_s3.py): DeleteObjects stamped its keys
as if it were ordered, so while one write's fleet check was still running, the check of the other
write (whose shadow call landed last) was skipped as "superseded", and the shadow kept the wrong
state with nothing reported. The gates below force those interleavings.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from _support.shadow import Gate
from conftest import S3Env

import dualwrite
from dualwrite.testing import RecordingHook


def _keys(client: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def _in_thread(func: Any) -> threading.Thread:
    thread = threading.Thread(target=func)
    thread.start()
    return thread


def _until(done: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_delete_objects_landing_after_a_later_put_still_checked(s3: S3Env) -> None:
    rec = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, hooks=[rec], journal=None)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    shadow_delete = Gate(s3.shadow, "DeleteObjects")
    checks = Gate(s3.primary, "HeadObject")  # every fleet check reads the primary
    deleting = _in_thread(
        lambda: client.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "b"}]})
    )
    assert shadow_delete.wait_arrivals(1)  # the primary deleted b; the shadow's delete waits
    putting = _in_thread(lambda: client.put_object(Bucket="photos", Key="b", Body=b"new"))
    assert checks.wait_arrivals(1)  # the put is on both accounts; its check waits
    shadow_delete.open()  # the older delete lands on the shadow last
    _until(lambda: not deleting.is_alive() or checks.arrived == 2)
    checks.open()
    deleting.join()
    putting.join()
    writer.close()
    assert _keys(s3.primary, "photos") == ["b"]
    assert _keys(s3.shadow, "photos-acct2") == ["b"]
    assert s3.shadow.get_object(Bucket="photos-acct2", Key="b")["Body"].read() == b"new"
    assert "shadow_failed" not in rec.kinds()


def test_a_put_landing_after_a_later_delete_objects_still_checked(s3: S3Env) -> None:
    rec = RecordingHook()
    writer = dualwrite.DualWriter(flag=True, hooks=[rec], journal=None)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    shadow_put = Gate(s3.shadow, "PutObject")
    checks = Gate(s3.primary, "HeadObject")
    putting = _in_thread(lambda: client.put_object(Bucket="photos", Key="b", Body=b"old"))
    assert shadow_put.wait_arrivals(1)  # the primary has b; the shadow's put waits
    deleting = _in_thread(
        lambda: client.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "b"}]})
    )
    assert checks.wait_arrivals(1)  # the later delete is on both accounts; its check waits
    shadow_put.open()  # the older put lands on the shadow last
    _until(lambda: not putting.is_alive() or checks.arrived == 2)
    checks.open()
    putting.join()
    deleting.join()
    writer.close()
    assert _keys(s3.primary, "photos") == []
    assert _keys(s3.shadow, "photos-acct2") == []
    assert "shadow_failed" not in rec.kinds()
