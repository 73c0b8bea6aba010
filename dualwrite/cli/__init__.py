"""The ``dualwrite`` command line.

Subcommands:

* ``demo``: a migration on embedded, in-process moto with two AWS accounts (no AWS account
  needed; requires the ``demo`` extra). ``demo --walkthrough`` walks one tenant through the
  playbook of ``docs/migration.md`` instead: check, dual-write, copy, diff, cutover, a rollback
  drill, done.
* ``repair``: replay a journal: copy each journaled key's current state from the account that
  acknowledged its latest journaled write to the other.
* ``check s3|dynamodb``: pre-flight of the shadow (ACL, ownership, encryption, schema, probe).
* ``diff s3|dynamodb``: compare the two accounts; differences as JSON Lines.
* ``copy s3|dynamodb``: backfill what the shadow lacks, conditionally, resumably, in parallel.
* ``follow s3|dynamodb``: converge keys written outside the wrapper, from S3 notifications on
  SQS or a DynamoDB stream.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from dualwrite.cli._parser import build_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "demo" and args.walkthrough:
        if args.migrating is not None:
            print("dualwrite demo: --migrating does not apply to --walkthrough", file=sys.stderr)
            return 2
        from dualwrite.cli._walkthrough import run_walkthrough  # noqa: PLC0415 - needs moto

        return run_walkthrough(dynamodb=not args.no_dynamodb, out=sys.stdout)
    if args.command == "demo":
        from dualwrite.cli._demo import run_demo  # noqa: PLC0415 - needs the optional moto

        migrating_arg = "acme,initech" if args.migrating is None else args.migrating
        migrating = {t.strip() for t in migrating_arg.split(",") if t.strip()}
        return run_demo(migrating=migrating, dynamodb=not args.no_dynamodb, out=sys.stdout)
    if args.command == "repair":
        from dualwrite.cli._repair import run_repair  # noqa: PLC0415

        return run_repair(args, out=sys.stdout)
    if args.command == "check":
        from dualwrite.cli._check import run_check  # noqa: PLC0415

        return run_check(args, out=sys.stdout)
    if args.command == "diff":
        from dualwrite.cli._diff import run_diff  # noqa: PLC0415

        return run_diff(args, out=sys.stdout)
    if args.command == "copy":
        from dualwrite.cli._copy import run_copy  # noqa: PLC0415

        return run_copy(args, out=sys.stdout)
    if args.command == "follow":
        from dualwrite.cli._follow import run_follow  # noqa: PLC0415

        return run_follow(args, out=sys.stdout)
    return 2  # pragma: no cover - argparse rejects unknown commands first
