"""``python -m teamnl_dashboard.members``: create, list, disable and re-role members."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import asyncpg
import typer

from . import accounts, members
from .passwords import WeakPassword
from .roles import Role

T = TypeVar("T")

cli = typer.Typer(help="ISO NL dashboard members.", no_args_is_help=True, add_completion=False)
DatabaseUrl = Annotated[
    str,
    typer.Option(
        envvar="DASHBOARD_DATABASE_URL", help="the dashboard's PostgreSQL URL", show_default=False
    ),
]
Email = Annotated[str, typer.Option("--email", help="the member's e-mail address")]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="read the password from the first line of standard input"
    ),
]


def _run(database_url: str, action: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    try:
        return asyncio.run(accounts.with_member_store(database_url, action))
    except (members.MemberError, WeakPassword) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@cli.command()
def create(
    email: Email,
    database_url: DatabaseUrl,
    role: Annotated[Role, typer.Option(help="member (read), secretariat or admin")] = Role.MEMBER,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a member."""
    password = _password(password_stdin)
    member = _run(database_url, lambda pool: members.create_member(pool, email, password, role))
    typer.echo(f"created {member.email} ({member.role})")


@cli.command("set-password")
def set_password(
    email: Email,
    database_url: DatabaseUrl,
    password_stdin: PasswordStdin = False,
) -> None:
    """Set a member's password; ends every session they have."""
    password = _password(password_stdin)
    member = _run(database_url, lambda pool: members.set_password(pool, email, password))
    typer.echo(f"new password for {member.email}; their sessions are ended")


@cli.command("list")
def list_(database_url: DatabaseUrl) -> None:
    """List the members."""
    for member in _run(database_url, members.list_members):
        state = "disabled" if member.disabled else "active"
        typer.echo(f"{member.email}\t{member.role}\t{state}")


@cli.command()
def disable(email: Email, database_url: DatabaseUrl) -> None:
    """Disable a member and end their sessions."""
    member = _run(database_url, lambda pool: members.set_disabled(pool, email, True))
    typer.echo(f"disabled {member.email}")


@cli.command()
def enable(email: Email, database_url: DatabaseUrl) -> None:
    """Enable a disabled member again."""
    member = _run(database_url, lambda pool: members.set_disabled(pool, email, False))
    typer.echo(f"enabled {member.email}")


@cli.command("set-role")
def set_role(
    email: Email, role: Annotated[Role, typer.Option()], database_url: DatabaseUrl
) -> None:
    """Change a member's role."""
    member = _run(database_url, lambda pool: members.set_role(pool, email, role))
    typer.echo(f"{member.email} is now {member.role}")
