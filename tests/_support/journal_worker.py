"""Run in a separate process: add and remove journal entries, as a second host process would."""

from __future__ import annotations

from dualwrite.journal import Entry, SQLiteJournal


def add_many(path: str, worker: int, count: int) -> int:
    """Add ``count`` entries one transaction each, removing every third; return entries kept."""
    journal = SQLiteJournal(path)
    kept = 0
    for i in range(count):
        ids = journal.add(
            [Entry(service="s3", resource="photos", key=f"p{worker}-{i}", reason="pending")]
        )
        if i % 3 == 0:
            journal.remove(ids)
        else:
            kept += 1
    journal.close()
    return kept
