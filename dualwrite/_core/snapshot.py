"""The request as it was at call time (design.md, semantics 10).

A caller may reuse its dicts, lists and buffers the moment a call returns; a shadow write that
runs later (background mode, a sync shadow past ``shadow_timeout``) must see the request as it
was. :func:`snapshot` copies the containers and byte buffers of a request and leaves every other
object (file objects, streams, ``Decimal``, ``Binary``) as it is: bodies are the business of
:class:`dualwrite._core.bodies.Body`.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")

_IMMUTABLE = (str, bytes, int, float, bool, type(None))


def snapshot(value: T) -> T:
    """A copy of ``value`` that shares no mutable container or byte buffer with it.

    Dicts, lists, tuples, sets and their subclasses' contents are copied recursively (as plain
    ``dict``/``list``/``tuple``/``set``/``frozenset``); ``bytearray`` and ``memoryview`` become
    ``bytes``. Anything else is returned as it is. Never raises for any input shape: a value
    the library cannot read must reach the shadow side as the caller gave it.
    """
    return _copy(value, 0)  # type: ignore[no-any-return]


def _copy(value: Any, depth: int) -> Any:
    if isinstance(value, _IMMUTABLE):
        return value
    if depth > 64:  # a self-referencing structure: botocore would refuse it anyway
        return value
    if isinstance(value, dict):
        return {k: _copy(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy(v, depth + 1) for v in value)
    if isinstance(value, frozenset):
        return value  # immutable, and its members are hashable, so immutable too
    if isinstance(value, set):
        return set(value)  # members of a set are hashable: immutable in practice
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value
