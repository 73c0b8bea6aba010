"""Count the instructions a benchmark case executes, under valgrind (cachegrind).

An instruction count does not move with the load of other processes, so on a shared machine it
is the figure to trust for a ratio of per-call costs; it ignores how fast the instructions run
(cache misses, branch prediction), which the wall clock includes.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys

_IREFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def available() -> bool:
    """Whether valgrind is installed."""
    return shutil.which("valgrind") is not None


SEEDS = 1
"""How many hash seeds (0, 1, ...) :func:`per_call` measures each case with (``--hash-seeds``)."""

_zero_runs: dict[tuple[str, str, int], int] = {}


def per_call(script: str, only: str, calls: int, baseline: str) -> float:
    """Instructions per call of case ``only``: its run of ``calls`` calls minus the run of case
    ``baseline`` with none, the median over :data:`SEEDS` hash seeds.

    One process's count depends on how its dictionaries and objects happen to be laid out,
    which the hash seed decides (a production process gets a random one): the same code
    measures a few thousand instructions a call apart from one seed to another. The median
    of several seeds is the figure to compare two trees by.
    """
    figures = []
    for seed in range(SEEDS):
        zero = _zero_runs.get((script, baseline, seed))
        if zero is None:
            zero = _zero_runs[(script, baseline, seed)] = count(script, baseline, 0, seed)
        figures.append((count(script, only, calls, seed) - zero) / calls)
    return statistics.median(figures)


def count(script: str, only: str, calls: int, seed: int = 0) -> int:
    """Instructions executed by ``python script --only ONLY --calls CALLS`` under cachegrind."""
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONMALLOC": "malloc"}
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        script,
        "--only",
        only,
        "--calls",
        str(calls),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    found = _IREFS.search(done.stderr)
    if found is None:
        msg = f"no instruction count in valgrind's output:\n{done.stderr}"
        raise SystemExit(msg)
    return int(found.group(1).replace(",", ""))
