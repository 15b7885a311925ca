"""``voice-agent users``: console accounts (``add NAME --role supervisor|admin``, ``list``, ...).

Passwords are prompted twice (never echoed) or read from stdin with ``--password-stdin`` for
scripts; they never appear on the command line, where other users of the machine could see them.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from voice_agent.cli_options import ConfigOpt, settings_or_exit
from voice_agent.console.users import ROLES, UserError, UserStore
from voice_agent.storage import CallStore

users_app = typer.Typer(no_args_is_help=True, help="Supervisor console accounts")

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from stdin (first line)")
]


def _users(config) -> UserStore:
    settings = settings_or_exit(config)
    return UserStore(CallStore.from_settings(settings).engine)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            typer.echo("error: --password-stdin: nothing on stdin", err=True)
            raise typer.Exit(2)
        return line.rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def _fail(e: UserError) -> typer.Exit:
    typer.echo(f"error: {e}", err=True)
    return typer.Exit(1)


@users_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Username")],
    role: Annotated[str, typer.Option("--role", help=" or ".join(ROLES))],
    password_stdin: PasswordStdin = False,
    config: ConfigOpt = None,
) -> None:
    """Create an account (the password is prompted twice)."""
    if role not in ROLES:
        typer.echo(f"error: --role must be one of: {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    users = _users(config)
    try:
        user = users.add(name, _password(password_stdin), role)
    except UserError as e:
        raise _fail(e) from e
    typer.echo(f"added {user.username} ({user.role})")


@users_app.command("list")
def list_users(config: ConfigOpt = None) -> None:
    """Every account, its role and state."""
    rows = _users(config).list_users()
    if not rows:
        typer.echo("no users yet: voice-agent users add NAME --role admin")
        return
    for u in rows:
        last = u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never"
        state = "disabled" if u.disabled else "active"
        typer.echo(f"{u.username:<24} {u.role:<11} {state:<9} last sign-in {last}")


@users_app.command("remove")
def remove(name: str, config: ConfigOpt = None) -> None:
    """Delete an account."""
    try:
        _users(config).remove(name)
    except UserError as e:
        raise _fail(e) from e
    typer.echo(f"removed {name}")


@users_app.command("set-password")
def set_password(
    name: str, password_stdin: PasswordStdin = False, config: ConfigOpt = None
) -> None:
    """Give an account a new password (its open sessions end)."""
    users = _users(config)
    try:
        users.set_password(name, _password(password_stdin))
    except UserError as e:
        raise _fail(e) from e
    typer.echo(f"password changed for {name}")


@users_app.command("disable")
def disable(
    name: str,
    enable: Annotated[bool, typer.Option("--enable", help="Re-enable instead")] = False,
    config: ConfigOpt = None,
) -> None:
    """Disable an account (its open sessions end); ``--enable`` turns it back on."""
    try:
        _users(config).set_disabled(name, not enable)
    except UserError as e:
        raise _fail(e) from e
    typer.echo(f"{'enabled' if enable else 'disabled'} {name}")
