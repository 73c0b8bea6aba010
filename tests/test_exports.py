"""The public surface: what ``import dualwrite`` offers, and nothing private leaking out."""

from __future__ import annotations

import types

import dualwrite
import dualwrite.events
import dualwrite.exceptions
import dualwrite.hooks
import dualwrite.integrations
import dualwrite.journal
import dualwrite.launchdarkly
import dualwrite.sessions
import dualwrite.testing
import dualwrite.typing


def test_all_is_sorted_and_complete() -> None:
    assert dualwrite.__all__ == sorted(dualwrite.__all__)
    public = {
        name
        for name, value in vars(dualwrite).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    exported = {
        name
        for name in dualwrite.__all__
        if not isinstance(getattr(dualwrite, name), types.ModuleType)
    }
    # Submodules loaded on demand (cli, otel) may appear as attributes; everything else public
    # is exported.
    assert exported - {"__version__"} == public


def test_every_exported_name_resolves() -> None:
    for module in (
        dualwrite,
        dualwrite.events,
        dualwrite.exceptions,
        dualwrite.hooks,
        dualwrite.integrations,
        dualwrite.journal,
        dualwrite.launchdarkly,
        dualwrite.sessions,
        dualwrite.testing,
        dualwrite.typing,
    ):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"
        assert module.__all__ == sorted(module.__all__), module.__name__


def test_design_contract_names() -> None:
    # The names design.md promises; other code is written against them.
    assert callable(dualwrite.DualWriter)
    assert callable(dualwrite.wrap)
    assert callable(dualwrite.tenant)
    assert callable(dualwrite.current_tenant)
    assert dualwrite.Write is dualwrite.events.Write
    assert callable(dualwrite.hooks.LoggingHook)
    assert callable(dualwrite.testing.RecordingHook)
    kinds = {
        dualwrite.events.ShadowWritten.kind,
        dualwrite.events.ShadowFailed.kind,
        dualwrite.events.Mismatch.kind,
        dualwrite.events.Unsupported.kind,
        dualwrite.events.FlagFailed.kind,
    }
    assert kinds == {"shadow_written", "shadow_failed", "mismatch", "unsupported", "flag_failed"}
    assert issubclass(dualwrite.exceptions.ConfigurationError, ValueError)
    assert issubclass(dualwrite.exceptions.ConfigurationError, dualwrite.exceptions.DualWriteError)
    assert issubclass(dualwrite.exceptions.ShadowWriteError, dualwrite.exceptions.DualWriteError)
