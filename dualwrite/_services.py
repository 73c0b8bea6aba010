"""The registry of services: name -> the package's :class:`~dualwrite._core.service.Service`.

A service package is imported the first time one of its clients is wrapped or one of its journal
entries is repaired, so that ``import dualwrite`` loads neither boto3 nor a service it does not
use. Adding a service is one package and one line in :data:`_LOADERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dualwrite._core.service import Service


def _s3() -> Service:
    from dualwrite._s3.service import SERVICE  # noqa: PLC0415 - loaded on first use

    return SERVICE


def _dynamodb() -> Service:
    from dualwrite._dynamodb.service import SERVICE  # noqa: PLC0415 - loaded on first use

    return SERVICE


_LOADERS: dict[str, Callable[[], Service]] = {"s3": _s3, "dynamodb": _dynamodb}

NAMES = tuple(_LOADERS)
"""The services dualwrite mirrors."""


def get(name: str) -> Service:
    """The service named ``name`` (as events and the journal spell it).

    Raises:
        KeyError: no such service; the message lists the known ones.
    """
    loader = _LOADERS.get(name)
    if loader is None:
        msg = f"unknown service {name!r}; dualwrite mirrors {', '.join(NAMES)}"
        raise KeyError(msg)
    return loader()
