"""Per-call cost of plain vs wrapped DynamoDB ``put_item``, ``update_item`` and
``batch_write_item``, canned responses.

No server and no socket: every client gets a ``before-send.dynamodb.*`` handler that answers
with a canned :class:`botocore.awsrequest.AWSResponse` (a JSON body with its ``x-amz-crc32``), so
botocore still does all of its CPU work for each call (parameter validation, JSON serialisation,
SigV4 signing, the CRC32 check, response parsing) and only the network is left out. The canned
``UpdateItem`` answer carries ``Attributes`` exactly when the request asked for them, so the
wrapper pays for the bigger ``ALL_NEW`` response it asks for. Each client keeps the item as its
last write left it, and its canned ``GetItem`` returns that item: the fleet check then finds
what it mirrored, as on a table written by one process.

Cases, measured in process CPU time in one run and finely interleaved (each round runs every case
in chunks of 25 calls, one chunk of each case after the other, in a rotated order) so that noise
on a shared machine hits every case alike:

* ``plain``: the call on the bare primary client;
* ``wrapped, flag off``: through ``dualwrite.wrap(..., flag=lambda w: False)``;
* ``wrapped, flag on``: through ``dualwrite.wrap(..., flag=lambda w: True)`` with a canned
  shadow client (``mode="sync"``: the shadow write runs in the caller's thread);
* ``flag on, single_writer``: the same with ``single_writer=True``: no fleet check (the
  consistent ``GetItem`` of the primary after each shadow write, see docs/dynamodb.md);
* ``flag on, journal`` and ``flag on, journal, single_writer``: the two above with an SQLite
  journal in a temporary directory (the default configuration): the write-ahead intent is added
  before the primary call and removed once the shadow holds the state. The other cases pass
  ``journal=None``;
* ``flag off, journal`` (``put_item``): the flag-off case with an SQLite journal (the default
  configuration): the primary client then carries the counter of sent requests that a
  journal's intents read. Every wrapped case has a primary client of its own, so that one
  case's handlers never reach another's calls, nor ``plain``'s;
* ``two plain calls``: the call on the primary, then a ``put_item`` of the item on the shadow,
  without the wrapper: what the flag-on case would cost if the wrapper itself were free.

``update_item`` is measured as callers usually make it (no ``ReturnValues``: the wrapper asks the
primary for ``ALL_NEW`` and strips it from the caller's response) and with
``ReturnValues="UPDATED_OLD"`` (the wrapper then reads the item back with a consistent GetItem).
The requests each side receives per call are counted and printed.

``batch_write_item`` puts 25 items of about 110 bytes (DynamoDB's item size) in one table, all
processed. Besides the cases above (in sync mode), it is measured in background mode
(``background`` and ``background, single_writer``: each call is followed by ``flush()``, so the
workers' shadow writes are in the figure), and ``two plain calls`` sends the same batch to the
shadow after the primary. The journaled cases are not run for it.

A second table isolates the wrapper's own CPU per call: the handler is called with a no-op
primary call and a no-op shadow client, so only dualwrite's work is left (describing the write,
the flag, the key lock, the shadow parameters, the events). On a busy machine the end-to-end
ratios move by several percent between runs; this figure does not.

Run: ``python benchmarks/bench_dynamodb.py [--calls N] [--repeat R]``. Figures, not a test:
nothing is asserted; the targets are printed with PASS/MISS beside them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import _instructions
import boto3
import botocore
from botocore.awsrequest import AWSResponse
from botocore.config import Config

import dualwrite

REGION = "us-east-1"
TABLE = "bench-orders"
ITEM: dict[str, Any] = {
    "pk": {"S": "tenant-a#order#000042"},
    "sk": {"N": "1"},
    "status": {"S": "PAID"},
    "total": {"N": "129.95"},
    "currency": {"S": "EUR"},
    "lines": {"L": [{"M": {"sku": {"S": f"SKU-{i:04}"}, "qty": {"N": str(i)}}} for i in range(3)]},
    "tags": {"SS": ["gift", "express"]},
    "note": {"S": "leave at the door" * 4},
    "n": {"N": "6"},
}
KEY = {"pk": ITEM["pk"], "sk": ITEM["sk"]}
UPDATE = {
    "UpdateExpression": "ADD n :one SET #s = :s",
    "ExpressionAttributeNames": {"#s": "status"},
    "ExpressionAttributeValues": {":one": {"N": "1"}, ":s": {"S": "PAID"}},
}
DESCRIPTION = {
    "Table": {
        "TableName": TABLE,
        "TableStatus": "ACTIVE",
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
    }
}

_CHUNK = 25  # calls per interleaved chunk (see measure)
FLAG_OFF_TARGET = 1.01  # issue 12 (issue 3 had 1.02)
FLAG_ON_PUT_TARGET = 2.02  # issue 12 (issue 3 had 2.1)


class _Raw:
    """The ``raw`` of a canned response: a fixed body."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        return iter((self.body,))

    def read(self, *_: Any) -> bytes:
        return self.body


UPDATED = {**ITEM, "n": {"N": "7"}}
"""The item as every canned ``UpdateItem`` leaves it (``ADD n :one`` on ``ITEM``)."""

BATCH = [
    {
        "PutRequest": {
            "Item": {
                "pk": {"S": "tenant-a#order#000042"},
                "sk": {"N": str(line)},
                "status": {"S": "PAID"},
                "total": {"N": "129.95"},
                "currency": {"S": "EUR"},
                "note": {"S": f"line {line:02} of the order, leave at door"},
            }
        }
    }
    for line in range(25)
]
"""One ``BatchWriteItem`` request: 25 puts of about 110 bytes each (DynamoDB's item size)."""


def _key_id(key: Any) -> str:
    """The canned table's index of a key (``pk`` and ``sk`` of an item or a key)."""
    return json.dumps([key.get("pk"), key.get("sk")])


def _answer(operation: str, request: Any, table: dict[str, Any]) -> dict[str, Any]:
    """The canned answer to one request, ``table`` holding each item as the last write left it.

    ``GetItem`` and ``BatchGetItem`` return those items, so that the wrapper's fleet check (a
    consistent read of the primary after each shadow write) finds the state it mirrored, as it
    does on a real table written by one process; an answer stuck at the first item would make
    every check see a "moved" key and converge again (3 rounds, then ``Unsettled``).
    """
    asked = json.loads(request.body or b"{}")
    if operation == "DescribeTable":
        return DESCRIPTION
    if operation == "GetItem":
        item = table.get(_key_id(asked["Key"]))
        return {} if item is None else {"Item": item}
    if operation == "BatchGetItem":
        found = {
            name: [table[_key_id(k)] for k in spec["Keys"] if table.get(_key_id(k)) is not None]
            for name, spec in asked["RequestItems"].items()
        }
        return {"Responses": found, "UnprocessedKeys": {}}
    if operation == "PutItem":
        table[_key_id(asked["Item"])] = asked["Item"]
    elif operation == "DeleteItem":
        table[_key_id(asked["Key"])] = None
    elif operation == "BatchWriteItem":
        for requests in asked["RequestItems"].values():
            for r in requests:
                if "PutRequest" in r:
                    table[_key_id(r["PutRequest"]["Item"])] = r["PutRequest"]["Item"]
                else:
                    table[_key_id(r["DeleteRequest"]["Key"])] = None
        return {"UnprocessedItems": {}}
    elif operation == "UpdateItem":
        old, table[_key_id(asked["Key"])] = table.get(_key_id(asked["Key"])), UPDATED
        if asked.get("ReturnValues") == "ALL_NEW":
            return {"Attributes": UPDATED}
        if asked.get("ReturnValues") == "UPDATED_OLD" and old is not None:
            return {"Attributes": {"n": old["n"], "status": old["status"]}}
    return {}


def canned_client(access_key: str, sent: Counter[str]) -> Any:
    """A real boto3 DynamoDB client whose requests never leave the process."""
    session = boto3.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key="bench-secret-key",
        region_name=REGION,
    )
    client = session.client(
        "dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 1})
    )

    # This account's items, as their last write left them.
    table: dict[str, Any] = {_key_id(KEY): ITEM}

    def answer(request: Any, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        sent[operation] += 1
        body = json.dumps(_answer(operation, request, table)).encode()
        headers = {
            "x-amzn-RequestId": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEF",
            "Content-Type": "application/x-amz-json-1.0",
            "Content-Length": str(len(body)),
            "x-amz-crc32": str(zlib.crc32(body)),
            "Date": "Wed, 26 Nov 2025 12:00:00 GMT",
        }
        return AWSResponse(request.url, 200, headers, _Raw(body))

    client.meta.events.register("before-send.dynamodb.*", answer)
    return client


Case = Callable[[], Any]


def build_cases() -> tuple[dict[str, dict[str, Case]], Counter[str], Counter[str]]:
    """Return the cases per operation, and the request counters of the primary and shadow."""
    p_sent: Counter[str] = Counter()
    s_sent: Counter[str] = Counter()
    primary = canned_client("AKIAPRIMARYBENCH0001", p_sent)
    shadow = canned_client("AKIASHADOWBENCH00001", s_sent)
    # No journal unless the case says so (the default, "auto", would write to the user's state
    # directory); a fresh temporary SQLite file for the journaled cases.
    folder = tempfile.mkdtemp(prefix="dualwrite-bench-")

    def own() -> Any:
        """A primary client for one wrapped case only: a handler a wrapper registers on its
        primary (the count of sent requests that a journal's intents read) must not reach the
        other cases' calls, nor ``plain``'s."""
        return canned_client("AKIAPRIMARYBENCH0001", p_sent)

    off = dualwrite.wrap(own(), shadow=shadow, flag=lambda w: False, journal=None)
    off_journaled = dualwrite.wrap(
        own(), shadow=shadow, flag=lambda w: False, journal=os.path.join(folder, "off.sqlite3")
    )
    on = dualwrite.wrap(own(), shadow=shadow, flag=lambda w: True, journal=None)
    single = dualwrite.wrap(
        own(), shadow=shadow, flag=lambda w: True, journal=None, single_writer=True
    )
    inline_single = dualwrite.wrap(
        own(),
        shadow=shadow,
        flag=lambda w: True,
        journal=None,
        single_writer=True,
        shadow_timeout=None,
    )
    journaled = dualwrite.wrap(
        own(),
        shadow=shadow,
        flag=lambda w: True,
        journal=os.path.join(folder, "journal.sqlite3"),
    )
    journaled_single = dualwrite.wrap(
        own(),
        shadow=shadow,
        flag=lambda w: True,
        journal=os.path.join(folder, "journal-single.sqlite3"),
        single_writer=True,
    )

    background: dict[bool, tuple[Any, Any]] = {}
    for single_writer in (False, True):
        writer = dualwrite.DualWriter(
            flag=lambda w: True, mode="background", journal=None, single_writer=single_writer
        )
        background[single_writer] = (writer, writer.wrap(own(), shadow=shadow))

    def put(client: Any) -> Case:
        return lambda: client.put_item(TableName=TABLE, Item=ITEM)

    def update(client: Any, **extra: Any) -> Case:
        return lambda: client.update_item(TableName=TABLE, Key=KEY, **UPDATE, **extra)

    def batch(client: Any) -> Case:
        return lambda: client.batch_write_item(RequestItems={TABLE: BATCH})

    def batch_background(single_writer: bool) -> Case:
        writer, client = background[single_writer]

        def call_and_flush() -> Any:
            response = client.batch_write_item(RequestItems={TABLE: BATCH})
            writer.flush()
            return response

        return call_and_flush

    def two_batches() -> Any:
        response = primary.batch_write_item(RequestItems={TABLE: BATCH})
        shadow.batch_write_item(RequestItems={TABLE: BATCH})
        return response

    def two(first: Case) -> Case:
        def both() -> Any:
            response = first()
            shadow.put_item(TableName=TABLE, Item=ITEM)
            return response

        return both

    old = {"ReturnValues": "UPDATED_OLD"}
    cases = {
        "put_item": {
            "plain": put(primary),
            "wrapped, flag off": put(off),
            "flag off, journal": put(off_journaled),
            "wrapped, flag on": put(on),
            "flag on, single_writer": put(single),
            "flag on, single_writer, shadow_timeout=None": put(inline_single),
            "flag on, journal": put(journaled),
            "flag on, journal, single_writer": put(journaled_single),
            "two plain calls": two(put(primary)),
        },
        "update_item": {
            "plain": update(primary),
            "wrapped, flag off": update(off),
            "wrapped, flag on": update(on),
            "flag on, single_writer": update(single),
            "flag on, single_writer, shadow_timeout=None": update(inline_single),
            "flag on, journal": update(journaled),
            "flag on, journal, single_writer": update(journaled_single),
            "two plain calls": two(update(primary)),
        },
        "update_item UPDATED_OLD": {
            "plain": update(primary, **old),
            "wrapped, flag off": update(off, **old),
            "wrapped, flag on": update(on, **old),
            "flag on, single_writer": update(single, **old),
            "flag on, journal": update(journaled, **old),
            "flag on, journal, single_writer": update(journaled_single, **old),
            "two plain calls": two(update(primary, **old)),
        },
        "batch_write_item": {
            "plain": batch(primary),
            "wrapped, flag off": batch(off),
            "wrapped, flag on": batch(on),
            "flag on, single_writer": batch(single),
            "background": batch_background(False),
            "background, single_writer": batch_background(True),
            "two plain calls": two_batches,
        },
    }
    return cases, p_sent, s_sent


def check_cases(cases: dict[str, dict[str, Case]]) -> None:
    """Every case went through botocore, got the canned answer, and saw what plain boto3 sees."""
    for operation, group in cases.items():
        plain = group["plain"]()
        for name, case in group.items():
            response = case()
            if response["ResponseMetadata"]["HTTPStatusCode"] != 200:
                raise SystemExit(f"{operation} {name!r}: no canned response: {response!r}")
            if set(response) != set(plain):
                raise SystemExit(f"{operation} {name!r}: {sorted(response)} != {sorted(plain)}")


FLAG_ON_CASES = (
    "wrapped, flag on",
    "flag on, single_writer",
    "background",
    "background, single_writer",
)
BATCH_TARGET = 2.2


def requests_per_call(
    cases: dict[str, dict[str, Case]], p_sent: Counter[str], s_sent: Counter[str]
) -> dict[str, tuple[str, str]]:
    """What one flag-on call sends to each side, e.g. ``("UpdateItem + GetItem", "PutItem")``,
    with the fleet check (default) and without it (``single_writer=True``), in background mode
    where the operation has such cases."""
    out = {}
    for operation, group in cases.items():
        for name in (n for n in FLAG_ON_CASES if n in group):
            p_sent.clear()
            s_sent.clear()
            group[name]()
            out[f"{operation}, {name}"] = (_show(p_sent), _show(s_sent))
    return out


def _show(sent: Counter[str]) -> str:
    return " + ".join(f"{n} {op}" if n > 1 else op for op, n in sent.items()) or "-"


def time_block(case: Case, calls: int) -> float:
    """CPU seconds per call of ``calls`` back-to-back calls.

    Process CPU time, not wall time: every case is pure CPU work here (no network, the shadow
    runs in the caller's thread), and CPU time is not inflated by other processes on a shared
    machine.
    """
    perf = time.process_time
    start = perf()
    for _ in range(calls):
        case()
    return (perf() - start) / calls


def measure(cases: dict[str, Case], calls: int, repeat: int) -> dict[str, list[float]]:
    """Run ``repeat`` rounds; in each, every case runs ``calls`` times, finely interleaved.

    A round runs the cases in chunks of ``_CHUNK`` calls, one chunk of each case after the
    other (in an order rotated per chunk), so that drift on a busy machine (other processes,
    frequency changes) hits every case alike; each case's time in the round is the sum of its
    chunks.
    """
    names = list(cases)
    results: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: caches, endpoint resolution, the key schema
        time_block(cases[name], max(calls // 10, 20))
    for _ in range(repeat):
        spent = dict.fromkeys(names, 0.0)
        gc.collect()
        for chunk_no in range(max(calls // _CHUNK, 1)):
            shift = chunk_no % len(names)
            for name in names[shift:] + names[:shift]:
                spent[name] += time_block(cases[name], _CHUNK)
        for name in names:
            results[name].append(spent[name] / max(calls // _CHUNK, 1))
    return results


class _NoopShadow:
    """Stands in for the shadow client: every call returns an empty response at once."""

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        return lambda **_: {}


def wrapper_only(calls: int) -> dict[str, float]:
    """CPU µs per call that the wrapper itself adds, with no botocore work on either side."""
    from dualwrite._dynamodb import operations as _dynamodb  # noqa: PLC0415 - the handlers, for an isolated measure

    sent: Counter[str] = Counter()
    primary = canned_client("AKIAPRIMARYBENCH0002", sent)
    shadow = canned_client("AKIASHADOWBENCH00002", sent)
    out: dict[str, float] = {}
    for flag in (False, True):
        wrapped = dualwrite.wrap(primary, shadow=shadow, flag=flag, journal=None)
        mirror = wrapped._self_mirror
        mirror.shadow = _NoopShadow()
        wrapped.put_item(TableName=TABLE, Item=ITEM)  # describes the table once

        def noop(**_: Any) -> dict[str, Any]:
            return {"Attributes": ITEM}

        put = {"TableName": TABLE, "Item": ITEM}
        update = {"TableName": TABLE, "Key": KEY, **UPDATE}
        for name, handler, params in (
            ("put_item", _dynamodb.HANDLERS["PutItem"], put),
            ("update_item", _dynamodb.HANDLERS["UpdateItem"], update),
        ):
            handler(mirror, noop, params, None)
            start = time.process_time()
            for _ in range(calls):
                handler(mirror, noop, params, None)
            spent = (time.process_time() - start) / calls
            start = time.process_time()
            for _ in range(calls):
                noop(**params)
            baseline = (time.process_time() - start) / calls
            out[f"{name}, flag {'on' if flag else 'off'}"] = (spent - baseline) * 1e6
    return out


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(
    all_results: dict[str, dict[str, list[float]]],
    sent: dict[str, tuple[str, str]],
    own: dict[str, float],
    calls: int,
    repeat: int,
) -> None:
    print(
        f"dualwrite {dualwrite.__version__}, Python {platform.python_version()}, "
        f"boto3 {boto3.__version__}, botocore {botocore.__version__}, "
        f"{platform.machine()}, {os.cpu_count() or '?'} CPUs"
    )
    print(
        f"canned 200 responses; {repeat} rounds x {calls} calls per case, interleaved in chunks "
        f"of {_CHUNK}; process CPU time, median of the per-round means (min beside it)"
    )
    print()
    print("| operation | case | µs/call (median) | µs/call (min) | ratio to plain |")
    print("| --- | --- | ---: | ---: | ---: |")
    medians: dict[str, dict[str, float]] = {}
    for operation, results in all_results.items():
        med = {name: statistics.median(values) for name, values in results.items()}
        medians[operation] = med
        for name, values in results.items():
            print(
                f"| {operation} | {name} | {med[name] * 1e6:.1f} | {min(values) * 1e6:.1f} | "
                f"{med[name] / med['plain']:.3f}x |"
            )
    print()
    print("| operation, case | requests to the primary | requests to the shadow |")
    print("| --- | --- | --- |")
    for operation, (p, s) in sent.items():
        print(f"| {operation} | {p} | {s} |")
    print()
    print("| the wrapper's own CPU | µs/call | share of a plain call |")
    print("| --- | ---: | ---: |")
    for name, micros in own.items():
        operation = name.split(",", 1)[0]
        plain = medians[operation]["plain"] * 1e6
        print(f"| {name} | {micros:.1f} | {micros / plain:.2%} |")
    print()
    print("| target | measured | verdict |")
    print("| --- | ---: | --- |")
    for operation, med in medians.items():
        ratio = med["wrapped, flag off"] / med["plain"]
        print(
            f"| {operation}: flag off <= {FLAG_OFF_TARGET:.2f}x plain | {ratio:.3f}x | "
            f"{verdict(ratio <= FLAG_OFF_TARGET)} |"
        )
    put_on = medians["put_item"]["wrapped, flag on"] / medians["put_item"]["plain"]
    print(
        f"| put_item: flag on <= {FLAG_ON_PUT_TARGET:.2f}x plain | {put_on:.3f}x | "
        f"{verdict(put_on <= FLAG_ON_PUT_TARGET)} |"
    )
    for operation in ("update_item", "update_item UPDATED_OLD"):
        med = medians[operation]
        print(
            f"| {operation}: flag on (no target; report) | "
            f"{med['wrapped, flag on'] / med['plain']:.3f}x | - |"
        )
    print(_batch_verdict(medians["batch_write_item"]))


# -- instruction counts (optional, needs valgrind) ------------------------------------------------


def report_instructions(cases: dict[str, dict[str, Case]], calls: int) -> None:
    """Instructions per call of every case: a figure other load on the machine cannot move."""
    if not _instructions.available():
        print("valgrind is not installed: no instruction counts")
        return
    print()
    print(
        f"Instructions per call (valgrind cachegrind, {calls} calls minus a run with none; "
        f"median of {_instructions.SEEDS} hash seed(s)):"
    )
    print()
    print("| operation | case | instructions/call | ratio to plain |")
    print("| --- | --- | ---: | ---: |")
    verdicts = []
    for operation, group in cases.items():
        per_call = {
            name: _instructions.per_call(
                __file__, f"{operation}|{name}", calls, f"{operation}|plain"
            )
            for name in group
        }
        for name, value in per_call.items():
            print(f"| {operation} | {name} | {value:,.0f} | {value / per_call['plain']:.3f}x |")
        if "wrapped, flag off" in per_call:
            off = per_call["wrapped, flag off"] / per_call["plain"]
            verdicts.append(
                _verdict(f"{operation}: flag off <= {FLAG_OFF_TARGET}x", off, FLAG_OFF_TARGET)
            )
        if operation == "put_item" and "wrapped, flag on" in per_call:
            on = per_call["wrapped, flag on"] / per_call["plain"]
            verdicts.append(
                _verdict(f"put_item: flag on <= {FLAG_ON_PUT_TARGET}x", on, FLAG_ON_PUT_TARGET)
            )
        if operation == "batch_write_item" and "background, single_writer" in per_call:
            verdicts.append(_batch_verdict(per_call))
    print()
    print("| target (instructions) | measured | verdict |")
    print("| --- | ---: | --- |")
    for line in verdicts:
        print(line)


def _batch_verdict(figures: dict[str, float]) -> str:
    ratio = figures["background, single_writer"] / figures["plain"]
    return _verdict(
        f"batch_write_item: background, single_writer <= {BATCH_TARGET}x", ratio, BATCH_TARGET
    )


def _verdict(target: str, measured: float, limit: float) -> str:
    return f"| {target} | {measured:.3f}x | {'PASS' if measured <= limit else 'MISS'} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="calls per case per round")
    parser.add_argument("--repeat", type=int, default=15, help="rounds")
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="also count instructions per call under valgrind, over N calls per case",
    )
    parser.add_argument(
        "--count-only",
        metavar="OPERATIONS",
        help="with --instructions N: count instructions for these operations only "
        "(comma-separated, e.g. put_item,batch_write_item), without the timed rounds",
    )
    parser.add_argument(
        "--cases",
        metavar="NAMES",
        help="with --count-only: count these cases only (semicolon-separated; plain always)",
    )
    parser.add_argument(
        "--hash-seeds",
        type=int,
        default=1,
        metavar="K",
        help="count each case with hash seeds 0..K-1 and report the median (default 1)",
    )
    parser.add_argument("--only", help=argparse.SUPPRESS)  # the valgrind child: one case
    args = parser.parse_args(argv)
    if args.hash_seeds < 1:
        parser.error("--hash-seeds must be at least 1")
    _instructions.SEEDS = args.hash_seeds
    cases, p_sent, s_sent = build_cases()
    if args.count_only and args.only is None:
        wanted = [name.strip() for name in args.count_only.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in cases]
        if unknown or not wanted:
            parser.error(f"unknown operation(s) {unknown}; the operations are: {', '.join(cases)}")
        if args.instructions < 1:
            parser.error("--count-only needs --instructions N (N >= 1)")
        chosen = {name: cases[name] for name in wanted}
        if args.cases:
            names = {"plain", *(n.strip() for n in args.cases.split(";") if n.strip())}
            missing = sorted(n for n in names if not any(n in group for group in chosen.values()))
            if missing:
                parser.error(f"unknown case(s) {missing}")
            chosen = {op: {n: c for n, c in g.items() if n in names} for op, g in chosen.items()}
        report_instructions(chosen, args.instructions)
        return 0
    if args.only is not None:
        operation, name = args.only.split("|", 1)
        # The warm-up of the operation's cases is the same in every run of the operation, so
        # the run with no calls (the baseline) takes it away.
        for case in cases[operation].values():
            time_block(case, 30)
        for _ in range(args.calls):
            cases[operation][name]()
        return 0
    if args.calls < 1 or args.repeat < 1:
        parser.error("--calls and --repeat must be at least 1")
    check_cases(cases)
    sent = requests_per_call(cases, p_sent, s_sent)
    results = {op: measure(group, args.calls, args.repeat) for op, group in cases.items()}
    own = wrapper_only(max(args.calls * 5, 2000))
    report(results, sent, own, args.calls, args.repeat)
    if args.instructions > 0:
        report_instructions(cases, args.instructions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
