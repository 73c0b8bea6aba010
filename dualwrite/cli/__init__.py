"""The ``dualwrite`` command line.

Subcommands:

* ``demo``: a migration on embedded, in-process moto with two AWS accounts (no AWS account
  needed; requires the ``demo`` extra).
* ``repair``: replay a journal: copy each journaled key's current state from the primary to the
  shadow.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dualwrite._version import __version__
from dualwrite.cli._targets import SIDES, add_target_options

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
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
        default="acme,initech",
        help="comma-separated tenants whose flag is on (default: %(default)s)",
    )
    demo.add_argument("--no-dynamodb", action="store_true", help="show S3 only")

    repair = commands.add_parser(
        "repair",
        help="copy every journaled key's current state from the primary to the shadow",
        description=(
            "Read the journal; for each key, copy the primary's current object or item to the "
            "shadow (or delete it there when the primary has none), then remove its entries. "
            "Idempotent: safe to rerun, or to run from several processes at once."
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
    add_target_options(repair)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from dualwrite.cli._demo import run_demo  # noqa: PLC0415 - needs the optional moto

        migrating = {t.strip() for t in args.migrating.split(",") if t.strip()}
        return run_demo(migrating=migrating, dynamodb=not args.no_dynamodb, out=sys.stdout)
    if args.command == "repair":
        from dualwrite.cli._repair import run_repair  # noqa: PLC0415

        return run_repair(args, out=sys.stdout)
    return 2  # pragma: no cover - argparse rejects unknown commands first
