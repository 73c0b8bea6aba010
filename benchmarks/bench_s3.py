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
  wrapper: what the flag-on case would cost if the wrapper itself were free;
* ``two plain calls, shadow ACL``: the same, with the ``ACL="bucket-owner-full-control"`` that
  every shadow create carries (design, semantics 4): it shows how much of the flag-on cost beyond
  two plain calls is botocore serialising and signing that one header, not the wrapper;
* ``flag on, shadow_timeout=None``: the flag-on case with the shadow call made in the
  caller's thread, not on a helper thread the caller can stop waiting for (what the
  ``shadow_timeout`` bound costs is the difference);
* ``flag off, journal``: the flag-off case with an SQLite journal (the default configuration):
  the primary client then carries the counter of sent requests that a journal's intents read;
* ``flag on, journal``: the flag-on case with an SQLite journal (the default configuration,
  ``journal="auto"``): the write-ahead intent is added before the primary call and removed
  after the shadow's; what the journal costs is the difference to ``flag on``;
* ``flag on, single_writer`` and ``flag on, journal, single_writer``: the two cases above with
  ``single_writer=True``, which skips the fleet check (the ``HeadObject`` of the primary after
  each shadow write, answered here by a canned ``200`` that shows the object the canned put
  left); what the fleet check costs is the difference;
* ``stage DUAL_WRITE`` and ``stage CUTOVER``: through ``dualwrite.wrap(..., stage=...)``; the
  stage is asked once per call and decides the direction (CUTOVER: the shadow client first, with
  the bucket renamed and the owner ACL, then the primary). What routing by stage costs beyond
  ``flag on``; ``stage OFF`` against ``wrapped, flag off`` and ``stage DUAL_WRITE, single_writer``
  against ``flag on, single_writer`` (issue 12: within 0.01x of flag mode).

Run: ``python benchmarks/bench_s3.py [--calls N] [--repeat R] [--instructions N]``. Figures, not
a test: nothing is asserted; the targets are printed with PASS/MISS beside them.
``--instructions N`` also counts the instructions each case executes per call under valgrind
(cachegrind), a figure that other load on a shared machine cannot disturb.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import _instructions
import boto3
import botocore
from botocore.awsrequest import AWSResponse

import dualwrite

REGION = "us-east-1"
PRIMARY_BUCKET = "bench-primary"
SHADOW_BUCKET = "bench-shadow"
BODY = bytes(range(256)) * 4  # 1 KiB
KEY = "tenant-a/object.bin"
OWNER_ACL = "bucket-owner-full-control"

FLAG_OFF_TARGET = 1.01  # issue 12 (issue 3 had 1.02)
FLAG_ON_TARGET = 2.04  # issue 12 (issue 3 had 2.1)
WRAPPER_WORK_TARGET = 0.10


class _EmptyRaw:
    """The ``raw`` of a canned response: an empty body."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        return iter(())

    def read(self, *_: Any) -> bytes:
        return b""


_HEADERS: Any = {  # botocore copies them into a HeadersDict per response
    "x-amz-id-2": "Q2FubmVkIHJlc3BvbnNlIGlkLTIgZm9yIHRoZSBiZW5jaG1hcms=",
    "x-amz-request-id": "0123456789ABCDEF",
    "Date": "Wed, 26 Nov 2025 12:00:00 GMT",
    "x-amz-server-side-encryption": "AES256",
    "ETag": '"b6d81b360a5672d80c27430f39153e2c"',
    "x-amz-checksum-crc32": "Yw8Nzw==",
    "x-amz-checksum-type": "FULL_OBJECT",
    "Content-Length": "0",
    "Server": "AmazonS3",
}


def _canned_put(request: Any, **_: Any) -> Any:
    """A canned ``PutObject`` answer (an ``AWSResponse``), as S3 sends it for a 1 KiB object.

    Returning a response from ``before-send`` makes botocore skip the HTTP send and parse this
    instead; everything before (signing) and after (parsing) still runs. The body is read to
    its end first, as the HTTP layer would: that is when botocore's aws-chunked wrapper computes
    the CRC32 checksum it sends as a trailer.
    """
    body = request.body
    if hasattr(body, "read"):
        while body.read(65536):
            pass
    return AWSResponse(request.url, 200, _HEADERS, _EmptyRaw())


_HEAD_HEADERS: Any = {  # the object as the canned put left it (no metadata, no tags)
    **{name: value for name, value in _HEADERS.items() if not name.startswith("x-amz-checksum")},
    "Content-Length": str(len(BODY)),
    "Content-Type": "binary/octet-stream",
    "Last-Modified": "Wed, 26 Nov 2025 12:00:00 GMT",
    "Accept-Ranges": "bytes",
}


def _canned_head(request: Any, **_: Any) -> Any:
    """A canned ``HeadObject`` answer: the object every canned put leaves.

    The wrapper's fleet check reads the primary's object back after each shadow write (one
    ``HeadObject``, see docs/s3.md); it must find what it mirrored, as it does on a bucket
    written by one process. Without this answer the check would try the network.
    """
    return AWSResponse(request.url, 200, _HEAD_HEADERS, _EmptyRaw())


def canned_client(access_key: str, sent: Counter[str] | None = None) -> Any:
    """A real boto3 S3 client whose PutObject and HeadObject never leave the process."""
    session = boto3.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key="bench-secret-key",
        region_name=REGION,
    )
    client = session.client("s3")
    if sent is not None:

        def count(event_name: str, **_: Any) -> None:
            sent[event_name.rsplit(".", 1)[-1]] += 1

        client.meta.events.register("before-send.s3.*", count)
    client.meta.events.register("before-send.s3.PutObject", _canned_put)
    client.meta.events.register("before-send.s3.HeadObject", _canned_head)
    return client


SENT: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
"""Requests each side's client sent (primary, shadow), by operation."""


def build_cases(count: bool = True) -> dict[str, Callable[[], Any]]:
    """Return one zero-argument callable per case, each making one logical ``put_object``.

    Every wrapped case gets a primary client of its own: a handler one wrapper registers on its
    primary (the count of sent requests that a journal's intents read) must not reach the other
    cases' calls, nor ``plain``'s. With ``count=False`` (the valgrind child) no client counts
    its requests either, so ``plain`` is botocore and the canned answer alone.
    """
    p_sent, s_sent = SENT if count else (None, None)
    primary = canned_client("AKIAPRIMARYBENCH0001", p_sent)
    shadow = canned_client("AKIASHADOWBENCH00001", s_sent)

    def wrap(**options: Any) -> Any:
        own = canned_client("AKIAPRIMARYBENCH0001", p_sent)
        return dualwrite.wrap(own, shadow=shadow, names=names, **options)

    names = {PRIMARY_BUCKET: SHADOW_BUCKET}
    # No journal unless the case says so (the default, "auto", would write to the user's state
    # directory); a fresh temporary SQLite file for the journaled case.
    journal = os.path.join(tempfile.mkdtemp(prefix="dualwrite-bench-"), "journal.sqlite3")
    off = wrap(flag=lambda w: False, journal=None)
    off_journaled = wrap(flag=lambda w: False, journal=journal + "-off")
    on = wrap(flag=lambda w: True, journal=None)
    inline = wrap(flag=lambda w: True, journal=None, shadow_timeout=None)
    journaled = wrap(flag=lambda w: True, journal=journal)
    single = wrap(flag=lambda w: True, journal=None, single_writer=True)
    inline_single = wrap(flag=lambda w: True, journal=None, single_writer=True, shadow_timeout=None)
    journaled_single = wrap(flag=lambda w: True, journal=journal + "-single", single_writer=True)
    dual = wrap(stage=lambda w: dualwrite.Stage.DUAL_WRITE, journal=None)
    cutover = wrap(stage=lambda w: dualwrite.Stage.CUTOVER, journal=None)
    stage_off_client = wrap(stage=lambda w: dualwrite.Stage.OFF, journal=None)
    dual_single = wrap(stage=lambda w: dualwrite.Stage.DUAL_WRITE, journal=None, single_writer=True)

    def plain() -> Any:
        return primary.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def flag_off() -> Any:
        return off.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def flag_off_journal() -> Any:
        return off_journaled.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def flag_on() -> Any:
        return on.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def flag_on_inline() -> Any:
        return inline.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def flag_on_journal() -> Any:
        return journaled.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def flag_on_single() -> Any:
        return single.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def flag_on_inline_single() -> Any:
        return inline_single.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def flag_on_journal_single() -> Any:
        return journaled_single.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def two_plain() -> Any:
        primary.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)
        return shadow.put_object(Bucket=SHADOW_BUCKET, Key=KEY, Body=BODY)

    def two_plain_acl() -> Any:
        primary.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)
        return shadow.put_object(Bucket=SHADOW_BUCKET, Key=KEY, Body=BODY, ACL=OWNER_ACL)

    def stage_dual() -> Any:
        return dual.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def stage_cutover() -> Any:
        return cutover.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def stage_off() -> Any:
        return stage_off_client.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    def stage_dual_single() -> Any:
        return dual_single.put_object(Bucket=PRIMARY_BUCKET, Key=KEY, Body=BODY)

    return {
        "plain": plain,
        "wrapped, flag off": flag_off,
        "flag off, journal": flag_off_journal,
        "wrapped, flag on": flag_on,
        "flag on, shadow_timeout=None": flag_on_inline,
        "flag on, journal": flag_on_journal,
        "flag on, single_writer": flag_on_single,
        "flag on, single_writer, shadow_timeout=None": flag_on_inline_single,
        "flag on, journal, single_writer": flag_on_journal_single,
        "two plain calls": two_plain,
        "two plain calls, shadow ACL": two_plain_acl,
        "stage DUAL_WRITE": stage_dual,
        "stage CUTOVER": stage_cutover,
        "stage OFF": stage_off,
        "stage DUAL_WRITE, single_writer": stage_dual_single,
    }


def check_cases(cases: dict[str, Callable[[], Any]]) -> dict[str, tuple[str, str]]:
    """Make sure every case really went through botocore and got the canned answer.

    Returns:
        The requests one call of each case sent to the primary and to the shadow.
    """
    sent = {}
    for name, case in cases.items():
        for side in SENT:
            side.clear()
        response = case()
        status = response["ResponseMetadata"]["HTTPStatusCode"]
        if status != 200 or response.get("ETag") != '"b6d81b360a5672d80c27430f39153e2c"':
            raise SystemExit(f"case {name!r} did not get the canned response: {response!r}")
        sent[name] = (_show(SENT[0]), _show(SENT[1]))
    return sent


def _show(sent: Counter[str]) -> str:
    return " + ".join(f"{n} {op}" if n > 1 else op for op, n in sent.items()) or "-"


def print_requests(sent: dict[str, tuple[str, str]]) -> None:
    print()
    print("| case | requests to the primary account | requests to the shadow account |")
    print("| --- | --- | --- |")
    for name, (primary, shadow) in sent.items():
        print(f"| {name} | {primary} | {shadow} |")


def time_block(case: Callable[[], Any], calls: int) -> tuple[float, float]:
    """Seconds per call of ``calls`` back-to-back calls: wall clock, and this process's CPU."""
    perf, cpu = time.perf_counter, time.process_time
    start, start_cpu = perf(), cpu()
    for _ in range(calls):
        case()
    return (perf() - start) / calls, (cpu() - start_cpu) / calls


Samples = dict[str, list[tuple[float, float]]]


def measure(cases: dict[str, Callable[[], Any]], calls: int, repeat: int) -> Samples:
    """Run ``repeat`` rounds; in each, every case runs ``calls`` times, in a rotated order."""
    names = list(cases)
    results: Samples = {name: [] for name in names}
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


def header() -> str:
    return (
        f"dualwrite {dualwrite.__version__}, Python {platform.python_version()}, "
        f"boto3 {boto3.__version__}, botocore {botocore.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )


def print_targets(columns: dict[str, dict[str, float]]) -> None:
    """Print the targets with PASS/MISS, one column per measure (name -> cost per case)."""
    needed = (
        "wrapped, flag off",
        "wrapped, flag on",
        "two plain calls",
        "two plain calls, shadow ACL",
    )
    if any(name not in cost for cost in columns.values() for name in needed):
        print(f"(targets not printed: they need the cases {', '.join(needed)})")
        return

    def ratios(cost: dict[str, float]) -> tuple[float, float, float, float]:
        plain = cost["plain"]
        return (
            cost["wrapped, flag off"] / plain,
            cost["wrapped, flag on"] / plain,
            (cost["wrapped, flag on"] - cost["two plain calls"]) / plain,
            (cost["two plain calls, shadow ACL"] - cost["two plain calls"]) / plain,
        )

    figures = {label: ratios(cost) for label, cost in columns.items()}
    rows = [
        (f"flag off <= {FLAG_OFF_TARGET:.2f}x plain", 0, FLAG_OFF_TARGET, "x"),
        (f"flag on <= {FLAG_ON_TARGET:.2f}x plain", 1, FLAG_ON_TARGET, "x"),
        (
            f"wrapper work: (flag on - two plain) / plain <= {WRAPPER_WORK_TARGET:.2f} of a call",
            2,
            WRAPPER_WORK_TARGET,
            "",
        ),
    ]
    print("| target | " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for label, index, limit, unit in rows:
        cells = [f"{f[index]:.3f}{unit} {verdict(f[index] <= limit)}" for f in figures.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(
        "| of which the shadow's ACL header (botocore's work): "
        "(two plain with ACL - two plain) / plain | "
        + " | ".join(f"{f[3]:.3f}" for f in figures.values())
        + " |"
    )


def report(results: Samples, calls: int, repeat: int) -> None:
    wall = {name: statistics.median(w for w, _ in values) for name, values in results.items()}
    low = {name: min(w for w, _ in values) for name, values in results.items()}
    cpu = {name: statistics.median(c for _, c in values) for name, values in results.items()}
    print(header())
    print(
        f"put_object, 1 KiB body, canned 200 responses; {repeat} rounds x {calls} calls per "
        "case, interleaved; median of the per-round means"
    )
    print()
    print(
        "| case | µs/call (median) | ratio to plain | µs/call (min) | ratio of mins "
        "| CPU µs/call (median) | CPU ratio |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in results:
        print(
            f"| {name} | {wall[name] * 1e6:.1f} | {wall[name] / wall['plain']:.3f}x "
            f"| {low[name] * 1e6:.1f} | {low[name] / low['plain']:.3f}x "
            f"| {cpu[name] * 1e6:.1f} | {cpu[name] / cpu['plain']:.3f}x |"
        )
    print()
    print_targets({"wall clock (median)": wall, "wall clock (min)": low, "CPU time": cpu})


# -- instruction counts (optional, needs valgrind) ------------------------------------------------


def report_instructions(names: list[str], calls: int) -> None:
    """Print instructions per call of each case: a noise-free check of the wall-clock table."""
    if not _instructions.available():
        print("valgrind is not installed: no instruction counts")
        return
    per_call = {name: _instructions.per_call(__file__, name, calls, "plain") for name in names}
    print()
    print(
        f"Instructions per call (valgrind cachegrind, {calls} calls per case minus a run with "
        "none; unaffected by other load on the machine; median of "
        f"{_instructions.SEEDS} hash seed(s)):"
    )
    print()
    print("| case | instructions/call | ratio to plain |")
    print("| --- | ---: | ---: |")
    for name in names:
        print(f"| {name} | {per_call[name]:,.0f} | {per_call[name] / per_call['plain']:.3f}x |")
    print()
    print_targets({"instructions": per_call})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    # Short blocks, many rounds: a burst of load from another process spoils a few blocks of
    # every case rather than a whole case, and the median discards them.
    parser.add_argument("--calls", type=int, default=200, help="calls per case per round")
    parser.add_argument("--repeat", type=int, default=60, help="rounds")
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="also count instructions per call under valgrind, over N calls per case",
    )
    parser.add_argument(
        "--cases",
        help="case names separated by ';' (plain is always measured); default: all",
    )
    parser.add_argument(
        "--hash-seeds",
        type=int,
        default=1,
        metavar="K",
        help="count each case's instructions with hash seeds 0..K-1, report the median",
    )
    parser.add_argument("--only", help=argparse.SUPPRESS)  # the valgrind child: one case, quiet
    args = parser.parse_args(argv)
    if args.hash_seeds < 1:
        parser.error("--hash-seeds must be at least 1")
    _instructions.SEEDS = args.hash_seeds
    cases = build_cases(count=args.only is None)  # the valgrind child counts no requests
    if args.cases and args.only is None:
        wanted = ["plain", *(c.strip() for c in args.cases.split(";") if c.strip() != "plain")]
        unknown = [name for name in wanted if name not in cases]
        if unknown:
            parser.error(f"unknown case(s) {unknown}; the cases are: {', '.join(cases)}")
        cases = {name: cases[name] for name in wanted}
    if args.only is not None:
        for case in cases.values():
            time_block(case, 30)
        for _ in range(args.calls):
            cases[args.only]()
        return 0
    if args.calls < 1 or args.repeat < 1:
        parser.error("--calls and --repeat must be at least 1")
    sent = check_cases(cases)
    results = measure(cases, args.calls, args.repeat)
    report(results, args.calls, args.repeat)
    print_requests(sent)
    if args.instructions > 0:
        report_instructions(list(cases), args.instructions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
