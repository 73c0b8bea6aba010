"""Backfill throughput: ``copy`` with 16 workers against 1, with 10 ms added to every request.

Each measured copy runs in a child process, into an empty shadow bucket or table, through the
same engine as ``dualwrite copy`` (``dualwrite._offline.backfill.run``) with two accounts (the
shadow reached by STS AssumeRole). The primary holds 2,000 objects (1 KiB) and 20,000 items
(about 100 bytes). A ``before-send`` handler on both clients sleeps 10 ms before every request:
the round trip of a real AWS call, which is what the workers overlap. The child reports its wall
time, its request counts, its CPU time and its memory.

Backends:

* ``inprocess`` (default): moto runs inside the child (``mock_aws``), so a request costs the
  client's CPU plus moto's own work, about 1-2.5 ms, and no HTTP server;
* ``server``: a moto server in a process of its own, over HTTP. Its Werkzeug/Flask stack adds
  about 2 ms of CPU a request in one interpreter, which on 2 cores caps 16 workers near 200-300
  requests/s whatever the client does: it measures moto's server more than the backfill.
* ``fake`` (DynamoDB only): the requests go through botocore and are answered from an in-memory
  table (``benchmarks/_fake_dynamodb.py``) at no service CPU, as AWS answers from elsewhere. What
  is left is the copier's own CPU and the 10 ms per request: how far the engine's workers scale.

Run: ``python benchmarks/backfill.py [--backend inprocess|server] [--objects N] [--items N]
[--latency S] [--workers 1,16]``. Figures, not a test: nothing is asserted; the >= 5x target is
printed with PASS/MISS beside it. Other load on the machine slows the 16-worker runs (CPU-bound)
far more than the 1-worker runs (latency-bound): the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

REGION = "us-east-1"
SHADOW_ROLE = "arn:aws:iam::111111111111:role/dualwrite-backfill"
BUCKET = "bench-primary"
TABLE = "bench-orders"
TARGET_RATIO = 5.0
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _sessions(url: str | None) -> tuple[boto3.Session, boto3.Session]:
    primary = boto3.Session(region_name=REGION, **_keys())
    creds = primary.client("sts", endpoint_url=url).assume_role(
        RoleArn=SHADOW_ROLE, RoleSessionName="bench"
    )["Credentials"]
    shadow = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=REGION,
    )
    return primary, shadow


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _create_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


# -- the server -----------------------------------------------------------------------------------


def _serve(port: int) -> None:
    """Child: a moto server on ``port`` until killed."""
    import logging  # noqa: PLC0415

    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _item(i: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"tenant-{i % 50:02d}"},
        "sk": {"N": str(i)},
        "status": {"S": "shipped"},
        "total": {"N": f"{i % 997}.{i % 100:02d}"},
        "lines": {"L": [{"S": "sku-1"}, {"N": "2"}]},
    }


def _seed(s3: Any, ddb: Any, objects: int, items: int) -> None:
    s3.create_bucket(Bucket=BUCKET)
    body = bytes(range(256)) * 4
    for i in range(objects):
        s3.put_object(Bucket=BUCKET, Key=f"tenant-{i % 20:02d}/{i:06d}.bin", Body=body)
    _create_table(ddb, TABLE)
    batch = []
    for i in range(items):
        batch.append({"PutRequest": {"Item": _item(i)}})
        if len(batch) == 25:
            ddb.batch_write_item(RequestItems={TABLE: batch})
            batch = []
    if batch:
        ddb.batch_write_item(RequestItems={TABLE: batch})


# -- one measured copy ----------------------------------------------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _clients(
    backend: str, endpoint: str | None, service: str, workers: int, size: int
) -> tuple[Any, Any]:
    """The two accounts' clients for one measured copy, the primary seeded."""
    from botocore.config import Config  # noqa: PLC0415

    if backend == "fake":
        primary_session = boto3.Session(region_name=REGION, **_keys())
        shadow_session = boto3.Session(
            region_name=REGION, aws_access_key_id="shadow", aws_secret_access_key="shadow"
        )
    else:
        primary_session, shadow_session = _sessions(endpoint)
    config = Config(max_pool_connections=workers + 4, retries={"mode": "standard"})
    primary = primary_session.client(service, endpoint_url=endpoint, config=config)
    shadow = shadow_session.client(service, endpoint_url=endpoint, config=config)
    if backend == "fake":
        from _fake_dynamodb import FakeTables  # noqa: PLC0415

        primary_tables, shadow_tables = FakeTables(), FakeTables()
        primary_tables.seed(TABLE, [_item(i) for i in range(size)])
        primary_tables.attach(primary)
        shadow_tables.attach(shadow)
    elif backend == "inprocess":
        _seed(
            primary_session.client("s3"),
            primary_session.client("dynamodb"),
            size if service == "s3" else 0,
            size if service == "dynamodb" else 0,
        )
    return primary, shadow


def _child(backend: str, url: str, service: str, workers: int, latency: float, size: int) -> None:
    """Child: seed (in-process backend), copy into an empty shadow; print the figures."""
    import contextlib  # noqa: PLC0415

    import dualwrite  # noqa: PLC0415
    from dualwrite._dynamodb.backfill import DynamoJob  # noqa: PLC0415
    from dualwrite._offline.backfill import RequestMeter, run  # noqa: PLC0415
    from dualwrite._s3.backfill import S3Job  # noqa: PLC0415

    endpoint = url if backend == "server" else None
    with contextlib.ExitStack() as stack:
        if backend == "inprocess":
            from moto import mock_aws  # noqa: PLC0415

            stack.enter_context(mock_aws())
        primary, shadow = _clients(backend, endpoint, service, workers, size)
        target = f"bench-shadow-{service}-w{workers}-{time.monotonic_ns()}"
        if service == "s3":
            shadow.create_bucket(Bucket=target)
        elif backend != "fake":
            _create_table(shadow, target)

        def slow(**_: Any) -> None:
            time.sleep(latency)

        meter = RequestMeter()
        for side, client in (("primary", primary), ("shadow", shadow)):
            client.meta.events.register_first("before-send", slow, unique_id="bench-latency")
            meter.attach(client, side)
        writer = dualwrite.DualWriter(flag=False, circuit_breaker=None)
        job: Any
        if service == "s3":
            writer.wrap(primary, shadow=shadow, names={BUCKET: target})
            job = S3Job(
                command="copy",
                primary=primary,
                shadow=shadow,
                resource=BUCKET,
                shadow_resource=target,
            )
        else:
            writer.wrap(primary, shadow=shadow, names={TABLE: target})
            job = DynamoJob(
                command="copy",
                primary=primary,
                shadow=shadow,
                resource=TABLE,
                shadow_resource=target,
                key_names=("pk", "sk"),
                segments=tuple(range(workers)),
                total_segments=workers,
            )
        writer.close()
        before = resource.getrusage(resource.RUSAGE_SELF)
        rss_before = _rss_mib()
        started = time.perf_counter()
        report = run(job, workers=workers, meter=meter)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "copied": report.copied,
                "failed": report.failed,
                "requests": sum(sum(ops.values()) for ops in report.requests.values()),
                "cpu": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
                "rss_before_mib": rss_before,
                "peak_rss_mib": after.ru_maxrss / 1024,
            }
        )
    )


def _measure(
    backend: str, url: str, service: str, workers: int, latency: float, size: int
) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            backend,
            url,
            service,
            *map(str, (workers, latency, size)),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **ENV},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=("inprocess", "server", "fake"), default="inprocess")
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--latency", type=float, default=0.010, help="seconds added per request")
    parser.add_argument("--workers", default="1,16", help="comma-separated worker counts")
    parser.add_argument("--services", default="s3,dynamodb", help="comma-separated services")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return
    os.environ.update(ENV)
    if args.backend == "fake" and args.services != "dynamodb":
        parser.error("--backend fake answers DynamoDB only: add --services dynamodb")
    if args.child:
        backend, url, service, workers, latency, size = args.child
        _child(backend, url, service, int(workers), float(latency), int(size))
        return
    server = None
    url = "-"
    if args.backend == "server":
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE, text=True
        )
        assert server.stdout is not None
        server.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        primary, _ = _sessions(url)
        _seed(
            primary.client("s3", endpoint_url=url),
            primary.client("dynamodb", endpoint_url=url),
            args.objects,
            args.items,
        )
    try:
        _report(args, url)
    finally:
        if server is not None:
            server.kill()
            server.wait()


def _report(args: argparse.Namespace, url: str) -> None:
    print(
        f"backend {args.backend}; {args.objects} objects, {args.items} items; "
        f"{args.latency * 1000:.0f} ms added per request; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before"
    )
    counts = [int(w) for w in args.workers.split(",")]
    rows = []
    for service, total, unit in (
        ("s3", args.objects, "objects"),
        ("dynamodb", args.items, "items"),
    ):
        if service not in args.services.split(","):
            continue
        figures = {}
        for w in counts:
            f = figures[w] = _measure(args.backend, url, service, w, args.latency, total)
            if f["copied"] != total or f["failed"]:
                msg = f"{service} with {w} workers did not copy everything: {f}"
                raise SystemExit(msg)
            rows.append(
                f"| {service} | {w} | {total:,} {unit} | {f['seconds']:.1f} s | "
                f"{total / f['seconds']:,.0f} {unit}/s | {f['requests']:,} | "
                f"{f['cpu'] / f['requests'] * 1000:.1f} ms | "
                f"{f['peak_rss_mib']:.0f} MiB (+{f['peak_rss_mib'] - f['rss_before_mib']:.0f}) |"
            )
            print(rows[-1], flush=True)
        if len(counts) >= 2:
            ratio = figures[counts[0]]["seconds"] / figures[counts[-1]]["seconds"]
            verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
            rows.append(
                f"| {service} | {counts[-1]} vs {counts[0]} | | | **{ratio:.1f}x** "
                f"(target >= {TARGET_RATIO:.0f}x: {verdict}) | | | |"
            )
    print()
    print(
        "| service | workers | copied | time | throughput | requests | CPU a request "
        "| peak RSS (growth during the copy) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(row)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
