"""Ready-made hooks.

A hook is any callable taking one :class:`dualwrite.events.Event`; pass a list of them as
``DualWriter(hooks=[...])``. Exceptions a hook raises are logged and otherwise ignored.
"""

from __future__ import annotations

import bisect
import logging
import threading

import attrs

from dualwrite.events import Event, Followed, NoTenant, PresignedWrite, ShadowFailed, ShadowWritten
from dualwrite.exceptions import ConfigurationError

__all__ = ["DEFAULT_BUCKETS", "Histogram", "LoggingHook", "MetricsHook", "MetricsSnapshot"]


class LoggingHook:
    """Log every event through :mod:`logging`.

    ``shadow_written`` is logged at ``success_level`` (DEBUG by default), every other kind at
    ``problem_level`` (WARNING). The line names the kind, tenant, operation, resources and key,
    plus the event's own fields; it never holds a body, an SSE-C key or a credential, because
    events never do.

    Args:
        logger: the logger to use; ``logging.getLogger("dualwrite")`` by default.
        success_level: level for ``shadow_written``.
        problem_level: level for ``shadow_failed``, ``mismatch``, ``unsupported`` and
            ``flag_failed``.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        success_level: int = logging.DEBUG,
        problem_level: int = logging.WARNING,
    ) -> None:
        self.logger = logger if logger is not None else logging.getLogger("dualwrite")
        self.success_level = success_level
        self.problem_level = problem_level

    def __call__(self, event: Event) -> None:
        """Log ``event``."""
        # A write without a tenant is warned about once per process by the library itself;
        # logging each one at WARNING would flood the log of a service that never sets one.
        # A presign and a followed key that converged are routine, like a shadow write.
        quiet = isinstance(event, (ShadowWritten, NoTenant, PresignedWrite)) or (
            isinstance(event, Followed) and event.outcome != "failed"
        )
        level = self.success_level if quiet else self.problem_level
        if not self.logger.isEnabledFor(level):
            return
        w = event.write
        extra = {
            name: value for name, value in _fields(event).items() if name not in ("write", "at")
        }
        details = " ".join(f"{name}={value!r}" for name, value in extra.items())
        self.logger.log(
            level,
            "dualwrite %s tenant=%r %s.%s %s -> %s key=%r %s",
            event.kind,
            w.tenant,
            w.service,
            w.operation,
            w.resource,
            w.shadow_resource,
            w.key,
            details,
        )

    def __repr__(self) -> str:
        return f"LoggingHook(logger={self.logger.name!r})"


def _fields(event: Event) -> dict[str, object]:
    return attrs.asdict(event, recurse=False)


DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Histogram bucket upper bounds, in seconds (the last bucket is everything above)."""

OUTCOMES: dict[str, str] = {
    "shadow_written": "written",
    "shadow_failed": "failed",
    "mismatch": "mismatch",
    "unsupported": "unsupported",
    "flag_failed": "flag_failed",
    "circuit_opened": "circuit_opened",
    "circuit_closed": "circuit_closed",
    "journal_failed": "journal_failed",
    "no_tenant": "no_tenant",
    "presigned_write": "presigned",
    "followed": "followed",
}
"""The ``outcome`` label of each event kind."""


@attrs.frozen(kw_only=True)
class Histogram:
    """Latency or lag observations, bucketed.

    Attributes:
        bounds: the buckets' upper bounds in seconds.
        counts: observations per bucket; one more than ``bounds`` (the overflow bucket).
        count: observations in all.
        sum: their total, in seconds.
        min: the smallest, or 0.0 when empty.
        max: the largest, or 0.0 when empty.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    sum: float
    min: float
    max: float

    def quantile(self, q: float) -> float:
        """Estimate the ``q`` quantile (0..1) as the upper bound of the bucket holding it."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for bound, n in zip((*self.bounds, self.max), self.counts, strict=True):
            seen += n
            if seen >= rank and n:
                return min(bound, self.max)
        return self.max


@attrs.frozen(kw_only=True)
class MetricsSnapshot:
    """A copy of a :class:`MetricsHook`'s figures at one moment.

    Attributes:
        counts: ``{(service, operation, outcome[, stage][, tenant]): n}``, the stage only with
            ``stage_label=True`` and the tenant only with ``tenant_label=True``.
        latency: shadow-call latency per ``(service, operation)``.
        lag: primary-ack-to-shadow-ack lag per ``(service, operation)``.
    """

    counts: dict[tuple[str, ...], int]
    latency: dict[tuple[str, str], Histogram]
    lag: dict[tuple[str, str], Histogram]

    def total(self, outcome: str, service: str | None = None) -> int:
        """Sum of the counts of ``outcome`` (e.g. ``"failed"``), optionally for one service."""
        return sum(
            n
            for labels, n in self.counts.items()
            if labels[2] == outcome and (service is None or labels[0] == service)
        )


class _Series:
    __slots__ = ("bounds", "count", "counts", "max", "min", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0
        self.min = 0.0
        self.max = 0.0

    def add(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.min = value if not self.count else min(self.min, value)
        self.max = value if not self.count else max(self.max, value)
        self.count += 1
        self.sum += value

    def freeze(self) -> Histogram:
        return Histogram(
            bounds=self.bounds,
            counts=tuple(self.counts),
            count=self.count,
            sum=self.sum,
            min=self.min,
            max=self.max,
        )


class MetricsHook:
    """Count shadow writes by outcome and keep latency and lag histograms, in process.

    Labels are the service, the operation and the outcome (``written``, ``failed``,
    ``mismatch``, ``unsupported``, ``flag_failed``, ``circuit_opened``, ``circuit_closed``,
    ``journal_failed``, ``no_tenant``, ``presigned``, and for keys written outside the wrapper
    ``followed_equal``, ``followed_copied``, ``followed_deleted``, ``followed_skipped``,
    ``followed_failed``);
    the tenant is added only with ``tenant_label=True`` (each tenant is a new series). No label
    ever holds a key, a body or a secret. Read the figures with :meth:`snapshot`.

    With migration stages, ``stage_label=True`` adds the write's stage (``"dual_write"``,
    ``"cutover"``, ...; ``""`` without a ``stage=`` callback) after the outcome: at ``cutover``
    the shadow written is the old account, so its health is told apart from the new one's.

    Args:
        tenant_label: add the tenant to the counters' labels.
        stage_label: add the stage to the counters' labels (four values at most).
        buckets: histogram bucket upper bounds, in seconds, ascending.
    """

    def __init__(
        self,
        *,
        tenant_label: bool = False,
        stage_label: bool = False,
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    ) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            msg = f"buckets must be ascending distinct seconds; got {buckets!r}"
            raise ConfigurationError(msg)
        self.tenant_label = tenant_label
        self.stage_label = stage_label
        # Ask the writer for no_tenant events (not sent to hooks that do not ask).
        self.no_tenant = True
        self.buckets = tuple(float(b) for b in buckets)
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, ...], int] = {}
        self._latency: dict[tuple[str, str], _Series] = {}
        self._lag: dict[tuple[str, str], _Series] = {}

    def __call__(self, event: Event) -> None:
        """Count ``event`` and, for ``shadow_written``/``shadow_failed``, time it."""
        outcome = OUTCOMES.get(event.kind)
        if outcome is None:
            return
        if isinstance(event, Followed):  # followed_equal, followed_copied, followed_failed...
            outcome = f"followed_{event.outcome}"
        w = event.write
        labels: tuple[str, ...] = (w.service, w.operation, outcome)
        if self.stage_label:
            labels = (*labels, w.stage.value if w.stage is not None else "")
        if self.tenant_label:
            labels = (*labels, w.tenant or "")
        series = (w.service, w.operation)
        with self._lock:
            self._counts[labels] = self._counts.get(labels, 0) + 1
            if isinstance(event, (ShadowWritten, ShadowFailed)) and event.latency:
                self._series(self._latency, series).add(event.latency)
            if isinstance(event, ShadowWritten):
                self._series(self._lag, series).add(event.lag)

    def _series(self, table: dict[tuple[str, str], _Series], key: tuple[str, str]) -> _Series:
        found = table.get(key)
        if found is None:
            found = table[key] = _Series(self.buckets)
        return found

    def snapshot(self) -> MetricsSnapshot:
        """Return a consistent copy of the figures so far."""
        with self._lock:
            return MetricsSnapshot(
                counts=dict(self._counts),
                latency={k: s.freeze() for k, s in self._latency.items()},
                lag={k: s.freeze() for k, s in self._lag.items()},
            )

    def reset(self) -> None:
        """Forget every figure."""
        with self._lock:
            self._counts.clear()
            self._latency.clear()
            self._lag.clear()

    def __repr__(self) -> str:
        return f"MetricsHook(tenant_label={self.tenant_label}, stage_label={self.stage_label})"
