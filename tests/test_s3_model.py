"""S3 operations are classified: a new botocore cannot slip a write past.

Two kinds of checks. The default ones hold on every supported botocore: the classification may
name operations an older botocore lacks, and a newer botocore may have operations this release
does not classify yet (the runtime fallback, ``_s3.unclassified``, reports those writes). The
``botocore_latest`` ones (deselected by default; ``pytest -m botocore_latest``) check that the
classification matches the installed botocore exactly: CI runs them on the pinned botocore, where
they must pass, and on the newest one, where a failure is a report that the tables need an update.
"""

from __future__ import annotations

import re
from typing import Any

import botocore.session
import pytest
from botocore import xform_name
from conftest import S3Env, record_requests

from dualwrite._core.proxy import ClientProxy
from dualwrite._s3 import operations as _s3
from dualwrite._s3.proxy import S3ClientProxy
from dualwrite.events import Unsupported
from dualwrite.testing import RecordingHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")

MODEL = botocore.session.get_session().get_service_model("s3")
OPERATIONS = sorted(MODEL.operation_names)
CLASSIFIED = set(_s3.HANDLERS) | set(_s3.PRIMARY_ONLY)
# What both the library and the installed botocore know.
KNOWN = sorted(CLASSIFIED & set(OPERATIONS))

# Object-level non-read operations that are deliberately primary-only (see docs/s3.md): they do
# not change an object's stored data.
PRIMARY_ONLY_OBJECT_CALLS = {"RestoreObject", "SelectObjectContent"}


def _method(operation: str) -> str:
    return str(MODEL.operation_model(operation).http.get("method", "POST")).upper()


def _members(operation: str) -> set[str]:
    shape = MODEL.operation_model(operation).input_shape
    return set(shape.members) if shape is not None else set()


def test_model_is_not_trivially_small() -> None:
    assert len(OPERATIONS) > 100
    assert "PutObject" in OPERATIONS
    assert "PutObject" in KNOWN


def test_no_operation_is_classified_twice() -> None:
    assert set(_s3.HANDLERS) & set(_s3.PRIMARY_ONLY) == set()


def test_classified_names_are_api_names() -> None:
    """A name botocore does not know must still be an API name, not a method name or a typo."""
    for operation in CLASSIFIED | set(_s3.UNSUPPORTED):
        assert re.fullmatch(r"(?:[A-Z][a-z0-9]*)+", operation), operation


def test_unsupported_entries_are_the_reporting_handlers() -> None:
    assert set(_s3.UNSUPPORTED) <= set(_s3.HANDLERS)
    for operation, handler in _s3.HANDLERS.items():
        reporting = handler.__name__.startswith("_unsupported_")
        assert reporting == (operation in _s3.UNSUPPORTED), operation


def test_primary_only_object_writes_are_deliberate() -> None:
    """No object write hides among the primary-only operations."""
    for operation in _s3.PRIMARY_ONLY & set(OPERATIONS):
        if _method(operation) in ("GET", "HEAD"):
            continue
        if "Key" in _members(operation):
            assert operation in PRIMARY_ONLY_OBJECT_CALLS, operation


def test_every_handler_is_a_proxy_method() -> None:
    for operation in _s3.HANDLERS:
        method = vars(S3ClientProxy).get(xform_name(operation))
        assert callable(method), operation


# -- drift: the classification matches the installed botocore exactly ---------------------------


@pytest.mark.botocore_latest
def test_every_operation_of_this_botocore_is_classified() -> None:
    missing = sorted(set(OPERATIONS) - CLASSIFIED)
    assert not missing, (
        f"botocore {botocore.__version__} has S3 operations dualwrite does not classify yet "
        f"(their writes are reported as unsupported/unclassified): {missing}; add each to "
        "_s3.HANDLERS or _s3.PRIMARY_ONLY and to docs/s3.md"
    )


@pytest.mark.botocore_latest
def test_tables_name_only_operations_of_this_botocore() -> None:
    stale = sorted((CLASSIFIED | set(_s3.UNSUPPORTED)) - set(OPERATIONS))
    assert not stale, f"botocore {botocore.__version__} does not know: {stale}"


@pytest.mark.botocore_latest
def test_every_object_write_of_this_botocore_is_handled() -> None:
    for operation in OPERATIONS:
        if _method(operation) in ("GET", "HEAD") or operation in PRIMARY_ONLY_OBJECT_CALLS:
            continue
        if "Key" in _members(operation):
            assert operation in _s3.HANDLERS, operation


@pytest.mark.parametrize("operation", sorted(_s3.UNSUPPORTED))
def test_unsupported_operations_reach_the_primary_and_are_reported(
    s3: S3Env, operation: str
) -> None:
    rec = RecordingHook()
    client = s3.wrap(hooks=[rec])
    mirror = client._self_mirror
    calls: list[dict[str, Any]] = []

    def primary_call(**params: Any) -> dict[str, Any]:
        calls.append(params)
        return {"ok": True}

    params = {"Bucket": "photos", "Key": "k"}
    response = _s3.HANDLERS[operation](mirror, primary_call, params, None)
    assert response == {"ok": True}
    assert calls == [params]
    assert len(rec.events) == 1
    event = rec.events[0]
    assert isinstance(event, Unsupported)
    assert event.reason == "not-mirrorable"
    assert event.write.operation == operation
    assert event.write.key == "k"


def test_unsupported_operation_flag_off_is_silent(s3: S3Env) -> None:
    rec = RecordingHook()
    client = s3.wrap(flag=False, hooks=[rec])
    operation = sorted(_s3.UNSUPPORTED)[0]
    _s3.HANDLERS[operation](
        client._self_mirror, lambda **_: {}, {"Bucket": "photos", "Key": "k"}, None
    )
    assert rec.events == []


# -- an operation this release does not know ------------------------------------------------------


def test_unclassified_write_is_reported(s3: S3Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write botocore gained after this release (simulated: removed from the tables)."""
    monkeypatch.setattr(_s3, "PRIMARY_ONLY", _s3.PRIMARY_ONLY - {"PutBucketTagging"})
    rec = RecordingHook()
    client = s3.wrap(hooks=[rec])
    shadow_sent = record_requests(s3.shadow)
    client.put_bucket_tagging(Bucket="photos", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert s3.primary.get_bucket_tagging(Bucket="photos")["TagSet"] == [{"Key": "a", "Value": "b"}]
    assert shadow_sent == []
    assert [(e.kind, getattr(e, "reason", None)) for e in rec.events] == [
        ("unsupported", "unclassified")
    ]
    assert rec.events[0].write.operation == "PutBucketTagging"


def test_unclassified_object_write_is_reported(s3: S3Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """An object write the proxy has no method for falls through __getattr__ and is reported."""
    monkeypatch.delattr(S3ClientProxy, "put_object_tagging")
    rec = RecordingHook()
    s3.primary.put_object(Bucket="photos", Key="k", Body=b"x")
    client = s3.wrap(hooks=[rec])
    method = client.put_object_tagging
    assert method.__name__ == "put_object_tagging"
    method(Bucket="photos", Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert s3.primary.get_object_tagging(Bucket="photos", Key="k")["TagSet"] == [
        {"Key": "a", "Value": "b"}
    ]
    assert [(e.kind, getattr(e, "reason", None)) for e in rec.events] == [
        ("unsupported", "unclassified")
    ]
    assert rec.events[0].write.key == "k"


def test_unclassified_read_passes_through(s3: S3Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_s3, "PRIMARY_ONLY", _s3.PRIMARY_ONLY - {"GetBucketVersioning"})
    rec = RecordingHook()
    client = s3.wrap(hooks=[rec])
    # The primary's own bound method: no wrapper in between.
    assert client.get_bucket_versioning == s3.primary.get_bucket_versioning
    client.get_bucket_versioning(Bucket="photos")
    assert rec.events == []


def test_unclassified_write_flag_off_is_silent(s3: S3Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_s3, "PRIMARY_ONLY", _s3.PRIMARY_ONLY - {"PutBucketTagging"})
    rec = RecordingHook()
    client = s3.wrap(flag=False, hooks=[rec])
    client.put_bucket_tagging(Bucket="photos", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert rec.events == []


def test_unclassified_uses_the_service_hook() -> None:
    assert S3ClientProxy._unclassified("PutBucketTagging", "PUT") is None
    assert S3ClientProxy._unclassified("GetSomethingNew", "GET") is None
    assert callable(S3ClientProxy._unclassified("PutSomethingNew", "PUT"))
    assert ClientProxy._unclassified("PutSomethingNew", "PUT") is None
