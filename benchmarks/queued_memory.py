"""RSS held by 40 queued 4 MiB put_object bodies (background mode, the shadow held at a gate).

Run from a checkout: python benchmarks/queued_memory.py
The moto servers run in their own processes (benchmarks/latency.py's servers()).
"""

import gc
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from latency import client, servers

import dualwrite
from dualwrite._core import bodies as _bodies


def rss() -> float:
    """This process's resident set size in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    msg = "no VmRSS in /proc/self/status"
    raise RuntimeError(msg)


with servers(0.0, 0.0) as (p_url, s_url):
    primary, shadow = client(p_url), client(s_url)
    primary.create_bucket(Bucket="mem")
    shadow.create_bucket(Bucket="mem-shadow")
    gate = threading.Event()
    shadow.meta.events.register(
        "before-call.s3.PutObject", lambda **_: gate.wait(120), unique_id="gate"
    )
    writer = dualwrite.DualWriter(flag=True, mode="background", workers=1, journal=None)
    s3 = writer.wrap(primary, shadow=shadow, names={"mem": "mem-shadow"})
    s3.put_object(Bucket="mem", Key="warm", Body=b"x")
    gc.collect()
    before = rss()
    for i in range(40):
        body = bytes([i]) * (4 * 1024 * 1024)  # a fresh body each call, dropped by the caller
        s3.put_object(Bucket="mem", Key=f"k{i}", Body=body)
        del body
    gc.collect()
    after = rss()
    print(
        f"queued={writer.pending} RSS growth with 40 queued 4 MiB bodies: {after - before:.0f} MiB "
        f"(budget {_bodies.BACKGROUND_MEMORY // 2**20} MiB)"
    )
    gate.set()
    writer.flush(120)
    writer.close()
