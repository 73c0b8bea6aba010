"""Ready-made hooks.

A hook is any callable taking one :class:`dualwrite.events.Event`; pass a list of them as
``DualWriter(hooks=[...])``. Exceptions a hook raises are logged and otherwise ignored.
"""

from __future__ import annotations

import logging

from dualwrite.events import Event, ShadowWritten

__all__ = ["LoggingHook"]


class LoggingHook:
    """Log every event through :mod:`logging`.

    ``shadow_written`` is logged at ``success_level`` (DEBUG by default), every other kind at
    ``problem_level`` (WARNING). The line names the kind, tenant, operation, resources and key,
    plus the event's own fields; it never holds a body, an SSE-C key or a credential, because
    events never do.

    Args:
        logger: the logger to use; ``logging.getLogger("dualwrite")`` by default.
        success_level: level for ``shadow_written``.
        problem_level: level for ``shadow_failed``, ``mismatch``, ``unsupported`` and
            ``flag_failed``.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        success_level: int = logging.DEBUG,
        problem_level: int = logging.WARNING,
    ) -> None:
        self.logger = logger if logger is not None else logging.getLogger("dualwrite")
        self.success_level = success_level
        self.problem_level = problem_level

    def __call__(self, event: Event) -> None:
        """Log ``event``."""
        level = self.success_level if isinstance(event, ShadowWritten) else self.problem_level
        if not self.logger.isEnabledFor(level):
            return
        w = event.write
        extra = {
            name: value for name, value in _fields(event).items() if name not in ("write", "at")
        }
        details = " ".join(f"{name}={value!r}" for name, value in extra.items())
        self.logger.log(
            level,
            "dualwrite %s tenant=%r %s.%s %s -> %s key=%r %s",
            event.kind,
            w.tenant,
            w.service,
            w.operation,
            w.resource,
            w.shadow_resource,
            w.key,
            details,
        )

    def __repr__(self) -> str:
        return f"LoggingHook(logger={self.logger.name!r})"


def _fields(event: Event) -> dict[str, object]:
    import attrs  # noqa: PLC0415 - local: keeps the module's import surface small

    return attrs.asdict(event, recurse=False)
