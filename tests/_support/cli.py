"""Run ``python -m dualwrite`` against a moto server holding two accounts.

The primary is moto's default account; the shadow is reached by assuming a role in account
111111111111, as the command line does with ``--shadow-role-arn``. The shadow's endpoint may be a
:class:`~tests._support.proxy.FaultProxy` in front of the server, to make the shadow behave as a
real one would (reject an ACL, be slow on chosen requests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3

from _support.proxy import Fault

REGION = "us-east-1"
SHADOW_ROLE = "arn:aws:iam::111111111111:role/dualwrite-backfill"
OWNER_ACL = "bucket-owner-full-control"


def sessions(url: str) -> tuple[boto3.Session, boto3.Session]:
    """The primary's session, and the shadow's (by STS AssumeRole on the server)."""
    primary = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    creds = primary.client("sts", endpoint_url=url).assume_role(
        RoleArn=SHADOW_ROLE, RoleSessionName="tests"
    )["Credentials"]
    shadow = boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=REGION,
    )
    return primary, shadow


_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


class Cli:
    """The command line against one server, with a names file."""

    def __init__(self, url: str, tmp_path: Path, names: Mapping[str, Any]) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.names = tmp_path / "names.json"
        self.names.write_text(json.dumps(names))
        self.env = {k: v for k, v in os.environ.items() if k != "AWS_PROFILE"} | _ENV

    def argv(self, *args: str, shadow_url: str | None = None) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dualwrite",
            *args,
            "--names",
            str(self.names),
            "--primary-endpoint-url",
            self.url,
            "--shadow-endpoint-url",
            shadow_url or self.url,
            "--shadow-role-arn",
            SHADOW_ROLE,
            # STS is the server's, whatever proxy stands in front of the shadow's S3/DynamoDB.
            "--shadow-sts-endpoint-url",
            self.url,
        ]

    def run(
        self, *args: str, shadow_url: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args, shadow_url=shadow_url),
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )

    def start(
        self, *args: str, shadow_url: str | None = None, **kwargs: Any
    ) -> subprocess.Popen[str]:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(
            self.argv(*args, shadow_url=shadow_url), text=True, env=self.env, **kwargs
        )


def jsonl(text: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSON Lines text."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _is_object_create(method: str, path: str) -> bool:
    """PutObject, CopyObject or CreateMultipartUpload (path-style: ``/bucket/key?...``)."""
    resource, _, query = path.partition("?")
    if resource.strip("/").count("/") < 1:
        return False  # a bucket-level request
    if method == "POST":
        return query.startswith("uploads")
    subresources = ("partNumber=", "tagging", "acl", "retention", "legal-hold", "uploadId=")
    return method == "PUT" and not any(s in query for s in subresources)


def enforce_owner_acl() -> Fault:
    """A proxy fault failing object creates without ``x-amz-acl: bucket-owner-full-control``.

    What AWS does on a BucketOwnerEnforced bucket for other ACLs, and what makes a cross-account
    object unreadable by the bucket owner otherwise; moto enforces neither.
    """

    def lacks(method: str, path: str, headers: Any) -> bool:
        if not _is_object_create(method, path):
            return False
        grants = [h for h in headers if h.lower().startswith("x-amz-grant-")]
        return headers.get("x-amz-acl") != OWNER_ACL or bool(grants)

    return Fault("error", 400, "AccessControlListNotSupported", when=lacks)


def reject_acls() -> Fault:
    """A proxy fault failing every request that carries an ACL (a shadow with ACLs refused)."""
    return Fault(
        "error",
        400,
        "AccessControlListNotSupported",
        when=lambda method, path, headers: "x-amz-acl" in headers,
    )


def delay_matching(
    seconds: float, match: Callable[[str, str, Any], bool], arrived: Callable[[], None]
) -> Fault:
    """A proxy fault holding matching requests ``seconds`` before forwarding them.

    ``arrived`` is called when one arrives: the test then does its live write, which lands
    before the held request does.
    """

    def when(method: str, path: str, headers: Any) -> bool:
        if match(method, path, headers):
            arrived()
            return True
        return False

    return Fault("pass", delay=seconds, when=when)


class Accounts:
    """A fresh server state with the command line and clients of both accounts on it."""

    def __init__(self, server: Any, tmp_path: Path, names: Mapping[str, Any]) -> None:
        server.reset()
        primary, shadow = sessions(server.url)
        self.server = server
        self.tmp = tmp_path
        self.cli = Cli(server.url, tmp_path, names)
        self.primary_session = primary
        self.shadow_session = shadow
        self.p_s3 = primary.client("s3", endpoint_url=server.url)
        self.s_s3 = shadow.client("s3", endpoint_url=server.url)
        self.p_ddb = primary.client("dynamodb", endpoint_url=server.url)
        self.s_ddb = shadow.client("dynamodb", endpoint_url=server.url)
