"""Caller latency, shadow lag and throughput: plain vs sync vs background, over HTTP.

The primary and the shadow are two moto servers, each in its own process, on 127.0.0.1; the
shadow is reached through the tests' fault proxy (``tests/_support/proxy.py``), which adds a
fixed delay (default 20 ms) to every shadow request, as a far region or a slow account would.

Part 1, open loop: writes are issued at a fixed rate (default 200/s for 20 s) by a pool of
caller threads, each a 1 KiB ``put_object`` to one of 1,000 keys, first on the bare primary
client (``plain``), then through ``dualwrite`` in ``sync`` and in ``background`` mode. For each,
the p50/p90/p99/max latency the caller saw; for the wrapped modes, the shadow lag (primary ack to
shadow ack, from the ``shadow_written`` events); for background, how many shadow writes were
queued (sampled every 100 ms) and how long the final ``flush()`` took.

Part 2, closed loop: 8 caller threads write as fast as they can for a few seconds, plain and
background in alternating rounds; writes per second each, and the ratio.

Run: ``python benchmarks/latency.py [--rate 200] [--duration 20] [--delay 0.020]
[--threads 8] [--seconds 10] [--rounds 2]``. Figures, not a test: nothing is asserted; the
issue's targets are printed with PASS/MISS beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

import dualwrite
from dualwrite.events import ShadowWritten

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

REGION = "us-east-1"
BODY = bytes(range(256)) * 4  # 1 KiB
KEYS = 1000
CLIENT_CONFIG = Config(max_pool_connections=128, retries={"total_max_attempts": 3})

TARGET_P50 = 1.15
TARGET_P99 = 1.5
TARGET_LAG_EXTRA = 0.025
TARGET_THROUGHPUT = 0.9


# -- servers --------------------------------------------------------------------------------------


class _Sink(BaseHTTPRequestHandler):
    """A stand-in S3 that stores nothing: 200 and the body's MD5 as ETag for every request."""

    protocol_version = "HTTP/1.1"
    delay = 0.0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.delay:
            time.sleep(self.delay)
        self.send_response(200)
        self.send_header("ETag", f'"{hashlib.md5(body).hexdigest()}"')
        self.send_header("Content-Length", "0")
        self.end_headers()


def serve(kind: str, delay: float) -> None:
    """Child process: a moto server behind the delaying proxy (or a sink); print its URL."""
    from _support.proxy import (  # type: ignore[import-not-found]  # noqa: PLC0415 - tests/
        Fault,
        FaultProxy,
    )
    from _support.servers import MotoServer  # type: ignore[import-not-found]  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    stop: list[Callable[[], object]] = []
    if kind == "sink":
        _Sink.delay = delay
        sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
        sink.daemon_threads = True
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{sink.server_address[1]}"
        stop.append(sink.shutdown)
    else:
        server = MotoServer()
        url = server.url
        stop.append(server.stop)
        if delay:
            proxy = FaultProxy((server.host, server.port))
            proxy.set(Fault("pass", delay=delay))
            url = proxy.url
            stop.append(proxy.close)
    sys.stdout.write(json.dumps({"url": url}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the parent closes our stdin
    for step in reversed(stop):
        step()


@contextmanager
def servers(primary_delay: float, delay: float, shadow: str = "moto") -> Iterator[tuple[str, str]]:
    """Start the primary's server and the shadow's (behind the proxy); yield their URLs."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT / "tests"), str(ROOT)))}
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, str(d)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for kind, d in (("moto", primary_delay), (shadow, delay))
    ]
    try:
        urls = []
        for child in children:
            assert child.stdout is not None
            urls.append(json.loads(child.stdout.readline())["url"])
        yield urls[0], urls[1]
    finally:
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(30)
            if child.stdout is not None:
                child.stdout.close()


def client(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=CLIENT_CONFIG,
    )


# -- measuring ------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Lags:
    """A hook keeping the lag of every ``shadow_written`` event."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.failed = 0

    def __call__(self, event: Any) -> None:
        if isinstance(event, ShadowWritten):
            self.values.append(event.lag)
        elif event.kind == "shadow_failed":
            self.failed += 1


def open_loop(
    put: Callable[[str], None], rate: float, duration: float, callers: int
) -> tuple[list[float], int]:
    """Issue ``rate`` writes/s for ``duration`` s; return caller latencies and late starts."""
    latencies: list[float] = []
    late = 0
    lock = threading.Lock()

    def one(index: int, due: float) -> None:
        nonlocal late
        started = time.perf_counter()
        put(f"key-{index % KEYS:04d}")
        took = time.perf_counter() - started
        with lock:
            latencies.append(took)
            if started - due > 0.005:
                late += 1

    total = int(rate * duration)
    with ThreadPoolExecutor(max_workers=callers) as pool:
        start = time.perf_counter() + 0.05
        for i in range(total):
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            pool.submit(one, i, due)
    return latencies, late


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def closed_loop(
    put: Callable[[str], None], threads: int, seconds: float, after: Callable[[], object]
) -> tuple[float, float]:
    """``threads`` callers writing as fast as they can for ``seconds``.

    Returns:
        Writes per second (caller acknowledgements), and this process's CPU milliseconds per
        write, counted until ``after()`` (a flush) returned.
    """
    done = [0] * threads
    cpu = cpu_seconds()
    stop = time.perf_counter() + seconds

    def run(index: int) -> None:
        i = 0
        while time.perf_counter() < stop:
            put(f"key-{(index * 7919 + i) % KEYS:04d}")
            i += 1
        done[index] = i

    started = time.perf_counter()
    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    rate = sum(done) / (time.perf_counter() - started)
    after()
    return rate, (cpu_seconds() - cpu) * 1000 / max(1, sum(done))


def sampler(writer: dualwrite.DualWriter, samples: list[int], stop: threading.Event) -> None:
    while not stop.wait(0.1):
        samples.append(writer.pending)


# -- the benchmark --------------------------------------------------------------------------------


class Bench:
    """The two clients and the options, shared by both parts."""

    def __init__(self, args: argparse.Namespace, primary_url: str, shadow_url: str) -> None:
        self.args = args
        self.primary, self.shadow = client(primary_url), client(shadow_url)
        self.primary.create_bucket(Bucket="bench")
        self.shadow.create_bucket(Bucket="bench-shadow")
        self.names = {"bench": "bench-shadow"}

    def plain_put(self, key: str) -> None:
        self.primary.put_object(Bucket="bench", Key=key, Body=BODY)

    def writer(self, mode: str, hooks: list[Any]) -> tuple[dualwrite.DualWriter, Any]:
        journal = None
        if self.args.journal == "sqlite":  # a fresh file per writer, never the user's own
            journal = os.path.join(tempfile.mkdtemp(prefix="dualwrite-bench-"), "journal.db")
        writer = dualwrite.DualWriter(
            flag=True, mode=mode, hooks=hooks, workers=self.args.workers, journal=journal
        )
        wrapped = writer.wrap(self.primary, shadow=self.shadow, names=self.names)
        return writer, lambda key: wrapped.put_object(Bucket="bench", Key=key, Body=BODY)

    def open_loop_mode(self, mode: str) -> dict[str, Any]:
        """Part 1 for one mode: latencies, lags, queue samples."""
        lags = Lags()
        writer, put = self.writer("sync" if mode == "plain" else mode, [lags])
        if mode == "plain":
            put = self.plain_put
        for i in range(50):  # warm up connections on every side
            put(f"warm-{i}")
        writer.flush()
        lags.values.clear()
        samples: list[int] = []
        stop = threading.Event()
        watch = threading.Thread(target=sampler, args=(writer, samples, stop))
        watch.start()
        latencies, late = open_loop(put, self.args.rate, self.args.duration, self.args.callers)
        stop.set()
        watch.join()
        pending_at_end = writer.pending
        flushed = time.perf_counter()
        writer.flush()
        flush_seconds = time.perf_counter() - flushed
        writer.close()
        print(f"#   {mode}: done ({len(latencies)} writes, {late} started >5 ms late)")
        return {
            "latencies": latencies,
            "lags": lags.values,
            "failed": lags.failed,
            "queue_max": max(samples, default=0),
            "queue_mean": statistics.fmean(samples) if samples else 0.0,
            "queue_end": pending_at_end,
            "flush": flush_seconds,
        }

    def closed_loop_rounds(
        self,
    ) -> tuple[dict[str, list[float]], dict[str, list[float]], list[int]]:
        """Part 2: plain and background rounds, alternating."""
        args = self.args
        rates: dict[str, list[float]] = {"plain": [], "background": []}
        cpu: dict[str, list[float]] = {"plain": [], "background": []}
        queue_after: list[int] = []
        for _ in range(args.rounds):
            rate, per_write = closed_loop(self.plain_put, args.threads, args.seconds, lambda: None)
            rates["plain"].append(rate)
            cpu["plain"].append(per_write)
            writer, put = self.writer("background", [])

            def drain(writer: dualwrite.DualWriter = writer) -> None:
                queue_after.append(writer.pending)
                writer.flush()

            rate, per_write = closed_loop(put, args.threads, args.seconds, drain)
            rates["background"].append(rate)
            cpu["background"].append(per_write)
            writer.close()
        return rates, cpu, queue_after


def print_open_loop(rows: dict[str, dict[str, Any]]) -> None:
    print()
    print("| mode | writes | caller p50 | p90 | p99 | max | vs plain p50 | vs plain p99 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = rows["plain"]["latencies"]
    for mode, row in rows.items():
        lat = row["latencies"]
        print(
            f"| {mode} | {len(lat)} | {pct(lat, 50) * 1000:.1f} ms | "
            f"{pct(lat, 90) * 1000:.1f} ms | {pct(lat, 99) * 1000:.1f} ms | "
            f"{max(lat) * 1000:.1f} ms | {pct(lat, 50) / pct(base, 50):.2f}x | "
            f"{pct(lat, 99) / pct(base, 99):.2f}x |"
        )
    print()
    print("| mode | shadow lag p50 | p90 | p99 | max | shadow failed | queue max | queue mean |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode in ("sync", "background"):
        row = rows[mode]
        lags_ms = [v * 1000 for v in row["lags"]]
        print(
            f"| {mode} | {pct(lags_ms, 50):.1f} ms | {pct(lags_ms, 90):.1f} ms | "
            f"{pct(lags_ms, 99):.1f} ms | {max(lags_ms, default=0):.1f} ms | "
            f"{row['failed']} | {row['queue_max']} | {row['queue_mean']:.1f} |"
        )
    bg = rows["background"]
    flush_ms = bg["flush"] * 1000
    print(f"\n# background queue at the end: {bg['queue_end']}, final flush {flush_ms:.0f} ms")


def print_closed_loop(
    rates: dict[str, list[float]], cpu: dict[str, list[float]], queue_after: list[int]
) -> None:
    print()
    print("| mode | writes/s per round | median | client CPU per write (median) |")
    print("| --- | --- | ---: | ---: |")
    for mode, values in rates.items():
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(
            f"| {mode} | {shown} | {statistics.median(values):.0f} | "
            f"{statistics.median(cpu[mode]):.2f} ms |"
        )
    print(f"\n# background queue left at the end of each round: {queue_after}")


def print_targets(
    args: argparse.Namespace, rows: dict[str, dict[str, Any]], rates: dict[str, list[float]]
) -> None:
    base, bg = rows["plain"]["latencies"], rows["background"]
    checks = [
        ("background/plain p50", pct(bg["latencies"], 50) / pct(base, 50), TARGET_P50, "<="),
        ("background/plain p99", pct(bg["latencies"], 99) / pct(base, 99), TARGET_P99, "<="),
        (
            "throughput background/plain",
            statistics.median(rates["background"]) / statistics.median(rates["plain"]),
            TARGET_THROUGHPUT,
            ">=",
        ),
    ]
    print("\n# targets (issue 4)")
    for name, value, target, op in checks:
        ok = value <= target if op == "<=" else value >= target
        print(f"#   {name} {value:.2f}x ({op} {target}x): {'PASS' if ok else 'MISS'}")
    lag_p99, lag_target = pct(bg["lags"], 99), args.delay + TARGET_LAG_EXTRA
    ok = lag_p99 <= lag_target and bg["queue_end"] < 50
    print(
        f"#   shadow lag p99 {lag_p99 * 1000:.1f} ms (<= {lag_target * 1000:.0f} ms), queue at "
        f"the end {bg['queue_end']} (no growth): {'PASS' if ok else 'MISS'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="writes per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per mode")
    parser.add_argument("--delay", type=float, default=0.020, help="shadow latency added (s)")
    parser.add_argument(
        "--primary-delay",
        type=float,
        default=0.0,
        help="latency added to the primary too (s): callers then wait on the network, as in "
        "production, rather than on the CPU the local servers share with them",
    )
    parser.add_argument("--callers", type=int, default=64, help="open loop: caller threads")
    parser.add_argument("--threads", type=int, default=8, help="closed loop: caller threads")
    parser.add_argument("--seconds", type=float, default=10.0, help="closed loop: seconds")
    parser.add_argument("--rounds", type=int, default=2, help="closed loop: rounds per mode")
    parser.add_argument("--workers", type=int, default=8, help="background workers")
    parser.add_argument(
        "--shadow",
        choices=("moto", "sink"),
        default="moto",
        help="the shadow's server: moto behind the proxy (as the issue asks), or a sink that "
        "answers every PUT after the delay and stores nothing (when the machine cannot run two "
        "moto servers at the rate)",
    )
    parser.add_argument(
        "--journal",
        choices=("sqlite", "none"),
        default="sqlite",
        help="the wrapped modes' journal: a fresh SQLite file (the default configuration, with "
        "write-ahead intents) or none",
    )
    parser.add_argument("--serve", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve[0], float(args.serve[1]))
        return

    print(
        f"# dualwrite {dualwrite.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    print(
        f"# open loop: {args.rate:.0f} writes/s for {args.duration:.0f} s, 1 KiB put_object, "
        f"shadow +{args.delay * 1000:.0f} ms, {args.workers} background workers, "
        f"journal: {args.journal}"
    )
    if args.primary_delay:
        print(f"# primary +{args.primary_delay * 1000:.0f} ms (through the proxy too)")
    if args.shadow == "sink":
        print("# shadow: a sink (answers after the delay, stores nothing), not moto")
    with servers(args.primary_delay, args.delay, args.shadow) as (primary_url, shadow_url):
        bench = Bench(args, primary_url, shadow_url)
        rows = {mode: bench.open_loop_mode(mode) for mode in ("plain", "sync", "background")}
        print_open_loop(rows)
        print(f"\n# closed loop: {args.threads} caller threads, {args.seconds:.0f} s per round")
        rates, cpu, queue_after = bench.closed_loop_rounds()
        print_closed_loop(rates, cpu, queue_after)
    print_targets(args, rows, rates)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
