"""dualwrite: mirror boto3 S3 and DynamoDB writes to a shadow AWS account, per tenant.

Wrap the clients a service already uses; every write then goes to the primary account and, when
the flag says so, to the shadow account too, with ``bucket-owner-full-control`` on every S3
object. Reads stay on the primary. See ``docs/index.md``.
"""

from typing import Any as _Any

from dualwrite import events, exceptions, hooks, journal, typing
from dualwrite._context import current_tenant, tenant
from dualwrite._core.breaker import CircuitBreaker
from dualwrite._offline.repair import RepairReport
from dualwrite._stage import Stage
from dualwrite._version import __version__
from dualwrite._writer import DualWriter, wrap
from dualwrite.events import Write
from dualwrite.exceptions import ConfigurationError, DualWriteError, ShadowWriteError

__all__ = [
    "CircuitBreaker",
    "ConfigurationError",
    "DualWriteError",
    "DualWriter",
    "RepairReport",
    "ShadowWriteError",
    "Stage",
    "Write",
    "__version__",
    "current_tenant",
    "events",
    "exceptions",
    "hooks",
    "journal",
    "tenant",
    "testing",
    "typing",
    "wrap",
]


def __getattr__(name: str) -> _Any:
    """``dualwrite.testing`` is imported on first use: it needs boto3, ``import dualwrite`` not."""
    if name == "testing":
        import importlib  # noqa: PLC0415 - only when dualwrite.testing is first used

        return importlib.import_module("dualwrite.testing")
    msg = f"module 'dualwrite' has no attribute {name!r}"
    raise AttributeError(msg)
