"""Helpers for testing code that uses dualwrite.

* :class:`RecordingHook`: a hook keeping the events it receives.
* :func:`moto_accounts`: two AWS accounts on moto (in-process, no network), the shadow reached
  through an assumed role as in production, and a one-line wrapped client
  (:meth:`MotoAccounts.wrap`). Needs ``moto`` (``pip install 'dualwrite[test]'`` or
  ``moto[s3,dynamodb,sts]``).
* pytest fixtures built on them (``dualwrite_accounts``, ``dualwrite_recorder``,
  ``dualwrite_s3``, ``dualwrite_dynamodb``), registered through the ``pytest11`` entry point:
  installed with dualwrite, they are there in every test, nothing to import::

      def test_upload_reaches_both_accounts(dualwrite_accounts):
          s3 = dualwrite_accounts.wrap("s3", buckets=["photos"])
          with dualwrite.tenant("acme"):
              s3.put_object(Bucket="photos", Key="acme/cat.jpg", Body=b"meow")
          assert dualwrite_accounts.shadow_client("s3").get_object(
              Bucket="photos-shadow", Key="acme/cat.jpg")["Body"].read() == b"meow"
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
import boto3

from dualwrite.events import Event
from dualwrite.sessions import assume_role_session

__all__ = ["MotoAccounts", "RecordingHook", "moto_accounts", "shadow_name"]

DEFAULT_REGION = "us-east-1"
DEFAULT_PRIMARY_ACCOUNT = "123456789012"
"""moto's default account: the primary."""
DEFAULT_SHADOW_ACCOUNT = "111111111111"


class RecordingHook:
    """A hook that keeps every event it receives, in order, in ``.events``.

    Safe to share between threads.

    Example::

        rec = dualwrite.testing.RecordingHook()
        writer = dualwrite.DualWriter(flag=lambda w: True, hooks=[rec])
        ...
        assert rec.kinds() == ["shadow_written"]
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        """Record ``event``."""
        with self._lock:
            self.events.append(event)

    def kinds(self) -> list[str]:
        """Return the ``kind`` of each recorded event, in order."""
        with self._lock:
            return [e.kind for e in self.events]

    def of_kind(self, kind: str) -> list[Event]:
        """Return the recorded events whose ``kind`` is ``kind``."""
        with self._lock:
            return [e for e in self.events if e.kind == kind]

    def clear(self) -> None:
        """Forget every recorded event."""
        with self._lock:
            self.events.clear()

    def __repr__(self) -> str:
        return f"RecordingHook({len(self.events)} events)"


def shadow_name(name: str) -> str:
    """The shadow's name for a primary bucket or table in :class:`MotoAccounts`: ``NAME-shadow``.

    S3 bucket names are global (moto enforces it too), so the shadow bucket needs its own name.
    """
    return f"{name}-shadow"


@attrs.frozen(kw_only=True)
class MotoAccounts:
    """Two accounts on moto: boto3 sessions of the primary and of the shadow.

    Attributes:
        primary: a session of the primary account (moto's default account).
        shadow: a session of the shadow account, through an assumed role whose credentials
            renew (:func:`dualwrite.sessions.assume_role_session`).
        region: the region of both sessions.
        primary_account: the primary's account id.
        shadow_account: the shadow's account id.
        recorder: a :class:`RecordingHook` that :meth:`wrap` adds to every writer it builds.
    """

    primary: boto3.Session
    shadow: boto3.Session
    region: str
    primary_account: str
    shadow_account: str
    recorder: RecordingHook = attrs.field(factory=RecordingHook)

    def primary_client(self, service: str, **kwargs: Any) -> Any:
        """Return a plain (unwrapped) client of the primary account."""
        return self.primary.client(service, **kwargs)  # type: ignore[call-overload]

    def shadow_client(self, service: str, **kwargs: Any) -> Any:
        """Return a plain (unwrapped) client of the shadow account."""
        return self.shadow.client(service, **kwargs)  # type: ignore[call-overload]

    def wrap(
        self,
        service: str,
        *,
        buckets: Iterable[str] = (),
        names: dict[str, str] | Callable[[str], str | None] = shadow_name,
        flag: Any = True,
        **options: Any,
    ) -> Any:
        """Return a wrapped client of ``service`` (``"s3"`` or ``"dynamodb"``) over both accounts.

        The writer has no journal (pass ``journal=`` to test one), records its events in
        :attr:`recorder`, and mirrors every write (``flag=True``) unless told otherwise.

        Args:
            service: ``"s3"`` or ``"dynamodb"``.
            buckets: S3 buckets to create, each in the primary and, under its shadow name,
                in the shadow.
            names: primary name -> shadow name (default: :func:`shadow_name`).
            flag: the writer's flag (see :class:`dualwrite.DualWriter`).
            **options: any other :class:`dualwrite.DualWriter` argument.

        Returns:
            The wrapped client.

        Raises:
            ValueError: ``service`` is neither ``"s3"`` nor ``"dynamodb"``, or ``buckets`` is
                given for DynamoDB.
        """
        import dualwrite  # noqa: PLC0415 - the package imports this module while it loads

        if service not in ("s3", "dynamodb"):
            msg = f"service must be 's3' or 'dynamodb', got {service!r}"
            raise ValueError(msg)
        buckets = list(buckets)
        if buckets and service != "s3":
            msg = "buckets= creates S3 buckets; create DynamoDB tables in each account yourself"
            raise ValueError(msg)
        primary, shadow = self.primary_client(service), self.shadow_client(service)
        for bucket in buckets:
            primary.create_bucket(**_bucket_args(bucket, self.region))
            mapped = names.get(bucket) if isinstance(names, dict) else names(bucket)
            if mapped:
                shadow.create_bucket(**_bucket_args(mapped, self.region))
        options.setdefault("journal", None)
        options["hooks"] = [self.recorder, *options.get("hooks", ())]
        return dualwrite.wrap(primary, shadow=shadow, names=names, flag=flag, **options)


def _bucket_args(bucket: str, region: str) -> dict[str, Any]:
    if region == "us-east-1":
        return {"Bucket": bucket}
    return {"Bucket": bucket, "CreateBucketConfiguration": {"LocationConstraint": region}}


@contextlib.contextmanager
def moto_accounts(
    *,
    region: str = DEFAULT_REGION,
    shadow_account: str = DEFAULT_SHADOW_ACCOUNT,
    role_name: str = "dualwrite-shadow",
) -> Iterator[MotoAccounts]:
    """Start moto in-process and yield the two accounts' sessions.

    moto keeps buckets and tables per account, so where a write landed is proved by reading
    each account. Every AWS call in the block goes to moto (``moto.mock_aws``), with moto's fake
    credentials: nothing reaches AWS.

    Args:
        region: region of both sessions.
        shadow_account: the shadow's account id (12 digits, not moto's default).
        role_name: the role assumed in the shadow account.

    Yields:
        The :class:`MotoAccounts`.

    Raises:
        ImportError: moto is not installed (``pip install 'dualwrite[test]'``).
    """
    try:
        from moto import mock_aws  # noqa: PLC0415 - moto is a test-time dependency
    except ImportError as exc:
        msg = "dualwrite.testing.moto_accounts needs moto: pip install 'moto[s3,dynamodb,sts]'"
        raise ImportError(msg) from exc
    with mock_aws():
        primary = boto3.Session(region_name=region)
        shadow = assume_role_session(
            f"arn:aws:iam::{shadow_account}:role/{role_name}",
            session_name="dualwrite-testing",
            region=region,
            base_session=primary,
        )
        yield MotoAccounts(
            primary=primary,
            shadow=shadow,
            region=region,
            primary_account=DEFAULT_PRIMARY_ACCOUNT,
            shadow_account=shadow_account,
        )
