"""The documentation keeps up with the code: every operation is classified in the docs too.

The default checks hold on every supported botocore; ``botocore_latest`` ones compare the docs
with the installed botocore's model (see tests/test_s3_model.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import pytest
import yaml

from dualwrite._s3 import operations as _s3

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_classified_s3_operation_is_documented() -> None:
    text = (DOCS / "s3.md").read_text(encoding="utf-8")
    classified = set(_s3.HANDLERS) | set(_s3.PRIMARY_ONLY)
    missing = sorted(op for op in classified if f"`{op}`" not in text)
    assert not missing, f"docs/s3.md does not classify: {missing}"


@pytest.mark.botocore_latest
def test_every_s3_operation_of_this_botocore_is_documented() -> None:
    text = (DOCS / "s3.md").read_text(encoding="utf-8")
    model = botocore.session.get_session().get_service_model("s3")
    missing = [op for op in model.operation_names if f"`{op}`" not in text]
    assert not missing, f"docs/s3.md does not classify: {missing}"


def test_documented_unsupported_s3_operations_match_the_code() -> None:
    text = (DOCS / "s3.md").read_text(encoding="utf-8")
    section = text.split("### Reported as `unsupported`", 1)[1].split("###", 1)[0]
    for operation in _s3.UNSUPPORTED:
        assert f"`{operation}`" in section
    primary_only = text.split("### Primary only", 1)[1].split("## ", 1)[0]
    for operation in _s3.PRIMARY_ONLY:
        assert f"`{operation}`" in primary_only, operation


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def test_the_site_lists_every_page_and_only_existing_ones() -> None:
    config = yaml.safe_load((DOCS.parent / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = _nav_pages(config["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(listed) == pages
    assert len(set(listed)) == len(listed)


def test_iam_policies_are_valid_json() -> None:
    text = (DOCS / "iam.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```json\n")[1:]]
    assert len(blocks) >= 4
    for block in blocks:
        policy = json.loads(block)
        assert policy["Version"] == "2012-10-17"
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            for action in [actions] if isinstance(actions, str) else actions:
                assert action.split(":")[0] in {"s3", "dynamodb", "sts", "kms", "sqs"}, action
