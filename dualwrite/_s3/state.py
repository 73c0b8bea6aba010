"""S3: what the package keeps per wrapped pair (``Mirror.state``)."""

from __future__ import annotations

import attrs

from dualwrite._s3.fleet import _Latest
from dualwrite._s3.multipart import _Uploads
from dualwrite._s3.requests import Options


@attrs.frozen
class State:
    """What this package keeps per wrapped pair (``Mirror.state``): its options, the multipart
    uploads in progress and the latest write of each key."""

    options: Options
    uploads: _Uploads = attrs.field(factory=_Uploads)
    latest: _Latest = attrs.field(factory=_Latest)


def new_state(options: Options) -> State:
    """The per-pair state this package keeps on a :class:`Mirror`."""
    return State(options)
