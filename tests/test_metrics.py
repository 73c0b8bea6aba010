"""MetricsHook and the OpenTelemetry export count exactly what happened."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import S3Env
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import dualwrite
from dualwrite.hooks import MetricsHook
from dualwrite.otel import OpenTelemetryHook


def _known_sequence(s3: S3Env, hooks: list[Any]) -> None:
    """3 written puts, 1 unsupported (unmapped), 2 failed (shadow down), 1 flag_failed."""

    def flag(write: dualwrite.Write) -> bool:
        if write.tenant == "broken":
            raise RuntimeError("flag service down")
        return write.tenant in {"acme", "globex"}

    wrapped = dualwrite.wrap(
        s3.primary, shadow=s3.shadow, names=s3.names, flag=flag, hooks=hooks, circuit_breaker=None
    )
    s3.primary.create_bucket(Bucket="unmapped")
    with dualwrite.tenant("acme"):
        for i in range(3):
            wrapped.put_object(Bucket="photos", Key=f"acme/{i}", Body=b"x")
        wrapped.put_object(Bucket="unmapped", Key="acme/u", Body=b"x")
    with dualwrite.tenant("initech"):  # flag off: counted nowhere
        wrapped.put_object(Bucket="photos", Key="initech/0", Body=b"x")
    with dualwrite.tenant("broken"):
        wrapped.put_object(Bucket="photos", Key="broken/0", Body=b"x")

    def down(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "x"}}, "PutObject")

    s3.shadow.meta.events.register("before-call.s3.PutObject", down, unique_id="down")
    with dualwrite.tenant("globex"):
        wrapped.put_object(Bucket="photos", Key="globex/0", Body=b"x")
        wrapped.delete_object(Bucket="photos", Key="globex/0")  # delete still works: written
        wrapped.put_object(Bucket="photos", Key="globex/1", Body=b"x")


def test_counts_per_outcome_are_exact(s3: S3Env) -> None:
    metrics = MetricsHook()
    _known_sequence(s3, [metrics])
    snap = metrics.snapshot()
    assert snap.counts == {
        ("s3", "PutObject", "written"): 3,
        ("s3", "PutObject", "unsupported"): 1,
        ("s3", "PutObject", "flag_failed"): 1,
        ("s3", "PutObject", "failed"): 2,
        ("s3", "DeleteObject", "written"): 1,
    }
    assert snap.total("failed") == 2
    assert snap.total("written", service="dynamodb") == 0
    latency = snap.latency[("s3", "PutObject")]
    assert latency.count == 5  # 3 written + 2 failed
    assert sum(latency.counts) == 5
    assert 0 < latency.min <= latency.quantile(0.5) <= latency.max
    assert snap.lag[("s3", "PutObject")].count == 3
    for labels in snap.counts:
        assert not any("/" in label for label in labels)  # no key ever becomes a label


def test_tenant_label_is_opt_in(s3: S3Env) -> None:
    metrics = MetricsHook(tenant_label=True)
    _known_sequence(s3, [metrics])
    counts = metrics.snapshot().counts
    assert counts[("s3", "PutObject", "written", "acme")] == 3
    assert counts[("s3", "PutObject", "failed", "globex")] == 2
    metrics.reset()
    assert metrics.snapshot().counts == {}


def test_bad_buckets_are_a_configuration_error() -> None:
    with pytest.raises(dualwrite.ConfigurationError, match="ascending"):
        MetricsHook(buckets=(1.0, 0.5))


def test_opentelemetry_export_matches(s3: S3Env) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    hook = OpenTelemetryHook(provider)
    _known_sequence(s3, [hook])

    data = reader.get_metrics_data()
    points: dict[str, list[Any]] = {}
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = list(metric.data.data_points)
    counted = {
        (
            p.attributes["dualwrite.operation"],
            p.attributes["dualwrite.outcome"],
        ): p.value
        for p in points["dualwrite.shadow.writes"]
    }
    assert counted == {
        ("PutObject", "written"): 3,
        ("PutObject", "unsupported"): 1,
        ("PutObject", "flag_failed"): 1,
        ("PutObject", "failed"): 2,
        ("DeleteObject", "written"): 1,
    }
    latency = {
        p.attributes["dualwrite.operation"]: p.count for p in points["dualwrite.shadow.latency"]
    }
    assert latency == {"PutObject": 5, "DeleteObject": 1}
    lag = {p.attributes["dualwrite.operation"]: p.count for p in points["dualwrite.shadow.lag"]}
    assert lag == {"PutObject": 3, "DeleteObject": 1}
    for point in points["dualwrite.shadow.writes"]:
        assert "dualwrite.tenant" not in point.attributes


def test_stage_label_tells_the_directions_apart(s3: S3Env) -> None:
    stages = {"acme": dualwrite.Stage.DUAL_WRITE}
    metrics = MetricsHook(stage_label=True)
    reader = InMemoryMetricReader()
    otel = OpenTelemetryHook(MeterProvider(metric_readers=[reader]), stage_label=True)
    client = s3.wrap(
        flag=None,
        stage=lambda write: stages.get(write.tenant or "", dualwrite.Stage.OFF),
        hooks=[metrics, otel],
    )
    with dualwrite.tenant("acme"):
        client.put_object(Bucket="photos", Key="acme/1", Body=b"1")
        stages["acme"] = dualwrite.Stage.CUTOVER
        client.put_object(Bucket="photos", Key="acme/2", Body=b"2")
        client.put_object(Bucket="photos", Key="acme/3", Body=b"3")
    counts = metrics.snapshot().counts
    assert counts == {
        ("s3", "PutObject", "written", "dual_write"): 1,
        ("s3", "PutObject", "written", "cutover"): 2,
    }
    exported = {}
    for resource_metrics in reader.get_metrics_data().resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "dualwrite.shadow.writes":
                    for point in metric.data.data_points:
                        exported[point.attributes["dualwrite.stage"]] = point.value
    assert exported == {"dual_write": 1, "cutover": 2}
