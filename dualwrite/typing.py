"""Type aliases for the callables dualwrite accepts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from dualwrite._stage import Stage
from dualwrite.events import Event, Write

__all__ = ["Flag", "Hook", "Mode", "NameMap", "OnShadowError", "StageOf", "TenantOf"]

Flag = Callable[[Write], bool]
"""Decides, once per write call and in the caller's thread, whether the shadow gets the write."""

StageOf = Callable[[Write], Stage | str]
"""Returns the tenant's migration stage for a call (a Stage, or its value such as "cutover")."""

Hook = Callable[[Event], object]
"""Receives one event; its return value is ignored and its exceptions are contained."""

TenantOf = Callable[[Write], str | None]
"""Derives the tenant from a write (its ``tenant`` is ``None``) when no tenant context is set."""

NameMap = Mapping[str, str] | Callable[[str], str | None]
"""Maps a primary bucket or table name to the shadow's; ``None`` or a missing key: no mapping."""

Mode = Literal["sync", "background"]
"""When the shadow write runs: in the caller's thread, or on a worker."""

OnShadowError = Literal["record", "raise"]
"""What a shadow failure does beyond its event: nothing more, or raise ShadowWriteError."""
