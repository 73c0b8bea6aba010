"""The ``dualwrite`` command line.

Subcommands:

* ``demo``: a migration on embedded, in-process moto with two AWS accounts (no AWS account
  needed; requires the ``demo`` extra).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dualwrite._version import __version__

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from dualwrite.cli._demo import run_demo  # noqa: PLC0415 - needs the optional moto

        migrating = {t.strip() for t in args.migrating.split(",") if t.strip()}
        return run_demo(migrating=migrating, dynamodb=not args.no_dynamodb, out=sys.stdout)
    return 2  # pragma: no cover - argparse rejects unknown commands first
