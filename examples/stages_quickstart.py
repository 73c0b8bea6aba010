"""Stages quickstart: cut one tenant over to the new account, roll back, and guard a job.

Runs as is on in-process moto (``pip install -e '.[demo]'``): nothing reaches AWS. In a service
the ``STAGES`` dict is your feature-flag store, and the shadow session comes from a role in the
new account.
"""

from __future__ import annotations

import os

import boto3
from moto import mock_aws

import dualwrite
from dualwrite import Stage
from dualwrite.sessions import assume_role_session, shadow_config

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "example",
        "AWS_SECRET_ACCESS_KEY": "example",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
)
STAGES = {"acme": Stage.DUAL_WRITE}  # every other tenant: Stage.OFF


def keys(session: boto3.Session, bucket: str) -> list[str]:
    listing = session.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    return [o["Key"] for o in listing]


def main() -> None:
    old = boto3.Session()
    # The new account, reached the way a service would: a role in it, whose credentials
    # renew before they expire (a service dual-writes for weeks).
    new = assume_role_session("arn:aws:iam::111111111111:role/migration", session_name="stages")
    old.client("s3").create_bucket(Bucket="photos")
    new.client("s3").create_bucket(Bucket="photos-acct2")

    writer = dualwrite.DualWriter(stage=lambda write: STAGES.get(write.tenant, Stage.OFF))
    s3 = writer.wrap(
        old.client("s3"),
        shadow=new.client("s3", config=shadow_config()),
        names={"photos": "photos-acct2"},
    )

    @writer.guard(account="primary", tenant="tenant")  # this deployment runs in the old account
    def nightly_report(tenant: str) -> str:
        return f"report for {tenant}"

    with dualwrite.tenant("acme"):
        s3.put_object(Bucket="photos", Key="acme/1.txt", Body=b"written old-first")
        print("dual_write:", nightly_report("acme"))

        STAGES["acme"] = Stage.CUTOVER  # after `dualwrite copy` and a zero `dualwrite diff`
        s3.put_object(Bucket="photos", Key="acme/2.txt", Body=b"written new-first")
        body = s3.get_object(Bucket="photos", Key="acme/2.txt")["Body"].read()
        print("cutover: read from the new account:", body, "| job here:", nightly_report("acme"))

        STAGES["acme"] = Stage.DUAL_WRITE  # the rollback drill: the old account has it all
        print("rollback: old account holds", keys(old, "photos"))

        STAGES["acme"] = Stage.DONE
        s3.put_object(Bucket="photos", Key="acme/3.txt", Body=b"new account only")
    print("old account:", keys(old, "photos"))
    print("new account:", keys(new, "photos-acct2"))
    assert keys(old, "photos") == ["acme/1.txt", "acme/2.txt"]
    assert keys(new, "photos-acct2") == ["acme/1.txt", "acme/2.txt", "acme/3.txt"]
    writer.close()


if __name__ == "__main__":
    with mock_aws():
        main()
