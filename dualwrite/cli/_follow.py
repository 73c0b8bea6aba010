"""``dualwrite follow s3|dynamodb``: converge keys written outside the wrapper.

``follow s3`` reads the primary buckets' S3 event notifications from an SQS queue (S3 to SQS
directly, through SNS, or from EventBridge); ``follow dynamodb`` reads a table's DynamoDB
stream. Each key is converged from the primary's current state: a key the shadow already holds
equal costs one comparison. ``--once`` drains what is there and exits; otherwise the command
runs until SIGTERM or SIGINT, which finish the current batch.

Exit status: 0 every key converged (or was skipped, or journaled with ``--journal``); 1 some key
failed and is still owed (its message stays on the queue; its stream position is not passed);
2 usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import attrs

from dualwrite.cli._targets import SIDES, add_target_options

EXIT_USAGE = 2


def add_follow_command(commands: Any) -> None:
    """Register ``follow s3`` and ``follow dynamodb`` under ``commands``."""
    follow = commands.add_parser(
        "follow",
        help="converge keys written outside the wrapper (S3 notifications, DynamoDB streams)",
        description=(
            "Converge every key written outside the wrapper (presigned uploads, other "
            "languages, the console) from the primary's current state: S3 from the buckets' "
            "event notifications on an SQS queue, DynamoDB from the table's stream. A key the "
            "shadow already holds equal costs one comparison and no write."
        ),
        epilog="exit status: 0 converged, 1 some key still owed, 2 usage error",
    )
    services = follow.add_subparsers(dest="service", metavar="SERVICE")
    services.required = True
    s3 = services.add_parser(
        "s3",
        help="follow S3 event notifications from an SQS queue",
        description=follow.description,
        epilog=follow.epilog,
    )
    s3.add_argument("--queue-url", required=True, help="the SQS queue the notifications go to")
    s3.add_argument(
        "--queue-side",
        choices=SIDES,
        default="primary",
        help="which account's credentials read the queue (default: %(default)s)",
    )
    s3.add_argument(
        "--wait",
        type=int,
        default=10,
        help="long-poll seconds of each receive, without --once (default: %(default)s; a "
        "stop signal is noticed within this time)",
    )
    s3.add_argument(
        "--visibility-timeout",
        type=int,
        help="seconds a received message stays hidden (default: the queue's own)",
    )
    dynamodb = services.add_parser(
        "dynamodb",
        help="follow a table's DynamoDB stream",
        description=follow.description,
        epilog=follow.epilog,
    )
    dynamodb.add_argument("--table", required=True, help="the primary table (its stream)")
    dynamodb.add_argument(
        "--checkpoint",
        type=Path,
        help="file of the position reached in each shard, so that a restart resumes "
        "(default: ./dualwrite-follow-TABLE.json)",
    )
    dynamodb.add_argument(
        "--poll",
        type=float,
        default=1.0,
        help="seconds between reads of a shard that had nothing new, without --once "
        "(default: %(default)s)",
    )
    for parser in (s3, dynamodb):
        parser.add_argument(
            "--once", action="store_true", help="drain what is there now, then exit"
        )
        parser.add_argument(
            "--flag",
            metavar="MODULE:CALLABLE",
            help="the flag: called with a dualwrite.Write per key, true to converge it "
            "(default: every key of a mapped bucket or table)",
        )
        parser.add_argument(
            "--journal",
            help="an SQLite journal: a key that cannot converge is journaled there (and its "
            "message deleted) for `dualwrite repair`; without it, the message stays queued",
        )
        parser.add_argument("--json", action="store_true", help="print the totals as JSON")
        add_target_options(parser)


def load_flag(spec: str) -> Callable[..., Any]:
    """Import ``MODULE:CALLABLE``.

    Raises:
        CommandLineError: the module or the attribute is missing, or it is not callable.
    """
    from dualwrite.cli._repair import CommandLineError  # noqa: PLC0415

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        msg = f"--flag must be MODULE:CALLABLE; got {spec!r}"
        raise CommandLineError(msg)
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        msg = f"--flag {spec}: {type(exc).__name__}: {exc}"
        raise CommandLineError(msg) from exc
    if not callable(value):
        msg = f"--flag {spec}: {type(value).__name__} is not callable"
        raise CommandLineError(msg)
    return value  # type: ignore[no-any-return]


@contextlib.contextmanager
def _stopping(stop: Any) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (the current batch finishes) while the block runs."""

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_follow(args: argparse.Namespace, *, out: TextIO) -> int:
    """Run ``follow s3`` or ``follow dynamodb``; see the module docstring for the exit status."""
    # Imported here: registering the parser (every command line) stays light.
    import dualwrite  # noqa: PLC0415
    from dualwrite.cli._repair import (  # noqa: PLC0415
        CommandLineError,
        load_targets,
        open_sqlite_journal,
    )

    try:
        targets = load_targets(args)
        flag = load_flag(args.flag) if args.flag else True
        journal = open_sqlite_journal(args.journal) if args.journal else None
    except CommandLineError as exc:
        print(f"dualwrite follow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from dualwrite._offline.follow import Stop  # noqa: PLC0415 - after the options are checked

    stop = Stop()
    with (
        dualwrite.DualWriter(flag=flag, journal=journal, circuit_breaker=None) as writer,
        _stopping(stop),
    ):
        if args.service == "s3":
            return _follow_s3(args, targets, writer, stop, out)
        return _follow_dynamodb(args, targets, writer, stop, out)


def _follow_s3(args: argparse.Namespace, targets: Any, writer: Any, stop: Any, out: TextIO) -> int:
    from dualwrite._offline.follow_s3 import S3Follower, follow_queue  # noqa: PLC0415

    writer.wrap(
        targets.client("primary", "s3"),
        shadow=targets.client("shadow", "s3"),
        names=targets.names["s3"],
        shadow_account=targets.shadow_account,
    )
    report = follow_queue(
        S3Follower(writer),
        targets.client(args.queue_side, "sqs"),
        args.queue_url,
        once=args.once,
        stop=stop,
        wait=args.wait,
        visibility_timeout=args.visibility_timeout,
    )
    keys = report.keys
    if args.json:
        data = attrs.asdict(report)
        data["keys"] = _keys_json(keys)
        print(json.dumps(data), file=out)
    else:
        print(
            f"follow s3: {report.messages} message(s), {report.deleted_messages} deleted, "
            f"{report.kept_messages} kept, {report.malformed} not notifications; "
            + _keys_line(keys)
            + f"; {report.seconds:.1f} s",
            file=out,
        )
    for line in keys.errors:
        print(f"  failed: {line}", file=sys.stderr)
    return 1 if keys.unjournaled_keys else 0


def _keys_json(keys: Any) -> dict[str, Any]:
    data = attrs.asdict(keys)
    data["failed_keys"] = [list(k) for k in keys.failed_keys]
    data["unjournaled_keys"] = [list(k) for k in keys.unjournaled_keys]
    return data


def _keys_line(keys: Any) -> str:
    return (
        f"{keys.keys} key(s): {keys.equal} equal, {keys.copied} copied, {keys.deleted} deleted, "
        f"{keys.skipped} skipped, {keys.failed} failed ({keys.journaled} journaled)"
    )


def _follow_dynamodb(
    args: argparse.Namespace, targets: Any, writer: Any, stop: Any, out: TextIO
) -> int:
    from dualwrite._offline.follow_dynamodb import follow_stream  # noqa: PLC0415

    writer.wrap(
        targets.client("primary", "dynamodb"),
        shadow=targets.client("shadow", "dynamodb"),
        names=targets.names["dynamodb"] or None,
    )
    checkpoint = args.checkpoint or Path(f"dualwrite-follow-{args.table}.json")
    report = follow_stream(
        writer,
        targets.client("primary", "dynamodb"),
        targets.client("primary", "dynamodbstreams"),
        args.table,
        checkpoint=checkpoint,
        once=args.once,
        stop=stop,
        poll=args.poll,
    )
    if args.json:
        data = attrs.asdict(report)
        data["keys"] = _keys_json(report.keys)
        print(json.dumps(data), file=out)
    else:
        print(
            f"follow dynamodb: {report.records} record(s) from {report.shards} shard(s); "
            + _keys_line(report.keys)
            + f"; {report.seconds:.1f} s",
            file=out,
        )
    for line in report.keys.errors:
        print(f"  failed: {line}", file=sys.stderr)
    return 1 if report.keys.unjournaled_keys else 0
