"""The ``dualwrite`` command line's argument parser (its commands, options and help)."""

from __future__ import annotations

import argparse
from typing import Any

from dualwrite._version import __version__
from dualwrite.cli._follow import add_follow_command
from dualwrite.cli._options import add_service_parsers
from dualwrite.cli._targets import SIDES, add_target_options


def build_parser() -> argparse.ArgumentParser:
    """The ``dualwrite`` command line's parser: every command and its options."""
    parser = argparse.ArgumentParser(
        prog="dualwrite",
        description="Move S3 and DynamoDB data between AWS accounts with zero downtime.",
    )
    parser.add_argument("--version", action="version", version=f"dualwrite {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    demo = commands.add_parser(
        "demo",
        help="run a dual-write migration on in-process moto (two accounts, no AWS needed)",
        description=(
            "Wrap S3 and DynamoDB clients, write for several tenants with the flag on for some, "
            "and show the events and what landed in which account. Runs on moto in-process."
        ),
    )
    demo.add_argument(
        "--migrating",
        help="comma-separated tenants whose flag is on (default: acme,initech)",
    )
    demo.add_argument("--no-dynamodb", action="store_true", help="show S3 only")
    demo.add_argument(
        "--walkthrough",
        action="store_true",
        help="walk tenant acme through the playbook (check, dual-write, copy, diff, cutover, "
        "rollback drill, done) with migration stages, checking every figure",
    )

    repair = commands.add_parser(
        "repair",
        help="copy every journaled key's current state from the account its latest write went "
        "to first to the other",
        description=(
            "Read the journal; for each key, copy the current object or item from the account "
            "that acknowledged the key's latest journaled write (the old account, or the new one "
            "for a write made at CUTOVER) to the other account (or delete it there when the "
            "source has none), then remove its entries. Idempotent: safe to rerun, or to run "
            "from several processes at once."
        ),
    )
    source = repair.add_mutually_exclusive_group(required=True)
    source.add_argument("--journal", help="path of the SQLite journal")
    source.add_argument("--sqs-queue-url", help="URL of an SQS journal queue")
    repair.add_argument(
        "--sqs-side",
        choices=SIDES,
        default="primary",
        help="which account's credentials read the SQS queue (default: %(default)s)",
    )
    repair.add_argument("--limit", type=int, help="repair at most this many entries")
    repair.add_argument("--json", action="store_true", help="print the report as JSON")
    repair.add_argument(
        "--server-side",
        action="store_true",
        help="S3 copies each journaled S3 object (CopyObject, UploadPartCopy) with the "
        "destination account's credentials: no byte passes through this host; needs the source "
        "bucket to grant that account s3:GetObject (objects it may not read are copied through "
        "this host)",
    )
    add_target_options(repair)
    _add_backfill_commands(commands)
    add_follow_command(commands)
    return parser


def _add_backfill_commands(commands: Any) -> None:
    check = commands.add_parser(
        "check",
        help="pre-flight: can the shadow take the wrapper's writes, diff and copy?",
        description=(
            "Check a bucket or table pair against the real accounts. S3: both buckets reachable, "
            "a probe object written to the shadow as the wrapper writes it (ACL "
            "bucket-owner-full-control, conditional), read back and deleted; Object Ownership, "
            "default encryption and versioning of both. DynamoDB: both tables, same key schema "
            "and indexes, a probe item put, read and deleted; billing mode, capacity, TTL. One "
            "PASS/FAIL/WARN/INFO line per check, with what to fix."
        ),
        epilog="exit status: 0 no check failed, 1 some check failed, 2 usage error",
    )
    add_service_parsers(check, name="check", check=True)
    diff = commands.add_parser(
        "diff",
        help="compare primary and shadow; differences as JSON Lines",
        description=(
            "Compare the primary and the shadow: S3 by key, size and ETag (--metadata: also "
            "content type, metadata, tags, checksums); DynamoDB by full item. Differences "
            "(missing_in_shadow, extra_in_shadow, different) go as JSON Lines to --output or "
            "standard output, then a summary (on standard error when the differences took "
            "standard output)."
        ),
        epilog="exit status: 0 equal, 1 differences found, 2 error, 130 interrupted",
    )
    add_service_parsers(diff, name="diff")
    copy = commands.add_parser(
        "copy",
        help="backfill: copy what the shadow lacks or holds differently",
        description=(
            "Copy every key the shadow lacks or holds differently from the primary (and with "
            "--delete-extra, delete what the primary lacks), with ACL bucket-owner-full-control. "
            "Safe beside live dual-writes: each write is conditional on the shadow's state as "
            "read (S3 If-None-Match/If-Match, DynamoDB condition expressions), so a newer value "
            "written meanwhile is never overwritten. Parallel (--workers), paced (--max-rps), "
            "resumable (--state). SIGINT/SIGTERM stop it cleanly."
        ),
        epilog="exit status: 0 done, 1 some keys failed, 2 error, 130 interrupted (rerun to go on)",
    )
    add_service_parsers(copy, name="copy", copy=True)
