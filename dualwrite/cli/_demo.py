"""``dualwrite demo``: a migration on in-process moto, with two AWS accounts."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import boto3
from boto3.s3.transfer import TransferConfig

import dualwrite
from dualwrite.events import Event, Mismatch, ShadowFailed, ShadowWritten, Unsupported
from dualwrite.sessions import assume_role_session
from dualwrite.testing import RecordingHook

REGION = "us-east-1"
SHADOW_ROLE = "arn:aws:iam::111111111111:role/dualwrite-demo"
TENANTS = ("acme", "globex", "initech")
_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": REGION,
}


@contextmanager
def embedded_aws() -> Iterator[tuple[boto3.Session, boto3.Session]]:
    """Start in-process moto and yield (primary, shadow) sessions in two accounts.

    The shadow session comes from STS AssumeRole into account 111111111111, as a real service
    would reach the new account. Real credentials in the environment are masked for the
    duration, so nothing can reach AWS.
    """
    try:
        from moto import mock_aws  # noqa: PLC0415 - optional dependency
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        msg = "the demo needs moto: pip install 'dualwrite[demo]'"
        raise SystemExit(msg) from exc
    saved = {
        name: os.environ.get(name) for name in (*_FAKE_ENV, "AWS_PROFILE", "AWS_SESSION_TOKEN")
    }
    os.environ.update(_FAKE_ENV)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    try:
        with mock_aws():
            primary = boto3.Session(region_name=REGION)
            shadow = assume_role_session(
                SHADOW_ROLE, session_name="dualwrite-demo", region=REGION, base_session=primary
            )
            yield primary, shadow
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class PrintingHook:
    """Print one line per event."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, event: Event) -> None:
        w = event.write
        where = f"{w.resource}/{w.key}" if w.key is not None else w.resource
        line = f"  [{event.kind:<14}] tenant={w.tenant!s:<8} {w.operation:<24} {where}"
        if isinstance(event, ShadowWritten):
            line += f"  -> {w.shadow_resource}  lag {event.lag * 1000:.1f} ms"
        elif isinstance(event, ShadowFailed):
            line += f"  {event.error_type}: {event.error_message}"
        elif isinstance(event, Mismatch):
            line += f"  {event.field}: {event.primary} != {event.shadow}"
        elif isinstance(event, Unsupported):
            line += f"  ({event.reason})"
        print(line, file=self.out)


def run_demo(*, migrating: set[str], dynamodb: bool, out: TextIO) -> int:
    """Run the demo; return the exit code (0: every flagged write reached the shadow)."""
    recorder = RecordingHook()
    with embedded_aws() as (primary, shadow):
        writer = dualwrite.DualWriter(
            flag=lambda write: write.tenant in migrating,
            hooks=[PrintingHook(out), recorder],
        )
        print(f"dualwrite {dualwrite.__version__} demo: in-process moto, two accounts", file=out)
        print(f"primary account 123456789012, shadow account {SHADOW_ROLE.split(':')[4]}", file=out)
        print(f"flag on for: {', '.join(sorted(migrating)) or '(nobody)'}", file=out)
        ok = _s3_part(writer, primary, shadow, migrating, out)
        if dynamodb:
            from dualwrite.cli._demo_dynamodb import demo_dynamodb  # noqa: PLC0415

            demo_dynamodb(primary, shadow, writer, out)
        writer.close()
    counts: dict[str, int] = {}
    for event in recorder.events:
        counts[event.kind] = counts.get(event.kind, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    print(f"\nevents: {summary}", file=out)
    return 0 if ok and not counts.get("shadow_failed") else 1


def _s3_part(
    writer: dualwrite.DualWriter,
    primary: boto3.Session,
    shadow: boto3.Session,
    migrating: set[str],
    out: TextIO,
) -> bool:
    p_s3 = primary.client("s3")
    s_s3 = shadow.client("s3")
    p_s3.create_bucket(Bucket="photos")
    p_s3.create_bucket(Bucket="audit-logs")
    s_s3.create_bucket(Bucket="photos-acct2")
    s3 = writer.wrap(p_s3, shadow=s_s3, names={"photos": "photos-acct2"})

    print("\n== S3: writes through the wrapped client ==", file=out)
    big = io.BytesIO(os.urandom(6 * 1024 * 1024))
    multipart = TransferConfig(
        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )
    for tenant in TENANTS:
        with dualwrite.tenant(tenant):
            s3.put_object(Bucket="photos", Key=f"{tenant}/cat.jpg", Body=b"meow " * 100)
            s3.put_object(Bucket="photos", Key=f"{tenant}/draft.txt", Body="scratch")
            s3.copy_object(
                Bucket="photos",
                Key=f"{tenant}/cat-copy.jpg",
                CopySource={"Bucket": "photos", "Key": f"{tenant}/cat.jpg"},
            )
            s3.put_object_tagging(
                Bucket="photos",
                Key=f"{tenant}/cat.jpg",
                Tagging={"TagSet": [{"Key": "tenant", "Value": tenant}]},
            )
            s3.delete_object(Bucket="photos", Key=f"{tenant}/draft.txt")
            big.seek(0)
            s3.upload_fileobj(big, "photos", f"{tenant}/video.bin", Config=multipart)
            s3.get_object(Bucket="photos", Key=f"{tenant}/cat.jpg")  # reads: primary only
    with dualwrite.tenant("acme"):
        # No shadow name for this bucket: reported, never sent to the primary's name.
        s3.put_object(Bucket="audit-logs", Key="acme/app.log", Body=b"started")

    print("\n== S3: where each object landed ==", file=out)
    p_objects = _objects(p_s3, "photos")
    s_objects = _objects(s_s3, "photos-acct2")
    ok = True
    print(f"  {'key':<24} {'primary':>10} {'shadow':>10}  same bytes", file=out)
    for key in sorted(p_objects.keys() | s_objects.keys()):
        p_size, s_size = p_objects.get(key), s_objects.get(key)
        same = "-"
        if p_size is not None and s_size is not None:
            same = "yes" if _body(p_s3, "photos", key) == _body(s_s3, "photos-acct2", key) else "NO"
        expected = key.split("/", 1)[0] in migrating
        if expected and same != "yes":
            ok = False
        print(f"  {key:<24} {_size(p_size):>10} {_size(s_size):>10}  {same}", file=out)
    acl = s_s3.get_object_acl(Bucket="photos-acct2", Key="acme/cat.jpg")
    owner = acl["Owner"].get("ID", "?")[:12]
    grants = ", ".join(g["Permission"] for g in acl["Grants"])
    print(f"  shadow object acme/cat.jpg: owner {owner}..., grants {grants}", file=out)
    return ok


def _objects(client: Any, bucket: str) -> dict[str, int]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def _body(client: Any, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]


def _size(size: int | None) -> str:
    if size is None:
        return "absent"
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} MiB"
    return f"{size} B"
