"""The options of ``check``, ``diff`` and ``copy`` (kept light: parsed before any AWS import)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dualwrite.cli._targets import add_target_options

SERVICES = ("s3", "dynamodb")


def add_service_parsers(
    command: argparse.ArgumentParser, *, name: str, copy: bool = False, check: bool = False
) -> None:
    """Add ``s3`` and ``dynamodb`` sub-commands to ``command``, with their options."""
    services = command.add_subparsers(dest="service", metavar="SERVICE")
    services.required = True
    for service in SERVICES:
        what = "bucket" if service == "s3" else "table"
        parser = services.add_parser(
            service,
            help=f"{name} one {what} pair",
            description=command.description,
            epilog=command.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if service == "s3":
            parser.add_argument("--bucket", required=True, help="the primary bucket")
        else:
            parser.add_argument("--table", required=True, help="the primary table")
        if check:
            if service == "s3":
                parser.add_argument(
                    "--probe-prefix",
                    default=".dualwrite-check/",
                    help="where the probe object is written in the shadow bucket "
                    "(default: %(default)s)",
                )
                parser.add_argument(
                    "--queue-url",
                    help="the SQS queue of `dualwrite follow s3`: also check that the bucket's "
                    "notifications reach it and that it can be read",
                )
                parser.add_argument(
                    "--queue-side",
                    choices=("primary", "shadow"),
                    default="primary",
                    help="which account's credentials read the queue (default: %(default)s)",
                )
        else:
            _add_scope_options(parser, service, copy=copy)
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
        add_target_options(parser)


def _add_scope_options(parser: argparse.ArgumentParser, service: str, *, copy: bool) -> None:
    scope = parser.add_argument_group("scope (tenant)")
    if service == "s3":
        scope.add_argument(
            "--prefix",
            action="append",
            default=[],
            help="only keys under this prefix (repeatable); default: the whole bucket",
        )
        scope.add_argument(
            "--prefixes-from",
            type=Path,
            metavar="FILE",
            help="a file of prefixes, one a line (a shard of tenants for this worker)",
        )
        compare = parser.add_argument_group("comparison")
        compare.add_argument(
            "--compare",
            choices=("etag", "size"),
            default="etag",
            help="etag: size and ETag; size: size only, for SSE-KMS buckets whose ETags are not "
            "digests (default: %(default)s)",
        )
        compare.add_argument(
            "--metadata",
            action="store_true",
            help="also compare content type, user metadata, tags and checksums "
            "(a HeadObject per key and side)",
        )
    else:
        scope.add_argument(
            "--partition-value",
            action="append",
            default=[],
            metavar="VALUE",
            help="only the items of this hash key value, by Query (repeatable; base64 for a "
            "binary key)",
        )
        scope.add_argument(
            "--filter",
            help="a FilterExpression applied to the reads of both sides (they still read, and "
            "pay for, every item they scan)",
        )
        scope.add_argument("--filter-names", type=json.loads, default={}, metavar="JSON")
        scope.add_argument(
            "--filter-values",
            type=json.loads,
            default={},
            metavar="JSON",
            help='typed values of the filter, e.g. \'{":t": {"S": "acme"}}\'',
        )
        scope.add_argument(
            "--segment", type=int, help="scan only this segment (0-based) of --total-segments"
        )
        scope.add_argument(
            "--page-size",
            type=int,
            default=1000,
            help="items per Scan/Query page; each page is a resume point (default: %(default)s)",
        )
        scope.add_argument(
            "--total-segments",
            type=int,
            help="split the scan in this many segments (default: as many as --workers, or what "
            "the --state file recorded); with --segment, other processes take the others",
        )
    run = parser.add_argument_group("execution")
    run.add_argument(
        "--workers", type=int, default=8, help="threads working in parallel (default: 8)"
    )
    run.add_argument(
        "--max-rps",
        type=float,
        help="at most this many requests per second, both accounts together",
    )
    run.add_argument(
        "--output",
        metavar="FILE",
        help=(
            "write every action taken as JSON Lines to FILE ('-': standard output)"
            if copy
            else "write the differences as JSON Lines to FILE (default: '-', standard output)"
        ),
    )
    run.add_argument(
        "--no-progress", action="store_true", help="no progress bar, even on a terminal"
    )
    if copy:
        run.add_argument(
            "--state",
            type=Path,
            metavar="FILE",
            help="resume file: an interrupted copy rerun with it continues where it stopped",
        )
        run.add_argument(
            "--delete-extra",
            action="store_true",
            help="delete the shadow's keys that the primary lacks",
        )
        run.add_argument(
            "--dry-run", action="store_true", help="write nothing; say what would be done"
        )
        if service == "s3":
            run.add_argument(
                "--server-side",
                action="store_true",
                help="S3 copies each object (CopyObject, UploadPartCopy) with the shadow's "
                "credentials: no byte passes through this host; needs the primary bucket to "
                "grant the shadow's account s3:GetObject (objects it may not read are copied "
                "through this host)",
            )
        run.add_argument(
            "--journal",
            metavar="PATH",
            help="the writers' SQLite journal: a complete copy of the whole bucket or table "
            "(no scope, --delete-extra, nothing failed) removes its resource-level entries "
            "made before the copy started",
        )
