"""``dualwrite diff s3|dynamodb``: compare the primary and the shadow.

Exit status: 0 equal, 1 differences found, 2 error (a bad option or names file, a listing that
failed, a key that could not be compared), 130 interrupted (SIGINT/SIGTERM), 141 standard output
closed by its reader (``diff ... | head``: the run stops quietly).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from dualwrite._core.scan import BackfillError, Sink
from dualwrite._offline.backfill import run
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


def run_diff(args: argparse.Namespace, *, out: TextIO) -> int:
    """Compare; see the module docstring for the exit status."""
    to_stdout = args.output in (None, "-")
    sink: Sink | None = None
    try:
        mirror, meter = open_pair(args, workers=args.workers)
        job = build_job(args, mirror, "diff")
        with output_to(args.output, default_stdout=True) as stream, stop_on_signals() as stop:
            sink = Sink(stream, on_closed=stop.set) if stream is not None else None
            report = run(
                job,
                workers=args.workers,
                sink=sink,
                meter=meter,
                progress=progress_for(args, f"diff {args.service}"),
                stop=stop,
            )
            if sink is not None:
                sink.flush()
    except (UsageError, BackfillError, BotoCoreError, ClientError) as exc:
        print(f"dualwrite diff: error: {exc}", file=sys.stderr)
        return 2
    if sink is not None and sink.closed:
        silence_stdout()
        return EXIT_CLOSED
    # The differences own standard output when they go there; the summary then goes to stderr.
    summary_out = sys.stderr if to_stdout else out
    text = json.dumps(report.to_json()) if args.json else summary(report)
    if not emit(text, summary_out):
        return EXIT_CLOSED
    for line in report.errors:
        print(f"  failed: {line}", file=sys.stderr)
    if report.interrupted:
        return EXIT_INTERRUPTED
    if report.failed:
        return 2
    return 1 if report.differences else 0
