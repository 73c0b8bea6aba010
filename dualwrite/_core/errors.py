"""Exceptions and signals the engine shares, and what may be said about an exception."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from botocore.exceptions import ParamValidationError

_MAX_MESSAGE = 1000
# botocore's ParamValidationError quotes the offending value ("value: b'...'", type: ...);
# the value may be a body or a key, so it is cut out.
_VALUE_RE = re.compile(r"value: .*?, type: ", re.DOTALL)
_CLIENT_ERROR_MIN, _SERVER_ERROR_MIN = 400, 500


class SkipShadow(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside a shadow action: nothing to do and nothing to report (already reported)."""


class UnsupportedWrite(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside a shadow action: this write cannot be mirrored; report it as unsupported."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


@attrs.frozen
class ErrorInfo:
    """What an event may say about an exception: no bodies, no secrets."""

    type: str
    code: str | None
    message: str


def describe_error(exc: BaseException, secrets: Iterable[object] = ()) -> ErrorInfo:
    """Summarise ``exc`` for an event, with every value in ``secrets`` blanked out.

    Args:
        exc: the exception a shadow call, flag or hook raised.
        secrets: values (SSE-C keys, tokens) that must not appear in the message.

    Returns:
        The exception's class name, its AWS error code if it has one, and a scrubbed message.
    """
    code = error_code(exc)
    message = _VALUE_RE.sub("value: <redacted>, type: ", str(exc))
    for secret in secrets:
        if isinstance(secret, (bytes, bytearray)):
            secret = bytes(secret).decode("latin-1")  # noqa: PLW2901 - latin-1 maps every byte
        if isinstance(secret, str) and secret:
            message = message.replace(secret, "<redacted>")
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    return ErrorInfo(type=type(exc).__name__, code=code, message=message)


def safe_invoke(func: Callable[..., Any], *args: Any) -> tuple[Any, BaseException | None]:
    """Call ``func(*args)``; return ``(result, None)`` or ``(None, exception)``.

    Used around every call into code the library does not own (flag, ``tenant_of``, ``names``,
    hooks) and every shadow call.
    """
    try:
        return func(*args), None
    except Exception as exc:  # noqa: BLE001 - containing foreign code is the point
        return None, exc


class RepairError(Exception):
    """A key could not be repaired; the message says why (no payload)."""


class ShadowChanged(Exception):  # noqa: N818 - a signal, not an error
    """A live write changed the shadow's key after it was read: the backfill leaves it alone."""


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (``response["Error"]["Code"]``), else
    ``None``."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error")
        if isinstance(error, Mapping) and error.get("Code") is not None:
            return str(error["Code"])
    return None


def ambiguous(exc: BaseException, *, sent: bool | None) -> bool:
    """Whether a primary failure leaves open that the write happened.

    Definite (the write did not happen): nothing was sent (``ParamValidationError``, a
    credentials or endpoint error raised while building the request), or the service answered
    with a 4xx error. Ambiguous: anything after the request left (a dropped connection, a read
    timeout, a 5xx answer, an exception of a caller's own botocore handler).

    Args:
        exc: what the primary call raised.
        sent: whether a request left the client (``None``: unknown, judged by the exception).
    """
    if isinstance(exc, ParamValidationError) or sent is False:
        return False
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        meta = response.get("ResponseMetadata")
        status = meta.get("HTTPStatusCode") if isinstance(meta, Mapping) else None
        if isinstance(status, int) and _CLIENT_ERROR_MIN <= status < _SERVER_ERROR_MIN:
            return False
    return True
