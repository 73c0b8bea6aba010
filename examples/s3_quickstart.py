"""S3 quickstart: dual-write one tenant's objects to a second account.

Runs as is on in-process moto (``pip install -e '.[demo]'``): nothing reaches AWS. Against real
accounts, drop ``mock_aws`` and the fake credentials, and build the shadow session from a role in
the new account.
"""

from __future__ import annotations

import os

import boto3
from moto import mock_aws

import dualwrite
from dualwrite.sessions import assume_role_session, shadow_config
from dualwrite.testing import RecordingHook

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "example",
        "AWS_SECRET_ACCESS_KEY": "example",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
)
MIGRATING = {"acme"}


def main() -> None:
    primary = boto3.Session()
    # The new account, reached the way a service would: a role in it, whose credentials
    # renew before they expire (a service dual-writes for weeks).
    shadow = assume_role_session(
        "arn:aws:iam::111111111111:role/migration", session_name="quickstart"
    )
    primary.client("s3").create_bucket(Bucket="photos")
    shadow.client("s3").create_bucket(Bucket="photos-acct2")

    events = RecordingHook()
    writer = dualwrite.DualWriter(
        flag=lambda write: write.tenant in MIGRATING,
        hooks=[events, dualwrite.hooks.LoggingHook()],
    )
    s3 = writer.wrap(
        primary.client("s3"),
        shadow=shadow.client("s3", config=shadow_config()),
        names={"photos": "photos-acct2"},
    )

    for tenant in ("acme", "globex"):
        with dualwrite.tenant(tenant):
            s3.put_object(Bucket="photos", Key=f"{tenant}/cat.jpg", Body=b"meow")
    writer.close()

    for name, session, bucket in (
        ("primary", primary, "photos"),
        ("shadow", shadow, "photos-acct2"),
    ):
        listing = session.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
        print(f"{name:>8}: {sorted(o['Key'] for o in listing)}")
    print("events:", events.kinds())


if __name__ == "__main__":
    with mock_aws():
        main()
