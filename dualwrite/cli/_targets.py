"""Command-line options naming the two accounts, shared by every command that reaches AWS."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import attrs
import boto3
import botocore.session

SIDES = ("primary", "shadow")


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--primary-*`` and ``--shadow-*`` options, and ``--names``."""
    for side in SIDES:
        group = parser.add_argument_group(f"{side} account")
        group.add_argument(f"--{side}-profile", help=f"AWS profile of the {side} account")
        group.add_argument(f"--{side}-region", help=f"region of the {side} account")
        group.add_argument(
            f"--{side}-endpoint-url", help=f"endpoint URL for the {side} (e.g. a local S3)"
        )
        group.add_argument(
            f"--{side}-role-arn", help=f"IAM role to assume for the {side} account's calls"
        )
    parser.add_argument(
        "--names",
        type=Path,
        help='JSON file of name maps: {"s3": {"photos": "photos-acct2"}, "dynamodb": {...}}; '
        "a flat object is the S3 map",
    )
    parser.add_argument(
        "--shadow-account",
        help="the shadow's account id, to translate ExpectedBucketOwner (else it is dropped)",
    )


@attrs.frozen
class Targets:
    """The two accounts' sessions and endpoints, and the name maps."""

    primary: boto3.Session
    shadow: boto3.Session
    primary_endpoint: str | None
    shadow_endpoint: str | None
    names: dict[str, dict[str, str]]
    shadow_account: str | None

    def client(self, side: str, service: str, config: Any = None) -> Any:
        """A client of ``service`` for ``side`` (``"primary"`` or ``"shadow"``).

        ``config`` is a ``botocore.config.Config`` (e.g. a connection pool as large as the
        number of worker threads).
        """
        session = self.primary if side == "primary" else self.shadow
        endpoint = self.primary_endpoint if side == "primary" else self.shadow_endpoint
        return session.client(service, endpoint_url=endpoint, config=config)  # type: ignore[call-overload]


def targets_from(args: argparse.Namespace) -> Targets:
    """Build :class:`Targets` from parsed options.

    Raises:
        SystemExit: a names file that cannot be read or has the wrong shape (exit code 2).
    """
    sessions = {}
    # One model loader for every session: botocore parses each service model once per loader
    # (about 0.1 s for S3), and the two accounts use the same models.
    loader = botocore.session.get_session().get_component("data_loader")

    def core() -> botocore.session.Session:
        session = botocore.session.get_session()
        session.register_component("data_loader", loader)
        return session

    for side in SIDES:
        session = boto3.Session(
            profile_name=getattr(args, f"{side}_profile"),
            region_name=getattr(args, f"{side}_region"),
            botocore_session=core(),
        )
        role = getattr(args, f"{side}_role_arn")
        if role:
            endpoint = getattr(args, f"{side}_endpoint_url")
            creds = session.client("sts", endpoint_url=endpoint).assume_role(
                RoleArn=role, RoleSessionName=f"dualwrite-{side}"
            )["Credentials"]
            session = boto3.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
                region_name=session.region_name,
                botocore_session=core(),
            )
        sessions[side] = session
    return Targets(
        primary=sessions["primary"],
        shadow=sessions["shadow"],
        primary_endpoint=args.primary_endpoint_url,
        shadow_endpoint=args.shadow_endpoint_url,
        names=load_names(args.names) if args.names else {"s3": {}, "dynamodb": {}},
        shadow_account=args.shadow_account,
    )


def load_names(path: Path) -> dict[str, dict[str, str]]:
    """Read a names file: ``{"s3": {...}, "dynamodb": {...}}`` or a flat S3 map."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"dualwrite: cannot read names file {path}: {exc}"
        raise SystemExit(msg) from exc
    if not isinstance(data, dict):
        msg = f"dualwrite: names file {path} must hold a JSON object"
        raise SystemExit(msg)
    if set(data) <= {"s3", "dynamodb"} and all(isinstance(v, dict) for v in data.values()):
        maps = {"s3": data.get("s3", {}), "dynamodb": data.get("dynamodb", {})}
    else:
        maps = {"s3": data, "dynamodb": {}}
    for service, mapping in maps.items():
        for key, value in mapping.items():
            if not isinstance(key, str) or not isinstance(value, str) or not value:
                msg = f"dualwrite: names file {path}: {service} map must be string to string"
                raise SystemExit(msg)
    return maps
