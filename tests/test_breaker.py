"""The circuit breaker: open after N failures in a row, skip the shadow, probe, close."""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _support.shadow import Breakdown
from conftest import S3Env

import dualwrite
from dualwrite._core import breaker as _breaker
from dualwrite._core.breaker import Circuit
from dualwrite.events import CircuitClosed, CircuitOpened, ShadowFailed
from dualwrite.exceptions import ConfigurationError
from dualwrite.testing import RecordingHook


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(_breaker, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


class Setup:
    def __init__(self, s3: S3Env, tmp_path: Path, **options: Any) -> None:
        self.s3 = s3
        self.recorder = RecordingHook()
        self.shadow = Breakdown(s3.shadow)
        self.writer = dualwrite.DualWriter(
            flag=True,
            hooks=[self.recorder],
            journal=tmp_path / "j.db",
            circuit_breaker=dualwrite.CircuitBreaker(failures=3, reset_after=60),
            **options,
        )
        self.client = self.writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)

    def put(self, key: str, body: bytes = b"x") -> None:
        response = self.client.put_object(Bucket="photos", Key=key, Body=body)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
        self.writer.flush()

    def kinds(self) -> list[str]:
        return self.recorder.kinds()

    def journaled(self) -> list[tuple[str, str]]:
        assert self.writer.journal is not None
        return sorted((str(e.key), e.reason) for e in self.writer.journal.entries())


@pytest.fixture(params=["sync", "background"])
def setup(
    request: pytest.FixtureRequest, s3: S3Env, tmp_path: Path, clock: Clock
) -> Iterator[Setup]:
    result = Setup(s3, tmp_path, mode=request.param)
    yield result
    result.writer.close()


def test_opens_after_consecutive_failures_and_stops_calling_the_shadow(setup: Setup) -> None:
    setup.shadow.broken = True
    for i in range(10):
        setup.put(f"k{i}")
    # Three calls failed and opened the circuit; the next seven never reached the shadow.
    assert setup.shadow.calls["PutObject"] == 3
    assert setup.kinds().count("circuit_opened") == 1
    opened = next(e for e in setup.recorder.events if isinstance(e, CircuitOpened))
    assert (opened.write.key, opened.service) == ("k2", "s3")
    failed = [e for e in setup.recorder.events if isinstance(e, ShadowFailed)]
    assert [e.error_type for e in failed] == ["ClientError"] * 3 + ["CircuitOpen"] * 7
    assert setup.journaled() == sorted(
        [(f"k{i}", "shadow_failed") for i in range(3)]
        + [(f"k{i}", "circuit_open") for i in range(3, 10)]
    )
    # Every primary write went through.
    assert setup.s3.keys("primary") == sorted(f"k{i}" for i in range(10))


def test_failures_must_be_consecutive(setup: Setup) -> None:
    for i in range(6):
        setup.shadow.broken = i % 3 != 2  # fail, fail, succeed, ...
        setup.put(f"k{i}")
    assert "circuit_opened" not in setup.kinds()
    assert setup.shadow.calls["PutObject"] == 6


def test_probes_after_reset_after_and_closes_on_success(setup: Setup, clock: Clock) -> None:
    setup.shadow.broken = True
    for i in range(5):
        setup.put(f"k{i}")
    assert setup.shadow.calls["PutObject"] == 3
    clock.advance(59)
    setup.put("still-open")
    assert setup.shadow.calls["PutObject"] == 3
    clock.advance(1)
    setup.put("probe-fails")  # one probe, which fails: open for another period
    assert setup.shadow.calls["PutObject"] == 4
    setup.put("skipped")
    assert setup.shadow.calls["PutObject"] == 4
    assert setup.kinds().count("circuit_opened") == 1  # a failed probe is not a new opening
    setup.shadow.broken = False
    clock.advance(60)
    setup.put("probe-succeeds")
    assert setup.shadow.calls["PutObject"] == 5
    assert setup.kinds()[-2:] == ["shadow_written", "circuit_closed"]
    closed = next(e for e in setup.recorder.events if isinstance(e, CircuitClosed))
    assert closed.write.key == "probe-succeeds"
    for i in range(3):
        setup.put(f"after-{i}")
    assert setup.shadow.calls["PutObject"] == 8
    # What was skipped is journaled; repair restores it.
    report = setup.writer.repair()
    assert report.failed == 0
    assert setup.s3.keys("primary") == setup.s3.keys("shadow")


def test_sync_caller_makes_a_bounded_number_of_shadow_calls_during_an_outage(
    s3: S3Env, tmp_path: Path, clock: Clock
) -> None:
    setup = Setup(s3, tmp_path, mode="sync")
    setup.shadow.broken = True
    for i in range(200):
        setup.put(f"k{i}")
        if i % 50 == 49:
            clock.advance(60)  # three probes over the outage
    # Without the breaker every one of the 200 callers would wait for a failing shadow call.
    assert setup.shadow.total == 3 + 3
    assert setup.writer.journal is not None
    assert setup.writer.journal.count() == 200
    setup.writer.close()


def test_without_a_breaker_every_write_calls_the_shadow(s3: S3Env, tmp_path: Path) -> None:
    breakdown = Breakdown(s3.shadow)
    breakdown.broken = True
    writer = dualwrite.DualWriter(flag=True, journal=tmp_path / "j.db", circuit_breaker=None)
    client = writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    for i in range(10):
        client.put_object(Bucket="photos", Key=f"k{i}", Body=b"x")
    assert breakdown.calls["PutObject"] == 10
    writer.close()


def test_a_probe_that_never_reaches_the_shadow_does_not_wedge_the_circuit(
    s3: S3Env, tmp_path: Path, clock: Clock
) -> None:
    setup = Setup(s3, tmp_path, mode="sync")
    setup.shadow.broken = True
    for i in range(3):
        setup.put(f"k{i}")
    # While open, a multipart upload starts: its shadow upload is never created.
    upload = setup.client.create_multipart_upload(Bucket="photos", Key="mpu")
    clock.advance(60)
    # The first write after reset_after is the probe: a part of that upload, which has nothing
    # to send to the shadow. It must give the probe back rather than keep it forever.
    setup.client.upload_part(
        Bucket="photos", Key="mpu", UploadId=upload["UploadId"], PartNumber=1, Body=b"p" * 10
    )
    setup.shadow.broken = False
    calls = setup.shadow.calls["PutObject"]
    setup.put("next")
    assert setup.shadow.calls["PutObject"] == calls + 1
    assert setup.kinds()[-1] == "circuit_closed"
    setup.writer.close()


def test_an_unsupported_probe_does_not_close_the_circuit(
    s3: S3Env, tmp_path: Path, clock: Clock
) -> None:
    setup = Setup(s3, tmp_path, mode="sync")
    setup.shadow.broken = True
    for i in range(3):
        setup.put(f"k{i}")
    clock.advance(60)
    # An append cannot be mirrored: it says nothing about the shadow's health.
    setup.client.put_object(Bucket="photos", Key="k0", Body=b"y", WriteOffsetBytes=1)
    assert "circuit_closed" not in setup.kinds()
    setup.put("probe")  # the shadow is still down: this is the real probe, and it fails
    assert setup.shadow.calls["PutObject"] == 4
    setup.writer.close()


# -- the circuit itself -------------------------------------------------------------------


def test_only_one_probe_at_a_time(clock: Clock) -> None:
    circuit = Circuit(dualwrite.CircuitBreaker(failures=1, reset_after=10))
    assert circuit.failure() is True
    assert circuit.allow() is False
    clock.advance(10)
    grants = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        grants.append(circuit.allow())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(grants) == [False] * 7 + [True]
    assert circuit.success() is True
    assert circuit.is_open is False
    assert circuit.allow() is True


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"failures": 0}, id="failures-0"),
        pytest.param({"failures": 2.5}, id="failures-float"),
        pytest.param({"reset_after": 0}, id="reset-0"),
        pytest.param({"reset_after": "30"}, id="reset-str"),
    ],
)
def test_breaker_rejects_bad_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        dualwrite.CircuitBreaker(**kwargs)
