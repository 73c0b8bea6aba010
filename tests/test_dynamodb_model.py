"""DynamoDB operations are classified, in the code and in the docs.

As in test_s3_model.py: the default checks hold on every supported botocore; the
``botocore_latest`` ones (``pytest -m botocore_latest``) check that the classification matches
the installed botocore exactly.
"""

from __future__ import annotations

import re
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

from dualwrite._dynamodb import operations as _dynamodb
from dualwrite._dynamodb.proxy import DynamoDBClientProxy

MODEL = botocore.session.get_session().get_service_model("dynamodb")
OPERATIONS = sorted(MODEL.operation_names)
DOCS = Path(__file__).resolve().parent.parent / "docs" / "dynamodb.md"
MIRRORED = set(_dynamodb.HANDLERS) - set(_dynamodb.UNSUPPORTED)
CLASSIFIED = set(_dynamodb.HANDLERS) | set(_dynamodb.PRIMARY_ONLY)
# Input members that carry item data: an operation taking one either writes items or reads them.
ITEM_MEMBERS = {
    "Item",
    "Key",
    "RequestItems",
    "TransactItems",
    "Statement",
    "Statements",
    "TransactStatements",
    "InputS3Configuration",
    "S3BucketSource",
}


@pytest.mark.parametrize("operation", sorted(CLASSIFIED))
def test_every_classified_operation_has_one_home(operation: str) -> None:
    homes = [
        name
        for name, table in (
            ("mirrored", MIRRORED),
            ("unsupported", _dynamodb.UNSUPPORTED),
            ("primary-only", _dynamodb.PRIMARY_ONLY),
        )
        if operation in table
    ]
    assert len(homes) == 1, f"{operation} is classified {homes}"


def test_classified_names_are_api_names() -> None:
    """A name botocore does not know must still be an API name, not a method name or a typo."""
    assert "PutItem" in OPERATIONS
    for operation in CLASSIFIED:
        assert re.fullmatch(r"(?:[A-Z][a-z0-9]*)+", operation), operation


def test_every_handled_operation_is_a_method_of_the_proxy() -> None:
    for operation in _dynamodb.HANDLERS:
        method = getattr(DynamoDBClientProxy, xform_name(operation))
        assert method.__name__ == xform_name(operation)
    assert set(_dynamodb.UNSUPPORTED) <= set(_dynamodb.HANDLERS)


@pytest.mark.parametrize("operation", sorted(_dynamodb.PRIMARY_ONLY & set(OPERATIONS)))
def test_primary_only_operations_carry_no_item_data_unless_they_read(operation: str) -> None:
    members = set(MODEL.operation_model(operation).input_shape.members)
    if members & ITEM_MEMBERS:
        assert _dynamodb.unclassified(operation, "POST") is None
        assert re.match(r"(Get|BatchGet|TransactGet|Query|Scan|Search)", operation), operation


def test_the_fallback_for_unknown_operations() -> None:
    for operation in _dynamodb.PRIMARY_ONLY:
        assert _dynamodb.unclassified(operation, "POST") is None
    for read in ("GetWidget", "BatchGetWidgets", "DescribeWidget", "ListWidgets", "ScanIndex"):
        assert _dynamodb.unclassified(read, "POST") is None
    for write in ("PutWidget", "TruncateTable", "BatchDeleteItems", "StartBulkDeleteItems"):
        assert _dynamodb.unclassified(write, "POST") is not None


def test_every_classified_operation_is_in_the_docs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = sorted(op for op in CLASSIFIED if f"`{op}`" not in text)
    assert not missing, f"docs/dynamodb.md does not classify: {missing}"


def test_the_docs_sections_match_the_code() -> None:
    text = DOCS.read_text(encoding="utf-8")

    def named(section: str) -> set[str]:
        body = text.split(f"### {section}", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
        return {op for op in CLASSIFIED | set(OPERATIONS) if f"`{op}`" in body}

    assert named("Mirrored") == MIRRORED
    assert named("Reported as `unsupported`") == set(_dynamodb.UNSUPPORTED)
    assert named("Primary only") == set(_dynamodb.PRIMARY_ONLY)


# -- drift: the classification matches the installed botocore exactly ---------------------------


@pytest.mark.botocore_latest
def test_every_operation_of_this_botocore_is_classified() -> None:
    missing = sorted(set(OPERATIONS) - CLASSIFIED)
    assert not missing, (
        f"botocore {botocore.__version__} has DynamoDB operations dualwrite does not classify "
        f"yet (their writes are reported as unsupported/unclassified): {missing}; add each to "
        "_dynamodb.HANDLERS or _dynamodb.PRIMARY_ONLY and to docs/dynamodb.md"
    )


@pytest.mark.botocore_latest
def test_no_classified_name_is_stale() -> None:
    stale = sorted(CLASSIFIED - set(OPERATIONS))
    assert not stale, f"botocore {botocore.__version__} does not know: {stale}"


@pytest.mark.botocore_latest
def test_every_operation_of_this_botocore_is_in_the_docs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [op for op in OPERATIONS if f"`{op}`" not in text]
    assert not missing, f"docs/dynamodb.md does not classify: {missing}"
