"""Deciding a call: the stage decisions a proxy took for one call, by resource.

Holds :class:`Decision` and the thread-local scope through which the proxy
(:mod:`dualwrite._core.routing`) hands its decisions to the handlers
(:func:`decided`, :func:`scoped_decisions`), so that a handler asks nothing twice.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import attrs

from dualwrite._stage import Stage


@attrs.frozen
class Decision:
    """The stage decided for one resource of one call (``stage=`` writers).

    ``mirrored`` says whether the call's other account gets the write: ``DUAL_WRITE`` on the
    old-first side, ``CUTOVER`` on the new-first side, and every fallback (see
    :data:`dualwrite._stage.FALLBACK`).
    """

    tenant: str | None
    stage: Stage
    mirrored: bool


# The decisions of the call being made in this thread, by resource as the handling mirror names
# it; set by the proxy around one handler call (dualwrite._core.routing.decided).
_scope = threading.local()


def scoped_decisions() -> dict[str, Decision] | None:
    """The decisions of the call this thread is making, if the proxy took them."""
    return getattr(_scope, "decisions", None)


@contextlib.contextmanager
def decided(decisions: dict[str, Decision] | None) -> Any:
    """Make ``decisions`` the current call's, for :meth:`Mirror.decide` (nesting-safe)."""
    previous = getattr(_scope, "decisions", None)
    _scope.decisions = decisions
    try:
        yield
    finally:
        _scope.decisions = previous
