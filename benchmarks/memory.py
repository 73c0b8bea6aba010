"""Peak memory of ``upload_file`` of a large file: plain vs dualwrite in background mode.

The primary and the shadow are two moto servers in their own processes (started as in
``benchmarks/latency.py``). The script creates a sparse file (default 1 GiB), then, for each
case, starts a fresh Python process that builds its clients, warms them up with a small upload,
resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), calls ``upload_file`` (and, in
background mode, ``flush()``), and reads the peak (``VmHWM`` in ``/proc/self/status``). The
growth is that peak minus the RSS just before the call.

Cases: ``plain`` (the bare primary client), ``sync`` and ``background`` (through
``dualwrite``). In background mode the shadow's parts wait in the queue: the library keeps at
most ``dualwrite._core.bodies.BACKGROUND_MEMORY`` of them in RAM and spools the rest to disk.

Run: ``python benchmarks/memory.py [--size-mib 1024]``. Linux only. Figures, not a test; the
issue's target (issue 12: background grows peak RSS by at most 32 MiB) is printed with PASS/MISS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

import dualwrite
import dualwrite._core.bodies

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import servers

TARGET_MIB = 32  # issue 12 (issue 4: 64)
MIB = 1024 * 1024


def status(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status``, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    msg = f"{field} not in /proc/self/status"
    raise RuntimeError(msg)


def client(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 3}),
    )


def measure(mode: str, primary_url: str, shadow_url: str, path: str) -> dict[str, Any]:
    """In a fresh process: one ``upload_file`` of ``path``; the RSS before and the peak."""
    primary, shadow = client(primary_url), client(shadow_url)
    writer = None
    target: Any = primary
    if mode != "plain":
        writer = dualwrite.DualWriter(flag=True, mode=mode)
        target = writer.wrap(primary, shadow=shadow, names={"mem": "mem-shadow"})
    with tempfile.NamedTemporaryFile() as small:
        small.write(b"warm" * 1024)
        small.flush()
        target.upload_file(small.name, "mem", "warm-up")
    if writer is not None:
        writer.flush()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = status("VmRSS")
    started = time.perf_counter()
    target.upload_file(path, "mem", "big.bin")
    acked = time.perf_counter() - started
    if writer is not None:
        writer.flush()
    done = time.perf_counter() - started
    peak = status("VmHWM")
    etags = [primary.head_object(Bucket="mem", Key="big.bin")["ETag"]]
    if writer is not None:
        etags.append(shadow.head_object(Bucket="mem-shadow", Key="big.bin")["ETag"])
        writer.close()
    return {
        "before": before,
        "peak": peak,
        "acked": acked,
        "done": done,
        "same": len(set(etags)) == 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the file (MiB)")
    parser.add_argument(
        "--modes",
        default="plain,sync,background",
        help="comma-separated cases to run (default: %(default)s)",
    )
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        mode, primary_url, shadow_url, path = args.measure
        print(json.dumps(measure(mode, primary_url, shadow_url, path)))
        return

    print(
        f"# dualwrite {dualwrite.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; upload_file of a {args.size_mib} MiB sparse file; "
        f"background RAM budget {dualwrite._core.bodies.BACKGROUND_MEMORY // MIB} MiB"
    )
    rows = {}
    with tempfile.TemporaryDirectory() as directory, servers(0.0, 0.0) as urls:
        client(urls[0]).create_bucket(Bucket="mem")
        client(urls[1]).create_bucket(Bucket="mem-shadow")
        path = Path(directory) / "big.bin"
        with path.open("wb") as handle:
            handle.truncate(args.size_mib * MIB)
        for mode in args.modes.split(","):
            result = subprocess.run(  # noqa: PLW1510 - the return code is checked below
                [sys.executable, __file__, "--measure", mode, *urls, str(path)],
                capture_output=True,
                text=True,
            )
            if result.returncode:
                print(result.stderr, file=sys.stderr)
                raise SystemExit(result.returncode)
            rows[mode] = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"#   {mode}: done")
    print()
    print(
        "| mode | RSS before | peak RSS | growth | caller's call | until shadow done | same ETag |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for mode, row in rows.items():
        growth = (row["peak"] - row["before"]) / MIB
        print(
            f"| {mode} | {row['before'] / MIB:.0f} MiB | {row['peak'] / MIB:.0f} MiB | "
            f"{growth:.1f} MiB | {row['acked']:.1f} s | {row['done']:.1f} s | "
            f"{'yes' if row['same'] else 'NO'} |"
        )
    if "background" not in rows:
        return
    growth = (rows["background"]["peak"] - rows["background"]["before"]) / MIB
    verdict = "PASS" if growth <= TARGET_MIB else "MISS"
    print(
        f"\n# target (issue 12): background growth {growth:.1f} MiB <= {TARGET_MIB} MiB: {verdict}"
    )


if __name__ == "__main__":
    main()
