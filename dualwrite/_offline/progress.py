"""The progress bar of the offline operations (repair, diff, copy), on standard error."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """A one-line progress bar with rate and ETA, redrawn at most 10 times a second.

    The total is set once it is known (:meth:`set_total`, e.g. from a count running beside the
    work) or grows as work is found (:meth:`grow`); until then the bar shows a count and a rate.

    Args:
        label: what the line starts with (``"copy s3"``, ``"repair"``).
        out: the stream drawn on (default: standard error at construction).
    """

    def __init__(self, label: str, out: TextIO | None = None) -> None:
        self._label = label
        self._out = out or sys.stderr
        self._lock = threading.Lock()
        self._done = 0
        self._total: int | None = None
        self._started = time.monotonic()
        self._drawn = 0.0
        self._detail: Callable[[], str] | None = None

    def set_total(self, total: int | None) -> None:
        """Set the number of keys the work covers (``None``: unknown)."""
        with self._lock:
            self._total = total

    def grow(self, count: int) -> None:
        """Add ``count`` keys to the total (work found as it goes)."""
        with self._lock:
            self._total = (self._total or 0) + count

    def watch(self, detail: Callable[[], str]) -> None:
        """Show ``detail()`` (running counts) at the end of each line."""
        self._detail = detail

    def step(self, count: int = 1) -> None:
        """Count ``count`` keys done, and redraw unless the last draw is too recent."""
        with self._lock:
            self._done += count
            now = time.monotonic()
            if now - self._drawn < 0.1:
                return
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        total = self._total
        if total:
            shown = min(self._done, total)
            width = 30
            filled = int(width * shown / total)
            eta = (total - shown) / rate if rate else 0.0
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {shown}/{total} keys"
            tail = f", ETA {_duration(eta)}"
        else:
            bar, tail = f"{self._done} keys", ""
        detail = self._detail() if self._detail is not None else ""
        line = f"{self._label} {bar}, {rate:.0f}/s{tail}{detail}"
        # A line wider than the terminal wraps, and "\r" then redraws only its last row: the
        # bar would scroll. Cut it to the width (read each time: the window may be resized).
        width = shutil.get_terminal_size(fallback=(80, 24)).columns - 1
        self._out.write(f"\r{line[:width]:<{width}}" if width > 0 else f"\r{line}")
        self._out.flush()

    def close(self) -> None:
        """Draw the final counts and end the line."""
        with self._lock:
            self._draw(time.monotonic())
            self._out.write("\n")
            self._out.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
