"""``dualwrite copy s3|dynamodb``: backfill what the shadow lacks, resumably.

Exit status: 0 done, 1 some keys failed, 2 error (a bad option, names file or journal, a
listing that failed), 130 interrupted (SIGINT/SIGTERM: rerun with the same ``--state`` to go on),
141 standard output closed by its reader (``--output -`` into ``head``: the run stops, its state
written).

With ``--journal``, a copy that covered the whole bucket or table (no prefix, partition, filter
or segment), with ``--delete-extra``, not a dry run, to its end and with no key failed, removes
the journal's resource-level entries of that resource made before the copy's first run started
(see ``Entry.resource_level``): the copy made every key equal, whichever one the unknown write
touched.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

import attrs
from botocore.exceptions import BotoCoreError, ClientError

from dualwrite._core.scan import BackfillError, Sink, StateFile
from dualwrite._offline.backfill import BackfillReport, run, settle_resource_entries
from dualwrite._s3.server_copy import ServerSideCopy
from dualwrite.cli._backfill import (
    EXIT_CLOSED,
    EXIT_INTERRUPTED,
    UsageError,
    build_job,
    emit,
    open_pair,
    output_to,
    progress_for,
    silence_stdout,
    stop_on_signals,
    summary,
)
from dualwrite.cli._repair import CommandLineError, open_sqlite_journal
from dualwrite.journal import SQLiteJournal


def run_copy(args: argparse.Namespace, *, out: TextIO) -> int:
    """Copy; see the module docstring for the exit status."""
    sink: Sink | None = None
    journal: SQLiteJournal | None = None
    try:
        journal = open_sqlite_journal(args.journal) if args.journal else None
        mirror, meter = open_pair(args, workers=args.workers)
        job = build_job(args, mirror, "copy")
        server_side = ServerSideCopy() if getattr(args, "server_side", False) else None
        if server_side is not None:
            job = attrs.evolve(job, copier=server_side)  # type: ignore[misc]
        # A dry run changes nothing, its resume points included.
        state = StateFile(None if args.dry_run else args.state, job.identity())
        with output_to(args.output, default_stdout=False) as stream, stop_on_signals() as stop:
            sink = Sink(stream, on_closed=stop.set) if stream is not None else None
            report = run(
                job,
                workers=args.workers,
                state=state,
                sink=sink,
                meter=meter,
                progress=progress_for(args, f"copy {args.service}"),
                stop=stop,
                dry_run=args.dry_run,
            )
            if sink is not None:
                sink.flush()
        settled = _settle(args, journal, report, state.started)
    except (UsageError, BackfillError, BotoCoreError, ClientError, CommandLineError) as exc:
        print(f"dualwrite copy: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if journal is not None:
            journal.close()
    if sink is not None and sink.closed:
        silence_stdout()
        return EXIT_CLOSED
    summary_out = sys.stderr if args.output == "-" else out
    text = _with_server_side(report, server_side, as_json=args.json)
    if settled is not None and not args.json:
        text += f"\njournal: {settled} resource-level entr(ies) of {report.resource} removed"
    if not emit(text, summary_out):
        return EXIT_CLOSED
    for line in report.errors:
        print(f"  failed: {line}", file=sys.stderr)
    if report.interrupted:
        return EXIT_INTERRUPTED
    return 1 if report.failed else 0


def _with_server_side(
    report: BackfillReport, server_side: ServerSideCopy | None, *, as_json: bool
) -> str:
    """The summary, saying with ``--server-side`` how many objects S3 copied itself."""
    data = report.to_json()
    if server_side is not None:
        data["server_side"] = {
            "copied_in_s3": server_side.server_side,
            "copied_through_host": server_side.through_host,
        }
    if as_json:
        return json.dumps(data)
    text = summary(report)
    if server_side is not None:
        text += (
            f"\nserver-side: {server_side.server_side} object(s) copied inside S3, "
            f"{server_side.through_host} through this host (the shadow could not read them)"
        )
    return text


def _settle(
    args: argparse.Namespace,
    journal: SQLiteJournal | None,
    report: BackfillReport,
    started: float | None,
) -> int | None:
    """Remove the resource-level entries a complete copy covers; ``None``: not complete."""
    if journal is None or started is None or not _whole(args):
        return None
    complete = (
        not report.dry_run
        and not report.interrupted
        and report.failed == 0
        and report.streams_done == report.streams
    )
    if not complete:
        return None
    return settle_resource_entries(journal, report.service, report.resource, started)


def _whole(args: argparse.Namespace) -> bool:
    """Whether the options name the whole bucket or table, extra keys deleted."""
    if not args.delete_extra:
        return False
    if args.service == "s3":
        return not args.prefix and args.prefixes_from is None
    return not args.partition_value and args.filter is None and args.segment is None
