"""``route()`` asks a service's ``upload_owner``/``stage_sources`` only for the operations its
``owned_calls``/``sourced_calls`` name: every other operation must get no answer from them, or
a routed call would lose its owner or its source."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Accounts

import dualwrite
from dualwrite._dynamodb.service import SERVICE as DYNAMODB
from dualwrite._s3.requests import parse_copy_source
from dualwrite._s3.service import SERVICE as S3


def _operations(client: Any) -> list[str]:
    return list(client.meta.service_model.operation_names)


@pytest.mark.parametrize("name", ["s3", "dynamodb"])
def test_no_operation_outside_the_sets_gets_an_owner_or_a_source(
    shared_accounts: Accounts, name: str
) -> None:
    service = S3 if name == "s3" else DYNAMODB
    primary = shared_accounts.client("primary", name)
    shadow = shared_accounts.client("shadow", name)
    with dualwrite.DualWriter(stage=lambda w: dualwrite.Stage.DUAL_WRITE, journal=None) as w:
        wrapped = w.wrap(primary, shadow=shadow)
        mirror = wrapped._self_mirror
        params = {
            "Bucket": "b",
            "Key": "k",
            "UploadId": "u",
            "CopySource": "src/key",
            "TableName": "t",
        }
        assert parse_copy_source(params["CopySource"]) is not None
        for api in _operations(primary):
            if api not in service.owned_calls:
                assert service.upload_owner(mirror, api, params) is None, api
            if api not in service.sourced_calls:
                assert list(service.stage_sources(mirror, api, params)) == [], api
        # ...and the sets name real operations of the service's model
        assert service.owned_calls <= set(_operations(primary))
        assert service.sourced_calls <= set(_operations(primary))
