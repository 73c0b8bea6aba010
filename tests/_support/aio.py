"""Two AWS accounts on a ThreadedMotoServer, reached through aiobotocore (and aioboto3).

The sync boto3 clients (``admin``) read each account directly, to prove where data landed; the
async clients are what the tests wrap. The shadow account (111111111111) is reached with STS
credentials, as in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest

REGION = "us-east-1"


def require(module: str) -> Any:
    """Import ``module`` (``"aiobotocore"``, ``"aioboto3"``), or skip the test without it.

    CI's async environments set ``DUALWRITE_REQUIRE_ASYNC`` to the packages they install
    (``aioboto3`` brings aiobotocore too): there a missing package fails instead of skipping.
    """
    required = os.environ.get("DUALWRITE_REQUIRE_ASYNC", "")
    if module in required or (module == "aiobotocore" and required):
        return importlib.import_module(module)
    return pytest.importorskip(module)


SHADOW_ROLE = "arn:aws:iam::111111111111:role/dualwrite-shadow"


class AioAccounts:
    """The two accounts of one moto server, as boto3 sessions and aiobotocore client factories."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.primary_session = boto3.Session(region_name=REGION)
        creds = self.primary_session.client("sts", endpoint_url=url).assume_role(
            RoleArn=SHADOW_ROLE, RoleSessionName="dualwrite-async-tests"
        )["Credentials"]
        self.shadow_credentials = {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }
        self.shadow_session = boto3.Session(region_name=REGION, **self.shadow_credentials)

    def admin(self, side: str, service: str) -> Any:
        """A boto3 client reading ``side``'s account directly."""
        session = self.primary_session if side == "primary" else self.shadow_session
        return session.client(service, endpoint_url=self.url)

    @contextlib.asynccontextmanager
    async def clients(self, service: str, **config: Any) -> AsyncIterator[tuple[Any, Any]]:
        """``(primary, shadow)`` aiobotocore clients of ``service``; ``config`` goes to both."""
        from aiobotocore.session import get_session  # noqa: PLC0415 - optional dependency

        session = get_session()
        async with (
            session.create_client(
                service, region_name=REGION, endpoint_url=self.url, **config
            ) as primary,
            session.create_client(
                service,
                region_name=REGION,
                endpoint_url=self.url,
                **self.shadow_credentials,
                **config,
            ) as shadow,
        ):
            yield primary, shadow

    @contextlib.asynccontextmanager
    async def resources(self, service: str) -> AsyncIterator[tuple[Any, Any]]:
        """``(primary, shadow)`` aioboto3 service resources of ``service``."""
        import aioboto3  # noqa: PLC0415 - optional dependency

        primary_session = aioboto3.Session(region_name=REGION)
        shadow_session = aioboto3.Session(region_name=REGION, **self.shadow_credentials)
        async with (
            primary_session.resource(service, endpoint_url=self.url) as primary,
            shadow_session.resource(service, endpoint_url=self.url) as shadow,
        ):
            yield primary, shadow
