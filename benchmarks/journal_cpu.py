"""What the journal costs a whole mirrored write: CPU and context switches per write.

One caller thread writes as fast as it can through a wrapped client on the zero-CPU stand-ins
(``benchmarks/_zero_cpu.py``, no delay: nothing but botocore's and the library's work), in
``--mode`` (default ``background``, 8 workers, and ``sync``), with each journal: none, a
:class:`~dualwrite.journal.MemoryJournal` (the intents' Python work alone) and a fresh
:class:`~dualwrite.journal.SQLiteJournal` (the default). Rounds alternate between the journals
in one process; printed per case: the median over rounds of process CPU per write, wall time
per write, and voluntary / involuntary context switches per write (``getrusage``).

The SQLite journal's extra context switches are the GIL changing hands: every sqlite3 step and
the journal's ``stat`` release it, and a thread that released it waits for the worker threads
busy with botocore to give it back.

Run: ``python benchmarks/journal_cpu.py [--service dynamodb|s3] [--writes 2000] [--rounds 3]
[--mode background --mode sync]``. Figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from typing import Any

import latency  # benchmarks/ (the script's directory): the stand-in clients, the values

import dualwrite
from dualwrite.journal import MemoryJournal

JOURNALS = ("none", "memory", "sqlite")


def journal_of(kind: str) -> Any:
    if kind == "memory":
        return MemoryJournal()
    if kind == "sqlite":  # a fresh file, never the user's own
        return os.path.join(tempfile.mkdtemp(prefix="dualwrite-bench-"), "journal.db")
    return None


def one_round(args: argparse.Namespace, mode: str, kind: str) -> tuple[float, ...]:
    primary, shadow = latency.zero_clients(
        argparse.Namespace(service=args.service, primary_delay=0.0, delay=0.0)
    )
    if args.service == "s3":
        primary.create_bucket(Bucket="bench")
        shadow.create_bucket(Bucket="bench-shadow")
    writer = dualwrite.DualWriter(flag=True, mode=mode, workers=8, journal=journal_of(kind))
    wrapped = writer.wrap(primary, shadow=shadow, names={"bench": "bench-shadow"})
    if args.service == "s3":

        def put(key: str) -> None:
            wrapped.put_object(Bucket="bench", Key=key, Body=latency.BODY)
    else:

        def put(key: str) -> None:
            wrapped.put_item(TableName="bench", Item={"pk": {"S": key}, "v": latency.ITEM_VALUE})

    for i in range(200):  # warm-up: botocore's caches, the journal's file
        put(f"warm-{i}")
    writer.flush()
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(args.writes):
        put(f"k{i % 1000}")
    writer.flush()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_SELF)
    writer.close()
    n = args.writes
    return (
        cpu / n * 1e3,
        wall / n * 1e3,
        (after.ru_nvcsw - before.ru_nvcsw) / n,
        (after.ru_nivcsw - before.ru_nivcsw) / n,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", choices=("dynamodb", "s3"), default="dynamodb")
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", choices=("background", "sync"), action="append")
    args = parser.parse_args()
    modes = args.mode or ["background", "sync"]
    print(
        f"# {args.service}, one caller thread, {args.writes} writes per round, {args.rounds} "
        f"rounds alternating between journals; zero-CPU stand-ins, no delay"
    )
    print()
    print("| mode | journal | CPU per write | wall per write | switches per write (vol / invol) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for mode in modes:
        rows: dict[str, list[tuple[float, ...]]] = {kind: [] for kind in JOURNALS}
        for _ in range(args.rounds):
            for kind in JOURNALS:
                rows[kind].append(one_round(args, mode, kind))
        for kind in JOURNALS:
            cpu, wall, vol, invol = (statistics.median(c) for c in zip(*rows[kind], strict=True))
            print(f"| {mode} | {kind} | {cpu:.3f} ms | {wall:.3f} ms | {vol:.1f} / {invol:.1f} |")


if __name__ == "__main__":
    main()
