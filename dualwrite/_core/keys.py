"""Keys as the engine orders them: a hashable form of any key a request may carry."""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter

_name = itemgetter(0)


def freeze(key: object) -> object:
    """A hashable form of an S3 key (str) or a DynamoDB key (a dict of attribute values).

    Never raises: a key of a shape no request should carry (a client built with
    ``parameter_validation=False`` sends what it is given, and the primary answers with its
    own error) freezes to ``None``, the whole resource's.
    """
    if isinstance(key, str):
        return key  # the common case, without the ABC checks below (on every write's path)
    try:
        frozen = freeze_any(key)
        hash(frozen)
    except Exception:  # noqa: BLE001 - any shape at all: the resource's lock, never an error
        return None
    return frozen


def freeze_any(key: object) -> object:
    if isinstance(key, str):
        return key
    if isinstance(key, Mapping):
        if len(key) == 1:  # a DynamoDB attribute value ({"S": "a"}): nothing to sort
            ((name, value),) = key.items()
            return ((str(name), freeze_any(value)),)
        # Sorted by name alone (a DynamoDB key's names are unique: no repr of every value);
        # by repr where two names print alike, so that the order never depends on the map's.
        pairs = sorted([(str(k), freeze_any(v)) for k, v in key.items()], key=_name)
        if len({name for name, _ in pairs}) < len(pairs):
            pairs.sort(key=repr)
        return tuple(pairs)
    if isinstance(key, (list, tuple)):
        return tuple(freeze_any(v) for v in key)
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    if isinstance(key, (set, frozenset)):
        return tuple(sorted(map(repr, key)))
    return key
