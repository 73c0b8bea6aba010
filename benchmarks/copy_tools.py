"""Backfill throughput: ``dualwrite copy`` (through the host, ``--server-side``) beside
``aws s3 sync`` and rclone, copying the same small objects between two accounts, in objects/s.

One moto server (a child process on 127.0.0.1) holds both accounts: the primary is moto's
default account, the shadow is reached by STS ``AssumeRole`` (as ``dualwrite copy
--shadow-role-arn`` does). The primary bucket is filled with ``--objects`` objects of ``--size``
bytes (a content type and one user-metadata entry each); then each tool copies it to a fresh
bucket of the shadow account, one after the other, and the destination is listed to check that
every object arrived. Cases:

- ``dualwrite copy``: through this host (GetObject from the primary, PutObject to the shadow,
  conditional, then the primary's state read again: ``HeadObject``);
- ``dualwrite copy --server-side``: the shadow's client issues ``CopyObject`` (the primary read
  for its state with ``HeadObject``, no body through the host);
- ``aws s3 sync``: awscli with the shadow's credentials, bucket to bucket (``CopyObject``);
- ``rclone copy`` between two remotes (one per account): through the host;
- ``rclone copy`` within the shadow's remote: server-side (``CopyObject``).

Every tool gets the same parallelism (``--workers``) and the owner ACL. All of them share the
machine with moto, whose CPU per request dominates on a 2-core host: the figures rank the tools
by how many requests they make per object and how well they overlap them, not by what AWS would
serve. awscli is taken from ``--aws`` (install it in a venv of its own:
``python -m venv /work/venv-awscli && /work/venv-awscli/bin/pip install awscli``), rclone from
``--rclone`` (Debian: ``apt-get install rclone``); a missing tool is skipped.

Run: ``python benchmarks/copy_tools.py [--objects 10000] [--size 1024] [--workers 8]``.
Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

REGION = "us-east-1"
SHADOW_ROLE = "arn:aws:iam::111111111111:role/dualwrite-backfill"
SOURCE = "copy-source"
OWNER_ACL = "bucket-owner-full-control"


def serve() -> None:
    """Child process: a moto server; print its URL, stop when stdin closes."""
    from _support.servers import MotoServer  # type: ignore[import-not-found]  # noqa: PLC0415

    server = MotoServer()
    sys.stdout.write(json.dumps({"url": server.url}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()
    server.stop()


@contextmanager
def moto_server() -> Iterator[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT / "tests"), str(ROOT)))}
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        yield json.loads(child.stdout.readline())["url"]
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)


def credentials(url: str) -> tuple[dict[str, str], dict[str, str]]:
    """The primary's and the shadow's (assumed role) credentials."""
    primary = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    sts = boto3.client(
        "sts",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    creds = sts.assume_role(RoleArn=SHADOW_ROLE, RoleSessionName="bench")["Credentials"]
    shadow = {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }
    return primary, shadow


def s3(url: str, creds: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds.get("AWS_SESSION_TOKEN"),
        config=Config(max_pool_connections=32),
    )


def fill(client: Any, count: int, size: int) -> None:
    client.create_bucket(Bucket=SOURCE)
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)

    def put(i: int) -> None:
        client.put_object(
            Bucket=SOURCE,
            Key=f"tenant-{i % 10}/object-{i:06d}",
            Body=body,
            ContentType="application/octet-stream",
            Metadata={"n": str(i)},
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def count_objects(client: Any, bucket: str) -> int:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sum(int(page.get("KeyCount", 0)) for page in pages)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_case(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run one tool; return its wall seconds, its CPU seconds and its output's last line."""
    cpu = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode:
        print(f"#   {argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}", file=sys.stderr)
    lines = (done.stdout or done.stderr).strip().splitlines()
    return wall, children_cpu() - cpu, lines[-1] if lines else ""


def main() -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=10_000, help="objects to copy")
    parser.add_argument("--size", type=int, default=1024, help="bytes per object")
    parser.add_argument("--workers", type=int, default=8, help="parallel requests per tool")
    parser.add_argument("--aws", default="/work/venv-awscli/bin/aws", help="the aws command")
    parser.add_argument("--rclone", default="rclone", help="the rclone command")
    parser.add_argument(
        "--cases",
        default="dualwrite,dualwrite-server-side,aws-sync,rclone,rclone-server-side",
        help="comma-separated cases to run (default: all)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    import dualwrite  # noqa: PLC0415

    print(
        f"# dualwrite {dualwrite.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    print(
        f"# {args.objects} objects of {args.size} bytes, {args.workers} parallel requests per "
        "tool, one moto server holding both accounts"
    )
    rows: list[tuple[str, str, int, float, float]] = []
    with moto_server() as url, tempfile.TemporaryDirectory() as tmp:
        primary_creds, shadow_creds = credentials(url)
        primary, shadow = s3(url, primary_creds), s3(url, shadow_creds)
        started = time.perf_counter()
        fill(primary, args.objects, args.size)
        print(f"# filled the primary bucket in {time.perf_counter() - started:.0f} s")
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        base_env |= {"AWS_DEFAULT_REGION": REGION, "PYTHONPATH": str(ROOT)}
        aws_config = Path(tmp) / "aws-config"
        aws_config.write_text(
            f"[default]\nregion = {REGION}\ns3 =\n"
            f"  max_concurrent_requests = {args.workers}\n  max_queue_size = 10000\n"
        )
        rclone_env = {}
        for name, creds in (("PRIMARY", primary_creds), ("SHADOW", shadow_creds)):
            prefix = f"RCLONE_CONFIG_{name}_"
            rclone_env |= {
                prefix + "TYPE": "s3",
                prefix + "PROVIDER": "Other",
                prefix + "ENDPOINT": url,
                prefix + "REGION": REGION,
                prefix + "ACCESS_KEY_ID": creds["AWS_ACCESS_KEY_ID"],
                prefix + "SECRET_ACCESS_KEY": creds["AWS_SECRET_ACCESS_KEY"],
                prefix + "SESSION_TOKEN": creds.get("AWS_SESSION_TOKEN", ""),
                prefix + "ACL": OWNER_ACL,
                prefix + "NO_CHECK_BUCKET": "true",
                prefix + "FORCE_PATH_STYLE": "true",
            }
        rclone_flags = ["--transfers", str(args.workers), "--checkers", str(args.workers)]
        for case in args.cases.split(","):
            target = f"copy-{case}"
            shadow.create_bucket(Bucket=target)
            if case.startswith("dualwrite"):
                names = Path(tmp) / f"{case}.json"
                names.write_text(json.dumps({"s3": {SOURCE: target}}))
                argv = [
                    sys.executable, "-m", "dualwrite", "copy", "s3", "--bucket", SOURCE,
                    "--workers", str(args.workers), "--no-progress", "--json",
                    "--names", str(names), "--primary-endpoint-url", url,
                    "--shadow-endpoint-url", url, "--shadow-sts-endpoint-url", url,
                    "--shadow-role-arn", SHADOW_ROLE,
                ]  # fmt: skip
                if case == "dualwrite-server-side":
                    argv.append("--server-side")
                env = base_env | primary_creds
                how = "through the host" if case == "dualwrite" else "CopyObject in S3"
                label = f"dualwrite copy{' --server-side' if 'server' in case else ''}"
            elif case == "aws-sync":
                if shutil.which(args.aws) is None:
                    print(f"#   {case}: skipped ({args.aws} not found)")
                    continue
                argv = [
                    args.aws, "s3", "sync", f"s3://{SOURCE}", f"s3://{target}",
                    "--endpoint-url", url, "--acl", OWNER_ACL, "--only-show-errors",
                ]  # fmt: skip
                env = base_env | shadow_creds | {"AWS_CONFIG_FILE": str(aws_config)}
                how, label = "CopyObject in S3", "aws s3 sync"
            else:
                if shutil.which(args.rclone) is None:
                    print(f"#   {case}: skipped ({args.rclone} not found)")
                    continue
                source = "shadow" if case == "rclone-server-side" else "primary"
                argv = [
                    args.rclone, "copy", f"{source}:{SOURCE}", f"shadow:{target}",
                    *rclone_flags, "--stats-one-line", "--stats", "0", "-q",
                ]  # fmt: skip
                env = base_env | rclone_env
                how = "CopyObject in S3" if source == "shadow" else "through the host"
                label = "rclone copy" + (" (one remote)" if source == "shadow" else "")
            wall, cpu, last = run_case(argv, env)
            arrived = count_objects(shadow, target)
            rows.append((label, how, arrived, wall, cpu))
            print(f"#   {label}: {arrived} objects in {wall:.1f} s ({cpu:.1f} s CPU)")
            if case.startswith("dualwrite") and last.startswith("{"):
                report = json.loads(last)
                print(f"#     requests: {report.get('requests')}")
                print(f"#     server-side: {report.get('server_side')}")
    print()
    print("| tool | bytes take | objects arrived | seconds | objects/s | tool CPU s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for label, how, arrived, wall, cpu in rows:
        print(f"| {label} | {how} | {arrived} | {wall:.1f} | {arrived / wall:.0f} | {cpu:.1f} |")
    print(f"\n# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
