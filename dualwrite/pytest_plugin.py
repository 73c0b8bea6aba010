"""pytest fixtures for testing code that uses dualwrite, on two moto accounts.

Registered through the ``pytest11`` entry point, so they exist in every test session of a
project where dualwrite is installed (they need moto only when a test uses them)::

    import dualwrite

    def test_photos_are_mirrored(dualwrite_s3, dualwrite_accounts):
        with dualwrite.tenant("acme"):
            dualwrite_s3.put_object(Bucket="photos", Key="acme/cat.jpg", Body=b"meow")
        shadow = dualwrite_accounts.shadow_client("s3")
        copy = shadow.get_object(Bucket="photos-shadow", Key="acme/cat.jpg")
        assert copy["Body"].read() == b"meow"

Fixtures:
    dualwrite_accounts: :class:`dualwrite.testing.MotoAccounts`, inside ``moto.mock_aws``.
    dualwrite_recorder: the accounts' :class:`~dualwrite.testing.RecordingHook`; every writer
        that ``dualwrite_accounts.wrap`` builds sends it its events.
    dualwrite_s3: a wrapped S3 client mirroring every write, with bucket ``photos`` in the
        primary and ``photos-shadow`` in the shadow.
    dualwrite_dynamodb: a wrapped DynamoDB client mirroring every write (create the tables you
        need in both accounts through ``dualwrite_accounts``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dualwrite.testing import MotoAccounts, RecordingHook, moto_accounts

__all__ = ["dualwrite_accounts", "dualwrite_dynamodb", "dualwrite_recorder", "dualwrite_s3"]


@pytest.fixture
def dualwrite_accounts() -> Iterator[MotoAccounts]:
    """Two AWS accounts on in-process moto: ``.primary``, ``.shadow``, ``.wrap(service)``."""
    with moto_accounts() as accounts:
        yield accounts


@pytest.fixture
def dualwrite_recorder(dualwrite_accounts: MotoAccounts) -> RecordingHook:
    """The events of every writer built by ``dualwrite_accounts.wrap``."""
    return dualwrite_accounts.recorder


@pytest.fixture
def dualwrite_s3(dualwrite_accounts: MotoAccounts) -> Any:
    """A wrapped S3 client over both accounts; bucket ``photos`` (shadow: ``photos-shadow``)."""
    return dualwrite_accounts.wrap("s3", buckets=["photos"])


@pytest.fixture
def dualwrite_dynamodb(dualwrite_accounts: MotoAccounts) -> Any:
    """A wrapped DynamoDB client over both accounts (tables: same names in both)."""
    return dualwrite_accounts.wrap("dynamodb", names={})
