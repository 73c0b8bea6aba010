"""Exceptions raised by dualwrite.

The tree::

    DualWriteError                      base of everything dualwrite raises itself
    ├── ConfigurationError (ValueError) bad arguments to DualWriter / wrap; raised at construction
    ├── JournalError                    a journal backend could not record or remove entries;
    │                                   never reaches a caller of a wrapped client (it becomes a
    │                                   ``journal_failed`` event)
    └── ShadowWriteError                a shadow write failed and on_shadow_error="raise" was asked

Errors of the primary account are never wrapped: the caller sees botocore's own exception, the
same object plain boto3 would have raised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dualwrite.events import ShadowFailed

__all__ = ["ConfigurationError", "DualWriteError", "JournalError", "ShadowWriteError"]


class DualWriteError(Exception):
    """Base class of every exception dualwrite raises itself."""


class ConfigurationError(DualWriteError, ValueError):
    """A ``DualWriter`` or ``wrap`` argument is invalid.

    Raised when the writer or a wrapper is built, never while a write is in flight. The message
    names the argument and lists the values it accepts.
    """


class JournalError(DualWriteError):
    """A journal backend could not record or remove entries.

    Attributes:
        problem: ``"locked"`` (another process held the journal's write lock past the busy
            timeout), ``"full"`` (no space left on the journal's disk), ``"deleted"`` (the
            journal's file was removed; it was recreated, so this is raised only when that
            failed too) or ``"error"`` (anything else).
    """

    def __init__(self, message: str, *, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


class ShadowWriteError(DualWriteError):
    """The shadow write failed after the primary write succeeded.

    Raised only when the caller asked for ``on_shadow_error="raise"``. The primary account holds the
    write; the shadow does not. ``event`` is the ``shadow_failed`` event that was also sent to the
    hooks, and ``__cause__`` is the shadow's exception.
    """

    def __init__(self, message: str, *, event: ShadowFailed) -> None:
        super().__init__(message)
        self.event = event
