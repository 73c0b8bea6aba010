"""This process only: :class:`MemoryJournal`."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence

import attrs

from dualwrite.journal._model import Entry, encode_key


class MemoryJournal:
    """A journal in this process's memory: lost when the process ends.

    What ``journal="auto"`` falls back to where no state directory can be written; also handy
    in tests. Safe from many threads.
    """

    def __init__(self) -> None:
        self._entries: dict[int, Entry] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, entries: Sequence[Entry]) -> list[str]:
        """Record ``entries``; return their ids."""
        ids: list[str] = []
        with self._lock:
            for entry in entries:
                number = next(self._ids)
                encode_key(entry.key)  # the same keys as an SQLite journal accepts
                self._entries[number] = attrs.evolve(entry, id=str(number))
                ids.append(str(number))
        return ids

    def remove(self, ids: Sequence[str]) -> None:
        """Forget entries ``ids``."""
        with self._lock:
            for entry_id in ids:
                self._entries.pop(int(entry_id), None)

    def entries(self, limit: int | None = None) -> Iterator[Entry]:
        """Yield entries, oldest first."""
        with self._lock:
            found = [self._entries[n] for n in sorted(self._entries)]
        yield from found if limit is None else found[: int(limit)]

    def count(self) -> int:
        """Return the number of entries."""
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        """Nothing to release; the entries stay readable."""

    def __repr__(self) -> str:
        return f"MemoryJournal({self.count()} entries)"
