"""`shop admin ...`: merchant accounts from the command line."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from shop.admin import auth
from shop.admin.models import AdminUser


@click.group()
def admin() -> None:
    """Merchant accounts for the admin at /admin."""


@admin.command("create-user")
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (for scripts).",
)
@with_appcontext
def create_user(name: str, password_stdin: bool) -> None:
    """Create merchant account NAME (asks for the password twice)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with current_app.extensions["shop.db"].job_session(write_lock=True) as session:
        try:
            user = auth.create_user(session, name, password)
        except auth.AdminError as exc:
            raise click.ClickException(str(exc)) from None
        username = user.username
    click.echo(f"merchant account {username!r} created; sign in at /admin")


@admin.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@with_appcontext
def set_password(name: str, password_stdin: bool) -> None:
    """Give NAME a new password (signs out all its sessions)."""
    password = (
        sys.stdin.readline().rstrip("\r\n")
        if password_stdin
        else click.prompt("New password", hide_input=True, confirmation_prompt=True)
    )
    with current_app.extensions["shop.db"].job_session(write_lock=True) as session:
        user = _user(session, name)
        try:
            auth.set_password(session, user, password)
        except auth.AdminError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo("password changed")


@admin.command("disable-2fa")
@click.argument("name")
@with_appcontext
def disable_2fa(name: str) -> None:
    """Turn off two-factor authentication for NAME (lost phone and recovery codes)."""
    with current_app.extensions["shop.db"].job_session(write_lock=True) as session:
        user = _user(session, name)
        auth.disable_totp(session, user)
        user.session_version += 1
    click.echo("two-factor authentication is off; set it up again under Account")


def _user(session, name: str) -> AdminUser:
    user = session.scalar(
        select(AdminUser).where(AdminUser.username == auth.normalize_username(name))
    )
    if user is None:
        raise click.ClickException(f"no merchant account named {name!r}")
    return user
