"""What the journal holds: :class:`Entry`, the :class:`Journal` protocol, key encoding and
the owners of ``pending`` intents (every backend shares them)."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import attrs

REASONS = (
    "pending",
    "shadow_failed",
    "unsupported",
    "overflow",
    "circuit_open",
    "mismatch",
    "flag_failed",
    "uncertain",
    "timeout",
    "closed",
    "presigned",
)
"""Why a key is in the journal.

``pending``: the write's intent, recorded before the primary is called and removed once the
shadow holds the state; ``shadow_failed``: the shadow write failed; ``unsupported``: the write
could not be mirrored; ``overflow``: the background queue was full; ``circuit_open``: the circuit
breaker skipped the shadow; ``mismatch``: both accounts answered but their results disagree;
``flag_failed``: the flag or ``tenant_of`` raised, so the shadow was not written; ``uncertain``:
the primary's call failed in a way that does not say whether it wrote (a timeout, a dropped
connection); ``timeout``: the shadow did not answer within ``shadow_timeout``; ``closed``: the
write came after the writer was closed; ``presigned``: a presigned URL or POST for a write was
signed through a wrapped client (the upload will reach the primary only; see ``Entry.expires``).
"""


@attrs.frozen(kw_only=True)
class Entry:
    """One journaled key.

    Attributes:
        service: ``"s3"`` or ``"dynamodb"``.
        resource: the primary bucket or table name.
        key: the S3 object key, or the DynamoDB key in its typed form (``{"pk": {"S": "a"}}``).
        reason: one of :data:`REASONS`.
        tenant: the write's tenant, if known.
        detail: a short explanation (an error code, an unsupported reason); never a payload.
        at: when the entry was made (seconds since the epoch).
        id: the backend's id of the entry, set when it is read back.
        first: the account the write went to first, as wrapped: ``"primary"`` (the old account;
            always, without stages) or ``"shadow"`` (the new one, at ``CUTOVER``). Repair copies
            a key from the account its latest entry's write went to first: that account
            acknowledged the write.
        owner: for a ``pending`` intent, the token of the writer process that made it (see
            :func:`process_token`); repair leaves the intent of a process that is still alive
            to that process, which removes it once its shadow write is done.
        expires: for a ``presigned`` entry, when the URL or POST stops working (seconds since
            the epoch); repair keeps the entry until the upload exists or this time passed. A
            ``presigned`` entry whose ``detail`` is ``"prefix"`` names a key prefix (a POST
            whose key ends in ``${filename}``), not a key.
    """

    service: str
    resource: str
    key: str | Mapping[str, Any]
    reason: str
    tenant: str | None = None
    detail: str = ""
    at: float = attrs.field(factory=time.time)
    id: str | None = None
    first: str = "primary"
    owner: str | None = None
    expires: float | None = None

    @property
    def resource_level(self) -> bool:
        """Whether the entry names a whole bucket or table rather than one key.

        A write whose key could not be read (an unparsed PartiQL statement, a table whose key
        schema neither account would describe) is journaled with an empty key: ``""`` for S3,
        ``{}`` for DynamoDB. Repair cannot settle such an entry key by key; a ``diff`` or
        ``copy`` of the resource does.
        """
        return not self.key

    def identity(self) -> tuple[str, str, str]:
        """``(service, resource, key as canonical JSON)``: entries for one key share it."""
        return self.service, self.resource, encode_key(self.key)


@runtime_checkable
class Journal(Protocol):
    """A place to record keys the shadow may lack.

    Implementations must be safe to call from several threads at once.
    """

    def add(self, entries: Sequence[Entry]) -> list[str]:
        """Record ``entries``; return their ids, in order."""

    def remove(self, ids: Sequence[str]) -> None:
        """Forget the entries ``ids``; unknown ids are ignored."""

    def entries(self, limit: int | None = None) -> Iterator[Entry]:
        """Yield recorded entries (with their ids), oldest first, up to ``limit``."""

    def count(self) -> int:
        """Return how many entries are recorded."""

    def close(self) -> None:
        """Release the backend's resources."""


# -- owners of pending intents -------------------------------------------------------------------

_token_cache: tuple[int, str] | None = None


def _start_ticks(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else ``None``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19].decode("ascii") if len(fields) > 19 else None


def process_token() -> str:
    """This process's token, ``host/pid/start``: names the owner of its ``pending`` intents.

    The start time tells a live process from a later one that reuses its pid (Linux); where it
    cannot be read, a random value stands in (a reused pid then looks alive: repair waits).
    """
    global _token_cache  # noqa: PLW0603 - one token per process, recomputed after a fork
    pid = os.getpid()
    cached = _token_cache
    if cached is not None and cached[0] == pid:
        return cached[1]
    start = _start_ticks(pid) or uuid.uuid4().hex[:12]
    token = f"{socket.gethostname()}/{pid}/{start}"
    _token_cache = (pid, token)
    return token


def owner_alive(owner: str | None) -> bool | None:
    """Whether the process named by ``owner`` (a :func:`process_token`) still runs.

    Returns:
        ``True`` or ``False`` for a process of this host; ``None`` when that cannot be told (a
        process of another host, or no owner recorded).
    """
    if not owner:
        return None
    host, _, rest = owner.partition("/")
    pid_text, _, start = rest.partition("/")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return owner == process_token()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    now = _start_ticks(pid)
    return now is None or not start.isdigit() or now == start


# -- key encoding --------------------------------------------------------------------------------


def encode_key(key: str | Mapping[str, Any]) -> str:
    """Canonical JSON for a key: an S3 key as a string, a DynamoDB key in its typed form."""
    if isinstance(key, str):
        return json.dumps(key)
    return json.dumps(_typed(key), sort_keys=True, separators=(",", ":"))


def decode_key(text: str) -> str | dict[str, Any]:
    """Inverse of :func:`encode_key`; DynamoDB binary values come back as ``bytes``."""
    value = json.loads(text)
    if isinstance(value, str):
        return value
    return {name: _unjson(attr) for name, attr in value.items()}


def _typed(key: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB key in typed form, JSON-safe (binary as base64), whatever level it came from."""
    from boto3.dynamodb.types import Binary, TypeSerializer  # noqa: PLC0415 - boto3 is a dependency

    out: dict[str, Any] = {}
    serializer = TypeSerializer()
    for name, value in key.items():
        typed: dict[str, Any]
        if isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in ("S", "N", "B"):
            typed = dict(value)  # already low-level
        else:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = Decimal(str(value))  # noqa: PLW2901
            typed = dict(serializer.serialize(value))
        if "B" in typed:
            raw: Any = typed["B"]
            raw = raw.value if isinstance(raw, Binary) else raw  # type: ignore[attr-defined]
            # botocore accepts a str blob and sends it UTF-8 encoded.
            raw = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
            typed = {"B": base64.b64encode(raw).decode("ascii")}
        out[str(name)] = typed
    return out


def _unjson(attr: Mapping[str, Any]) -> dict[str, Any]:
    if "B" in attr:
        return {"B": base64.b64decode(attr["B"])}
    return dict(attr)
