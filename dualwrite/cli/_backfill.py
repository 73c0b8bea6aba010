"""What ``check``, ``diff`` and ``copy`` share: options, the wrapped pair, the job, signals."""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from botocore.config import Config

import dualwrite
from dualwrite._core.mirror import Mirror
from dualwrite._core.scan import Job, StateFile
from dualwrite._dynamodb.backfill import DynamoJob
from dualwrite._offline.backfill import BackfillReport, RequestMeter
from dualwrite._offline.progress import Progress
from dualwrite._s3.backfill import S3Job
from dualwrite._s3.requests import owner_params
from dualwrite.cli._targets import targets_from

EXIT_INTERRUPTED = 130
EXIT_CLOSED = 141
"""Standard output was closed by its reader (``diff ... | head``): 128 + SIGPIPE, the status a
shell shows for a command that SIGPIPE ended."""


class UsageError(Exception):
    """A bad option value or a target that does not exist: exit code 2."""


def _config(workers: int) -> Config:
    return Config(
        max_pool_connections=max(10, workers + 4),
        retries={"mode": "standard", "max_attempts": 10},
    )


def open_pair(args: argparse.Namespace, *, workers: int = 1) -> tuple[Mirror, RequestMeter]:
    """The wrapped primary/shadow pair of ``args.service``, its clients counted (and paced)."""
    try:
        targets = targets_from(args)
    except SystemExit as exc:  # bad options (a names file, a profile, a role): exit 2
        if isinstance(exc.code, str):  # a message not shown yet
            raise UsageError(exc.code.removeprefix("dualwrite: ")) from exc
        raise  # already said on standard error, with its exit code
    service = args.service
    config = _config(workers)
    primary = targets.client("primary", service, config)
    shadow = targets.client("shadow", service, config)
    meter = RequestMeter(getattr(args, "max_rps", None))
    meter.attach(primary, "primary")
    meter.attach(shadow, "shadow")
    # Only the wrapped pair's mirror is needed (names, KMS keys, owner); no write goes through it,
    # so no journal is opened (the default would create one in the user's state directory).
    writer = dualwrite.DualWriter(flag=False, circuit_breaker=None, journal=None)
    if service == "s3":
        wrapped = writer.wrap(
            primary,
            shadow=shadow,
            names=targets.names["s3"],
            shadow_account=targets.shadow_account,
        )
    else:
        wrapped = writer.wrap(primary, shadow=shadow, names=targets.names["dynamodb"] or None)
    writer.close()  # flag off, no journal, sync mode: nothing runs in the background
    mirror: Mirror = wrapped._self_mirror
    return mirror, meter


def _prefixes(args: argparse.Namespace) -> tuple[str, ...]:
    prefixes = list(args.prefix)
    if args.prefixes_from is not None:
        try:
            lines = args.prefixes_from.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            msg = f"cannot read --prefixes-from {args.prefixes_from}: {exc}"
            raise UsageError(msg) from exc
        prefixes += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        if not prefixes:
            msg = f"--prefixes-from {args.prefixes_from} holds no prefix"
            raise UsageError(msg)
    return tuple(prefixes) or ("",)


def build_job(args: argparse.Namespace, mirror: Mirror, command: str) -> Job:
    """The S3 or DynamoDB job the options describe."""
    copying = command == "copy"
    if args.workers < 1:
        msg = f"--workers must be >= 1; got {args.workers}"
        raise UsageError(msg)
    if args.service == "s3":
        shadow_bucket = mirror.shadow_name(args.bucket)
        if shadow_bucket is None:
            msg = (
                f"no shadow name for bucket {args.bucket!r}: add it to the --names file "
                '({"s3": {"primary-bucket": "shadow-bucket"}})'
            )
            raise UsageError(msg)
        return S3Job(
            command=command,
            primary=mirror.primary,
            shadow=mirror.shadow,
            resource=args.bucket,
            shadow_resource=shadow_bucket,
            prefixes=_prefixes(args),
            compare=args.compare,
            metadata=args.metadata,
            delete_extra=copying and args.delete_extra,
            dry_run=copying and args.dry_run,
            owner=owner_params(mirror),
            kms_keys=mirror.state.options.kms_keys,
        )
    return _dynamo_job(args, mirror, command)


def _dynamo_job(args: argparse.Namespace, mirror: Mirror, command: str) -> DynamoJob:
    copying = command == "copy"
    table = args.table
    try:
        desc = mirror.primary.describe_table(TableName=table)["Table"]
    except Exception as exc:
        msg = f"cannot describe primary table {table!r}: {exc}"
        raise UsageError(msg) from exc
    schema = sorted(desc["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    key_names = tuple(str(k["AttributeName"]) for k in schema)
    types = {a["AttributeName"]: a["AttributeType"] for a in desc["AttributeDefinitions"]}
    values = tuple(_typed(v, types[key_names[0]]) for v in args.partition_value)
    if values and (args.segment is not None or args.total_segments):
        msg = "--partition-value queries one partition: it takes no --segment/--total-segments"
        raise UsageError(msg)
    total = args.total_segments
    if total is None:
        recorded = StateFile.peek(getattr(args, "state", None)) or {}
        total = recorded.get("total_segments") or (1 if args.segment is not None else args.workers)
    if args.page_size < 1:
        msg = f"--page-size must be >= 1; got {args.page_size}"
        raise UsageError(msg)
    if total < 1 or (args.segment is not None and not 0 <= args.segment < total):
        msg = f"--segment must be in 0..{total - 1} and --total-segments >= 1"
        raise UsageError(msg)
    segments = (args.segment,) if args.segment is not None else tuple(range(total))
    return DynamoJob(
        command=command,
        primary=mirror.primary,
        shadow=mirror.shadow,
        resource=table,
        shadow_resource=mirror.shadow_name(table) or table,
        key_names=key_names,
        partition_values=values,
        filter=args.filter,
        filter_names=args.filter_names,
        filter_values=args.filter_values,
        segments=segments,
        total_segments=total,
        delete_extra=copying and args.delete_extra,
        dry_run=copying and args.dry_run,
        item_count=desc.get("ItemCount"),
        page_size=args.page_size,
    )


def _typed(value: str, attr_type: str) -> dict[str, Any]:
    if attr_type == "N":
        try:
            Decimal(value)
        except InvalidOperation as exc:
            msg = f"--partition-value {value!r} is not a number (the hash key is N)"
            raise UsageError(msg) from exc
        return {"N": value}
    if attr_type == "B":
        try:
            return {"B": base64.b64decode(value, validate=True)}
        except binascii.Error as exc:
            msg = f"--partition-value {value!r} is not base64 (the hash key is B)"
            raise UsageError(msg) from exc
    return {"S": value}


def progress_for(args: argparse.Namespace, label: str) -> Progress | None:
    """A progress bar on standard error when it is a terminal (and not ``--no-progress``)."""
    if getattr(args, "no_progress", False) or not sys.stderr.isatty():
        return None
    return Progress(label, sys.stderr)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM (ECS and Batch stop a task with SIGTERM).

    The first signal stops cleanly: the running requests finish and the state file is written.
    A second one exits at once with status 130 (the state file keeps its last save, so a rerun
    redoes a little more).
    """
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # os.write, not print: the handler may interrupt a print to the same stream.
            os.write(2, b"\ndualwrite: interrupted again: exiting now\n")
            os._exit(EXIT_INTERRUPTED)
        stop.set()
        os.write(2, b"\ndualwrite: stopping (the running requests finish; again: exit now)\n")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def output_to(path: str | None, default_stdout: bool) -> Iterator[TextIO | None]:
    """The JSON Lines stream: a file, standard output (``-``), or none."""
    if path is None and not default_stdout:
        yield None
    elif path in (None, "-"):
        yield sys.stdout
    else:
        try:
            handle = Path(path).open("w", encoding="utf-8")
        except OSError as exc:
            msg = f"cannot write --output {path}: {exc}"
            raise UsageError(msg) from exc
        with handle:
            yield handle


def summary(report: BackfillReport) -> str:
    """The human-readable summary line of a diff or copy."""
    head = (
        f"{report.command} {report.service} {report.resource} -> {report.shadow_resource}: "
        f"{report.compared} compared, {report.equal} equal, "
        f"{report.missing_in_shadow} missing_in_shadow, {report.extra_in_shadow} "
        f"extra_in_shadow, {report.different} different"
    )
    if report.command == "copy":
        if report.dry_run:
            head += " (dry run: nothing written)"
        else:
            head += (
                f"; {report.copied} copied, {report.deleted} deleted, "
                f"{report.skipped_changed} skipped (changed meanwhile), {report.gone} gone"
            )
            if report.bytes_copied:
                head += f", {report.bytes_copied:,} bytes"
    requests = sum(sum(ops.values()) for ops in report.requests.values())
    head += f"; {report.failed} failed; {requests:,} requests; {report.seconds:.1f} s"
    if report.interrupted:
        head += (
            f"\ninterrupted: {report.streams_done}/{report.streams} stream(s) done; rerun the "
            "same command (with the same --state file) to continue"
        )
    return head


def silence_stdout() -> None:
    """Point standard output at the null device once its reader is gone.

    The interpreter flushes ``sys.stdout`` at exit; into a closed pipe that prints a
    ``BrokenPipeError`` message. After this, the remaining buffered bytes go nowhere, quietly.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def emit(text: str, stream: TextIO) -> bool:
    """Print ``text`` to ``stream`` and flush; ``False`` when the stream's reader is gone."""
    try:
        print(text, file=stream)
        stream.flush()
    except BrokenPipeError:
        if stream is sys.stdout:
            silence_stdout()
        return False
    return True
