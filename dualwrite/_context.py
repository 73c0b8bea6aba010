"""The current tenant, a context variable set by :func:`dualwrite.tenant`."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_TENANT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dualwrite_tenant", default=None
)


@contextmanager
def tenant(name: str | None) -> Iterator[str | None]:
    """Set the current tenant for the writes made inside the ``with`` block.

    The value is a :mod:`contextvars` variable: it follows ``asyncio`` tasks and
    ``contextvars.copy_context()``, but not plain threads started inside the block.

    Args:
        name: the tenant's name, or ``None`` to clear it for the block.

    Returns:
        A context manager yielding ``name``; the previous tenant is restored on exit.

    Raises:
        TypeError: if ``name`` is neither a string nor ``None``.
    """
    if name is not None and not isinstance(name, str):
        msg = f"tenant name must be a str or None, not {type(name).__name__}"
        raise TypeError(msg)
    token = _TENANT.set(name)
    try:
        yield name
    finally:
        _TENANT.reset(token)


def current_tenant() -> str | None:
    """Return the tenant set by the innermost :func:`tenant` block, or ``None``."""
    return _TENANT.get()
