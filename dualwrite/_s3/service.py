"""S3 as the engine sees it: the one :class:`~dualwrite._core.service.Service` object of S3."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dualwrite._core.keys import freeze
from dualwrite._core.mirror import Mirror
from dualwrite._s3 import proxy, routing
from dualwrite._s3.converge import repair_object
from dualwrite.events import Write

# The operations whose handler's first act on a readable (Bucket, Key) is to decide
# ``mirror.describe(api, Bucket, Key)`` (objects.py, multipart.py): an async proxy may ask their
# flag on its loop. Parts and completions keep their upload's decision: not here.
_DECIDED_BY_TARGET = frozenset(
    {
        "PutObject",
        "CopyObject",
        "DeleteObject",
        "PutObjectTagging",
        "DeleteObjectTagging",
        "PutObjectAcl",
        "PutObjectRetention",
        "PutObjectLegalHold",
        "PutObjectAnnotation",
        "DeleteObjectAnnotation",
        "CreateMultipartUpload",
    }
)


class S3:
    """S3's implementation of :class:`~dualwrite._core.service.Service` (see there)."""

    name = "s3"
    identity_names = False  # bucket names are global: an unmapped bucket has no shadow
    # An upload's creation is remembered (its parts follow it); a copy reads a source.
    plain_when_off = _DECIDED_BY_TARGET - {"CreateMultipartUpload", "CopyObject"}

    def lock_name(self, resource: str) -> str:
        return resource

    def route_name(self, mirror: Mirror, resource: str) -> str | None:
        return mirror.shadow_name(resource)

    def build_reverse(self, mirror: Mirror) -> Mirror:
        return routing.build_reverse(mirror)

    def target_write(self, mirror: Mirror, api: str, params: Mapping[str, Any]) -> Write | None:
        """The write of a one-key operation whose handler decides ``(Bucket, Key)`` first."""
        if api not in _DECIDED_BY_TARGET:
            return None
        bucket, key = params.get("Bucket"), params.get("Key")
        if not isinstance(bucket, str) or not isinstance(key, str):
            return None  # the handler's _unreadable path decides otherwise
        return mirror.describe(api, bucket, key)

    def journal_key(self, key: object) -> Any:
        return key if isinstance(key, str) else ""

    def queue_key(self, key: Any) -> Any:
        # An object key has one spelling; anything else is no key a request carries.
        return key if type(key) is str else freeze(key)

    def converge(
        self,
        mirror: Mirror,
        resource: str,
        key: Any,
        *,
        attempts: int | None = None,
        deadline: float | None = None,
    ) -> str:
        return repair_object(mirror, resource, str(key), attempts=attempts, deadline=deadline)

    # The module's function itself: routing asks it on every staged call.
    owned_calls = routing.UPLOAD_OPS
    sourced_calls = routing.SOURCED_OPS
    upload_owner = staticmethod(routing.upload_owner)

    def reroute(self, mirror: Mirror, api: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        return routing.reroute(mirror, api, params)

    # The module's function itself: routing asks it on every staged call.
    stage_targets = staticmethod(routing.stage_targets)

    # The module's function itself: routing asks it on every staged call.
    stage_sources = staticmethod(routing.stage_sources)

    def written_keys(
        self, mirror: Mirror, api: str, params: Mapping[str, Any] | None
    ) -> list[tuple[str, Any]] | None:
        return routing.written_keys(mirror, api, params)

    def as_called(self, api: str, response: Any, renamed: Mapping[str, str]) -> Any:
        return routing.as_called(api, response, renamed)

    def wrap(self, writer: Any, primary: Any, **options: Any) -> Any:
        """Wrap an S3 client or resource (see :func:`dualwrite._s3.proxy.wrap`)."""
        return proxy.wrap(self, writer, primary, **options)


SERVICE = S3()
