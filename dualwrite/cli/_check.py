"""``dualwrite check s3|dynamodb``: pre-flight of the shadow's permissions and shape."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

import attrs
from botocore.exceptions import BotoCoreError, ClientError

from dualwrite._dynamodb.check import check_dynamodb
from dualwrite._s3.check import check_s3
from dualwrite.cli._backfill import open_pair
from dualwrite.cli._targets import SIDES, targets_from


def run_check(args: argparse.Namespace, *, out: TextIO) -> int:
    """Run the checks; exit 0 when none failed, 1 otherwise, 2 when the accounts are unreachable."""
    try:
        mirror, _ = open_pair(args)
    except (BotoCoreError, ClientError) as exc:
        print(f"dualwrite check: error: {exc}", file=sys.stderr)
        return 2
    if args.service == "s3":
        queue_url = getattr(args, "queue_url", None)
        sqs = targets_from(args).client(args.queue_side, "sqs") if queue_url else None
        checks = check_s3(
            mirror, args.bucket, probe_prefix=args.probe_prefix, sqs=sqs, queue_url=queue_url
        )
        target = f"s3 {args.bucket} -> {mirror.shadow_name(args.bucket)}"
    else:
        checks = check_dynamodb(mirror, args.table)
        target = f"dynamodb {args.table} -> {mirror.shadow_name(args.table) or args.table}"
    # Which account and region each side reached: a FAIL is read against them.
    targets = targets_from(args)
    accounts = {side: targets.describe(side) for side in SIDES}
    failed = sum(1 for c in checks if c.status == "FAIL")
    warned = sum(1 for c in checks if c.status == "WARN")
    passed = sum(1 for c in checks if c.status == "PASS")
    if args.json:
        print(
            json.dumps(
                {
                    "target": target,
                    "accounts": accounts,
                    "ok": failed == 0,
                    "checks": [attrs.asdict(c) for c in checks],
                }
            ),
            file=out,
        )
    else:
        print(f"check {target}", file=out)
        for side in SIDES:
            print(f"  {accounts[side]}", file=out)
        for check in checks:
            print(check.line(), file=out)
        verdict = "FAILED" if failed else "ready"
        print(f"{verdict}: {passed} passed, {failed} failed, {warned} warning(s)", file=out)
    return 1 if failed else 0
