"""Per-call cost of plain vs wrapped S3 ``put_object``, against canned botocore responses.

No server and no socket: every client gets a ``before-send.s3.PutObject`` handler that returns a
canned ``200 OK`` :class:`botocore.awsrequest.AWSResponse`, so botocore still does all of its CPU
work for each call (parameter validation, serialisation, the request checksum, SigV4 signing,
response parsing) and only the network is left out. Credentials and region are explicit, so
nothing is looked up.

Cases, measured in one run and interleaved (each round runs every case once, in a rotated
order) so that noise on a shared machine hits every case alike:

* ``plain``: ``put_object`` on the bare primary client;
* ``wrapped, flag off``: the same call through ``dualwrite.wrap(..., flag=lambda w: False)``;
* ``wrapped, flag on``: through ``dualwrite.wrap(..., flag=lambda w: True)`` with a canned
  shadow client (the shadow write runs in the caller's thread, ``mode="sync"``);
* ``two plain calls``: ``put_object`` on the primary, then on the shadow client, without the
  wrapper: what the flag-on case would cost if the wrapper itself were free.

Run: ``python benchmarks/bench_s3.py [--calls N] [--repeat R]``. Figures, not a test: nothing is
asserted; the targets are printed with PASS/MISS beside them.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore
from botocore.awsrequest import AWSResponse
from botocore.config import Config

import dualwrite

REGION = "us-east-1"
PRIMARY_BUCKET = "bench-primary"
SHADOW_BUCKET = "bench-shadow"
BODY = bytes(range(256)) * 4  # 1 KiB
KEY = "tenant-a/object.bin"

FLAG_OFF_TARGET = 1.02
FLAG_ON_TARGET = 2.1
WRAPPER_WORK_TARGET = 0.10


class _EmptyRaw:
    """The ``raw`` of a canned response: an empty body."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        return iter(())

    def read(self, *_: Any) -> bytes:
        return b""


def _canned_put(request: Any, **_: Any) -> AWSResponse:
    """A canned ``PutObject`` answer, as S3 sends it for a 1 KiB object."""
    return AWSResponse(
        request.url,
        200,
        {
            "x-amz-id-2": "Q2FubmVkIHJlc3BvbnNlIGlkLTIgZm9yIHRoZSBiZW5jaG1hcms=",
            "x-amz-request-id": "0123456789ABCDEF",
            "Date": "Wed, 26 Nov 2025 12:00:00 GMT",
            "x-amz-server-side-encryption": "AES256",
            "ETag": '"b6d81b360a5672d80c27430f39153e2c"',
            "x-amz-checksum-crc32": "Yw8Nzw==",
            "x-amz-checksum-type": "FULL_OBJECT",
            "Content-Length": "0",
            "Server": "AmazonS3",
        },
        _EmptyRaw(),
    )


def canned_client(access_key: str) -> Any:
    """A real boto3 S3 client whose PutObject never leaves the process."""
    session = boto3.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key="bench-secret-key",
        region_name=REGION,
    )
    client = session.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 1}))
    client.meta.events.register("before-send.s3.PutObject", _canned_put)
    return client


def build_cases() -> dict[str, Callable[[], Any]]:
    """Return one zero-argument callable per case, each making one logical ``put_object``."""
    primary = canned_client("AKIAPRIMARYBENCH0001")
    shadow = canned_client("AKIASHADOWBENCH00001")
    names = {PRIMARY_BUCKET: SHADOW_BUCKET}
    off = dualwrite.wrap(primary, shadow=shadow, flag=lambda w: False, names=names)
    on = dualwrite.wrap(primary, shadow=shadow, flag=lambda w: True, names=names)

    def plain() -> Any:
        return primary.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def flag_off() -> Any:
        return off.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def flag_on() -> Any:
        return on.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def two_plain() -> Any:
        primary.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)
        return shadow.put_object(Bucket=SHADOW_BUCKET, Key=KEY, Body=BODY)

    return {
        "plain": plain,
        "wrapped, flag off": flag_off,
        "wrapped, flag on": flag_on,
        "two plain calls": two_plain,
    }


def check_cases(cases: dict[str, Callable[[], Any]]) -> None:
    """Make sure every case really went through botocore and got the canned answer."""
    for name, case in cases.items():
        response = case()
        status = response["ResponseMetadata"]["HTTPStatusCode"]
        if status != 200 or response.get("ETag") != '"b6d81b360a5672d80c27430f39153e2c"':
            raise SystemExit(f"case {name!r} did not get the canned response: {response!r}")


def time_block(case: Callable[[], Any], calls: int) -> float:
    """Seconds per call of ``calls`` back-to-back calls."""
    perf = time.perf_counter
    start = perf()
    for _ in range(calls):
        case()
    return (perf() - start) / calls


def measure(cases: dict[str, Callable[[], Any]], calls: int, repeat: int) -> dict[str, list[float]]:
    """Run ``repeat`` rounds; in each, every case runs ``calls`` times, in a rotated order."""
    names = list(cases)
    results: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: caches, endpoint resolution, first-call imports
        time_block(cases[name], max(calls // 10, 20))
    for round_no in range(repeat):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            results[name].append(time_block(cases[name], calls))
    return results


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(results: dict[str, list[float]], calls: int, repeat: int) -> None:
    med = {name: statistics.median(values) for name, values in results.items()}
    low = {name: min(values) for name, values in results.items()}
    plain = med["plain"]
    print(
        f"dualwrite {dualwrite.__version__}, Python {platform.python_version()}, "
        f"boto3 {boto3.__version__}, botocore {botocore.__version__}, "
        f"{platform.machine()}, {_cpus()} CPUs"
    )
    print(
        f"put_object, 1 KiB body, canned 200 responses; {repeat} rounds x {calls} calls per "
        "case, interleaved; median of the per-round means (min beside it)"
    )
    print()
    print("| case | µs/call (median) | µs/call (min) | ratio to plain |")
    print("| --- | ---: | ---: | ---: |")
    for name in results:
        print(
            f"| {name} | {med[name] * 1e6:.1f} | {low[name] * 1e6:.1f} | "
            f"{med[name] / plain:.3f}x |"
        )
    print()
    off_ratio = med["wrapped, flag off"] / plain
    on_ratio = med["wrapped, flag on"] / plain
    work = (med["wrapped, flag on"] - med["two plain calls"]) / plain
    print("| target | measured | verdict |")
    print("| --- | ---: | --- |")
    print(
        f"| flag off <= {FLAG_OFF_TARGET:.2f}x plain | {off_ratio:.3f}x | "
        f"{verdict(off_ratio <= FLAG_OFF_TARGET)} |"
    )
    print(
        f"| flag on <= {FLAG_ON_TARGET:.1f}x plain | {on_ratio:.3f}x | "
        f"{verdict(on_ratio <= FLAG_ON_TARGET)} |"
    )
    print(
        f"| wrapper work (flag on - two plain) / plain <= {WRAPPER_WORK_TARGET:.2f} of a call | "
        f"{work:.3f} | {verdict(work <= WRAPPER_WORK_TARGET)} |"
    )


def _cpus() -> int | str:
    import os  # noqa: PLC0415

    count = os.cpu_count()
    return count if count is not None else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="calls per case per round")
    parser.add_argument("--repeat", type=int, default=15, help="rounds")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.repeat < 1:
        parser.error("--calls and --repeat must be at least 1")
    cases = build_cases()
    check_cases(cases)
    results = measure(cases, args.calls, args.repeat)
    report(results, args.calls, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
