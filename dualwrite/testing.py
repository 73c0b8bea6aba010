"""Helpers for testing code that uses dualwrite."""

from __future__ import annotations

import threading

from dualwrite.events import Event

__all__ = ["RecordingHook"]


class RecordingHook:
    """A hook that keeps every event it receives, in order, in ``.events``.

    Safe to share between threads.

    Example::

        rec = dualwrite.testing.RecordingHook()
        writer = dualwrite.DualWriter(flag=lambda w: True, hooks=[rec])
        ...
        assert rec.kinds() == ["shadow_written"]
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        """Record ``event``."""
        with self._lock:
            self.events.append(event)

    def kinds(self) -> list[str]:
        """Return the ``kind`` of each recorded event, in order."""
        with self._lock:
            return [e.kind for e in self.events]

    def of_kind(self, kind: str) -> list[Event]:
        """Return the recorded events whose ``kind`` is ``kind``."""
        with self._lock:
            return [e for e in self.events if e.kind == kind]

    def clear(self) -> None:
        """Forget every recorded event."""
        with self._lock:
            self.events.clear()

    def __repr__(self) -> str:
        return f"RecordingHook({len(self.events)} events)"
