"""Ways to hold up or break a shadow client from a test, on its own event emitter."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from botocore.exceptions import ClientError


class Gate:
    """Hold every call of ``client`` to ``operations`` until :meth:`open` (or the timeout).

    Counts the calls that reached the gate (``arrived``), so that a test can wait until a
    worker is parked in front of it.
    """

    def __init__(self, client: Any, *operations: str, timeout: float = 30.0) -> None:
        self._opened = threading.Event()
        self._arrived = threading.Condition()
        self.arrived = 0
        self._timeout = timeout
        for operation in operations or ("*",):
            client.meta.events.register(
                f"before-call.{client.meta.service_model.endpoint_prefix}.{operation}",
                self._wait,
                unique_id=f"tests-gate-{operation}",
            )

    def _wait(self, **_: Any) -> None:
        with self._arrived:
            self.arrived += 1
            self._arrived.notify_all()
        self._opened.wait(self._timeout)

    def wait_arrivals(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` calls reached the gate."""
        with self._arrived:
            return self._arrived.wait_for(lambda: self.arrived >= count, timeout)

    def open(self) -> None:
        self._opened.set()


class Breakdown:
    """Make ``client`` fail (or not) at will; count the calls it was asked to make.

    ``calls`` counts every API call the client was given (``provide-client-params`` fires once
    per call, before any retry), so a skipped shadow shows up as a count that does not grow.
    """

    def __init__(self, client: Any, code: str = "ServiceUnavailable") -> None:
        self.broken = False
        self.code = code
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        prefix = client.meta.service_model.endpoint_prefix
        client.meta.events.register(
            f"provide-client-params.{prefix}.*", self._count, unique_id="tests-breakdown-count"
        )
        client.meta.events.register(
            f"before-call.{prefix}.*", self._fail, unique_id="tests-breakdown-fail"
        )

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[model.name] += 1

    def _fail(self, model: Any, **_: Any) -> None:
        if self.broken:
            raise ClientError(
                {"Error": {"Code": self.code, "Message": "the shadow is down (test)"}}, model.name
            )

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())
