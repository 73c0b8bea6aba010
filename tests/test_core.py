"""The core: configuration, tenants, the flag, containment of foreign code, the ready-made hooks."""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import S3Env, record_requests

import dualwrite
from dualwrite.events import FlagFailed, ShadowFailed, ShadowWritten, Write
from dualwrite.exceptions import ConfigurationError, DualWriteError, ShadowWriteError
from dualwrite.hooks import LoggingHook
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")

# -- configuration errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({"flag": "yes"}, ["True/False", "callable"], id="flag-not-callable"),
        pytest.param({"flag": None}, ["True/False", "callable"], id="flag-none"),
        pytest.param({"flag": True, "mode": "async"}, ["'sync'", "'background'"], id="mode"),
        pytest.param(
            {"flag": True, "on_shadow_error": "ignore"}, ["'record'", "'raise'"], id="on-error"
        ),
        pytest.param({"flag": True, "hooks": "LoggingHook"}, ["list of callables"], id="hooks-str"),
        pytest.param({"flag": True, "hooks": 3}, ["list of callables"], id="hooks-int"),
        pytest.param(
            {"flag": True, "hooks": [print, 3]}, ["callable", "3"], id="hook-not-callable"
        ),
        pytest.param({"flag": True, "tenant_of": "prefix"}, ["callable", "None"], id="tenant-of"),
    ],
)
def test_dualwriter_rejects_bad_configuration(kwargs: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ConfigurationError) as info:
        dualwrite.DualWriter(**kwargs)
    for fragment in expected:
        assert fragment in str(info.value)
    # Also a ValueError and a DualWriteError, as the exception tree promises.
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, DualWriteError)


def test_dualwriter_accepts_good_configuration() -> None:
    writer = dualwrite.DualWriter(
        flag=lambda write: True,
        hooks=(RecordingHook(), LoggingHook()),
        mode="sync",
        journal=None,
        tenant_of=lambda write: None,
        on_shadow_error="raise",
    )
    assert len(writer.hooks) == 2
    assert "sync" in repr(writer)
    assert writer.flush() is True


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({"names": ["photos"]}, ["dict", "callable", "None"], id="names-list"),
        pytest.param({"names": {"photos": ""}}, ["non-empty"], id="names-empty"),
        pytest.param({"names": {"photos": 3}}, ["str"], id="names-not-str"),
        pytest.param({"kms_keys": 3}, ["dict", "callable", "None"], id="kms"),
        pytest.param({"shadow_account": "1234"}, ["12-digit"], id="account-short"),
        pytest.param({"shadow_account": 111111111111}, ["12-digit"], id="account-int"),
    ],
)
def test_wrap_rejects_bad_options(s3: S3Env, kwargs: dict[str, Any], expected: list[str]) -> None:
    writer = dualwrite.DualWriter(flag=True)
    with pytest.raises(ConfigurationError) as info:
        writer.wrap(s3.primary, shadow=s3.shadow, **kwargs)
    for fragment in expected:
        assert fragment in str(info.value)


def test_wrap_rejects_objects_it_cannot_mirror(s3: S3Env) -> None:
    writer = dualwrite.DualWriter(flag=True)
    with pytest.raises(ConfigurationError, match="S3 or DynamoDB client"):
        writer.wrap(object(), shadow=s3.shadow)
    with pytest.raises(ConfigurationError, match="shadow must be a boto3 client"):
        writer.wrap(s3.primary, shadow="photos-acct2")
    sqs = boto3.client("sqs")
    with pytest.raises(ConfigurationError, match="'sqs'"):
        writer.wrap(sqs, shadow=sqs)
    ddb = s3.accounts.client("shadow", "dynamodb")
    with pytest.raises(ConfigurationError, match="same service"):
        writer.wrap(s3.primary, shadow=ddb)


def test_closed_writer_refuses_to_wrap(s3: S3Env) -> None:
    with dualwrite.DualWriter(flag=True) as writer:
        writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)
    with pytest.raises(ConfigurationError, match="closed"):
        writer.wrap(s3.primary, shadow=s3.shadow, names=s3.names)


def test_wrap_without_names_warns_and_reports_unmapped(
    s3: S3Env, caplog: pytest.LogCaptureFixture
) -> None:
    rec = RecordingHook()
    with caplog.at_level(logging.WARNING, logger="dualwrite"):
        client = dualwrite.wrap(s3.primary, shadow=s3.shadow, flag=True, hooks=[rec])
    assert any("without names=" in r.getMessage() for r in caplog.records)
    sent = record_requests(s3.shadow)
    client.put_object(Bucket="photos", Key="k", Body=b"x")
    assert [(e.kind, getattr(e, "reason", None)) for e in rec.events] == [
        ("unsupported", "unmapped")
    ]
    assert sent == []
    assert s3.keys("primary") == ["k"]


# -- tenants ---------------------------------------------------------------------------------


def test_tenant_context_nests_and_restores() -> None:
    assert dualwrite.current_tenant() is None
    with dualwrite.tenant("acme") as name:
        assert name == "acme"
        assert dualwrite.current_tenant() == "acme"
        with dualwrite.tenant("globex"):
            assert dualwrite.current_tenant() == "globex"
            with dualwrite.tenant(None):
                assert dualwrite.current_tenant() is None
            assert dualwrite.current_tenant() == "globex"
        assert dualwrite.current_tenant() == "acme"
    assert dualwrite.current_tenant() is None


def test_tenant_restored_after_exception() -> None:
    with pytest.raises(RuntimeError), dualwrite.tenant("acme"):
        raise RuntimeError
    assert dualwrite.current_tenant() is None


def test_tenant_rejects_non_str() -> None:
    with pytest.raises(TypeError, match="str or None"), dualwrite.tenant(42):  # type: ignore[arg-type]
        pass


def test_tenant_is_a_contextvar_not_a_thread_global() -> None:
    seen: dict[str, Any] = {}
    with dualwrite.tenant("acme"):
        ctx = contextvars.copy_context()
        thread = threading.Thread(
            target=lambda: seen.setdefault("thread", dualwrite.current_tenant())
        )
        thread.start()
        thread.join()
    assert seen["thread"] is None  # plain threads do not inherit it
    assert ctx.run(dualwrite.current_tenant) == "acme"  # a copied context does


def test_flag_sees_the_callers_tenant_and_the_write(s3: S3Env) -> None:
    seen: list[Write] = []

    def flag(write: Write) -> bool:
        seen.append(write)
        return write.tenant == "acme"

    rec = RecordingHook()
    client = s3.wrap(flag=flag, hooks=[rec])
    with dualwrite.tenant("acme"):
        client.put_object(Bucket="photos", Key="acme/1", Body=b"a")
    with dualwrite.tenant("globex"):
        client.put_object(Bucket="photos", Key="globex/1", Body=b"g")
    client.put_object(Bucket="photos", Key="none/1", Body=b"n")

    assert seen == [
        Write(
            tenant=t,
            service="s3",
            operation="PutObject",
            resource="photos",
            shadow_resource="photos-acct2",
            key=k,
        )
        for t, k in [("acme", "acme/1"), ("globex", "globex/1"), (None, "none/1")]
    ]
    assert s3.keys("primary") == ["acme/1", "globex/1", "none/1"]
    assert s3.keys("shadow") == ["acme/1"]
    assert [(e.kind, e.write.tenant) for e in rec.events] == [("shadow_written", "acme")]


def test_tenant_of_derives_the_tenant_when_no_context(s3: S3Env) -> None:
    calls: list[Write] = []

    def tenant_of(write: Write) -> str | None:
        calls.append(write)
        assert isinstance(write.key, str)
        prefix = write.key.split("/", 1)[0]
        return prefix if prefix != "anon" else None

    rec = RecordingHook()
    client = s3.wrap(flag=lambda w: w.tenant == "acme", tenant_of=tenant_of, hooks=[rec])
    client.put_object(Bucket="photos", Key="acme/1", Body=b"a")
    client.put_object(Bucket="photos", Key="globex/1", Body=b"g")
    client.put_object(Bucket="photos", Key="anon/1", Body=b"n")
    with dualwrite.tenant("acme"):  # a context wins; tenant_of is not asked
        client.put_object(Bucket="photos", Key="globex/2", Body=b"g")

    assert [c.key for c in calls] == ["acme/1", "globex/1", "anon/1"]
    assert all(c.tenant is None for c in calls)
    assert s3.keys("shadow") == ["acme/1", "globex/2"]
    assert [e.write.tenant for e in rec.events] == ["acme", "acme"]


def test_flag_evaluated_once_per_write_call(s3: S3Env) -> None:
    calls: list[str] = []

    def flag(write: Write) -> bool:
        calls.append(write.operation)
        return True

    client = s3.wrap(flag=flag)
    client.put_object(Bucket="photos", Key="k", Body=b"x")
    client.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": "k"}, {"Key": "j"}]})
    assert calls == ["PutObject", "DeleteObjects"]


def test_constant_flags(s3: S3Env) -> None:
    s3.wrap(flag=False).put_object(Bucket="photos", Key="off", Body=b"x")
    s3.wrap(flag=True).put_object(Bucket="photos", Key="on", Body=b"x")
    assert s3.keys("primary") == ["off", "on"]
    assert s3.keys("shadow") == ["on"]


# -- foreign code never breaks a write --------------------------------------------------------


class Boom(Exception):
    pass


def _raise(*_: Any) -> Any:
    raise Boom("boom from user code")


@pytest.mark.parametrize("source", ["flag", "tenant_of"])
def test_failing_flag_or_tenant_of_is_contained(s3: S3Env, source: str) -> None:
    rec = RecordingHook()
    options: dict[str, Any] = {"flag": _raise} if source == "flag" else {"tenant_of": _raise}
    client = s3.wrap(hooks=[rec], **options)
    sent = record_requests(s3.shadow)

    response = client.put_object(Bucket="photos", Key="k", Body=b"data")

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.primary_body("k") == b"data"
    assert sent == []  # treated as flag-off
    assert rec.kinds() == ["flag_failed"]
    event = rec.events[0]
    assert isinstance(event, FlagFailed)
    assert event.source == source
    assert event.error_type == "Boom"
    assert event.error_message == "boom from user code"
    assert event.write.key == "k"


def test_failing_hook_is_contained_and_other_hooks_still_run(
    s3: S3Env, caplog: pytest.LogCaptureFixture
) -> None:
    rec = RecordingHook()
    client = s3.wrap(hooks=[_raise, rec])
    with caplog.at_level(logging.WARNING, logger="dualwrite"):
        client.put_object(Bucket="photos", Key="k", Body=b"data")
    assert s3.shadow_body("k") == b"data"
    assert rec.kinds() == ["shadow_written"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "dualwrite"]
    assert len(warnings) == 1
    assert "Boom" in warnings[0]
    assert "shadow_written" in warnings[0]


def test_failing_names_callable_is_contained(s3: S3Env) -> None:
    rec = RecordingHook()
    client = dualwrite.wrap(s3.primary, shadow=s3.shadow, names=_raise, flag=True, hooks=[rec])
    client.put_object(Bucket="photos", Key="k", Body=b"data")
    assert s3.primary_body("k") == b"data"
    assert s3.keys("shadow") == []
    assert [(e.kind, getattr(e, "reason", None)) for e in rec.events] == [
        ("unsupported", "unmapped")
    ]


def test_names_callable_maps_buckets(s3: S3Env) -> None:
    client = dualwrite.wrap(
        s3.primary,
        shadow=s3.shadow,
        names=lambda bucket: f"{bucket}-acct2" if bucket == "photos" else None,
        flag=True,
    )
    client.put_object(Bucket="photos", Key="k", Body=b"data")
    assert s3.shadow_body("k") == b"data"


# -- on_shadow_error ----------------------------------------------------------------------------


def test_on_shadow_error_record_keeps_the_caller_unaware(s3: S3Env) -> None:
    rec = RecordingHook()
    s3.names["photos"] = "no-such-bucket"
    client = s3.wrap(hooks=[rec])
    response = client.put_object(Bucket="photos", Key="k", Body=b"data")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert rec.kinds() == ["shadow_failed"]
    failed = rec.events[0]
    assert isinstance(failed, ShadowFailed)
    assert failed.error_type == "NoSuchBucket"  # botocore's modeled ClientError subclass
    assert failed.error_code == "NoSuchBucket"
    assert failed.latency > 0


def test_on_shadow_error_raise_raises_after_the_primary_wrote(s3: S3Env) -> None:
    rec = RecordingHook()
    s3.names["photos"] = "no-such-bucket"
    client = s3.wrap(hooks=[rec], on_shadow_error="raise")
    with pytest.raises(ShadowWriteError) as info:
        client.put_object(Bucket="photos", Key="k", Body=b"data")
    assert s3.primary_body("k") == b"data"
    assert isinstance(info.value, DualWriteError)
    assert isinstance(info.value.__cause__, ClientError)
    assert info.value.__cause__.response["Error"]["Code"] == "NoSuchBucket"
    assert info.value.event is rec.events[0]
    assert info.value.event.kind == "shadow_failed"
    assert "PutObject" in str(info.value)
    assert "no-such-bucket" in str(info.value)


def test_on_shadow_error_raise_does_not_raise_when_the_shadow_succeeds(s3: S3Env) -> None:
    client = s3.wrap(on_shadow_error="raise")
    client.put_object(Bucket="photos", Key="k", Body=b"data")
    assert s3.shadow_body("k") == b"data"


def test_on_shadow_error_raise_never_replaces_a_primary_error(s3: S3Env) -> None:
    client = s3.wrap(on_shadow_error="raise")
    with pytest.raises(ClientError) as info:
        client.put_object(Bucket="nope", Key="k", Body=b"data")
    assert info.value.response["Error"]["Code"] == "NoSuchBucket"


# -- hooks -----------------------------------------------------------------------------------------


def _write(**overrides: Any) -> Write:
    fields: dict[str, Any] = {
        "tenant": "acme",
        "service": "s3",
        "operation": "PutObject",
        "resource": "photos",
        "shadow_resource": "photos-acct2",
        "key": "acme/cat.jpg",
    }
    fields.update(overrides)
    return Write(**fields)


def test_logging_hook_levels_and_content(caplog: pytest.LogCaptureFixture) -> None:
    hook = LoggingHook()
    ok = ShadowWritten(write=_write(), latency=0.01, lag=0.02)
    bad = ShadowFailed(
        write=_write(), error_type="ClientError", error_code="AccessDenied", error_message="nope"
    )
    with caplog.at_level(logging.DEBUG, logger="dualwrite"):
        hook(ok)
        hook(bad)
    assert [r.levelno for r in caplog.records] == [logging.DEBUG, logging.WARNING]
    first, second = (r.getMessage() for r in caplog.records)
    for fragment in ("shadow_written", "'acme'", "s3.PutObject", "photos -> photos-acct2"):
        assert fragment in first
    assert "acme/cat.jpg" in first
    for fragment in ("shadow_failed", "error_code='AccessDenied'", "error_message='nope'"):
        assert fragment in second
    assert "at=" not in second  # the write and the timestamp are not repeated as fields


def test_logging_hook_respects_levels_and_custom_logger(caplog: pytest.LogCaptureFixture) -> None:
    custom = logging.getLogger("myservice.migration")
    hook = LoggingHook(custom, success_level=logging.INFO, problem_level=logging.ERROR)
    with caplog.at_level(logging.WARNING):
        hook(ShadowWritten(write=_write(), latency=0.0, lag=0.0))  # INFO: filtered
        hook(FlagFailed(write=_write(), source="flag", error_type="Boom", error_message="x"))
    assert [(r.name, r.levelno) for r in caplog.records] == [("myservice.migration", logging.ERROR)]
    assert "myservice.migration" in repr(hook)


def test_logging_hook_as_a_writer_hook(s3: S3Env, caplog: pytest.LogCaptureFixture) -> None:
    client = s3.wrap(hooks=[LoggingHook()])
    with caplog.at_level(logging.DEBUG, logger="dualwrite"), dualwrite.tenant("acme"):
        client.put_object(Bucket="photos", Key="k", Body=b"x")
    messages = [r.getMessage() for r in caplog.records if r.name == "dualwrite"]
    assert len(messages) == 1
    assert messages[0].startswith("dualwrite shadow_written tenant='acme' s3.PutObject")


def test_recording_hook() -> None:
    rec = RecordingHook()
    ok = ShadowWritten(write=_write(), latency=0.0, lag=0.0)
    bad = FlagFailed(write=_write(), source="flag", error_type="Boom", error_message="x")
    rec(ok)
    rec(bad)
    rec(ok)
    assert rec.events == [ok, bad, ok]
    assert rec.kinds() == ["shadow_written", "flag_failed", "shadow_written"]
    assert rec.of_kind("flag_failed") == [bad]
    assert rec.of_kind("mismatch") == []
    assert repr(rec) == "RecordingHook(3 events)"
    rec.clear()
    assert rec.events == []


def test_recording_hook_is_thread_safe() -> None:
    rec = RecordingHook()
    event = ShadowWritten(write=_write(), latency=0.0, lag=0.0)

    def record() -> None:
        for _ in range(2000):
            rec(event)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(rec.kinds()) == 8000


def test_events_are_frozen() -> None:
    event = ShadowWritten(write=_write(), latency=0.0, lag=0.0)
    with pytest.raises(AttributeError):
        event.latency = 1.0  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.write.tenant = "x"  # type: ignore[misc]
