"""Export dualwrite's metrics through OpenTelemetry (the ``otel`` extra).

``pip install 'dualwrite[otel]'``, then::

    from dualwrite.otel import OpenTelemetryHook
    writer = dualwrite.DualWriter(flag=flag, hooks=[OpenTelemetryHook()])

Instruments (the same figures as :class:`dualwrite.hooks.MetricsHook`):

* ``dualwrite.shadow.writes`` (counter, ``{write}``): one per event, with attributes
  ``dualwrite.service``, ``dualwrite.operation``, ``dualwrite.outcome`` (and ``dualwrite.stage``
  only with ``stage_label=True``, ``dualwrite.tenant`` only with ``tenant_label=True``);
* ``dualwrite.shadow.latency`` (histogram, ``s``): duration of the shadow call;
* ``dualwrite.shadow.lag`` (histogram, ``s``): from the primary's acknowledgement to the
  shadow's.

No attribute holds a key, a body or a secret.
"""

from __future__ import annotations

from typing import Any

from dualwrite.events import Event, ShadowFailed, ShadowWritten
from dualwrite.hooks import OUTCOMES

try:
    from opentelemetry import metrics
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    msg = "dualwrite.otel needs OpenTelemetry: pip install 'dualwrite[otel]'"
    raise ImportError(msg) from exc

__all__ = ["OpenTelemetryHook"]


class OpenTelemetryHook:
    """A hook recording every event as OpenTelemetry metrics.

    Args:
        meter_provider: the provider to take the meter from; the global one by default.
        tenant_label: add the tenant as an attribute (one series per tenant: mind cardinality).
        stage_label: add the write's migration stage as an attribute of every instrument.
    """

    def __init__(
        self, meter_provider: Any = None, *, tenant_label: bool = False, stage_label: bool = False
    ) -> None:
        from dualwrite import __version__  # noqa: PLC0415 - avoid an import cycle

        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("dualwrite", __version__)
        self.tenant_label = tenant_label
        self.stage_label = stage_label
        self._writes = meter.create_counter(
            "dualwrite.shadow.writes", unit="{write}", description="shadow writes by outcome"
        )
        self._latency = meter.create_histogram(
            "dualwrite.shadow.latency", unit="s", description="duration of the shadow call"
        )
        self._lag = meter.create_histogram(
            "dualwrite.shadow.lag",
            unit="s",
            description="from the primary's acknowledgement to the shadow's",
        )

    def __call__(self, event: Event) -> None:
        """Record ``event``."""
        outcome = OUTCOMES.get(event.kind)
        if outcome is None:
            return
        w = event.write
        attributes = {"dualwrite.service": w.service, "dualwrite.operation": w.operation}
        if self.stage_label:
            attributes["dualwrite.stage"] = w.stage.value if w.stage is not None else ""
        counted = {**attributes, "dualwrite.outcome": outcome}
        if self.tenant_label:
            counted["dualwrite.tenant"] = w.tenant or ""
        self._writes.add(1, counted)
        if isinstance(event, (ShadowWritten, ShadowFailed)) and event.latency:
            self._latency.record(event.latency, attributes)
        if isinstance(event, ShadowWritten):
            self._lag.record(event.lag, attributes)

    def __repr__(self) -> str:
        return (
            f"OpenTelemetryHook(tenant_label={self.tenant_label}, stage_label={self.stage_label})"
        )
