"""``dualwrite demo --walkthrough``: one tenant through the migration playbook, on moto.

Tenant ``acme`` goes through every step of the playbook in ``docs/migration.md``: check,
dual-write (``Stage.DUAL_WRITE``), copy, diff until zero, cutover (``Stage.CUTOVER``), a rollback
drill back to ``DUAL_WRITE`` and forward again, and done (``Stage.DONE``). Tenant ``globex`` stays
``OFF`` throughout, to show that one tenant's stage never touches another's data.

The check, copy and diff steps run the same code as ``dualwrite check``, ``copy`` and ``diff``
(the command line's own option parser, account targets and engines). Every figure printed is
compared with a model of what each stage promises (which account holds which version of which
key, which events the writes make, which account serves a read); a figure that differs is
marked and makes the exit status 1. Only keys and counts are printed, never a body.
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TextIO

import attrs
import boto3

import dualwrite
from dualwrite import Stage
from dualwrite._core.errors import describe_error
from dualwrite._core.mirror import Mirror
from dualwrite._core.scan import Sink
from dualwrite._dynamodb.check import check_dynamodb
from dualwrite._offline.backfill import BackfillReport, RequestMeter, run
from dualwrite._s3.check import check_s3
from dualwrite.cli._backfill import build_job, open_pair
from dualwrite.cli._demo import SHADOW_ROLE, embedded_aws
from dualwrite.cli._parser import build_parser
from dualwrite.testing import RecordingHook

TENANT = "acme"
BYSTANDER = "globex"
BUCKET = "photos"
SHADOW_BUCKET = "photos-acct2"
TABLE = "orders"
PRIMARY_ACCOUNT = "123456789012"
SHADOW_ACCOUNT = SHADOW_ROLE.split(":")[4]
Account = Literal["primary", "shadow"]
ACCOUNTS: tuple[Account, ...] = ("primary", "shadow")
LABEL = {"primary": "old", "shadow": "new"}
_TARGETS_SHOWN = f"--names names.json --shadow-role-arn {SHADOW_ROLE}"

# The accounts a write reaches at each stage, the one written first (the owner) first.
_ROUTE: dict[Stage, tuple[str, ...]] = {
    Stage.OFF: ("primary",),
    Stage.DUAL_WRITE: ("primary", "shadow"),
    Stage.CUTOVER: ("shadow", "primary"),
    Stage.DONE: ("shadow",),
}


@attrs.frozen(kw_only=True)
class _Expected:
    """One mirrored write as the events should tell it."""

    stage: str
    service: str
    resource: str
    shadow_resource: str


def _show_groups(groups: Counter[_Expected]) -> list[str]:
    return sorted(
        f"{n} x {g.service} {g.stage}: {g.resource} -> {g.shadow_resource}"
        for g, n in groups.items()
    )


class _Model:
    """What each account should hold, key by key, given the stage of each write.

    A write is applied to the owner of its stage first; a mirrored write leaves the other account
    with the owner's resulting state (dualwrite converges states, it does not replay requests).
    """

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, object]] = {
            (account, service): {} for account in ACCOUNTS for service in ("s3", "dynamodb")
        }
        self.mirrored: list[_Expected] = []

    def apply(
        self,
        stage: Stage,
        service: str,
        key: str,
        change: Callable[[object | None], object | None],
    ) -> None:
        route = _ROUTE[stage]
        owner = self.store[(route[0], service)]
        value = change(owner.get(key))
        for account in route:
            store = self.store[(account, service)]
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
        if len(route) == 2:
            names = {"s3": (BUCKET, SHADOW_BUCKET), "dynamodb": (TABLE, TABLE)}[service]
            first, second = names if route[0] == "primary" else names[::-1]
            self.mirrored.append(
                _Expected(
                    stage=stage.value, service=service, resource=first, shadow_resource=second
                )
            )

    def keys(self, account: str, service: str, tenant: str) -> dict[str, object]:
        prefix = f"{tenant}/"
        return {k: v for k, v in self.store[(account, service)].items() if k.startswith(prefix)}

    def diff(self, service: str, tenant: str) -> dict[str, int]:
        old, new = self.keys("primary", service, tenant), self.keys("shadow", service, tenant)
        return {
            "missing_in_shadow": len(old.keys() - new.keys()),
            "extra_in_shadow": len(new.keys() - old.keys()),
            "different": sum(1 for k in old.keys() & new.keys() if old[k] != new[k]),
            "equal": sum(1 for k in old.keys() & new.keys() if old[k] == new[k]),
        }


class _Calls:
    """Counts the API calls each account's client receives, by operation."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()  # background workers call the clients too

    def attach(self, client: Any, account: str) -> None:
        def count(event_name: str, **_: Any) -> None:
            with self._lock:
                self.counts[(account, event_name.rsplit(".", 1)[-1])] += 1

        client.meta.events.register("before-call", count)

    def served(self, operation: str, call: Callable[[], object]) -> str:
        """Which account served ``call`` (the one whose ``operation`` count went up)."""
        with self._lock:
            before = dict(self.counts)
        call()
        moved = [a for a in ACCOUNTS if self.counts[(a, operation)] > before.get((a, operation), 0)]
        return "+".join(LABEL[a] for a in moved) or "neither"


class _Walk:
    """The walkthrough's state: accounts, writer, wrapped clients, model, and what went wrong."""

    def __init__(
        self,
        primary: boto3.Session,
        shadow: boto3.Session,
        workdir: Path,
        *,
        dynamodb: bool,
        mode: str,
        out: TextIO,
    ) -> None:
        self.out = out
        self.dynamodb = dynamodb
        self.failures: list[str] = []
        self.step = "setup"
        self.mark = 0
        self.pairs: dict[str, tuple[Mirror, RequestMeter]] = {}
        self.model = _Model()
        self.calls = _Calls()
        self.recorder = RecordingHook()
        self.stages: dict[str, Stage] = {TENANT: Stage.OFF, BYSTANDER: Stage.OFF}
        self.seq = 0
        self.names_file = workdir / "names.json"
        self.names_file.write_text(
            json.dumps({"s3": {BUCKET: SHADOW_BUCKET}, "dynamodb": {TABLE: TABLE}}),
            encoding="utf-8",
        )
        self.journal = workdir / "journal.db"
        self.inspect: dict[str, tuple[Any, Any]] = {
            "primary": (primary.client("s3"), primary.client("dynamodb")),
            "shadow": (shadow.client("s3"), shadow.client("dynamodb")),
        }
        p_s3, s_s3 = primary.client("s3"), shadow.client("s3")
        p_s3.create_bucket(Bucket=BUCKET)
        # As the check recommends: the new account owns every object written to its bucket.
        s_s3.create_bucket(Bucket=SHADOW_BUCKET, ObjectOwnership="BucketOwnerEnforced")
        self.calls.attach(p_s3, "primary")
        self.calls.attach(s_s3, "shadow")
        self.writer = dualwrite.DualWriter(
            stage=self._stage_of_write,
            hooks=[self.recorder],
            mode=mode,
            journal=str(self.journal),
            # The walkthrough checks every event it expects. Its shadow is in-process moto,
            # which cannot hang, but on a busy machine may take longer than the 2 s default
            # bound: that would be a timeout event the walkthrough did not plan for.
            shadow_timeout=None,
        )
        self.s3 = self.writer.wrap(p_s3, shadow=s_s3, names={BUCKET: SHADOW_BUCKET})
        self.orders: Any = None
        if dynamodb:
            tables = []
            for session, account in ((primary, "primary"), (shadow, "shadow")):
                client = session.client("dynamodb")
                client.create_table(
                    TableName=TABLE,
                    KeySchema=[
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    AttributeDefinitions=[
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "S"},
                    ],
                    BillingMode="PAY_PER_REQUEST",
                )
                table = session.resource("dynamodb").Table(TABLE)
                self.calls.attach(table.meta.client, account)
                tables.append(table)
            self.orders = self.writer.wrap(tables[0], shadow=tables[1])

    # -- the stage callback and the checks -------------------------------------------------------

    def _stage_of_write(self, write: dualwrite.Write) -> Stage:
        return self.stages.get(write.tenant or "", Stage.OFF)

    def expect(self, what: str, got: object, want: object) -> bool:
        """Record a wrong figure; return whether it was right."""
        if got == want:
            return True
        self.failures.append(f"{what}: got {got}, expected {want}")
        print(f"    !! {what}: got {got}, expected {want}", file=self.out)
        return False

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def heading(self, step: str, text: str) -> None:
        """Start a step (named in the failure message if it cannot finish)."""
        self.step = step
        self.say(f"\n== {step}{': ' if step[0].isdigit() else ' '}{text} ==")

    # -- writes through the wrapped clients ------------------------------------------------------

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def put_object(self, tenant: str, name: str) -> None:
        key, version = f"{tenant}/{name}", self._next()
        with dualwrite.tenant(tenant):
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=f"{key} v{version}\n".encode())
        self.model.apply(self.stages[tenant], "s3", key, lambda _: version)

    def delete_object(self, tenant: str, name: str) -> None:
        key = f"{tenant}/{name}"
        with dualwrite.tenant(tenant):
            self.s3.delete_object(Bucket=BUCKET, Key=key)
        self.model.apply(self.stages[tenant], "s3", key, lambda _: None)

    def put_item(self, tenant: str, sk: str) -> None:
        if not self.dynamodb:
            return
        version = self._next()
        with dualwrite.tenant(tenant):
            self.orders.put_item(Item={"pk": tenant, "sk": sk, "v": version})
        self.model.apply(self.stages[tenant], "dynamodb", f"{tenant}/{sk}", lambda _: version)

    def add_visit(self, tenant: str) -> None:
        """``ADD visits :one``: a counter, where replaying the request would be wrong."""
        if not self.dynamodb:
            return
        with dualwrite.tenant(tenant):
            self.orders.update_item(
                Key={"pk": tenant, "sk": "visits"},
                UpdateExpression="ADD visits :one",
                ExpressionAttributeValues={":one": 1},
            )

        def bump(value: object | None) -> object:
            return ("visits", (value[1] if isinstance(value, tuple) else 0) + 1)

        self.model.apply(self.stages[tenant], "dynamodb", f"{tenant}/visits", bump)

    # -- what the accounts hold -------------------------------------------------------------------

    def snapshot(self, account: str, service: str, tenant: str) -> dict[str, str]:
        """What ``account`` holds of ``tenant``: key -> ETag (S3) or the item's attributes."""
        s3, ddb = self.inspect[account]
        if service == "s3":
            bucket = BUCKET if account == "primary" else SHADOW_BUCKET
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{tenant}/")
            return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}
        pages = ddb.get_paginator("query").paginate(
            TableName=TABLE,
            KeyConditionExpression="pk = :t",
            ExpressionAttributeValues={":t": {"S": tenant}},
            ConsistentRead=True,
        )
        return {
            f"{tenant}/{item['sk']['S']}": json.dumps(item, sort_keys=True)
            for page in pages
            for item in page["Items"]
        }

    def holdings(self, account: str, service: str, tenant: str) -> set[str]:
        """The keys ``account`` holds of ``tenant``."""
        return set(self.snapshot(account, service, tenant))

    def services(self) -> tuple[str, ...]:
        return ("s3", "dynamodb") if self.dynamodb else ("s3",)

    def show_counts(self) -> None:
        """Keys per account and tenant, checked against the model (key by key)."""
        self.writer.flush()
        parts = []
        for service in self.services():
            cells = []
            for tenant in (TENANT, BYSTANDER):
                figures = []
                for account in ACCOUNTS:
                    held = self.holdings(account, service, tenant)
                    want = set(self.model.keys(account, service, tenant))
                    figures.append(len(held))
                    if held != want:
                        self.expect(
                            f"{service} {tenant} keys in the {LABEL[account]} account",
                            sorted(held),
                            sorted(want),
                        )
                cells.append(f"{tenant} {figures[0]} | {figures[1]}")
            parts.append(f"{service} {', '.join(cells)}")
        self.say(f"  keys (old | new): {'; '.join(parts)}")

    def show_events(self) -> None:
        """The events since the last call, grouped; checked against the mirrored writes."""
        self.writer.flush()
        events = self.recorder.events[self.mark :]
        self.mark += len(events)
        expected = self.model.mirrored
        kinds = Counter(e.kind for e in events)
        groups: Counter[_Expected] = Counter()
        for event in events:
            w = event.write
            stage = getattr(w, "stage", None)
            groups[
                _Expected(
                    stage=getattr(stage, "value", str(stage)),
                    service=w.service,
                    resource=w.resource,
                    shadow_resource=str(w.shadow_resource),
                )
            ] += 1
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none"
        self.say(f"  events: {summary}")
        for group, n in sorted(groups.items(), key=lambda g: (g[0].stage, g[0].service)):
            self.say(
                f"    {n} x {group.service:<8} stage {group.stage:<10} "
                f"first {group.resource} -> then {group.shadow_resource}"
            )
        self.expect(
            "events by kind", dict(kinds), {"shadow_written": len(expected)} if expected else {}
        )
        self.expect(
            "mirrored writes (count x service stage: first -> then)",
            _show_groups(groups),
            _show_groups(Counter(expected)),
        )
        tenants = {e.write.tenant for e in events}
        self.expect("tenants in events", tenants - {TENANT}, set())
        self.model.mirrored = []

    def show_reads(self, tenant: str, name: str) -> None:
        """Read one object (and one item) of ``tenant``; say which account served each."""
        owner = LABEL[self.stages[tenant].owner]
        key = f"{tenant}/{name}"

        def get_object() -> None:
            with dualwrite.tenant(tenant):
                self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

        served = self.calls.served("GetObject", get_object)
        line = f"  reads: get_object {key}: {served} account"
        self.expect(f"account serving get_object {key}", served, owner)
        if self.dynamodb:

            def get_item() -> None:
                with dualwrite.tenant(tenant):
                    self.orders.get_item(Key={"pk": tenant, "sk": "visits"}, ConsistentRead=True)

            served = self.calls.served("GetItem", get_item)
            line += f"; get_item {tenant}/visits: {served} account"
            self.expect(f"account serving get_item {tenant}/visits", served, owner)
        self.say(line)

    def show_jobs(self) -> None:
        """``stage_of``, ``runs_here`` and a guarded scheduled job, for both tenants."""
        ran: list[str] = []

        @self.writer.guard(account="primary", tenant="tenant_id")
        def nightly_in_old_account(tenant_id: str) -> None:
            ran.append(f"{tenant_id}@old")

        @self.writer.guard(account="shadow", tenant="tenant_id")
        def nightly_in_new_account(tenant_id: str) -> None:
            ran.append(f"{tenant_id}@new")

        cells = []
        for tenant in (TENANT, BYSTANDER):
            stage = self.writer.stage_of(tenant)
            self.expect(f"stage_of({tenant})", stage, self.stages[tenant])
            here = {a: self.writer.runs_here(tenant, account=a) for a in ACCOUNTS}
            for account in ACCOUNTS:
                self.expect(
                    f"runs_here({tenant!r}, account={account!r})",
                    here[account],
                    self.stages[tenant].owner == account,
                )
            nightly_in_old_account(tenant_id=tenant)
            nightly_in_new_account(tenant_id=tenant)
            cells.append(
                f"{tenant} ({stage.value}) primary={here['primary']} shadow={here['shadow']}"
            )
        want = [f"{t}@{LABEL[self.stages[t].owner]}" for t in (TENANT, BYSTANDER)]
        self.expect("guarded nightly jobs that ran", sorted(ran), sorted(want))
        self.say(f"  runs_here: {'; '.join(cells)}")
        self.say(f"  @guard: the nightly job ran for {', '.join(ran)}")

    # -- the command line's engines ---------------------------------------------------------------

    def _args(self, *argv: str) -> Any:
        targets = ["--names", str(self.names_file), "--shadow-role-arn", SHADOW_ROLE]
        return build_parser().parse_args([*argv, *targets])

    def _pair(self, args: Any) -> tuple[Mirror, RequestMeter]:
        """The command line's account pair for ``args.service``, opened once per service."""
        if args.service not in self.pairs:
            self.pairs[args.service] = open_pair(args, workers=8)
        return self.pairs[args.service]

    def check(self, service: str) -> None:
        where = ["--bucket", BUCKET] if service == "s3" else ["--table", TABLE]
        args = self._args("check", service, *where)
        self.say(f"  $ dualwrite check {service} {' '.join(where)} $T")
        mirror, _ = self._pair(args)
        if service == "s3":
            checks = check_s3(mirror, args.bucket, probe_prefix=args.probe_prefix)
        else:
            checks = check_dynamodb(mirror, args.table)
        statuses = Counter(c.status for c in checks)
        verdict = "FAILED" if statuses["FAIL"] else "ready"
        self.say(
            f"    {verdict}: {statuses['PASS']} passed, {statuses['FAIL']} failed, "
            f"{statuses['WARN']} warning(s), {statuses['INFO']} info"
        )
        for check in checks:
            if check.status in ("FAIL", "WARN"):
                self.say(f"    {check.line()}")
        self.expect(f"check {service} failures", statuses["FAIL"], 0)

    def _scope(self, service: str, tenant: str) -> list[str]:
        if service == "s3":
            return ["--bucket", BUCKET, "--prefix", f"{tenant}/"]
        return ["--table", TABLE, "--partition-value", tenant]

    def _engine(self, command: str, service: str, tenant: str) -> tuple[BackfillReport, str]:
        scope = self._scope(service, tenant)
        args = self._args(command, service, *scope, "--workers", "4", "--no-progress")
        mirror, meter = self._pair(args)
        job = build_job(args, mirror, command)
        lines = io.StringIO()
        report = run(job, workers=args.workers, sink=Sink(lines), meter=meter)
        self.expect(f"{command} {service} {tenant} failed keys", report.failed, 0)
        return report, f"$ dualwrite {command} {service} {' '.join(scope)} $T"

    def copy(self, service: str, tenant: str) -> None:
        want = self.model.diff(service, tenant)
        report, shown = self._engine("copy", service, tenant)
        self.say(f"  {shown}")
        self.say(
            f"    {report.compared} compared: {report.copied} copied, {report.equal} equal, "
            f"{report.skipped_changed} skipped (changed meanwhile), {report.failed} failed"
        )
        self.expect(
            f"copy {service} {tenant} copied",
            report.copied,
            want["missing_in_shadow"] + want["different"],
        )
        self.expect(f"copy {service} {tenant} equal", report.equal, want["equal"])
        # The copy made the new account equal for these keys: so should the model.
        for key, value in self.model.keys("primary", service, tenant).items():
            self.model.store[("shadow", service)][key] = value

    def diff(self, service: str, tenant: str, note: str = "") -> int:
        want = self.model.diff(service, tenant)
        report, shown = self._engine("diff", service, tenant)
        found = {
            "missing_in_shadow": report.missing_in_shadow,
            "extra_in_shadow": report.extra_in_shadow,
            "different": report.different,
        }
        detail = ", ".join(f"{n} {kind}" for kind, n in found.items() if n)
        self.say(f"  {shown}")
        self.say(
            f"    {report.differences} difference(s)"
            + (f" ({detail})" if detail else "")
            + f" in {report.compared} compared"
        )
        if note:
            self.say(f"    {note}")
        self.expect(f"diff {service} {tenant}", found, {k: want[k] for k in found})
        return report.differences

    # -- stage transitions ------------------------------------------------------------------------

    def flip(self, tenant: str, stage: Stage) -> None:
        """Move ``tenant`` to ``stage``, after the checks the playbook asks for."""
        if self.stages[tenant].mirrored:
            flushed = self.writer.flush(timeout=60)
            journal = self.writer.journal
            entries = journal.count() if journal is not None else 0
            repaired = self.writer.repair()
            self.say(
                f"  before the flip: flush() -> {flushed}; journal: {entries} entries; "
                f"repair(): {repaired.keys} keys"
            )
            self.expect("flush() before the flip", flushed, True)
            self.expect("journal entries before the flip", entries, 0)
        previous = self.stages[tenant]
        self.stages[tenant] = stage
        self.say(f"  stage of {tenant}: {previous.value} -> {stage.value}")


def _before(walk: _Walk) -> None:
    walk.heading("before", f"the migration: {TENANT} and {BYSTANDER} at stage off (old only)")
    for tenant in (TENANT, BYSTANDER):
        for n in range(1, 5 if tenant == TENANT else 3):
            walk.put_object(tenant, f"legacy-{n}.txt")
            walk.put_item(tenant, f"order#{n}")
        walk.add_visit(tenant)
    walk.show_events()
    walk.show_counts()
    walk.show_jobs()


def _check(walk: _Walk) -> None:
    walk.heading("0. check", "the new account, once per bucket and table")
    for service in walk.services():
        walk.check(service)


def _dual_write(walk: _Walk) -> None:
    walk.heading("1. dual-write", f"{TENANT} -> dual_write (old account first, new one mirrored)")
    walk.flip(TENANT, Stage.DUAL_WRITE)
    walk.put_object(TENANT, "new-1.txt")
    walk.put_object(TENANT, "new-2.txt")
    walk.put_object(TENANT, "legacy-1.txt")  # an old object, rewritten: both accounts now
    walk.put_item(TENANT, "order#5")
    walk.add_visit(TENANT)  # the item exists on the old account only: the new one converges
    walk.put_object(BYSTANDER, "new-1.txt")
    walk.put_item(BYSTANDER, "order#3")
    walk.show_events()
    walk.show_counts()
    walk.show_reads(TENANT, "new-1.txt")
    walk.show_jobs()


def _copy(walk: _Walk) -> None:
    walk.heading("2. copy", "what existed before (backfill)")
    for service in walk.services():
        walk.copy(service, TENANT)
    walk.show_counts()


def _diff(walk: _Walk) -> None:
    walk.heading("3. diff", "until zero")
    for service in walk.services():
        walk.diff(service, TENANT)
    walk.diff("s3", BYSTANDER, note=f"({BYSTANDER} is off: not migrating, as expected)")


def _cutover(walk: _Walk) -> None:
    walk.heading("4. cutover", f"{TENANT} -> cutover (new account first, old one mirrored)")
    walk.flip(TENANT, Stage.CUTOVER)
    walk.put_object(TENANT, "cutover-1.txt")
    walk.put_object(TENANT, "new-1.txt")
    walk.delete_object(TENANT, "legacy-4.txt")
    walk.put_item(TENANT, "order#6")
    walk.add_visit(TENANT)
    walk.put_object(BYSTANDER, "new-2.txt")
    walk.show_events()
    walk.show_counts()
    walk.show_reads(TENANT, "cutover-1.txt")
    walk.show_reads(BYSTANDER, "new-2.txt")
    walk.show_jobs()


def _rollback(walk: _Walk) -> None:
    walk.heading("5. rollback drill", f"{TENANT} -> dual_write, then cutover again")
    walk.flip(TENANT, Stage.DUAL_WRITE)
    for service in walk.services():
        walk.diff(service, TENANT, note="(the old account has every write made during cutover)")
    walk.show_reads(TENANT, "cutover-1.txt")
    walk.put_object(TENANT, "rollback-1.txt")
    walk.add_visit(TENANT)
    walk.show_events()
    walk.show_jobs()
    walk.flip(TENANT, Stage.CUTOVER)
    walk.put_object(TENANT, "cutover-2.txt")
    walk.add_visit(TENANT)
    walk.show_events()
    walk.show_counts()
    for service in walk.services():
        walk.diff(service, TENANT)
    walk.show_reads(TENANT, "rollback-1.txt")


def _done(walk: _Walk) -> None:
    walk.heading("6. done", f"{TENANT} -> done (new account only)")
    walk.flip(TENANT, Stage.DONE)
    before = {s: walk.snapshot("primary", s, TENANT) for s in walk.services()}
    walk.put_object(TENANT, "done-1.txt")
    walk.put_object(TENANT, "new-2.txt")
    walk.delete_object(TENANT, "cutover-1.txt")
    walk.put_item(TENANT, "order#7")
    walk.add_visit(TENANT)
    walk.show_events()
    walk.show_counts()
    for service in walk.services():
        after = walk.snapshot("primary", service, TENANT)
        changed = sorted(
            k
            for k in before[service].keys() | after.keys()
            if before[service].get(k) != after.get(k)
        )
        walk.say(
            f"  old account, {service}: {len(changed)} of {len(after)} {TENANT} keys changed "
            "since done"
        )
        walk.expect(
            f"{service} keys of {TENANT} changed in the old account after done", changed, []
        )
    for service in walk.services():
        walk.diff(service, TENANT, note="(the old account no longer follows: expected)")
    walk.show_reads(TENANT, "done-1.txt")
    walk.show_jobs()


STEPS = (_before, _check, _dual_write, _copy, _diff, _cutover, _rollback, _done)
"""The playbook, in order."""


def run_walkthrough(*, dynamodb: bool = True, mode: str = "background", out: TextIO) -> int:
    """Walk tenant ``acme`` through the playbook on in-process moto; return the exit code.

    Args:
        dynamodb: include the DynamoDB table (``False``: S3 only).
        mode: the writer's mode, ``"background"`` (the default: the playbook's flushes matter)
            or ``"sync"``.
        out: where to print.

    Returns:
        0 when every figure was as the playbook promises, 1 otherwise.
    """
    failures: list[str] = []
    with embedded_aws() as (primary, shadow), tempfile.TemporaryDirectory() as tmp:
        print(
            f"dualwrite {dualwrite.__version__} walkthrough: one tenant through the playbook, "
            "on in-process moto",
            file=out,
        )
        print(
            f"  old account {PRIMARY_ACCOUNT} (wrapped as primary): s3 {BUCKET}"
            + (f", dynamodb {TABLE}" if dynamodb else ""),
            file=out,
        )
        print(
            f"  new account {SHADOW_ACCOUNT} (wrapped as shadow):  s3 {SHADOW_BUCKET}"
            + (f", dynamodb {TABLE}" if dynamodb else ""),
            file=out,
        )
        print(
            f"  {TENANT} migrates; {BYSTANDER} stays off throughout; writer mode={mode}",
            file=out,
        )
        print(f'  T="{_TARGETS_SHOWN}"', file=out)
        walk: _Walk | None = None
        try:
            walk = _Walk(primary, shadow, Path(tmp), dynamodb=dynamodb, mode=mode, out=out)
            for step in STEPS:
                step(walk)
            failures = walk.failures
        except Exception as exc:  # noqa: BLE001 - reported as the walkthrough's failure
            info = describe_error(exc)
            where = walk.step if walk is not None else "setup"
            failures = [*(walk.failures if walk else []), f"{where}: {info.type}: {info.message}"]
        finally:
            if walk is not None:
                walk.writer.close()
    if failures:
        print(f"walkthrough FAILED: {len(failures)} figure(s) not as expected", file=out)
        for failure in failures:
            print(f"  {failure}", file=out)
        return 1
    print("walkthrough OK: every figure as the playbook expects", file=out)
    return 0
