"""Count the instructions a benchmark case executes, under valgrind (cachegrind).

An instruction count does not move with the load of other processes, so on a shared machine it
is the figure to trust for a ratio of per-call costs; it ignores how fast the instructions run
(cache misses, branch prediction), which the wall clock includes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

_IREFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def available() -> bool:
    """Whether valgrind is installed."""
    return shutil.which("valgrind") is not None


def count(script: str, only: str, calls: int) -> int:
    """Instructions executed by ``python script --only ONLY --calls CALLS`` under cachegrind."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONMALLOC": "malloc"}
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
