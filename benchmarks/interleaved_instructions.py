"""Issue 12's per-call targets, counted with every case in one process, interleaved (callgrind).

``bench_s3.py --instructions`` and ``bench_dynamodb.py --instructions`` count each case in a
process of its own and subtract a run with no calls. A process's count carries its own layout
of objects (dictionaries, caches, the heap), and that moves a case by a few thousand
instructions a call from one process to another: as much as issue 12's targets are judged on
(0.01x of a plain call is about 29k). Here all the cases of a service run in one process under
callgrind, in chunks of ``--calls`` calls that alternate between the cases (each round in a
rotated order), and callgrind's counters are zeroed before each chunk and dumped after it
(client requests, through a three-line C library compiled on the fly). Every case then runs on
the same heap and interpreter state; what differs between two cases is the code each runs.
This is how issue 12 measured its own figures ("all variants interleaved in one process").
After the warm-up, ``gc.freeze()`` takes the long-lived objects out of the collector's reach, so
that a chunk which happens to trigger a full collection is not charged for walking them.

Each figure is the median over ``--hash-seeds`` processes (hash seeds 0, 1, ...), with the
spread over those processes beside it: how far the layout still moves the ratio.

The clients answer with canned responses (no server, no socket), so botocore does all its CPU
work (validation, serialisation, signing, parsing) and the network is left out; the cases are
the ones ``bench_s3.py`` and ``bench_dynamodb.py`` define (see their docstrings). CPython's own
allocator is kept (``--malloc`` counts with ``PYTHONMALLOC=malloc``, as the per-process counts
do): production runs with it.

Needs valgrind, a C compiler and ``valgrind/callgrind.h``. Figures, not a test: nothing is
asserted; the targets are printed with PASS/MISS beside them.

Usage::

    PYTHONPATH=$PWD python benchmarks/interleaved_instructions.py [--service s3|dynamodb]
        [--calls 20] [--rounds 5] [--hash-seeds 3] [--jobs 2]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import _instructions
import bench_dynamodb
import bench_s3

S3_CASES = (
    "plain",
    "wrapped, flag off",
    "stage OFF",
    "wrapped, flag on",
    "flag on, single_writer",
    "flag on, single_writer, shadow_timeout=None",
    "stage DUAL_WRITE",
    "stage DUAL_WRITE, single_writer",
    "two plain calls, shadow ACL",
)
DYNAMODB_CASES = {
    "put_item": (
        "plain",
        "wrapped, flag off",
        "wrapped, flag on",
        "flag on, single_writer",
        "flag on, single_writer, shadow_timeout=None",
        "two plain calls",
    ),
    "update_item": (
        "plain",
        "wrapped, flag off",
        "wrapped, flag on",
        "flag on, single_writer",
        "flag on, single_writer, shadow_timeout=None",
    ),
    "batch_write_item": ("plain", "background", "background, single_writer", "two plain calls"),
}
# Batches cost about 25 times a one-item call: fewer of them keep the run's length even.
BATCH_DIVISOR = 5


def _cases(service: str) -> dict[str, Callable[[], Any]]:
    if service == "s3":
        built = bench_s3.build_cases(count=False)
        return {name: built[name] for name in S3_CASES}
    groups, _, _ = bench_dynamodb.build_cases()
    return {
        f"{operation}|{name}": groups[operation][name]
        for operation, names in DYNAMODB_CASES.items()
        for name in names
    }


def child(service: str, calls: int, rounds: int) -> None:
    """The process under callgrind: warm every case up, then run the interleaved rounds."""
    cases = _cases(service)
    for case in cases.values():
        for _ in range(5):
            case()
    # What the warm-up left (clients, models, caches) will not be freed: moved out of the
    # collector's generations, a full collection no longer walks it, and a chunk that happens
    # to trigger one is not charged for the whole heap. Collections of what the calls allocate
    # still run, and are charged to the case that allocated.
    gc.collect()
    gc.freeze()
    chunks = _instructions.Chunks()
    if service == "s3":
        chunks.run(cases, calls, rounds)
        return
    # One-item calls and batches in separate rotations, so that a batch chunk's size can differ.
    single = {name: case for name, case in cases.items() if not name.startswith("batch")}
    batches = {name: case for name, case in cases.items() if name.startswith("batch")}
    chunks.run(single, calls, rounds)
    chunks.run(batches, max(1, calls // BATCH_DIVISOR), rounds)


def per_call(service: str, calls: int, rounds: int, seed: int, malloc: bool) -> dict[str, float]:
    """Instructions per call of each case, from one process with hash seed ``seed``."""
    arguments = ["--child", service, "--calls", str(calls), "--rounds", str(rounds)]
    chunks = _instructions.interleaved(__file__, arguments, seed, malloc=malloc)
    figures = {}
    for label, counts in chunks.items():
        size = max(1, calls // BATCH_DIVISOR) if label.startswith("batch") else calls
        figures[label] = sum(counts) / (size * len(counts))
    return figures


def _plain(label: str) -> str:
    operation, _, _ = label.rpartition("|")
    return f"{operation}|plain" if operation else "plain"


def report(service: str, runs: list[dict[str, float]]) -> dict[str, list[float]]:
    """Print the table of one service; return each label's ratio to plain, one per process."""
    ratios = {label: [run[label] / run[_plain(label)] for run in runs] for label in runs[0]}
    print()
    print(f"{service}: instructions per call, {len(runs)} process(es), median and spread")
    print()
    print("| case | instructions/call | ratio to plain | spread of the ratio |")
    print("| --- | ---: | ---: | ---: |")
    for label in runs[0]:
        counts = statistics.median(run[label] for run in runs)
        values = ratios[label]
        spread = f"{min(values):.4f}-{max(values):.4f}" if len(values) > 1 else "-"
        name = label.replace("|", ": ")
        print(f"| {name} | {counts:,.0f} | {statistics.median(values):.4f}x | {spread} |")
    return ratios


def _difference(ratios: dict[str, list[float]], minuend: str, subtrahend: str) -> float:
    return statistics.median(
        a - b for a, b in zip(ratios[minuend], ratios[subtrahend], strict=True)
    )


def targets(ratios: dict[str, list[float]]) -> list[tuple[str, float, float]]:
    """Issue 12's targets that these cases measure: (target, measured, limit)."""
    found: list[tuple[str, float, float]] = []

    def ratio(label: str) -> float:
        return statistics.median(ratios[label])

    if "wrapped, flag off" in ratios:
        found += [
            ("S3 put_object flag off <= 1.01x", ratio("wrapped, flag off"), 1.01),
            (
                "S3 put_object flag on, single_writer <= 2.04x",
                ratio("flag on, single_writer"),
                2.04,
            ),
            (
                "S3 put_object flag on, single_writer, shadow_timeout=None <= 2.04x",
                ratio("flag on, single_writer, shadow_timeout=None"),
                2.04,
            ),
            (
                "S3 stage OFF within 0.01x of flag off",
                _difference(ratios, "stage OFF", "wrapped, flag off"),
                0.01,
            ),
            (
                "S3 stage DUAL_WRITE within 0.01x of flag on (single_writer)",
                _difference(ratios, "stage DUAL_WRITE, single_writer", "flag on, single_writer"),
                0.01,
            ),
            (
                "S3 stage DUAL_WRITE within 0.01x of flag on (fleet check)",
                _difference(ratios, "stage DUAL_WRITE", "wrapped, flag on"),
                0.01,
            ),
        ]
    if "put_item|wrapped, flag off" in ratios:
        found += [
            ("DynamoDB put_item flag off <= 1.01x", ratio("put_item|wrapped, flag off"), 1.01),
            (
                "DynamoDB put_item flag on, single_writer <= 2.02x",
                ratio("put_item|flag on, single_writer"),
                2.02,
            ),
            (
                "DynamoDB put_item flag on, single_writer, shadow_timeout=None <= 2.02x",
                ratio("put_item|flag on, single_writer, shadow_timeout=None"),
                2.02,
            ),
            (
                "DynamoDB batch_write_item background, single_writer <= 2.2x",
                ratio("batch_write_item|background, single_writer"),
                2.2,
            ),
        ]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--service", choices=("s3", "dynamodb"), action="append")
    parser.add_argument("--calls", type=int, default=20, help="calls per chunk (default 20)")
    parser.add_argument("--rounds", type=int, default=5, help="chunks per case (default 5)")
    parser.add_argument("--hash-seeds", type=int, default=3, metavar="K", help="default 3")
    parser.add_argument("--jobs", type=int, default=2, help="processes at once (default 2)")
    parser.add_argument("--malloc", action="store_true", help="count with PYTHONMALLOC=malloc")
    parser.add_argument("--child", choices=("s3", "dynamodb"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.calls, args.rounds, args.hash_seeds, args.jobs) < 1:
        parser.error("--calls, --rounds, --hash-seeds and --jobs must be at least 1")
    if args.child is not None:
        child(args.child, args.calls, args.rounds)
        return 0
    missing = _instructions.interleaved_available()
    if missing:
        print(f"cannot count instructions here: missing {missing}")
        return 1
    services = args.service or ["s3", "dynamodb"]
    work = [(service, seed) for service in services for seed in range(args.hash_seeds)]
    print(
        f"Instructions per call, every case of a service in one process under callgrind, "
        f"{args.rounds} interleaved chunks of {args.calls} calls per case (batches: "
        f"{max(1, args.calls // BATCH_DIVISOR)}), hash seeds 0..{args.hash_seeds - 1}, "
        f"{'PYTHONMALLOC=malloc' if args.malloc else 'pymalloc'}."
    )
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(
            pool.map(
                lambda job: per_call(job[0], args.calls, args.rounds, job[1], args.malloc), work
            )
        )
    found = []
    for service in services:
        ratios = report(
            service, [run for (s, _), run in zip(work, runs, strict=True) if s == service]
        )
        found += targets(ratios)
    print()
    print("| target (issue 12) | measured | verdict |")
    print("| --- | ---: | --- |")
    for target, measured, limit in found:
        print(f"| {target} | {measured:.4f} | {'PASS' if measured <= limit else 'MISS'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
