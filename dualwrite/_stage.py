"""Migration stages: where a tenant stands, and which account owns it."""

from __future__ import annotations

import enum
from typing import Literal

__all__ = ["Stage"]

Account = Literal["primary", "shadow"]
"""One of the two wrapped accounts: the one wrapped as primary (old) or as shadow (new)."""


class Stage(enum.Enum):
    """Where one tenant stands in its migration, as a ``stage=`` callback returns it.

    ``primary`` and ``shadow`` name the accounts as they were wrapped: the old account (the
    wrapped client) and the new one (``shadow=``).

    Attributes:
        OFF: the old account only, as without the wrapper.
        DUAL_WRITE: the old account first, then the new one (the ``flag`` being on).
        CUTOVER: the new account first; the old one gets the mirrored write, so the tenant can
            go back to ``DUAL_WRITE`` without losing a write. Reads come from the new account.
        DONE: the new account only. Reads come from the new account.
    """

    OFF = "off"
    DUAL_WRITE = "dual_write"
    CUTOVER = "cutover"
    DONE = "done"

    @property
    def owner(self) -> Account:
        """The account that owns the tenant at this stage: written first and read from."""
        return "shadow" if self in (Stage.CUTOVER, Stage.DONE) else "primary"

    @property
    def mirrored(self) -> bool:
        """Whether a write reaches both accounts (``DUAL_WRITE`` and ``CUTOVER``)."""
        return self in (Stage.DUAL_WRITE, Stage.CUTOVER)

    @classmethod
    def coerce(cls, value: object) -> Stage | None:
        """A :class:`Stage` from itself, its value (``"cutover"``) or its name; else ``None``."""
        if isinstance(value, Stage):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            for stage in cls:
                if text == stage.value:
                    return stage
        return None

    def __repr__(self) -> str:
        return f"Stage.{self.name}"


REVERSED = frozenset({Stage.CUTOVER, Stage.DONE})
"""Stages whose writes go to the new account first."""

FALLBACK = Stage.DUAL_WRITE
"""The stage used when the ``stage`` callback (or ``tenant_of``) fails for a call: both accounts
get the write, the old one first, so no write is lost whichever stage the tenant was at."""
