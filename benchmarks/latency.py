"""Caller latency, shadow lag and throughput: plain vs background (vs sync), 1 and 8 callers.

Two setups (``--servers``):

- ``zero`` (the default, issue 12): no server. Each client (real boto3, all of botocore's work)
  is answered by an in-process stand-in (``benchmarks/_zero_cpu.py``): a ``before-send`` handler
  that reads the request body, sleeps the injected delay (``--primary-delay``, default 2 ms;
  ``--delay`` for the shadow, default 20 ms) and returns a canned answer. The process's CPU is
  then botocore's and the library's only: what the figures are meant to show. S3 (1 KiB
  ``put_object``) or DynamoDB (``put_item``), ``--service``.
- ``moto`` (issue 4's setup, S3 only): two moto servers, each in its own process on 127.0.0.1;
  the shadow's reached through the tests' fault proxy (``tests/_support/proxy.py``), which adds
  the delay. On a 2-core machine moto's CPU (3-5 ms a request) and the proxy's decide the
  figures at 200 writes/s, not the library. ``--shadow sink`` replaces the shadow's moto by a
  stand-in that answers every PUT after the delay.

Part 1, open loop: writes are issued at a fixed rate (default 200/s for 20 s) by a pool of
caller threads (``--callers``, default ``1,8``: each pool size in turn), to 1,000 keys: first on
the bare primary client (``plain``), then through ``dualwrite`` in ``background`` mode with each
journal of ``--journals`` (default ``none,sqlite``: no journal, and a fresh SQLite journal with
write-ahead intents, the default configuration); ``--modes`` adds ``sync``. For each, the
p50/p99 latency the caller saw; for the wrapped modes the shadow lag (primary ack to shadow ack,
from the ``shadow_written`` events) and the background queue (sampled every 100 ms, and at the
end of the run).

Part 2, closed loop: 8 caller threads write as fast as they can for a few seconds, plain and
each background case in alternating rounds; writes per second each, and the ratio.

Run: ``python benchmarks/latency.py [--servers zero|moto] [--service s3|dynamodb] [--rate 200]
[--duration 20] [--delay 0.020] [--primary-delay S] [--callers 1,8] [--journals none,sqlite]``.
Figures, not a test: nothing is asserted; issue 12's targets are printed with PASS/MISS.
"""

from __future__ import annotations

import argparse
import contextlib
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
sys.path.insert(0, str(ROOT / "benchmarks"))

REGION = "us-east-1"
BODY = bytes(range(256)) * 4  # 1 KiB
KEYS = 1000
CLIENT_CONFIG = Config(max_pool_connections=128, retries={"total_max_attempts": 3})

# Issue 12's targets (issue 4's were 1.15x, 1.5x, delay + 25 ms and 0.9x).
TARGET_P50 = 1.05
TARGET_P99 = 1.2
TARGET_LAG_EXTRA = 0.005
TARGET_THROUGHPUT = 0.95
ZERO_URL = "http://127.0.0.1:9"  # never reached: the stand-ins answer before the socket


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


def zero_clients(args: argparse.Namespace) -> tuple[Any, Any]:
    """The primary's and the shadow's clients, answered by the zero-CPU stand-ins."""
    from _zero_cpu import FakeDynamoDB, FakeS3  # noqa: PLC0415 - benchmarks/

    pair = []
    for delay in (args.primary_delay, args.delay):
        config = CLIENT_CONFIG.merge(Config(s3={"addressing_style": "path"}))
        made = boto3.client(
            args.service,
            endpoint_url=ZERO_URL,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )
        fake = FakeS3(delay) if args.service == "s3" else FakeDynamoDB(delay)
        fake.attach(made)
        pair.append(made)
    return pair[0], pair[1]


ITEM_VALUE = {"S": "v" * 100}


class Bench:
    """The two clients and the options, shared by both parts."""

    def __init__(self, args: argparse.Namespace, primary: Any, shadow: Any) -> None:
        self.args = args
        self.primary, self.shadow = primary, shadow
        if args.service == "s3":
            self.primary.create_bucket(Bucket="bench")
            self.shadow.create_bucket(Bucket="bench-shadow")
        self.names = {"bench": "bench-shadow"}

    def put_on(self, target: Any) -> Callable[[str], None]:
        """One write of a key on ``target`` (the bare client or the wrapped one)."""
        if self.args.service == "s3":
            return lambda key: target.put_object(Bucket="bench", Key=key, Body=BODY)
        return lambda key: target.put_item(
            TableName="bench", Item={"pk": {"S": key}, "v": ITEM_VALUE}
        )

    def writer(
        self, mode: str, hooks: list[Any], journal: str
    ) -> tuple[dualwrite.DualWriter, Callable[[str], None]]:
        path = None
        if journal == "sqlite":  # a fresh file per writer, never the user's own
            path = os.path.join(tempfile.mkdtemp(prefix="dualwrite-bench-"), "journal.db")
        writer = dualwrite.DualWriter(
            flag=True,
            mode=mode,
            hooks=hooks,
            workers=self.args.workers,
            journal=path,
            single_writer=self.args.single_writer,
        )
        wrapped = writer.wrap(self.primary, shadow=self.shadow, names=self.names)
        return writer, self.put_on(wrapped)

    def open_loop_case(self, mode: str, journal: str, callers: int) -> dict[str, Any]:
        """Part 1 for one case: latencies, lags, queue samples."""
        lags = Lags()
        writer, put = self.writer("sync" if mode == "plain" else mode, [lags], journal)
        if mode == "plain":
            put = self.put_on(self.primary)
        for i in range(50):  # warm up connections on every side
            put(f"warm-{i}")
        writer.flush()
        lags.values.clear()
        samples: list[int] = []
        stop = threading.Event()
        watch = threading.Thread(target=sampler, args=(writer, samples, stop))
        watch.start()
        cpu = cpu_seconds()
        latencies, late = open_loop(put, self.args.rate, self.args.duration, callers)
        stop.set()
        watch.join()
        pending_at_end = writer.pending
        flushed = time.perf_counter()
        writer.flush()
        flush_seconds = time.perf_counter() - flushed
        cpu_ms = (cpu_seconds() - cpu) * 1000 / max(1, len(latencies))
        writer.close()
        print(
            f"#   {callers} caller(s), {mode}, journal {journal}: done "
            f"({len(latencies)} writes, {late} started >5 ms late)"
        )
        return {
            "latencies": latencies,
            "late": late,
            "lags": lags.values,
            "failed": lags.failed,
            "queue_max": max(samples, default=0),
            "queue_end": pending_at_end,
            "flush": flush_seconds,
            "cpu_ms": cpu_ms,
        }

    def closed_loop_rounds(
        self, cases: list[tuple[str, str]]
    ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[int]]]:
        """Part 2: plain and every background case, in alternating rounds."""
        args = self.args
        rates: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        queue_after: dict[str, list[int]] = {}
        for _ in range(args.rounds):
            for mode, journal in cases:
                label = case_label(mode, journal)
                if mode == "plain":
                    rate, per_write = closed_loop(
                        self.put_on(self.primary), args.threads, args.seconds, lambda: None
                    )
                    writer = None
                else:
                    writer, put = self.writer(mode, [], journal)

                    def drain(writer: dualwrite.DualWriter = writer, label: str = label) -> None:
                        queue_after.setdefault(label, []).append(writer.pending)
                        writer.flush()

                    rate, per_write = closed_loop(put, args.threads, args.seconds, drain)
                    writer.close()
                rates.setdefault(label, []).append(rate)
                cpu.setdefault(label, []).append(per_write)
        return rates, cpu, queue_after


def case_label(mode: str, journal: str) -> str:
    return "plain" if mode == "plain" else f"{mode}, journal {journal}"


def print_open_loop(callers: int, rows: dict[str, dict[str, Any]], delay: float) -> None:
    print(f"\n{callers} caller thread(s):\n")
    print(
        "| case | writes (late) | caller p50 | p99 | vs plain p50 | vs plain p99 | "
        "shadow lag p50 | lag p99 | queue max | queue at end | CPU per write |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = rows["plain"]["latencies"]
    for label, row in rows.items():
        lat = row["latencies"]
        lags_ms = [v * 1000 for v in row["lags"]]
        lag = "-" if label == "plain" else f"{pct(lags_ms, 50):.1f} ms"
        lag99 = "-" if label == "plain" else f"{pct(lags_ms, 99):.1f} ms"
        print(
            f"| {label} | {len(lat)} ({row['late']}) | {pct(lat, 50) * 1000:.2f} ms | "
            f"{pct(lat, 99) * 1000:.2f} ms | {pct(lat, 50) / pct(base, 50):.2f}x | "
            f"{pct(lat, 99) / pct(base, 99):.2f}x | {lag} | {lag99} | {row['queue_max']} | "
            f"{row['queue_end']} | {row['cpu_ms']:.2f} ms |"
        )
    for label, row in rows.items():
        if label == "plain":
            continue
        base_p50, base_p99 = pct(base, 50), pct(base, 99)
        lat = row["latencies"]
        checks = [
            (f"caller p50 {pct(lat, 50) / base_p50:.2f}x <= {TARGET_P50}x",
             pct(lat, 50) / base_p50 <= TARGET_P50),
            (f"p99 {pct(lat, 99) / base_p99:.2f}x <= {TARGET_P99}x",
             pct(lat, 99) / base_p99 <= TARGET_P99),
            ((f"lag p99 {pct(row['lags'], 99) * 1000:.1f} ms <= "
              f"{(delay + TARGET_LAG_EXTRA) * 1000:.0f} ms"),
             pct(row["lags"], 99) <= delay + TARGET_LAG_EXTRA),
            (f"queue at end {row['queue_end']} (no growth)", row["queue_end"] < 50),
        ]  # fmt: skip
        shown = "; ".join(f"{text}: {'PASS' if ok else 'MISS'}" for text, ok in checks)
        print(f"# targets, {label}: {shown}")


def print_closed_loop(
    rates: dict[str, list[float]], cpu: dict[str, list[float]], queue_after: dict[str, list[int]]
) -> None:
    print()
    print("| case | writes/s per round | median | vs plain | CPU per write (median) | "
          "queue left per round |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | --- |")
    base = statistics.median(rates["plain"])
    for label, values in rates.items():
        shown = ", ".join(f"{v:.0f}" for v in values)
        median = statistics.median(values)
        print(
            f"| {label} | {shown} | {median:.0f} | {median / base:.2f}x | "
            f"{statistics.median(cpu[label]):.2f} ms | {queue_after.get(label, '-')} |"
        )
    for label, values in rates.items():
        if label != "plain":
            ratio = statistics.median(values) / base
            verdict = "PASS" if ratio >= TARGET_THROUGHPUT else "MISS"
            print(f"# target, {label}: throughput {ratio:.2f}x >= {TARGET_THROUGHPUT}x: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--servers",
        choices=("zero", "moto"),
        default="zero",
        help="zero: in-process stand-ins that cost no CPU (issue 12); moto: two moto servers "
        "in child processes, the shadow behind the delaying proxy (issue 4's setup)",
    )
    parser.add_argument(
        "--service", choices=("s3", "dynamodb"), default="s3", help="zero servers only"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="writes per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--delay", type=float, default=0.020, help="shadow latency added (s)")
    parser.add_argument(
        "--primary-delay",
        type=float,
        default=None,
        help="latency of the primary (s); default 0.002 with zero servers (a round trip in "
        "the region), 0 with moto (moto's own time)",
    )
    parser.add_argument(
        "--callers", default="1,8", help="open loop: caller threads, each value in turn"
    )
    parser.add_argument("--threads", type=int, default=8, help="closed loop: caller threads")
    parser.add_argument("--seconds", type=float, default=10.0, help="closed loop: seconds")
    parser.add_argument("--rounds", type=int, default=2, help="closed loop: rounds per case")
    parser.add_argument("--workers", type=int, default=8, help="background workers")
    parser.add_argument(
        "--modes",
        default="background",
        help="wrapped modes besides plain, comma-separated: background, sync",
    )
    parser.add_argument(
        "--journals",
        "--journal",
        default="none,sqlite",
        help="the wrapped cases' journals, comma-separated: none, sqlite (a fresh SQLite "
        "file: the default configuration, with write-ahead intents)",
    )
    parser.add_argument(
        "--single-writer",
        action="store_true",
        help="wrapped cases with single_writer=True: no fleet read-back of the primary after "
        "each shadow write (one writer per key; docs/configuration.md)",
    )
    parser.add_argument(
        "--shadow",
        choices=("moto", "sink"),
        default="moto",
        help="moto servers only: the shadow's server, moto behind the proxy, or a sink that "
        "answers every PUT after the delay and stores nothing",
    )
    parser.add_argument("--serve", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve[0], float(args.serve[1]))
        return
    if args.primary_delay is None:
        args.primary_delay = 0.002 if args.servers == "zero" else 0.0
    if args.servers == "moto" and args.service != "s3":
        parser.error("--servers moto measures S3 only")

    print(
        f"# dualwrite {dualwrite.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    what = "1 KiB put_object" if args.service == "s3" else "put_item (about 110 bytes)"
    print(
        f"# servers: {args.servers}; open loop: {args.rate:.0f} writes/s for "
        f"{args.duration:.0f} s, {what}, primary +{args.primary_delay * 1000:.0f} ms, shadow "
        f"+{args.delay * 1000:.0f} ms, {args.workers} background workers"
    )
    if args.single_writer:
        print("# wrapped cases: single_writer=True (no read-back of the primary)")
    if args.servers == "moto" and args.shadow == "sink":
        print("# shadow: a sink (answers after the delay, stores nothing), not moto")
    cases = [("plain", "none")] + [
        (mode, journal) for mode in args.modes.split(",") for journal in args.journals.split(",")
    ]
    with contextlib.ExitStack() as stack:
        if args.servers == "zero":
            primary, shadow = zero_clients(args)
        else:
            primary_url, shadow_url = stack.enter_context(
                servers(args.primary_delay, args.delay, args.shadow)
            )
            primary, shadow = client(primary_url), client(shadow_url)
        bench = Bench(args, primary, shadow)
        for callers in (int(c) for c in args.callers.split(",")):
            rows = {
                case_label(mode, journal): bench.open_loop_case(mode, journal, callers)
                for mode, journal in cases
            }
            print_open_loop(callers, rows, args.delay)
        background_cases = [c for c in cases if c[0] in ("plain", "background")]
        print(f"\n# closed loop: {args.threads} caller threads, {args.seconds:.0f} s per round")
        rates, cpu, queue_after = bench.closed_loop_rounds(background_cases)
        print_closed_loop(rates, cpu, queue_after)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
