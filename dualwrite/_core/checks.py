"""The outcome of a pre-flight check, and what every service's checks say about a failure.

Each check is one :class:`Check`: ``PASS``, ``FAIL`` (with what to fix), ``WARN`` (works, but
something will bite later) or ``INFO`` (a setting worth seeing side by side). The checks
themselves are per service: :mod:`dualwrite._s3.check` and :mod:`dualwrite._dynamodb.check`.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from dualwrite._core.errors import describe_error, error_code

STATUSES = ("PASS", "FAIL", "WARN", "INFO")


@attrs.frozen(kw_only=True)
class Check:
    """The outcome of one check.

    Attributes:
        status: ``"PASS"``, ``"FAIL"``, ``"WARN"`` or ``"INFO"``.
        name: what was checked.
        detail: what was found.
        fix: for a failure or a warning, what to change.
    """

    status: str
    name: str
    detail: str = ""
    fix: str = ""

    def line(self) -> str:
        """One line: status, name, detail and, if any, the fix."""
        text = f"{self.status:<4}  {self.name}"
        if self.detail:
            text += f": {self.detail}"
        if self.fix:
            text += f" -- fix: {self.fix}"
        return text


def failure(exc: BaseException) -> str:
    """What a failed call says: its AWS error code and message, or its type and message."""
    info = describe_error(exc)
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, Mapping) else None
    if info.code and isinstance(error, Mapping) and error.get("Message"):
        return f"{info.code}: {error['Message']}"
    return f"{info.code or info.type}: {info.message}"


def failure_code(exc: BaseException) -> str:
    """The AWS error code of a failed call, or the exception's type name."""
    return error_code(exc) or type(exc).__name__


# Failures of the credentials themselves: no IAM grant fixes these.
_CREDENTIAL_ERRORS = frozenset(
    {
        "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
        "NoAuthTokenError", "TokenRetrievalError", "SSOTokenLoadError", "UnauthorizedSSOTokenError",
        "InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
        "ExpiredTokenException", "UnrecognizedClientException", "InvalidToken",
        "AuthFailure", "RequestExpired",
    }
)  # fmt: skip


def access_fix(exc: BaseException, side: str, grant: str) -> str:
    """What to fix for a denied or failed call of ``side``: its credentials, or a grant."""
    if failure_code(exc) in _CREDENTIAL_ERRORS or type(exc).__name__ in _CREDENTIAL_ERRORS:
        return (
            f"the {side}'s credentials are missing, invalid or expired: set --{side}-profile "
            f"or --{side}-role-arn, or the AWS_* environment of the {side} account"
        )
    return f"grant {grant} to the {side}'s credentials"
