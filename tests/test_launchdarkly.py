"""dualwrite.launchdarkly: LaunchDarkly migration stages as dualwrite stages, without the SDK."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from conftest import S3Env

import dualwrite
from dualwrite import Stage
from dualwrite.exceptions import ConfigurationError
from dualwrite.launchdarkly import STAGES, stage_of, to_stage
from dualwrite.testing import RecordingHook


class SdkStage(enum.Enum):
    """The shape of ``ldclient.migrations.Stage``: members whose values are the strings."""

    OFF = "off"
    DUALWRITE = "dualwrite"
    SHADOW = "shadow"
    LIVE = "live"
    RAMPDOWN = "rampdown"
    COMPLETE = "complete"


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        ("off", Stage.OFF),
        ("dualwrite", Stage.DUAL_WRITE),
        ("shadow", Stage.DUAL_WRITE),
        ("live", Stage.CUTOVER),
        ("rampdown", Stage.CUTOVER),
        ("complete", Stage.DONE),
        (" Live ", Stage.CUTOVER),
        (SdkStage.RAMPDOWN, Stage.CUTOVER),
    ],
)
def test_each_stage_maps(served: object, expected: Stage) -> None:
    assert to_stage(served) is expected


def test_the_mapping_keeps_the_order_of_writes() -> None:
    """The authoritative side at each LaunchDarkly stage is the owner of the dualwrite stage."""
    authoritative_new = {"live", "rampdown", "complete"}
    writes_both = {"dualwrite", "shadow", "live", "rampdown"}
    assert set(STAGES) == {m.value for m in SdkStage}
    for name, stage in STAGES.items():
        assert (stage.owner == "shadow") == (name in authoritative_new), name
        assert stage.mirrored == (name in writes_both), name


@pytest.mark.parametrize("bad", ["dual_write", "cutover", "", None, 3])
def test_other_values_are_refused_with_the_list(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="off, dualwrite, shadow, live, rampdown"):
        to_stage(bad)


class FakeLaunchDarkly:
    """``migration_variation`` as the SDK has it: (stage, tracker), per context."""

    def __init__(self, stages: dict[str, Any]) -> None:
        self.stages = stages
        self.calls: list[tuple[str, Any, Any]] = []

    def migration_variation(self, key: str, context: Any, default: Any) -> tuple[Any, object]:
        self.calls.append((key, context, default))
        return self.stages.get(context, default), object()


def test_stage_of_drives_a_writer(s3: S3Env) -> None:
    ld = FakeLaunchDarkly({"acme": SdkStage.LIVE, "globex": "shadow"})
    rec = RecordingHook()
    client = dualwrite.wrap(
        s3.primary,
        shadow=s3.shadow,
        names=s3.names,
        stage=stage_of(ld, "storage-migration", context_of=lambda tenant: tenant),
        hooks=[rec],
        journal=None,
    )
    for tenant in ("acme", "globex", "initech"):
        with dualwrite.tenant(tenant):
            client.put_object(Bucket="photos", Key=f"{tenant}/k", Body=b"x")
    assert s3.keys("primary") == ["acme/k", "globex/k", "initech/k"]
    assert s3.keys("shadow") == ["acme/k", "globex/k"]
    assert [call[0] for call in ld.calls] == ["storage-migration"] * len(ld.calls)
    assert {call[1] for call in ld.calls} == {"acme", "globex", "initech"}
    assert {call[2] for call in ld.calls} == {"off"}


def test_no_tenant_gets_the_default_without_asking() -> None:
    ld = FakeLaunchDarkly({})
    stage = stage_of(ld, "flag", default="dualwrite", context_of=str)
    write = dualwrite.Write(
        tenant=None,
        service="s3",
        operation="PutObject",
        resource="photos",
        shadow_resource="photos-acct2",
        key="k",
    )
    assert stage(write) is Stage.DUAL_WRITE
    assert ld.calls == []


def test_stage_of_refuses_a_bad_configuration() -> None:
    with pytest.raises(ConfigurationError, match="migration stage"):
        stage_of(FakeLaunchDarkly({}), "flag", default="on")
    with pytest.raises(ConfigurationError, match="migration_variation"):
        stage_of(object(), "flag")
