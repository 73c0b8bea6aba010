"""LaunchDarkly migration flags as dualwrite stages.

A LaunchDarkly *migration flag* serves one of six stages. dualwrite's :class:`~dualwrite.Stage`
has four: each LaunchDarkly stage maps to the dualwrite stage that writes the same accounts in
the same order (LaunchDarkly's "old" is the primary, "new" the shadow)::

    LaunchDarkly  writes (authoritative first)   reads          dualwrite
    off           old                            old            Stage.OFF
    dualwrite     old, then new                  old            Stage.DUAL_WRITE
    shadow        old, then new                  old (+ new)    Stage.DUAL_WRITE
    live          new, then old                  new (+ old)    Stage.CUTOVER
    rampdown      new, then old                  new            Stage.CUTOVER
    complete      new                            new            Stage.DONE

dualwrite never reads both accounts (reads stay on the owner), so ``shadow`` and ``live``, which
add LaunchDarkly's comparison reads, read only the authoritative side here; compare the accounts
with ``dualwrite diff`` instead.

This module does not import the LaunchDarkly SDK (``pip install 'dualwrite[launchdarkly]'``
installs it): :func:`to_stage` works on stage strings, and :func:`stage_of` calls the
``migration_variation`` method of the client you hand it.

Example::

    import ldclient, dualwrite
    from dualwrite.launchdarkly import stage_of

    writer = dualwrite.DualWriter(stage=stage_of(ldclient.get(), "storage-migration"))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from dualwrite._stage import Stage
from dualwrite.events import Write
from dualwrite.exceptions import ConfigurationError

__all__ = ["STAGES", "stage_of", "to_stage"]

STAGES: Mapping[str, Stage] = MappingProxyType(
    {
        "off": Stage.OFF,
        "dualwrite": Stage.DUAL_WRITE,
        "shadow": Stage.DUAL_WRITE,
        "live": Stage.CUTOVER,
        "rampdown": Stage.CUTOVER,
        "complete": Stage.DONE,
    }
)
"""LaunchDarkly migration stage (its string value) -> the dualwrite :class:`~dualwrite.Stage`."""


def to_stage(value: object) -> Stage:
    """Return the dualwrite stage of a LaunchDarkly migration stage.

    Args:
        value: a stage string (``"off"``, ``"dualwrite"``, ``"shadow"``, ``"live"``,
            ``"rampdown"``, ``"complete"``; case and surrounding spaces ignored) or the SDK's
            ``ldclient.migrations.Stage`` member (anything whose ``.value`` is such a string).

    Returns:
        The :class:`~dualwrite.Stage`.

    Raises:
        ConfigurationError: ``value`` is not a LaunchDarkly migration stage; the message lists
            the stages.
    """
    text = getattr(value, "value", value)
    stage = STAGES.get(text.strip().lower()) if isinstance(text, str) else None
    if stage is None:
        msg = f"not a LaunchDarkly migration stage: {value!r}; expected one of {', '.join(STAGES)}"
        raise ConfigurationError(msg)
    return stage


def _sdk_stage(value: str) -> Any:
    """The SDK's ``Stage`` member for ``value`` when the SDK is installed, else the string."""
    try:
        from ldclient.migrations import Stage as SdkStage  # noqa: PLC0415 - optional SDK
    except ImportError:
        return value
    return SdkStage(value)


def _tenant_context(kind: str) -> Callable[[str], Any]:
    def context(tenant: str) -> Any:
        from ldclient import Context  # noqa: PLC0415 - optional SDK

        return Context.create(tenant, kind)

    return context


def stage_of(
    client: Any,
    flag_key: str,
    *,
    default: str = "off",
    context_kind: str = "tenant",
    context_of: Callable[[str], Any] | None = None,
) -> Callable[[Write], Stage]:
    """Return a ``stage=`` callback for :class:`~dualwrite.DualWriter` reading a migration flag.

    The callback evaluates ``flag_key`` for the write's tenant with
    ``client.migration_variation(flag_key, context, default)`` and maps the stage served. A
    write without a tenant gets ``default`` without asking LaunchDarkly.

    Args:
        client: an ``ldclient.LDClient`` (anything with ``migration_variation``).
        flag_key: the migration flag's key.
        default: the LaunchDarkly stage used when the flag cannot be evaluated (LaunchDarkly's
            own fallback) or the write has no tenant.
        context_kind: the LaunchDarkly context kind whose key is the tenant.
        context_of: builds the evaluation context from a tenant, instead of
            ``ldclient.Context.create(tenant, context_kind)``.

    Returns:
        A callable taking a :class:`~dualwrite.Write` and returning a :class:`~dualwrite.Stage`.

    Raises:
        ConfigurationError: ``default`` is not a LaunchDarkly migration stage, or ``client``
            has no ``migration_variation``.
    """
    fallback = to_stage(default)
    if not callable(getattr(client, "migration_variation", None)):
        msg = f"client must be a LaunchDarkly client with migration_variation, got {client!r}"
        raise ConfigurationError(msg)
    sdk_default = _sdk_stage(default.strip().lower())
    make_context = context_of or _tenant_context(context_kind)

    def stage(write: Write) -> Stage:
        if write.tenant is None:
            return fallback
        served, _tracker = client.migration_variation(
            flag_key, make_context(write.tenant), sdk_default
        )
        return to_stage(served)

    return stage
