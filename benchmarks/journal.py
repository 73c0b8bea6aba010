"""What a write-ahead intent costs the journal: one add and one remove per dual write.

Each thread records a ``pending`` entry and removes it again, as every flag-on write does (the
add before the primary call, the remove after the shadow's), against a fresh SQLite journal in
a temporary directory. Printed per thread count: wall-clock and CPU microseconds per write
(add + remove), and how many writes shared one transaction (group commit).

Run: ``python benchmarks/journal.py [--writes N] [--threads 1,8,32]``. Figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

from dualwrite.journal import Entry, SQLiteJournal


def run(threads: int, writes: int) -> tuple[float, float, float]:
    """Return (wall µs per write, CPU µs per write, writes per transaction)."""
    journal = SQLiteJournal(os.path.join(tempfile.mkdtemp(prefix="dualwrite-bench-"), "j.db"))
    entry = Entry(
        service="s3", resource="photos", key="tenant-a/object.bin", reason="pending", owner="h/1/2"
    )
    start = threading.Barrier(threads + 1)

    def work() -> None:
        start.wait()
        for _ in range(writes // threads):
            journal.remove(journal.add([entry]))

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    wall, cpu = time.perf_counter(), time.process_time()
    for thread in pool:
        thread.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = (writes // threads) * threads
    per_transaction = 2 * done / journal.transactions
    journal.close()
    return wall / done * 1e6, cpu / done * 1e6, per_transaction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=4000)
    parser.add_argument("--threads", default="1,8,32")
    args = parser.parse_args()
    print("| threads | wall µs/write | CPU µs/write | journal ops per transaction |")
    print("| ---: | ---: | ---: | ---: |")
    for threads in (int(t) for t in args.threads.split(",")):
        wall, cpu, grouped = run(threads, args.writes)
        print(f"| {threads} | {wall:.0f} | {cpu:.0f} | {grouped:.1f} |")


if __name__ == "__main__":
    main()
