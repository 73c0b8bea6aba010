"""AWS Lambda handlers that converge writes made outside the wrapper.

Point an event source mapping at one of them and AWS runs, scales and retries the follower:

* :func:`s3_handler`: an SQS queue receiving the primary buckets' S3 event notifications
  (directly, through SNS, or from EventBridge); every key is converged from the primary's
  current state (``dualwrite follow s3`` does the same from a command line).
* :func:`dynamodb_handler`: a table's DynamoDB stream (any view type).

Both return the partial batch response, ``{"batchItemFailures": [{"itemIdentifier": ...}]}``,
naming the records whose key could not converge (the SQS message id; the stream record's
sequence number), so that only those are retried. Enable it on the mapping
(``FunctionResponseTypes: ["ReportBatchItemFailures"]``).

Configuration, read once per container from the environment:

``DUALWRITE_S3_NAMES``
    JSON map of primary bucket to shadow bucket, e.g. ``{"photos": "photos-acct2"}``
    (required for :func:`s3_handler`).
``DUALWRITE_DYNAMODB_NAMES``
    JSON map of primary table to shadow table (default: the same names).
``DUALWRITE_SHADOW_ROLE_ARN``
    the role in the shadow account the function assumes for the shadow's calls (else the
    function's own credentials are used for both accounts).
``DUALWRITE_SHADOW_EXTERNAL_ID``, ``DUALWRITE_SHADOW_REGION``, ``DUALWRITE_SHADOW_ACCOUNT``
    the role's external id; the shadow's region (default: the function's); the shadow's
    12-digit account id (``ExpectedBucketOwner`` on its calls).
``DUALWRITE_FLAG``
    ``MODULE:CALLABLE``, called with a :class:`dualwrite.Write` per key: true to converge it
    (default: every key of a mapped bucket or table).
``DUALWRITE_PRIMARY_ENDPOINT_URL``, ``DUALWRITE_SHADOW_ENDPOINT_URL``
    endpoints for a local stack (tests); ``DUALWRITE_STS_ENDPOINT_URL`` likewise for STS.

Or build the writer yourself: ``handler = make_s3_handler(factory)``, where ``factory()``
returns a :class:`dualwrite.DualWriter` that wrapped the primary's S3 (or DynamoDB) client with
its shadow and ``names=``, exactly as the service that writes does; its flag, ``tenant_of``,
hooks (a :class:`dualwrite.hooks.MetricsHook` counts ``followed_*`` outcomes) and journal apply.
It is called once per container, on the first event.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from dualwrite._offline.follow import Follower, Notice
from dualwrite._offline.follow_dynamodb import DynamoFollower, notices_of
from dualwrite._offline.follow_s3 import S3Follower, parse_body
from dualwrite._writer import DualWriter
from dualwrite.exceptions import ConfigurationError
from dualwrite.journal import encode_key

__all__ = [
    "dynamodb_handler",
    "make_dynamodb_handler",
    "make_s3_handler",
    "s3_handler",
    "writer_from_env",
]

logger = logging.getLogger("dualwrite")

Handler = Callable[[Mapping[str, Any], Any], dict[str, Any]]
"""A Lambda handler: ``(event, context) -> response``."""


def _json_env(name: str) -> dict[str, str]:
    text = os.environ.get(name)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        msg = f"{name} must hold a JSON object of names; {exc}"
        raise ConfigurationError(msg) from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        msg = f'{name} must map names to names, e.g. {{"photos": "photos-acct2"}}; got {text!r}'
        raise ConfigurationError(msg)
    return value


def _flag_from_env() -> Any:
    spec = os.environ.get("DUALWRITE_FLAG")
    if not spec:
        return True
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        msg = f"DUALWRITE_FLAG must be MODULE:CALLABLE; got {spec!r}"
        raise ConfigurationError(msg)
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


def writer_from_env(service: str) -> DualWriter:
    """A writer for the followers, configured from the environment (see the module docstring).

    Args:
        service: ``"s3"`` or ``"dynamodb"``: the pair to wrap.

    Raises:
        ConfigurationError: a variable is missing or malformed.
    """
    import boto3  # noqa: PLC0415 - the Lambda runtime's

    from dualwrite.sessions import assume_role_session  # noqa: PLC0415

    primary = boto3.Session()
    region = os.environ.get("DUALWRITE_SHADOW_REGION") or primary.region_name
    role = os.environ.get("DUALWRITE_SHADOW_ROLE_ARN")
    shadow = (
        assume_role_session(
            role,
            session_name="dualwrite-follow",
            region=region,
            sts_endpoint_url=os.environ.get("DUALWRITE_STS_ENDPOINT_URL"),
            base_session=primary,
            external_id=os.environ.get("DUALWRITE_SHADOW_EXTERNAL_ID"),
        )
        if role
        else boto3.Session(region_name=region)
    )
    p_url = os.environ.get("DUALWRITE_PRIMARY_ENDPOINT_URL")
    s_url = os.environ.get("DUALWRITE_SHADOW_ENDPOINT_URL")
    writer = DualWriter(flag=_flag_from_env(), journal=None, circuit_breaker=None)
    if service == "s3":
        names = _json_env("DUALWRITE_S3_NAMES")
        if not names:
            msg = 'DUALWRITE_S3_NAMES must map each primary bucket to its shadow: {"a": "b"}'
            raise ConfigurationError(msg)
        writer.wrap(
            primary.client("s3", endpoint_url=p_url),
            shadow=shadow.client("s3", endpoint_url=s_url),
            names=names,
            shadow_account=os.environ.get("DUALWRITE_SHADOW_ACCOUNT") or None,
        )
    else:
        writer.wrap(
            primary.client("dynamodb", endpoint_url=p_url),
            shadow=shadow.client("dynamodb", endpoint_url=s_url),
            names=_json_env("DUALWRITE_DYNAMODB_NAMES") or None,
        )
    return writer


class _Lazy:
    """The follower of one handler, built on the first event and kept for the container."""

    def __init__(self, build: Callable[[], Follower]) -> None:
        self._build = build
        self._follower: Follower | None = None
        self._lock = threading.Lock()

    def get(self) -> Follower:
        with self._lock:
            if self._follower is None:
                self._follower = self._build()
            return self._follower


def _failures(follower: Follower, items: list[tuple[str, list[Notice]]]) -> dict[str, Any]:
    """Follow every record's keys; the partial batch response of those whose key failed.

    For a stream, Lambda retries from the lowest sequence number reported, the records after
    it included.
    """
    report = follower.follow(n for _, notices in items for n in notices)
    failed = set(report.failed_keys)
    identifiers = [
        ident
        for ident, notices in items
        if any((n.bucket, encode_key(n.key)) in failed for n in notices)
    ]
    return {"batchItemFailures": [{"itemIdentifier": i} for i in identifiers]}


def make_s3_handler(factory: Callable[[], DualWriter]) -> Handler:
    """A handler of SQS events carrying S3 notifications, following through ``factory()``'s
    writer (built on the first event).

    A record that is not an S3 notification is logged and counts as done (retrying it would
    not help); one whose key could not converge is reported in ``batchItemFailures``.
    """
    lazy = _Lazy(lambda: S3Follower(factory()))

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        items: list[tuple[str, list[Notice]]] = []
        for record in event.get("Records", []):
            try:
                notices = parse_body(record.get("body", ""))
            except ValueError as exc:
                logger.warning(
                    "dualwrite s3_handler: message %s is not an S3 notification (%s)",
                    record.get("messageId"),
                    exc,
                )
                notices = []
            items.append((str(record.get("messageId")), notices))
        return _failures(lazy.get(), items)

    return handler


def make_dynamodb_handler(factory: Callable[[], DualWriter]) -> Handler:
    """A handler of DynamoDB Streams events, following through ``factory()``'s writer.

    The table of each record comes from its ``eventSourceARN``. Records whose key could not
    converge are reported in ``batchItemFailures`` by their sequence number: Lambda retries
    from the lowest.
    """
    lazy = _Lazy(lambda: DynamoFollower(factory()))

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        items = [
            (str((record.get("dynamodb") or {}).get("SequenceNumber")), notices_of([record]))
            for record in event.get("Records", [])
        ]
        return _failures(lazy.get(), items)

    return handler


_s3_default = make_s3_handler(lambda: writer_from_env("s3"))
_dynamodb_default = make_dynamodb_handler(lambda: writer_from_env("dynamodb"))


def s3_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda handler for an SQS queue of S3 notifications, configured from the environment.

    Handler setting: ``dualwrite.aws_lambda.s3_handler``.
    """
    return _s3_default(event, context)


def dynamodb_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda handler for a DynamoDB stream, configured from the environment.

    Handler setting: ``dualwrite.aws_lambda.dynamodb_handler``.
    """
    return _dynamodb_default(event, context)
