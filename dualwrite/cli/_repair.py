"""``dualwrite repair``: replay a journal against the two accounts.

Exit status: 0 when every entry read was settled (or is a ``pending`` intent left to a writer
process that is still alive); 1 when a key failed, did not settle, was skipped (no shadow name)
or not reached, or when resource-level entries remain (their keys are unknown: a ``copy`` of
the bucket or table settles them); 2 on a usage error (a journal path that does not exist or is
not a journal, a names file that cannot be read).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import TextIO

import attrs

import dualwrite
from dualwrite._offline.repair import RepairReport
from dualwrite.cli._targets import Targets, targets_from
from dualwrite.journal import Journal, SQLiteJournal, SQSJournal

EXIT_USAGE = 2


class CommandLineError(Exception):
    """A journal or names file named on the command line cannot be used: exit code 2."""


def open_sqlite_journal(path: str | Path) -> SQLiteJournal:
    """Open an existing SQLite journal; never create one.

    A mistyped path must not read as an empty journal (the "journal is empty" gate of the
    playbook would pass while the real journal holds entries).

    Raises:
        CommandLineError: no file there, or the file is not a dualwrite journal.
    """
    path = Path(path)
    if not path.is_file():
        msg = (
            f"no journal at {path}: the file does not exist (give the path the writers use, "
            "DualWriter(journal=...); nothing was created)"
        )
        raise CommandLineError(msg)
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as connection:
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
    except sqlite3.DatabaseError as exc:
        msg = f"{path} is not a dualwrite journal: {exc}"
        raise CommandLineError(msg) from exc
    if "entries" not in tables:
        msg = f"{path} is not a dualwrite journal (no entries table)"
        raise CommandLineError(msg)
    return SQLiteJournal(path)


def load_targets(args: argparse.Namespace) -> Targets:
    """:func:`targets_from`, a names-file error raised as :class:`CommandLineError` (exit code 2,
    as documented; ``load_names`` raises ``SystemExit``, which would exit 1)."""
    try:
        return targets_from(args)
    except SystemExit as exc:  # load_names reports a bad names file this way
        message = str(exc.code or "bad options").removeprefix("dualwrite: ")
        raise CommandLineError(message) from exc


def run_repair(args: argparse.Namespace, *, out: TextIO) -> int:
    """Run the repair; see the module docstring for the exit status."""
    journal: Journal
    try:
        if args.journal:
            journal = open_sqlite_journal(args.journal)
            targets = load_targets(args)
        else:
            targets = load_targets(args)
            journal = SQSJournal(targets.client(args.sqs_side, "sqs"), args.sqs_queue_url)
    except CommandLineError as exc:
        print(f"dualwrite repair: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Each key is copied from the account its latest entry's write went to first (old to new;
    # new to old for a write made new-first, at CUTOVER). Stages are not known here, so a
    # tenant at DONE is not skipped: repair those with writer.repair() and the stage callback.
    try:
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
            report = writer.repair(
                limit=args.limit, progress=not args.json, server_side=args.server_side
            )
    finally:
        journal.close()
    if args.json:
        data = attrs.asdict(report)
        data["repaired"] = report.repaired
        data["settled"] = report.settled
        print(json.dumps(data, default=list), file=out)
    else:
        text = summary(report)
        if args.server_side:
            text += (
                f"\nserver-side: {report.copied_in_s3} object(s) copied inside S3, "
                f"{report.copied_through_host} through this host (the shadow could not read them)"
            )
        print(text, file=out)
    for line in report.errors:
        print(f"  failed: {line}", file=sys.stderr)
    if report.unresolved:
        print(unresolved_advice(report), file=sys.stderr)
    return 0 if report.settled else 1


def summary(report: RepairReport) -> str:
    """The human-readable summary line of a repair."""
    line = (
        f"repair: {report.keys} key(s) from {report.entries} entr(ies): "
        f"{report.copied} copied, {report.deleted} deleted, {report.failed} failed, "
        f"{report.skipped} skipped (no shadow name), {report.in_flight} left to live writers, "
        f"{report.unresolved} resource-level; {report.remaining} entr(ies) left; "
        f"{report.seconds:.1f} s"
    )
    if report.presigned_waiting or report.presigned_expired:
        line += (
            f"\nrepair: presigned writes: {report.presigned_waiting} not uploaded yet (kept "
            f"until they expire), {report.presigned_expired} expired unused (dropped)"
        )
    if report.timed_out:
        line += f"\nrepair: deadline passed, {report.unfinished} key(s) not repaired; run it again"
    return line


def unresolved_advice(report: RepairReport) -> str:
    """What to do about resource-level entries: a diff and a complete copy of each resource."""
    head = (
        f"repair: {report.unresolved} resource-level entr(ies): a write whose key could not be "
        "read; repair cannot settle them key by key. For each resource, compare and copy it "
        "whole (a complete copy with --delete-extra and --journal removes these entries):"
    )
    lines = [head]
    for resource in report.unresolved_resources:
        service, _, name = resource.partition(" ")
        option = "--bucket" if service == "s3" else "--table"
        lines.append(f"  dualwrite diff {service} {option} {name} ...")
        lines.append(
            f"  dualwrite copy {service} {option} {name} --delete-extra --journal JOURNAL ..."
        )
    return "\n".join(lines)
