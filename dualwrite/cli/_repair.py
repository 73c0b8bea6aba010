"""``dualwrite repair``: replay a journal against the two accounts."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

import attrs

import dualwrite
from dualwrite.cli._targets import targets_from
from dualwrite.journal import Journal, SQLiteJournal, SQSJournal


def run_repair(args: argparse.Namespace, *, out: TextIO) -> int:
    """Run the repair; exit 0 when every key was repaired, 1 when some failed or were skipped."""
    targets = targets_from(args)
    journal: Journal
    if args.journal:
        journal = SQLiteJournal(args.journal)
    else:
        journal = SQSJournal(targets.client(args.sqs_side, "sqs"), args.sqs_queue_url)
    # Each key is copied from the account its latest entry's write went to first (old to new;
    # new to old for a write made new-first, at CUTOVER). Stages are not known here, so a
    # tenant at DONE is not skipped: repair those with writer.repair() and the stage callback.
    with dualwrite.DualWriter(flag=False, journal=journal, circuit_breaker=None) as writer:
        writer.wrap(
            targets.client("primary", "s3"),
            shadow=targets.client("shadow", "s3"),
            names=targets.names["s3"],
            shadow_account=targets.shadow_account,
        )
        writer.wrap(
            targets.client("primary", "dynamodb"),
            shadow=targets.client("shadow", "dynamodb"),
            names=targets.names["dynamodb"] or None,
        )
        report = writer.repair(limit=args.limit, progress=not args.json)
    journal.close()
    if args.json:
        data = attrs.asdict(report)
        data["repaired"] = report.repaired
        print(json.dumps(data, default=list), file=out)
    else:
        print(
            f"repair: {report.keys} key(s) from {report.entries} entr(ies): "
            f"{report.copied} copied, {report.deleted} deleted, {report.failed} failed, "
            f"{report.skipped} skipped (no shadow name); {report.remaining} entr(ies) left; "
            f"{report.seconds:.1f} s",
            file=out,
        )
        for line in report.errors:
            print(f"  failed: {line}", file=sys.stderr)
    return 0 if report.failed == 0 and report.skipped == 0 else 1
