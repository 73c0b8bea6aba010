"""Copy one key until the primary holds still: the loop every convergence shares."""

from __future__ import annotations

import time
from typing import Any

from dualwrite._core.errors import RepairError

ATTEMPTS = 3
"""Copies of one key at most in one run, when the primary keeps changing under it."""


def retry_until_stable(
    copy_once: Any,
    version_now: Any,
    *,
    attempts: int | None = None,
    deadline: float | None = None,
) -> str:
    """Copy, then check the primary did not change meanwhile; redo at most a few times.

    Args:
        copy_once: copies the current state; returns ``(outcome, version it copied)``.
        version_now: returns the primary's version now (a fingerprint of the object's state,
            or the item itself).
        attempts: copies at most (default :data:`ATTEMPTS`).
        deadline: a ``time.monotonic()`` instant after which no new attempt starts.

    Returns:
        The outcome of the last copy (``"copied"`` or ``"deleted"``).

    Raises:
        RepairError: the key kept changing, or the deadline passed.
    """
    attempts = ATTEMPTS if attempts is None else attempts
    for _ in range(max(1, attempts)):
        if deadline is not None and time.monotonic() >= deadline:
            msg = "the repair deadline passed before the key settled"
            raise RepairError(msg)
        outcome, copied = copy_once()
        if version_now() == copied:
            return str(outcome)
    msg = f"the key changed on the primary during {attempts} repair attempts"
    raise RepairError(msg)
