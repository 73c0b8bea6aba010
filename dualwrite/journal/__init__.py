"""The journal: which keys the shadow may lack, so that ``repair()`` can restore them.

An entry names a key, never a payload: the service, the primary bucket or table, the key, why it
is there and when. Repair reads the key's *current* state on the primary and writes it to the
shadow (or deletes it there), so replaying an entry twice, or entries in any order, is harmless.

Backends implement the small :class:`Journal` protocol. Three ship with the library:

* :class:`SQLiteJournal`, the embedded default: one file on the host (WAL mode), safe from many
  threads and several processes; concurrent writers of one process share one transaction
  (group commit).
* :class:`SQSJournal`: an Amazon SQS queue shared by a fleet of hosts.
* :class:`MemoryJournal`: this process only; what ``journal="auto"`` falls back to where the
  state directory cannot be written (a crash then loses it).

``DualWriter(journal=...)`` accepts ``"auto"`` (the default: :func:`default_path`), ``None``, a
path (an SQLite journal there) or a backend.

A backend that cannot record raises :class:`~dualwrite.exceptions.JournalError` naming the
problem (``"locked"``, ``"full"``, ``"deleted"``, ``"error"``); the writer turns it into a
``journal_failed`` event and one log line, and goes on.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator

from dualwrite.journal._memory import MemoryJournal
from dualwrite.journal._model import REASONS as REASONS
from dualwrite.journal._model import Entry, Journal, owner_alive, process_token
from dualwrite.journal._model import decode_key as decode_key
from dualwrite.journal._model import encode_key as encode_key
from dualwrite.journal._sqlite import SQLiteJournal
from dualwrite.journal._sqs import SQSJournal

__all__ = [
    "Entry",
    "Journal",
    "MemoryJournal",
    "SQLiteJournal",
    "SQSJournal",
    "default_path",
    "one_pass",
    "open_journal",
    "owner_alive",
    "process_token",
]


def default_path() -> str:
    """Where ``journal="auto"`` keeps its SQLite file.

    ``$DUALWRITE_JOURNAL`` if set, else ``$XDG_STATE_HOME/dualwrite/journal.sqlite3``, else
    ``~/.local/state/dualwrite/journal.sqlite3``.
    """
    explicit = os.environ.get("DUALWRITE_JOURNAL")
    if explicit:
        return explicit
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "dualwrite", "journal.sqlite3")


_fallback_warned = False
_fallback_lock = threading.Lock()


def _auto() -> Journal:
    """The ``"auto"`` journal: an SQLite file at :func:`default_path`, else one in memory."""
    global _fallback_warned
    path = default_path()
    try:
        return SQLiteJournal(path)
    except (OSError, sqlite3.Error) as exc:
        with _fallback_lock:
            warn, _fallback_warned = not _fallback_warned, True
        if warn:
            logging.getLogger("dualwrite").warning(
                "dualwrite: cannot write the journal at %r (%s: %s); journaling in memory "
                "instead: a crash of this process loses what it holds. Set DUALWRITE_JOURNAL "
                "or pass journal= a writable path",
                path,
                type(exc).__name__,
                exc,
            )
        return MemoryJournal()


def open_journal(spec: object) -> Journal | None:
    """Turn ``DualWriter(journal=...)`` into a backend.

    Raises:
        TypeError: ``spec`` is neither ``"auto"``, ``None``, a path, nor a :class:`Journal`.
    """
    if spec is None:
        return None
    if spec == "auto":
        return _auto()
    if isinstance(spec, (str, os.PathLike)):
        return SQLiteJournal(spec)
    if isinstance(spec, Journal):
        return spec
    msg = (
        'journal must be "auto", None, a path (an SQLite journal is created there) or a '
        f"dualwrite.journal.Journal; got {type(spec).__name__}"
    )
    raise TypeError(msg)


_ROUND_REPEATS = 10  # consecutive entries seen before in this run: the backlog went round


def one_pass(journal: Journal) -> Iterator[Entry]:
    """The journal's entries, each once, until a run of entries already seen shows that the
    backlog went round (an SQS message reappears once its visibility timeout ran out)."""
    seen: set[str] = set()
    repeats = 0
    for entry in journal.entries(None):
        if entry.id is not None and entry.id in seen:
            repeats += 1
            if repeats >= _ROUND_REPEATS:
                return
            continue
        repeats = 0
        if entry.id is not None:
            seen.add(entry.id)
        yield entry
