"""The request as it was at call time (design.md, semantics 10).

A caller may reuse its dicts, lists and buffers the moment a call returns; a shadow write that
runs later (background mode, a sync shadow past ``shadow_timeout``) must see the request as it
was. :func:`snapshot` copies the containers and byte buffers of a request and leaves every other
object (file objects, streams, ``Decimal``, ``Binary``) as it is: bodies are the business of
:class:`dualwrite._core.bodies.Body`.
"""

from __future__ import annotations

import marshal
from typing import Any, TypeVar

T = TypeVar("T")

_IMMUTABLE = (str, bytes, int, float, bool, type(None))
# Exact types returned as they are without a call (the leaves of almost every request).
_LEAVES = frozenset(_IMMUTABLE)


def snapshot(value: T) -> T:
    """A copy of ``value`` that shares no mutable container or byte buffer with it.

    Dicts, lists, tuples, sets and their subclasses' contents are copied recursively (as plain
    ``dict``/``list``/``tuple``/``set``/``frozenset``); ``bytearray`` and ``memoryview`` become
    ``bytes``. Anything else is returned as it is. Never raises for any input shape: a value
    the library cannot read must reach the shadow side as the caller gave it.
    """
    if type(value) in _LEAVES:
        return value
    try:
        # Plain dicts, lists, tuples, sets, str, bytes and numbers (every low-level request and
        # DynamoDB item) are copied in C: a marshal round trip makes the same copy as _copy
        # (buffers become bytes), with no shared sub-object (version 2 keeps no references).
        copied = marshal.dumps(value, 2)  # type: ignore[arg-type] # any shape: may raise
        return marshal.loads(copied)  # type: ignore[no-any-return] # noqa: S302 - our own bytes
    except Exception:  # noqa: BLE001 - a subclass, Decimal, Binary, a file, a cycle: walk it
        return _copy(value, 0)  # type: ignore[no-any-return]


def _copy(value: Any, depth: int) -> Any:
    if type(value) is dict:  # the common container, copied without a call per leaf
        return _copy_dict(value, depth)
    if isinstance(value, _IMMUTABLE):
        return value
    if depth > 64:  # a self-referencing structure: botocore would refuse it anyway
        return value
    if isinstance(value, dict):
        return _copy_dict(value, depth)
    if isinstance(value, list):
        return [v if type(v) in _LEAVES else _copy(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy(v, depth + 1) for v in value)
    if isinstance(value, frozenset):
        return value  # immutable, and its members are hashable, so immutable too
    if isinstance(value, set):
        return set(value)  # members of a set are hashable: immutable in practice
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def _copy_dict(value: dict[Any, Any], depth: int) -> dict[Any, Any]:
    """A plain ``dict`` copy of ``value`` (of any ``dict`` subclass): leaves are taken as they
    are, nested dicts copied here, anything else by :func:`_copy`."""
    if depth > 64:  # a self-referencing structure: botocore would refuse it anyway
        return value
    copied = {}
    for key, item in value.items():
        kind = type(item)
        if kind in _LEAVES:
            copied[key] = item
        elif kind is dict:
            if len(item) == 1:  # e.g. a DynamoDB attribute value, {"S": "..."}: no call
                ((name, inner),) = item.items()
                if type(inner) in _LEAVES:
                    copied[key] = {name: inner}
                    continue
            copied[key] = _copy_dict(item, depth + 1)
        else:
            copied[key] = _copy(item, depth + 1)
    return copied
