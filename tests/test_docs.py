"""The documentation keeps up with the code: every operation is classified in the docs too.

The default checks hold on every supported botocore; ``botocore_latest`` ones compare the docs
with the installed botocore's model (see tests/test_s3_model.py).
"""

from __future__ import annotations

from pathlib import Path

import botocore.session
import pytest

from dualwrite import _s3

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
