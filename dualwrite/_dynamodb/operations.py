"""Which DynamoDB operation is mirrored how.

Three tables classify every operation of botocore's DynamoDB model (a test walks the model and
fails on any operation missing from them):

* ``HANDLERS``: item writes mirrored to the shadow, each by a handler of
  :mod:`~dualwrite._dynamodb.items`, :mod:`~dualwrite._dynamodb.batch`,
  :mod:`~dualwrite._dynamodb.transactions` or :mod:`~dualwrite._dynamodb.statements`;
* ``UNSUPPORTED``: writes that cannot be mirrored and are reported as ``unsupported``;
* ``PRIMARY_ONLY``: reads and control-plane calls, which go to the primary only.

``ROUTED_READS`` are the reads that follow a tenant's stage; :func:`unclassified` handles an
operation newer than this module.
"""

from __future__ import annotations

from typing import Any

from dualwrite._core.mirror import Mirror
from dualwrite._dynamodb.batch import _batch_write_item
from dualwrite._dynamodb.calls import (
    UNKNOWN_TABLE,
    Call,
    Handler,
    _decided,
    _guarded,
    _table_of,
)
from dualwrite._dynamodb.items import (
    _decide_keyed,
    _decide_put_item,
    _delete_item,
    _put_item,
    _update_item,
)
from dualwrite._dynamodb.statements import (
    _batch_execute_statement,
    _execute_statement,
    _execute_transaction,
)
from dualwrite._dynamodb.transactions import _transact_write_items


def _reported(operation: str, reason: str, detail: str) -> Handler:
    def handler(mirror: Mirror, call: Call, params: dict[str, Any], pin: Any) -> Any:
        table = _table_of(params) or UNKNOWN_TABLE
        write = _decided(mirror, operation, table, None)
        if write is None:
            return call(**params)
        return mirror.reported_call(write, call, params, reason, detail)

    handler.__name__ = f"_unsupported_{operation}"
    return handler


HANDLERS: dict[str, Handler] = {
    "PutItem": _guarded("PutItem", _put_item, _decide_put_item),
    "UpdateItem": _guarded("UpdateItem", _update_item, _decide_keyed("UpdateItem")),
    "DeleteItem": _guarded("DeleteItem", _delete_item, _decide_keyed("DeleteItem")),
} | {
    operation: _guarded(operation, handler)
    for operation, handler in {
        "BatchWriteItem": _batch_write_item,
        "TransactWriteItems": _transact_write_items,
        "ExecuteStatement": _execute_statement,
        "BatchExecuteStatement": _batch_execute_statement,
        "ExecuteTransaction": _execute_transaction,
    }.items()
}
"""Item writes mirrored to the shadow."""

UNSUPPORTED: dict[str, str] = {
    "StartBulkPutItems": (
        "an asynchronous bulk load from Amazon S3 writes items the wrapper never sees; load the "
        "same data into the shadow table, or backfill it with `dualwrite copy`"
    ),
    "ImportTable": (
        "an import from Amazon S3 creates a table filled with data the wrapper never sees; "
        "create the shadow table and backfill it with `dualwrite copy`"
    ),
    "RestoreTableFromBackup": (
        "a restore creates a table filled from a backup of the primary account; create the "
        "shadow table and backfill it with `dualwrite copy`"
    ),
    "RestoreTableToPointInTime": (
        "a point-in-time restore creates a table filled from the primary's history; create the "
        "shadow table and backfill it with `dualwrite copy`"
    ),
}
"""Writes that cannot be mirrored: each call is reported as an ``unsupported`` event."""

for _operation, _detail in UNSUPPORTED.items():
    HANDLERS[_operation] = _guarded(_operation, _reported(_operation, "not-mirrorable", _detail))

PRIMARY_ONLY: frozenset[str] = frozenset(
    {
        # reads
        "BatchGetItem", "GetItem", "Query", "Scan", "TransactGetItems", "SearchVectors",
        "DescribeBackup", "DescribeBulkOperation", "DescribeContinuousBackups",
        "DescribeContributorInsights", "DescribeEndpoints", "DescribeExport",
        "DescribeGlobalTable", "DescribeGlobalTableSettings", "DescribeImport",
        "DescribeKinesisStreamingDestination", "DescribeLimits", "DescribeTable",
        "DescribeTableReplicaAutoScaling", "DescribeTimeToLive", "GetResourcePolicy",
        "ListBackups", "ListBulkOperations", "ListContributorInsights", "ListExports",
        "ListGlobalTables", "ListImports", "ListTables", "ListTagsOfResource",
        # table configuration: the control plane, set up per account
        "CreateTable", "DeleteTable", "UpdateTable", "UpdateTimeToLive",
        "UpdateContinuousBackups", "UpdateContributorInsights", "UpdateTableReplicaAutoScaling",
        "CreateGlobalTable", "UpdateGlobalTable", "UpdateGlobalTableSettings",
        "CreateBackup", "DeleteBackup", "ExportTableToPointInTime",
        "EnableKinesisStreamingDestination", "DisableKinesisStreamingDestination",
        "UpdateKinesisStreamingDestination",
        "PutResourcePolicy", "DeleteResourcePolicy", "TagResource", "UntagResource",
        "CancelBulkOperation",  # stops a bulk load that was itself reported unsupported
    }
)  # fmt: skip
"""Reads and control-plane operations: the primary only, as documented in docs/dynamodb.md."""

_READ_PREFIXES = ("Get", "BatchGet", "TransactGet", "Describe", "List", "Query", "Scan", "Search")


def unclassified(api_name: str, http_method: str) -> Handler | None:
    """Handle an operation botocore knows and this module does not (a newer botocore).

    DynamoDB sends every operation as a POST, so the name decides: a read (``Get*``,
    ``Describe*``, ``List*``, ``Query``, ``Scan``, ...) passes through; anything else goes to the
    primary and is reported ``unsupported`` with reason ``"unclassified"``.
    """
    del http_method  # always POST
    if api_name in PRIMARY_ONLY or api_name.startswith(_READ_PREFIXES):
        return None
    return _reported(
        api_name,
        "unclassified",
        f"{api_name} is not known to this version of dualwrite; it went to the primary only",
    )


ROUTED_READS: frozenset[str] = frozenset(
    {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}
)
"""Item reads that follow the tenant's stage to the account that owns it (PartiQL SELECTs too)."""
