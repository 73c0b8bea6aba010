"""``dualwrite copy s3|dynamodb``: backfill what the shadow lacks, resumably."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from dualwrite._backfill import BackfillError, Sink, StateFile, run
from dualwrite.cli._backfill import (
    EXIT_INTERRUPTED,
    UsageError,
    build_job,
    open_pair,
    output_to,
    progress_for,
    stop_on_signals,
    summary,
)


def run_copy(args: argparse.Namespace, *, out: TextIO) -> int:
    """Copy; exit 0 when done, 1 when some keys failed, 2 on an error, 130 when interrupted."""
    try:
        mirror, meter = open_pair(args, workers=args.workers)
        job = build_job(args, mirror, "copy")
        # A dry run changes nothing, its resume points included.
        state = StateFile(None if args.dry_run else args.state, job.identity())
        with output_to(args.output, default_stdout=False) as stream, stop_on_signals() as stop:
            report = run(
                job,
                workers=args.workers,
                state=state,
                sink=Sink(stream) if stream is not None else None,
                meter=meter,
                progress=progress_for(args, f"copy {args.service}"),
                stop=stop,
                dry_run=args.dry_run,
            )
    except (UsageError, BackfillError, BotoCoreError, ClientError) as exc:
        print(f"dualwrite copy: error: {exc}", file=sys.stderr)
        return 2
    summary_out = sys.stderr if args.output == "-" else out
    if args.json:
        print(json.dumps(report.to_json()), file=summary_out)
    else:
        print(summary(report), file=summary_out)
    for line in report.errors:
        print(f"  failed: {line}", file=sys.stderr)
    if report.interrupted:
        return EXIT_INTERRUPTED
    return 1 if report.failed else 0
