"""The child of the crash test: dual-writes in background mode and prints each acknowledged key.

Usage: ``python crash_child.py SERVER_URL SHADOW_URL JOURNAL BUCKET SHADOW_BUCKET COUNT [TABLE]``

Writes ``COUNT`` S3 objects (and, with ``TABLE``, as many DynamoDB items) from four threads,
printing ``s3 KEY`` / ``dynamodb KEY`` on stdout once the wrapped call returned, until the test
kills it.
"""

from __future__ import annotations

import os
import sys
import threading

import boto3

import dualwrite

SHADOW_ROLE = "arn:aws:iam::111111111111:role/dualwrite-shadow"
THREADS = 4


def main() -> None:
    server, shadow_url, journal, bucket, shadow_bucket, count = sys.argv[1:7]
    table = sys.argv[7] if len(sys.argv) > 7 else None
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    primary = boto3.Session(region_name="us-east-1")
    creds = primary.client("sts", endpoint_url=server).assume_role(
        RoleArn=SHADOW_ROLE, RoleSessionName="crash-child"
    )["Credentials"]
    shadow = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    )
    # A slow shadow and a small queue: the queue stays full (callers wait for room), so a kill
    # always finds a few dozen acknowledged writes not yet on the shadow.
    writer = dualwrite.DualWriter(
        flag=True, mode="background", journal=journal, workers=4, queue_size=64
    )
    s3 = writer.wrap(
        primary.client("s3", endpoint_url=server),
        shadow=shadow.client("s3", endpoint_url=shadow_url),
        names={bucket: shadow_bucket},
    )
    ddb = None
    if table:
        ddb = writer.wrap(
            primary.client("dynamodb", endpoint_url=server),
            shadow=shadow.client("dynamodb", endpoint_url=shadow_url),
        )
    printing = threading.Lock()

    def acked(line: str) -> None:
        with printing:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def work(thread: int) -> None:
        for i in range(thread, int(count), THREADS):
            key = f"obj-{i:05d}"
            s3.put_object(Bucket=bucket, Key=key, Body=f"body of {key}".encode())
            acked(f"s3 {key}")
            if ddb is not None and table:
                ddb.update_item(
                    TableName=table,
                    Key={"pk": {"S": key}},
                    UpdateExpression="ADD n :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
                acked(f"dynamodb {key}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    acked("done")


if __name__ == "__main__":
    main()
