"""``dualwrite diff s3|dynamodb``: compare the primary and the shadow."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from dualwrite._backfill import BackfillError, Sink, run
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


def run_diff(args: argparse.Namespace, *, out: TextIO) -> int:
    """Compare; exit 0 when equal, 1 on differences, 2 on an error."""
    to_stdout = args.output in (None, "-")
    try:
        mirror, meter = open_pair(args, workers=args.workers)
        job = build_job(args, mirror, "diff")
        with output_to(args.output, default_stdout=True) as stream, stop_on_signals() as stop:
            report = run(
                job,
                workers=args.workers,
                sink=Sink(stream) if stream is not None else None,
                meter=meter,
                progress=progress_for(args, f"diff {args.service}"),
                stop=stop,
            )
    except (UsageError, BackfillError, BotoCoreError, ClientError) as exc:
        print(f"dualwrite diff: error: {exc}", file=sys.stderr)
        return 2
    # The differences own standard output when they go there; the summary then goes to stderr.
    summary_out = sys.stderr if to_stdout else out
    if args.json:
        print(json.dumps(report.to_json()), file=summary_out)
    else:
        print(summary(report), file=summary_out)
    for line in report.errors:
        print(f"  failed: {line}", file=sys.stderr)
    if report.interrupted:
        return EXIT_INTERRUPTED
    if report.failed:
        return 2
    return 1 if report.differences else 0
