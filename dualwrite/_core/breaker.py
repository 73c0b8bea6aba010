"""The circuit breaker: stop calling a shadow that keeps failing, journal instead, then probe."""

from __future__ import annotations

import threading
import time

import attrs

from dualwrite.exceptions import ConfigurationError


@attrs.frozen(kw_only=True)
class CircuitBreaker:
    """When to stop calling the shadow.

    After ``failures`` consecutive shadow failures the circuit opens: for ``reset_after``
    seconds, shadow writes are not attempted; each is reported ``shadow_failed`` with
    ``error_type="CircuitOpen"`` and journaled. Then one write is let through as a probe: its
    success closes the circuit, its failure opens it again. In sync mode this bounds the caller's
    latency during a shadow outage to the primary's.

    Attributes:
        failures: consecutive failures that open the circuit (at least 1).
        reset_after: seconds the circuit stays open before a probe (more than 0).
    """

    failures: int = 5
    reset_after: float = 30.0

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.failures, int) or self.failures < 1:
            msg = f"CircuitBreaker.failures must be an int >= 1; got {self.failures!r}"
            raise ConfigurationError(msg)
        if not isinstance(self.reset_after, (int, float)) or self.reset_after <= 0:
            msg = f"CircuitBreaker.reset_after must be seconds > 0; got {self.reset_after!r}"
            raise ConfigurationError(msg)


class Circuit:
    """The state of one shadow's circuit (one per wrapped client pair)."""

    def __init__(self, policy: CircuitBreaker) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    def allow(self) -> bool:
        """Whether the next shadow write may be attempted (at most one probe while open)."""
        if self._opened_at is None:
            # Closed: nothing to change, so no lock (a failure opening it at this very moment
            # is ordered after this call, as if the call had come a moment earlier).
            return True
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing:
                return False
            if time.monotonic() - self._opened_at >= self.policy.reset_after:
                self._probing = True
                return True
            return False

    def release(self) -> None:
        """Record a write that said nothing about the shadow's health (it never called it).

        A probe that ends this way gives its turn back, so the next write probes instead;
        without this the circuit would wait forever for a probe's outcome.
        """
        with self._lock:
            self._probing = False

    def success(self) -> bool:
        """Record a success; return ``True`` if it closed an open circuit."""
        if not self._failures and self._opened_at is None and not self._probing:
            return False  # nothing to reset: no lock (ordered before any concurrent failure)
        with self._lock:
            self._failures = 0
            self._probing = False
            if self._opened_at is not None:
                self._opened_at = None
                return True
            return False

    def failure(self) -> bool:
        """Record a failure; return ``True`` if it opened the circuit."""
        with self._lock:
            self._failures += 1
            if self._opened_at is not None:
                # A failed probe: stay open for another period.
                self._probing = False
                self._opened_at = time.monotonic()
                return False
            if self._failures >= self.policy.failures:
                self._opened_at = time.monotonic()
                return True
            return False

    @property
    def is_open(self) -> bool:
        """Whether the circuit is open now."""
        with self._lock:
            return self._opened_at is not None
