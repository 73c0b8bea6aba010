"""The public surface: what ``import dualwrite`` offers, and nothing private leaking out."""

from __future__ import annotations

import dualwrite
import dualwrite.events
import dualwrite.exceptions
import dualwrite.hooks
import dualwrite.testing
import dualwrite.typing


def test_all_is_sorted_and_complete() -> None:
    assert dualwrite.__all__ == sorted(dualwrite.__all__)
    public = {name for name in vars(dualwrite) if not name.startswith("_")}
    # Submodules imported for their own sake (the CLI) are reachable but not re-exported.
    assert set(dualwrite.__all__) - {"__version__"} == public - {"cli"}


def test_every_exported_name_resolves() -> None:
    for module in (
        dualwrite,
        dualwrite.events,
        dualwrite.exceptions,
        dualwrite.hooks,
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
