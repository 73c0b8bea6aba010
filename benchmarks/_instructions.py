"""Count the instructions a benchmark case executes, under valgrind (cachegrind).

An instruction count does not move with the load of other processes, so on a shared machine it
is the figure to trust for a ratio of per-call costs; it ignores how fast the instructions run
(cache misses, branch prediction), which the wall clock includes.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

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


# --- Several cases counted in one process, interleaved (callgrind client requests) ----------
#
# Each case above is counted in a process of its own, and one process's count carries its own
# layout of objects: the same code measures a few thousand instructions a call apart from one
# process to another, as much as the differences being judged. Counted in one process, in
# chunks that alternate between the cases, every case runs on the same heap, caches and
# interpreter state, and what differs between two cases is only the code each runs. Valgrind's
# counters can be read per chunk only from inside the process, through callgrind's client
# requests (zero the counters; dump them under a label); those are machine-code sequences a
# C compiler emits from <valgrind/callgrind.h>, so a three-line library is compiled for them.

_SHIM_SOURCE = """\
#include <valgrind/callgrind.h>
void dualwrite_bench_zero(void) { CALLGRIND_ZERO_STATS; }
void dualwrite_bench_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
"""
_SHIM_ENV = "DUALWRITE_BENCH_CALLGRIND_SHIM"
_START = "(start)"
_HEADER = "/usr/include/valgrind/callgrind.h"
_TRIGGER = re.compile(r"^desc: Trigger: Client Request: (.*)$", re.MULTILINE)
_SUMMARY = re.compile(r"^summary: (\d+)", re.MULTILINE)


def interleaved_available() -> str | None:
    """``None`` when interleaved counting can run here, else what is missing."""
    missing = [tool for tool in ("valgrind", "cc") if shutil.which(tool) is None]
    if not os.path.exists(_HEADER):
        missing.append(f"{_HEADER} (Debian: valgrind's own package ships it)")
    return ", ".join(missing) or None


def _build_shim(folder: str) -> str:
    source = os.path.join(folder, "shim.c")
    library = os.path.join(folder, "libdualwrite_bench_shim.so")
    with open(source, "w", encoding="utf-8") as handle:
        handle.write(_SHIM_SOURCE)
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", library, source], check=True)
    return library


class Chunks:
    """The child's side: run cases in chunks, each chunk's instructions dumped under its name.

    Outside valgrind the client requests are no-ops, so a child run without it just runs.
    """

    def __init__(self) -> None:
        library = ctypes.CDLL(os.environ[_SHIM_ENV])
        self._zero = library.dualwrite_bench_zero
        self._dump = library.dualwrite_bench_dump
        self._dump.argtypes = [ctypes.c_char_p]

    def run(self, cases: dict[str, object], calls: int, rounds: int) -> None:
        """``rounds`` rounds; each runs every case for ``calls`` calls, in a rotated order."""
        names = list(cases)
        # callgrind's first zeroing request has been seen to leave the counts before it in
        # place: a first, empty chunk takes them, and :func:`interleaved` drops it.
        self._zero()
        self._dump(_START.encode())
        for number in range(rounds):
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                case = cases[name]
                self._zero()
                for _ in range(calls):
                    case()  # type: ignore[operator]
                self._dump(name.encode())


def interleaved(
    script: str, arguments: list[str], seed: int, malloc: bool = False
) -> dict[str, list[int]]:
    """Run ``python script *arguments`` under callgrind; return each label's chunk counts.

    The script's child side uses :class:`Chunks`. ``malloc=True`` sets ``PYTHONMALLOC=malloc``
    (what :func:`count` does); the default keeps CPython's own allocator, as production does.
    """
    with tempfile.TemporaryDirectory(prefix="dualwrite-callgrind-") as folder:
        env = {**os.environ, "PYTHONHASHSEED": str(seed), _SHIM_ENV: _build_shim(folder)}
        if malloc:
            env["PYTHONMALLOC"] = "malloc"
        out = os.path.join(folder, "callgrind.out")
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--dump-instr=no",
            "--dump-line=no",
            os.path.realpath(sys.executable),
            script,
            *arguments,
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            msg = f"the callgrind child failed ({done.returncode}):\n{done.stderr[-4000:]}"
            raise SystemExit(msg)
        chunks: dict[str, list[int]] = {}
        dumps = sorted(
            (name for name in os.listdir(folder) if name.startswith("callgrind.out.")),
            key=lambda name: int(name.rsplit(".", 1)[1]),
        )
        for name in dumps:
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as handle:
                text = handle.read()
            label, total = _TRIGGER.search(text), _SUMMARY.search(text)
            if label is None or total is None:
                msg = f"callgrind dump {name} has no client-request label or summary"
                raise SystemExit(msg)
            if label.group(1) != _START:
                chunks.setdefault(label.group(1), []).append(int(total.group(1)))
        return chunks
