"""Who may connect, as the server verbs take it (``--allow-host``, ``--allow-calling-ae``, ``--users``,
the limits), and ``aiodicom hash-password``, which makes the lines of a users file."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated, Any

import typer

from aiodicom.cli.common import app, fail

AllowHost = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-host",
        help="Accept connections only from this address or network (CIDR, e.g. 10.0.0.0/8); repeat for more. "
        "Others are closed before anything is read.",
    ),
]
AllowCallingAe = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-calling-ae",
        help="Accept associations only from this calling AE title; repeat for more (others: A-ASSOCIATE-RJ "
        "calling-AE-title-not-recognized).",
    ),
]
Users = Annotated[
    str | None,
    typer.Option(
        "--users",
        help="Require a username and password (user identity) listed in this file, one username:hash line "
        "each (make the hash with: aiodicom hash-password).",
    ),
]
MaxAssociationsPerPeer = Annotated[
    int | None,
    typer.Option(
        "--max-associations-per-peer",
        min=0,
        help="Associations one peer address may hold at once; more are rejected transiently (default 16; "
        "0: no limit).",
    ),
]
MaxPendingPerPeer = Annotated[
    int | None,
    typer.Option(
        "--max-pending-per-peer",
        min=1,
        help="Connections not yet associated that one peer address may hold at once; more from it are "
        "closed, others still get in (default: a quarter of --max-pending, at least 4).",
    ),
]
ArtimTimeout = Annotated[
    float | None,
    typer.Option(
        "--artim-timeout",
        help="Seconds a new connection has to send its whole association request (default 30).",
    ),
]


def access_options(
    allow_host: list[str] | None,
    allow_calling_ae: list[str] | None,
    users: str | None,
    max_associations_per_peer: int | None,
    artim_timeout: float | None,
    max_pending_per_peer: int | None = None,
) -> dict[str, Any]:
    """The server keywords these options give; bad values exit with status 2."""
    from aiodicom.net.access import parse_allowed_hosts
    from aiodicom.net.address import validate_ae_title
    from aiodicom.net.passwords import load_users, users_hook

    options: dict[str, Any] = {}
    try:
        if allow_host:
            hosts = [part.strip() for item in allow_host for part in item.split(",") if part.strip()]
            options["allowed_hosts"] = parse_allowed_hosts(hosts)
        if allow_calling_ae:
            options["allowed_calling_ae_titles"] = [
                validate_ae_title(ae, "--allow-calling-ae") for ae in allow_calling_ae
            ]
        if users is not None:
            options["on_user_identity"] = users_hook(load_users(users))
            options["require_user_identity"] = True
        if max_associations_per_peer is not None:
            options["max_associations_per_peer"] = max_associations_per_peer or None
        if max_pending_per_peer is not None:
            options["max_pending_per_peer"] = max_pending_per_peer
        if artim_timeout is not None:
            if artim_timeout <= 0:
                raise ValueError("--artim-timeout must be more than 0 seconds")
            options["artim_timeout"] = artim_timeout
    except OSError as exc:
        raise fail(f"cannot read {exc.filename}: {exc.strerror}", 2) from None
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    return options


@app.command("hash-password")
def hash_password(
    username: Annotated[
        str | None,
        typer.Argument(help="Print a whole users-file line for this user (else the hash alone)."),
    ] = None,
) -> None:
    """Read a password (asked twice on a terminal, else the first line of standard input) and print its
    hash for a --users file."""
    from aiodicom.net.passwords import hash_password as make_hash

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise fail("the passwords differ", 2)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise fail("the password is empty", 2)
    if username is not None and not username.strip():
        raise fail("the username is empty", 2)
    hashed = make_hash(password)
    typer.echo(f"{username}:{hashed}" if username is not None else hashed)
