"""The wrapper's own instructions per call: the same calls with no-op clients, under cachegrind.

``bench_s3.py`` and ``bench_dynamodb.py`` compare a wrapped call with plain boto3: each figure
is botocore's 2.9M instructions plus the wrapper's 30-100k, and botocore's own count moves by a
few thousand from one process to another (its objects' layout), which hides changes of the
wrapper of that size. Here the primary's and the shadow's methods are replaced by no-op
functions after a warm-up call (the warm-up describes the table, builds the caches), so what is
counted is the proxy, the handler, the flag or stage decision, the locks and the shadow call's
bookkeeping, and nothing of botocore.

Cases (``--case``):

* ``ddb-put-off``, ``ddb-update-off``: DynamoDB ``put_item``/``update_item``, flag off;
* ``ddb-put-on``: ``put_item``, flag on, ``single_writer=True``, no ``shadow_timeout``;
* ``s3-off``: S3 ``put_object``, flag off;
* ``s3-flag``, ``s3-dual``: S3 ``put_object``, flag on and stage ``DUAL_WRITE``, both
  ``single_writer=True`` with no ``shadow_timeout`` (the shadow call in the caller's thread, so
  that all of it is counted); their difference is what routing by stage costs.

Usage: ``PYTHONPATH=$PWD python benchmarks/wrapper_instructions.py [--calls 2000]``
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import _instructions
import bench_dynamodb
import bench_s3

import dualwrite

CASES = ("ddb-put-off", "ddb-update-off", "ddb-put-on", "s3-off", "s3-flag", "s3-dual")


def _noop(**_: Any) -> dict[str, Any]:
    return {"ETag": '"x"', "ResponseMetadata": {"HTTPStatusCode": 200}}


def build(case: str) -> Callable[[], Any]:
    """One call of ``case``, on clients whose writes are no-ops from now on."""
    if case.startswith("ddb"):
        b = bench_dynamodb
        primary = b.canned_client("AKIAPRIMARYBENCH0009", Counter())
        shadow = b.canned_client("AKIASHADOWBENCH00009", Counter())
        on = case == "ddb-put-on"
        options: dict[str, Any] = {"single_writer": True, "shadow_timeout": None} if on else {}
        wrapped = dualwrite.wrap(primary, shadow=shadow, flag=lambda w: on, journal=None, **options)
        put = {"TableName": b.TABLE, "Item": b.ITEM}
        update = {"TableName": b.TABLE, "Key": b.KEY, **b.UPDATE}

        def call() -> Any:
            if case == "ddb-update-off":
                return wrapped.update_item(**update)
            return wrapped.put_item(**put)

    else:
        b = bench_s3  # type: ignore[assignment]
        primary = b.canned_client("AKIAPRIMARYBENCH0009")
        shadow = b.canned_client("AKIASHADOWBENCH00009")
        options = {"journal": None, "single_writer": True, "shadow_timeout": None}
        if case == "s3-off":
            options["flag"] = lambda w: False
        elif case == "s3-flag":
            options["flag"] = lambda w: True
        else:
            options["stage"] = lambda w: dualwrite.Stage.DUAL_WRITE
        wrapped = dualwrite.wrap(
            primary, shadow=shadow, names={b.PRIMARY_BUCKET: b.SHADOW_BUCKET}, **options
        )

        def call() -> Any:
            return wrapped.put_object(Bucket=b.PRIMARY_BUCKET, Key=b.KEY, Body=b.BODY)

    call()  # the warm-up: the table's key schema, endpoint and model caches
    for client in (primary, shadow):
        client.put_item = client.update_item = client.put_object = _noop
    call()
    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="calls per case (default 2000)")
    parser.add_argument("--case", action="append", choices=CASES, help="default: all")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # the valgrind child
    args = parser.parse_args(argv)
    if args.only is not None:
        call = build(args.only)
        for _ in range(args.calls):
            call()
        return 0
    if not _instructions.available():
        print("valgrind is not installed")
        return 1
    print(f"The wrapper's instructions per call, no-op clients ({args.calls} calls minus none):")
    print()
    print("| case | instructions/call |")
    print("| --- | ---: |")
    figures = {}
    for case in args.case or CASES:
        zero = _instructions.count(__file__, case, 0)
        figures[case] = (_instructions.count(__file__, case, args.calls) - zero) / args.calls
        print(f"| {case} | {figures[case]:,.0f} |")
    if "s3-flag" in figures and "s3-dual" in figures:
        print()
        print(f"stage DUAL_WRITE minus flag mode: {figures['s3-dual'] - figures['s3-flag']:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
