"""Command-line options naming the two accounts, shared by every command that reaches AWS."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import attrs
import boto3
import botocore.session
from botocore.exceptions import ProfileNotFound

from dualwrite.exceptions import ConfigurationError
from dualwrite.sessions import assume_role_session, shadow_config

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
            f"--{side}-role-arn",
            help=f"IAM role to assume for the {side} account's calls (credentials renew "
            "themselves, so a long copy outlives the role's session)",
        )
        group.add_argument(
            f"--{side}-sts-endpoint-url",
            help=f"endpoint URL of STS for --{side}-role-arn (default: the regional STS "
            f"endpoint; --{side}-endpoint-url is never used for STS)",
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
    roles: dict[str, str | None] = attrs.field(factory=dict)
    _accounts: dict[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    def client(self, side: str, service: str, config: Any = None) -> Any:
        """A client of ``service`` for ``side`` (``"primary"`` or ``"shadow"``).

        ``config`` is a ``botocore.config.Config`` (e.g. a connection pool as large as the
        number of worker threads). An error the client raises names the side, its account and
        its region at the start of its message.
        """
        session = self.primary if side == "primary" else self.shadow
        endpoint = self.primary_endpoint if side == "primary" else self.shadow_endpoint
        client = session.client(service, endpoint_url=endpoint, config=config)  # type: ignore[call-overload]

        def name_the_side(exception: BaseException, **_: Any) -> None:
            # Both accounts fail with the same botocore messages ("Unable to locate
            # credentials", "AccessDenied"); without the side, the fix is a guess.
            if getattr(exception, "dualwrite_side", None) or not exception.args:
                return
            if not isinstance(exception.args[0], str):
                return
            label = self.describe(side)
            exception.args = (f"{label}: {exception.args[0]}", *exception.args[1:])
            exception.dualwrite_side = label  # type: ignore[attr-defined]

        client.meta.events.register(
            "after-call-error", name_the_side, unique_id="dualwrite-cli-name-the-side"
        )
        return client

    def describe(self, side: str) -> str:
        """``side`` with its account, region and endpoint, e.g. for an error message.

        The account comes from the side's role ARN, else ``--shadow-account``, else one
        ``GetCallerIdentity`` call (made once, only when an error is being described).
        """
        session = self.primary if side == "primary" else self.shadow
        endpoint = self.primary_endpoint if side == "primary" else self.shadow_endpoint
        text = f"{side} (account {self._account(side)}, region {session.region_name or 'unset'}"
        if endpoint:
            text += f", endpoint {endpoint}"
        return text + ")"

    def _account(self, side: str) -> str:
        if side in self._accounts:
            return self._accounts[side]
        role = self.roles.get(side)
        if role:
            account = role.split(":")[4] or "unknown"
        elif side == "shadow" and self.shadow_account:
            account = self.shadow_account
        else:
            session = self.primary if side == "primary" else self.shadow
            endpoint = self.primary_endpoint if side == "primary" else self.shadow_endpoint
            try:
                sts = session.client(
                    "sts", endpoint_url=endpoint, config=shadow_config(max_attempts=1)
                )
                account = str(sts.get_caller_identity()["Account"])
            except Exception as exc:  # noqa: BLE001 - a description never fails
                account = f"unknown: {type(exc).__name__}"
        self._accounts[side] = account
        return account


def targets_from(args: argparse.Namespace) -> Targets:
    """Build :class:`Targets` from parsed options.

    No AWS call is made: roles are assumed on the first request, and again before their
    credentials expire (:func:`dualwrite.sessions.assume_role_session`).

    Raises:
        SystemExit: a names file that cannot be read or has the wrong shape, or a role ARN
            that is not one (exit code 2, message on standard error).
    """
    sessions = {}
    roles: dict[str, str | None] = {}
    # One model loader for every session: botocore parses each service model once per loader
    # (about 0.1 s for S3), and the two accounts use the same models.
    loader = botocore.session.get_session().get_component("data_loader")

    for side in SIDES:
        core = botocore.session.get_session()
        core.register_component("data_loader", loader)
        try:
            session = boto3.Session(
                profile_name=getattr(args, f"{side}_profile"),
                region_name=getattr(args, f"{side}_region"),
                botocore_session=core,
            )
        except ProfileNotFound as exc:
            _usage_error(f"--{side}-profile: {exc}")
        role = getattr(args, f"{side}_role_arn")
        roles[side] = role
        if role:
            try:
                session = assume_role_session(
                    role,
                    session_name=f"dualwrite-{side}",
                    region=session.region_name,
                    sts_endpoint_url=getattr(args, f"{side}_sts_endpoint_url", None),
                    base_session=session,
                )
            except ConfigurationError as exc:
                _usage_error(f"--{side}-role-arn: {exc}")
        sessions[side] = session
    return Targets(
        primary=sessions["primary"],
        shadow=sessions["shadow"],
        primary_endpoint=args.primary_endpoint_url,
        shadow_endpoint=args.shadow_endpoint_url,
        names=load_names(args.names) if args.names else {"s3": {}, "dynamodb": {}},
        shadow_account=args.shadow_account,
        roles=roles,
    )


def _usage_error(message: str) -> NoReturn:
    """Exit with code 2, as argparse does for a bad option (the docs' loops rely on it)."""
    print(f"dualwrite: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_names(path: Path) -> dict[str, dict[str, str]]:
    """Read a names file: ``{"s3": {...}, "dynamodb": {...}}`` or a flat S3 map.

    Raises:
        SystemExit: the file cannot be read or has the wrong shape (exit code 2).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _usage_error(f"cannot read names file {path}: {exc}")
    if not isinstance(data, dict):
        _usage_error(f"names file {path} must hold a JSON object")
    if set(data) <= {"s3", "dynamodb"} and all(isinstance(v, dict) for v in data.values()):
        maps = {"s3": data.get("s3", {}), "dynamodb": data.get("dynamodb", {})}
    else:
        maps = {"s3": data, "dynamodb": {}}
    for service, mapping in maps.items():
        for key, value in mapping.items():
            if not isinstance(key, str) or not isinstance(value, str) or not value:
                _usage_error(f"names file {path}: {service} map must be string to string")
    return maps
