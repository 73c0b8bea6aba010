"""What ``dualwrite follow s3`` costs per key: a key the shadow lacks, and one it already holds.

Two moto accounts in process (``dualwrite.testing.moto_accounts``); the primary holds ``--keys``
objects of 1 KiB written without the wrapper. The follower (``S3Follower``, what the command and
the Lambda handler run) first converges every key (each is copied), then follows the same
notifications again (each key is already equal: one ``HeadObject`` per account, nothing
written). Prints milliseconds per key and the shadow's requests per key for both passes.

Run: ``python benchmarks/follow.py [--keys 200]``. moto's own CPU is most of a request here, so
the figures compare the two passes with each other, not with real S3.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import dualwrite  # after the fake credentials: moto reads them
from dualwrite._offline.follow import Notice
from dualwrite._offline.follow_s3 import S3Follower
from dualwrite.testing import moto_accounts


def main() -> None:
    """Run both passes and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200, help="objects followed (default 200)")
    args = parser.parse_args()
    print(
        f"# dualwrite {dualwrite.__version__}, Python {platform.python_version()}, moto in process"
    )
    with moto_accounts() as accounts:
        primary = accounts.primary_client("s3")
        shadow = accounts.shadow_client("s3")
        primary.create_bucket(Bucket="photos")
        shadow.create_bucket(Bucket="photos-acct2")
        for i in range(args.keys):
            primary.put_object(Bucket="photos", Key=f"k/{i}", Body=b"x" * 1024)
        sent: list[str] = []

        def count(event_name: str, **_: Any) -> None:
            sent.append(event_name.rsplit(".", 1)[-1])

        shadow.meta.events.register("before-send.s3", count)
        with dualwrite.DualWriter(flag=True, journal=None) as writer:
            writer.wrap(primary, shadow=shadow, names={"photos": "photos-acct2"})
            follower = S3Follower(writer)
            notices = [
                Notice(bucket="photos", key=f"k/{i}", event="ObjectCreated:Put")
                for i in range(args.keys)
            ]
            for label in ("keys the shadow lacks", "keys already equal"):
                sent.clear()
                started = time.perf_counter()
                report = follower.follow(notices)
                seconds = time.perf_counter() - started
                per_key = {op: round(n / args.keys, 2) for op, n in sorted(Counter(sent).items())}
                print(
                    f"{label}: {seconds / args.keys * 1000:.2f} ms/key "
                    f"(copied {report.copied}, equal {report.equal}); "
                    f"shadow requests per key: {per_key}"
                )


if __name__ == "__main__":
    main()
