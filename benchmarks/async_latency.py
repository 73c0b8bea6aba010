"""Async clients (aiobotocore): what a wrapped client costs next to a plain one, in one run.

Every client is a real aiobotocore S3 client (all of botocore's and aiobotocore's work:
validation, serialisation, the body's checksum, SigV4 signing, response parsing) answered by a
zero-CPU stand-in instead of the network: an ``async def`` ``before-send`` handler reads the
request body to its end, ``await asyncio.sleep(delay)`` (a round trip: the loop is free), and
returns a canned :class:`aiobotocore.awsrequest.AioAWSResponse` built from the answers of
``benchmarks/_zero_cpu.py`` (``PutObject``: 200 with the body's MD5 as ETag; ``HeadObject``
answers what was put, so the wrapper's read-back finds it). The plain cases use their own pair
of clients that is never wrapped (no handler of the library on it). 1 KiB ``put_object``.

Part 1, per-call cost: one task, calls back to back; plain, two plain calls (primary, then the
shadow with the owner ACL the wrapper adds: what flag on would cost if the wrapper were free),
and wrapped in ``mode="sync"`` with the flag off and on, each with ``journal=None`` and with a
fresh SQLite journal. Interleaved: each round runs a block of ``--calls`` calls of every case in
a rotated order, ``--rounds`` rounds; per case the median of the per-round means (wall clock,
``time.perf_counter``, and this process's CPU time, ``time.process_time``, which counts the
writer's threads too). First with no delay (the pure CPU cost), then with ``--delay`` on both
accounts (blocks of ``--calls / 5`` calls). The requests one write of each case sends are
printed first (a flag-on write also reads the primary back: the fleet check).

Part 2, concurrency: ``--tasks`` concurrent tasks (each value in turn) writing back to back for
``--seconds``, ``--delay`` on both accounts: writes/s per case and the ratio to plain. The
background case's rate counts acknowledgements; "incl. drain" adds the time ``aflush()`` took.

Part 3, background mode: writes issued at ``--rate`` per second for ``--duration`` s (one task
per write, open loop), primary ``+--primary-delay``, shadow ``+--shadow-delay``: the caller's
p50/p99 latency against plain, and the shadow lag (primary ack to shadow ack: ``ShadowWritten.lag``
from a hook), with no journal and with an SQLite journal.

Run from the repository root, in an environment with aiobotocore (``pip install -e
'.[aiobotocore]'``; figures in docs/benchmarks.md are from aiobotocore 3.10.0)::

    python benchmarks/async_latency.py [--calls 50] [--rounds 15] [--delay 0.005]
        [--tasks 1,32] [--seconds 3] [--rate 200] [--duration 10] [--parts 1,2,3]

Figures, not a test: nothing is asserted. ``--profile PATH`` writes a cProfile of the event
loop's thread (where all of botocore's work runs) over part 1's wrapped flag-on case (no delay,
no journal) to ``PATH``; the writer's threads are not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import os
import platform
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiobotocore
import botocore
from _zero_cpu import FakeS3
from aiobotocore.awsrequest import AioAWSResponse
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

import dualwrite
from dualwrite.events import Event, ShadowWritten

REGION = "us-east-1"
BODY = bytes(range(256)) * 4  # 1 KiB
KEYS = 1000
BUCKET, SHADOW_BUCKET = "bench", "bench-shadow"
OWNER_ACL = "bucket-owner-full-control"
ZERO_URL = "http://127.0.0.1:9"  # never reached: the stand-ins answer before the socket
CONFIG = AioConfig(
    s3={"addressing_style": "path"},  # the stand-in reads bucket and key from the path
    retries={"total_max_attempts": 3},
    max_pool_connections=128,
)

Put = Callable[[str], Awaitable[Any]]


# -- the stand-in ---------------------------------------------------------------------------------


class _AsyncRaw:
    """The ``raw`` of a canned aiobotocore response: ``await raw.read()`` gives a fixed body."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def read(self, *_: Any) -> bytes:
        return self.body


@dataclass
class _Sent:
    """What :meth:`FakeS3._answer` reads of a request, with the body already drained."""

    url: str
    body: bytes


async def _drain(body: Any) -> bytes:
    """Read a request body to its end, as the HTTP layer would (async or sync ``read``)."""
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    chunks: list[bytes] = []
    while True:
        chunk = body.read(65536)
        if asyncio.iscoroutine(chunk):
            chunk = await chunk
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


class AioFakeS3:
    """One account's S3 for an aiobotocore client: the answers of ``_zero_cpu.FakeS3``, awaited.

    ``delay`` may be changed between measurements; 0 answers without yielding to the loop.
    ``sent`` counts the requests answered, by operation.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.store = FakeS3(0.0)
        self.sent: Counter[str] = Counter()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send.s3", self._answer)

    async def _answer(self, request: Any, event_name: str, **_: Any) -> AioAWSResponse:
        body = await _drain(request.body)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.sent[event_name.rsplit(".", 1)[-1]] += 1
        canned = self.store._answer(_Sent(request.url, body), event_name)
        return AioAWSResponse(
            canned.url, canned.status_code, canned.headers, _AsyncRaw(canned.raw.body)
        )


@dataclass
class Side:
    """An aiobotocore client and the stand-in answering it."""

    client: Any
    fake: AioFakeS3


@dataclass
class Clients:
    """The never-wrapped pair of the plain cases, and the pair the writers wrap."""

    bare: Side
    bare_shadow: Side
    primary: Side
    shadow: Side

    def sides(self) -> list[Side]:
        return [self.bare, self.bare_shadow, self.primary, self.shadow]

    def set_delays(self, primary: float, shadow: float) -> None:
        self.bare.fake.delay = self.primary.fake.delay = primary
        self.bare_shadow.fake.delay = self.shadow.fake.delay = shadow


@contextlib.asynccontextmanager
async def open_clients() -> AsyncIterator[Clients]:
    session = get_session()
    async with contextlib.AsyncExitStack() as stack:
        sides = []
        for access_key in ("AKIDPRIMARY00000000", "AKIDSHADOW000000000") * 2:
            client = await stack.enter_async_context(
                session.create_client(
                    "s3",
                    region_name=REGION,
                    endpoint_url=ZERO_URL,
                    aws_access_key_id=access_key,
                    aws_secret_access_key="testing",
                    config=CONFIG,
                )
            )
            fake = AioFakeS3()
            fake.attach(client)
            sides.append(Side(client, fake))
        yield Clients(*sides)


# -- the cases ------------------------------------------------------------------------------------


class Lags:
    """A hook keeping the lag of every ``shadow_written`` event (seconds)."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.failed = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, ShadowWritten):
            self.values.append(event.lag)
        elif event.kind == "shadow_failed":
            self.failed += 1


@dataclass
class Case:
    """One way of writing a key: ``put(key)``, and the writer behind it (``None``: plain)."""

    name: str
    put: Put
    writer: dualwrite.DualWriter | None = None
    lags: Lags = field(default_factory=Lags)


def _journal_path(journal: str) -> str | None:
    if journal == "none":
        return None
    # A fresh file per writer, never the user's own.
    return os.path.join(tempfile.mkdtemp(prefix="dualwrite-async-bench-"), "journal.db")


def put_on(client: Any, bucket: str = BUCKET, **extra: Any) -> Put:
    async def put(key: str) -> Any:
        return await client.put_object(Bucket=bucket, Key=key, Body=BODY, **extra)

    return put


def plain_case(clients: Clients) -> Case:
    return Case("plain", put_on(clients.bare.client))


def two_plain_case(clients: Clients) -> Case:
    primary = put_on(clients.bare.client)
    shadow = put_on(clients.bare_shadow.client, SHADOW_BUCKET, ACL=OWNER_ACL)

    async def put(key: str) -> None:
        await primary(key)
        await shadow(key)

    return Case("two plain calls", put)


def wrapped_case(
    clients: Clients, *, mode: str, flag: bool, journal: str, workers: int = 8
) -> Case:
    lags = Lags()
    writer = dualwrite.DualWriter(
        flag=flag, mode=mode, journal=_journal_path(journal), hooks=[lags], workers=workers
    )
    wrapped = writer.wrap(
        clients.primary.client, shadow=clients.shadow.client, names={BUCKET: SHADOW_BUCKET}
    )
    state = "on" if flag else "off"
    return Case(f"{mode}, flag {state}, journal {journal}", put_on(wrapped), writer, lags)


async def close_cases(cases: list[Case]) -> None:
    for case in cases:
        if case.writer is not None:
            await case.writer.aclose()


def key_of(index: int) -> str:
    return f"key-{index % KEYS:04d}"


async def requests_per_write(clients: Clients, cases: list[Case]) -> dict[str, tuple[str, str]]:
    """The requests one write of each case sends to each account (after a warm-up)."""
    shown: dict[str, tuple[str, str]] = {}
    for case in cases:
        for i in range(20):
            await case.put(key_of(i))
        if case.writer is not None:
            await case.writer.aflush()
        for side in clients.sides():
            side.fake.sent.clear()
        response = await case.put("probe")
        if response is not None and response.get("ETag") is None:
            raise SystemExit(f"case {case.name!r} did not get the canned answer: {response!r}")
        if case.writer is not None:
            await case.writer.aflush()
        primary = clients.bare.fake.sent + clients.primary.fake.sent
        shadow = clients.bare_shadow.fake.sent + clients.shadow.fake.sent
        shown[case.name] = (_show(primary), _show(shadow))
    return shown


def _show(sent: Counter[str]) -> str:
    return " + ".join(f"{n} {op}" if n > 1 else op for op, n in sorted(sent.items())) or "-"


# -- part 1: per-call cost ------------------------------------------------------------------------


async def time_block(case: Case, calls: int, start: int) -> tuple[float, float]:
    """Seconds per call of ``calls`` back-to-back calls: wall clock, and the process's CPU."""
    perf, cpu = time.perf_counter, time.process_time
    began, began_cpu = perf(), cpu()
    for i in range(start, start + calls):
        await case.put(key_of(i))
    return (perf() - began) / calls, (cpu() - began_cpu) / calls


Samples = dict[str, list[tuple[float, float]]]


async def interleaved(cases: list[Case], calls: int, rounds: int) -> Samples:
    """``rounds`` rounds; in each, a block of ``calls`` calls of every case, in a rotated order."""
    results: Samples = {case.name: [] for case in cases}
    for case in cases:  # warm-up: caches, endpoint resolution, the writer's threads
        await time_block(case, max(calls // 2, 20), 0)
    for round_no in range(rounds):
        shift = round_no % len(cases)
        for case in cases[shift:] + cases[:shift]:
            gc.collect()
            results[case.name].append(await time_block(case, calls, round_no * calls))
    return results


def print_per_call(title: str, results: Samples, with_cpu: bool) -> None:
    print(f"\n{title}\n")
    base_wall = statistics.median(w for w, _ in results["plain"])
    base_cpu = statistics.median(c for _, c in results["plain"])
    base_min = min(w for w, _ in results["plain"])
    head = "| case | µs/call (median) | ratio to plain | µs/call (min) | ratio of mins |"
    rule = "| --- | ---: | ---: | ---: | ---: |"
    if with_cpu:
        head += " CPU µs/call (median) | CPU ratio |"
        rule += " ---: | ---: |"
    print(head)
    print(rule)
    for name, samples in results.items():
        wall = statistics.median(w for w, _ in samples)
        low = min(w for w, _ in samples)
        row = (
            f"| {name} | {wall * 1e6:.0f} | {wall / base_wall:.2f}x | {low * 1e6:.0f} | "
            f"{low / base_min:.2f}x |"
        )
        if with_cpu:
            cpu = statistics.median(c for _, c in samples)
            row += f" {cpu * 1e6:.0f} | {cpu / base_cpu:.2f}x |"
        print(row)


async def part_per_call(clients: Clients, args: argparse.Namespace) -> None:
    cases = [plain_case(clients), two_plain_case(clients)] + [
        wrapped_case(clients, mode="sync", flag=flag, journal=journal)
        for journal in ("none", "sqlite")
        for flag in (False, True)
    ]
    try:
        clients.set_delays(0.0, 0.0)
        sent = await requests_per_write(clients, cases)
        print("\n## requests one write sends (sync mode)\n")
        print("| case | to the primary account | to the shadow account |")
        print("| --- | --- | --- |")
        for name, (primary, shadow) in sent.items():
            print(f"| {name} | {primary} | {shadow} |")
        results = await interleaved(cases, args.calls, args.rounds)
        print_per_call(
            f"## part 1a: per-call cost, no delay (CPU): {args.rounds} rounds x {args.calls} "
            "calls per case, one task",
            results,
            with_cpu=True,
        )
        clients.set_delays(args.delay, args.delay)
        calls = max(args.calls // 5, 5)
        results = await interleaved(cases, calls, args.rounds)
        print_per_call(
            f"## part 1b: per-call cost, +{args.delay * 1000:.0f} ms on each account: "
            f"{args.rounds} rounds x {calls} calls per case, one task",
            results,
            with_cpu=True,
        )
        if args.profile:
            clients.set_delays(0.0, 0.0)
            flag_on = next(c for c in cases if c.name == "sync, flag on, journal none")
            profiler = cProfile.Profile()
            profiler.enable()
            await time_block(flag_on, args.calls * 10, 0)
            profiler.disable()
            profiler.dump_stats(args.profile)
            print(f"\n# cProfile of {args.calls * 10} flag-on calls written to {args.profile}")
    finally:
        await close_cases(cases)


# -- part 2: concurrency --------------------------------------------------------------------------


async def closed_loop(case: Case, tasks: int, seconds: float) -> tuple[float, float, float]:
    """``tasks`` tasks writing back to back for ``seconds``.

    Returns:
        Acknowledgements per second; writes per second counting ``aflush()`` (background);
        this process's CPU milliseconds per write until flushed.
    """
    done = [0] * tasks
    cpu = time.process_time()
    began = time.perf_counter()
    stop = began + seconds

    async def run(index: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            await case.put(key_of(index * 7919 + i))
            i += 1
        done[index] = i

    await asyncio.gather(*(run(t) for t in range(tasks)))
    acked = time.perf_counter() - began
    if case.writer is not None:
        await case.writer.aflush()
    drained = time.perf_counter() - began
    total = max(1, sum(done))
    return total / acked, total / drained, (time.process_time() - cpu) * 1000 / total


async def part_concurrency(clients: Clients, args: argparse.Namespace) -> None:
    clients.set_delays(args.delay, args.delay)
    cases = [
        plain_case(clients),
        wrapped_case(clients, mode="sync", flag=False, journal="none"),
        wrapped_case(clients, mode="sync", flag=True, journal="none"),
        wrapped_case(clients, mode="sync", flag=True, journal="sqlite"),
        wrapped_case(clients, mode="background", flag=True, journal="none", workers=args.workers),
    ]
    try:
        for case in cases:
            for i in range(20):
                await case.put(key_of(i))
        for tasks in (int(t) for t in args.tasks.split(",")):
            print(
                f"\n## part 2: {tasks} concurrent task(s), {args.seconds:.0f} s per case, "
                f"+{args.delay * 1000:.0f} ms on each account\n"
            )
            print("| case | writes/s | vs plain | incl. drain | vs plain | CPU ms/write |")
            print("| --- | ---: | ---: | ---: | ---: | ---: |")
            base = 0.0
            for case in cases:
                acked, drained, cpu_ms = await closed_loop(case, tasks, args.seconds)
                base = base or acked
                print(
                    f"| {case.name} | {acked:.0f} | {acked / base:.2f}x | {drained:.0f} | "
                    f"{drained / base:.2f}x | {cpu_ms:.2f} |"
                )
    finally:
        await close_cases(cases)


# -- part 3: background mode at a fixed rate ------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def open_loop(put: Put, rate: float, duration: float) -> tuple[list[float], int]:
    """Start ``rate`` writes/s for ``duration`` s, one task each; caller latencies, late starts."""
    latencies: list[float] = []
    late = 0

    async def one(index: int, due: float) -> None:
        nonlocal late
        started = time.perf_counter()
        await put(key_of(index))
        latencies.append(time.perf_counter() - started)
        if started - due > 0.005:
            late += 1

    running: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.05
    for i in range(int(rate * duration)):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        task = asyncio.create_task(one(i, due))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)
    return latencies, late


async def sample_queue(writer: dualwrite.DualWriter, samples: list[int]) -> None:
    while True:
        await asyncio.sleep(0.1)
        samples.append(writer.pending)


async def part_background(clients: Clients, args: argparse.Namespace) -> None:
    clients.set_delays(args.primary_delay, args.shadow_delay)
    cases = [plain_case(clients)] + [
        wrapped_case(clients, mode="background", flag=True, journal=j, workers=args.workers)
        for j in ("none", "sqlite")
    ]
    print(
        f"\n## part 3: background mode, open loop, {args.rate:.0f} writes/s for "
        f"{args.duration:.0f} s per case, primary +{args.primary_delay * 1000:.0f} ms, shadow "
        f"+{args.shadow_delay * 1000:.0f} ms, {args.workers} background workers\n"
    )
    rows = []
    try:
        for case in cases:
            for i in range(50):  # warm-up
                await case.put(f"warm-{i}")
            samples: list[int] = []
            watch = None
            if case.writer is not None:
                await case.writer.aflush()
                watch = asyncio.create_task(sample_queue(case.writer, samples))
            case.lags.values.clear()
            cpu = time.process_time()
            latencies, late = await open_loop(case.put, args.rate, args.duration)
            queue_end = 0
            if case.writer is not None and watch is not None:
                watch.cancel()
                queue_end = case.writer.pending
                await case.writer.aflush()
            cpu_ms = (time.process_time() - cpu) * 1000 / max(1, len(latencies))
            rows.append((case, latencies, late, max(samples, default=0), queue_end, cpu_ms))
    finally:
        await close_cases(cases)
    print(
        "| case | writes (late) | caller p50 | p99 | vs plain p50 | vs plain p99 | "
        "lag p50 | lag p99 | shadow written (failed) | queue max | queue at end | CPU ms/write |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = rows[0][1]
    for case, lat, late, queue_max, queue_end, cpu_ms in rows:
        lags = case.lags.values
        lag50 = f"{pct(lags, 50) * 1000:.1f} ms" if case.writer else "-"
        lag99 = f"{pct(lags, 99) * 1000:.1f} ms" if case.writer else "-"
        shadow = f"{len(lags)} ({case.lags.failed})" if case.writer else "-"
        print(
            f"| {case.name} | {len(lat)} ({late}) | {pct(lat, 50) * 1000:.2f} ms | "
            f"{pct(lat, 99) * 1000:.2f} ms | {pct(lat, 50) / pct(base, 50):.2f}x | "
            f"{pct(lat, 99) / pct(base, 99):.2f}x | {lag50} | {lag99} | {shadow} | "
            f"{queue_max} | {queue_end} | {cpu_ms:.2f} |"
        )


# -- main -----------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    parts = {int(p) for p in args.parts.split(",")}
    async with open_clients() as clients:
        if 1 in parts:
            await part_per_call(clients, args)
        if 2 in parts:
            await part_concurrency(clients, args)
        if 3 in parts:
            await part_background(clients, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 1,3")
    parser.add_argument("--calls", type=int, default=50, help="part 1: calls per block")
    parser.add_argument("--rounds", type=int, default=15, help="part 1: rounds")
    parser.add_argument(
        "--delay", type=float, default=0.005, help="parts 1b and 2: each account's delay (s)"
    )
    parser.add_argument("--tasks", default="1,32", help="part 2: concurrent tasks, in turn")
    parser.add_argument("--seconds", type=float, default=3.0, help="part 2: seconds per case")
    parser.add_argument("--rate", type=float, default=200.0, help="part 3: writes per second")
    parser.add_argument("--duration", type=float, default=10.0, help="part 3: seconds per case")
    parser.add_argument(
        "--primary-delay", type=float, default=0.002, help="part 3: the primary's delay (s)"
    )
    parser.add_argument(
        "--shadow-delay", type=float, default=0.020, help="part 3: the shadow's delay (s)"
    )
    parser.add_argument("--workers", type=int, default=8, help="background workers")
    parser.add_argument("--profile", default=None, help="part 1: write a cProfile here")
    args = parser.parse_args()
    print(
        f"# dualwrite {dualwrite.__version__}, aiobotocore {aiobotocore.__version__}, botocore "
        f"{botocore.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    print("# zero-CPU stand-ins (no socket), 1 KiB put_object")
    began = time.perf_counter()
    asyncio.run(run(args))
    print(
        f"\n# {time.perf_counter() - began:.0f} s; load average {os.getloadavg()[0]:.1f} at the end"
    )


if __name__ == "__main__":
    main()
