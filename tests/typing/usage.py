"""A usage sample checked by ``mypy --strict``: the public API as a service would type it."""

from __future__ import annotations

import boto3

import dualwrite
from dualwrite.events import Event, JournalFailed, ShadowFailed
from dualwrite.journal import MemoryJournal
from dualwrite.testing import RecordingHook


def flag(write: dualwrite.Write) -> bool:
    return write.tenant in {"acme"} and write.service == "s3"


def alert(event: Event) -> None:
    if isinstance(event, ShadowFailed):
        print(event.error_type, event.error_code, event.write.key)
    if isinstance(event, JournalFailed):
        print(event.problem, event.action, event.entries, event.reason)


def tenant_from_key(write: dualwrite.Write) -> str | None:
    return write.key.split("/", 1)[0] if isinstance(write.key, str) else None


def build() -> None:
    recorder = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=flag,
        hooks=[alert, recorder, dualwrite.hooks.LoggingHook()],
        tenant_of=tenant_from_key,
        on_shadow_error="record",
    )
    primary = boto3.client("s3")
    s3 = writer.wrap(primary, shadow=boto3.client("s3"), names={"photos": "photos-acct2"})
    with dualwrite.tenant("acme"):
        s3.put_object(Bucket="photos", Key="acme/cat.jpg", Body=b"meow")
    assert dualwrite.current_tenant() is None
    kinds: list[str] = recorder.kinds()
    print(kinds)
    writer.flush(timeout=5.0)
    writer.close()
    with dualwrite.DualWriter(flag=True) as other:
        other.wrap(primary, shadow=boto3.client("s3"), names=lambda name: f"{name}-acct2")
    timed = dualwrite.DualWriter(
        flag=True,
        mode="background",
        journal=MemoryJournal(),
        shadow_timeout=None,
        close_timeout=2.5,
    )
    done: bool = timed.close(timeout=1.0)
    print(done, timed.closed)


def stage_of(write: dualwrite.Write) -> dualwrite.Stage:
    return dualwrite.Stage.CUTOVER if write.tenant == "acme" else dualwrite.Stage.OFF


def staged() -> None:
    writer = dualwrite.DualWriter(stage=stage_of, mode="background")
    s3 = writer.wrap(boto3.client("s3"), shadow=boto3.client("s3"), names={"a": "b"})
    s3.put_object(Bucket="a", Key="k", Body=b"x")
    owner: str = writer.stage_of("acme").owner
    here: bool = writer.runs_here("acme", account="shadow")

    @writer.guard(account="shadow", tenant="tenant_id")
    def invoice(tenant_id: str, amount: int) -> int:
        return amount

    result: int | None = invoice("acme", 3)
    print(owner, here, result)
