"""``teamnl-keys``: create, list and revoke partner API keys of an initiative service; list
the outbox rows its relay parked (``parked``).

The database is ``--database-url``, else ``TEAMNL_KEYS_DATABASE_URL`` (a key store shared by
the services), else the service's own ``<SERVICE>_DATABASE_URL`` (``teamnl-infra env``).
The key is printed once, on stdout; it cannot be shown again (only its hash is stored).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

import asyncpg
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from teamnl_shared.contract.topics import IngestionService
from teamnl_shared.db import create_pool
from teamnl_shared.outbox import ParkedRow, parked_rows

from .keys import InvalidKeyRequest, IssuedKey, StoredKey, create_key, ensure_key_store
from .keys import list_keys as stored_keys
from .keys import revoke_key as revoke_stored_key

app = typer.Typer(help="Partner API keys of the teamnl initiative services.", no_args_is_help=True)
err = Console(stderr=True)
T = TypeVar("T")

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="key store; default TEAMNL_KEYS_DATABASE_URL or <SERVICE>_DATABASE_URL",
    ),
]
ServiceOption = Annotated[
    IngestionService, typer.Option("--service", help="the initiative service")
]


def database_url(service: str, given: str | None) -> str:
    url = (
        given
        or os.environ.get("TEAMNL_KEYS_DATABASE_URL")
        or os.environ.get(f"{service.upper()}_DATABASE_URL")
    )
    if not url:
        raise typer.BadParameter(f"give --database-url or set {service.upper()}_DATABASE_URL")
    return url


CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, unreachable, no such host
    TimeoutError,
    asyncpg.InvalidAuthorizationSpecificationError,  # no such role, password refused
    asyncpg.InvalidCatalogNameError,  # no such database
    asyncpg.CannotConnectNowError,  # starting up, shutting down
    asyncpg.TooManyConnectionsError,
    asyncpg.PostgresConnectionError,  # the connection went away
)
"""What connecting to PostgreSQL (or keeping the connection) raises when the database cannot
be reached as configured, as distinct from a statement it refuses."""


@contextmanager
def database_reachable(url: str) -> Iterator[None]:
    """Around a command's work on `url`'s database: a database that cannot be reached (down,
    refusing the password, no such database) ends the command with one line naming it and
    why, exit status 1; never the URL's credentials, nor a traceback."""
    try:
        yield
    except CONNECT_ERRORS as error:
        err.print(f"[red]cannot reach the database {escape(_where(url))}: {escape(str(error))}[/]")
        raise typer.Exit(1) from None


def with_pool(url: str, action: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    """Run `action` on a small pool of `url`'s database (:func:`database_reachable`)."""

    async def main() -> T:
        pool = await create_pool(url, max_size=2)
        try:
            return await action(pool)
        finally:
            await pool.close()

    with database_reachable(url):
        return asyncio.run(main())


def _where(url: str) -> str:
    """host:port/database of a PostgreSQL URL, without its user or password."""
    parts = urlsplit(url)
    try:
        port = str(parts.port or 5432)
    except ValueError:  # not a number: the connection said why
        port = "?"
    return f"{parts.hostname or 'localhost'}:{port}/{parts.path.lstrip('/')}"


def event_types_option(types: str | None) -> list[str] | None:
    """The event types of ``--types`` (comma-separated); None without it: every type of the
    service. Given but naming none (``--types ""``, ``--types ,``) is refused: a key for every
    type must be asked for by leaving the option out, not by a slip."""
    if types is None:
        return None
    named = [t.strip() for t in types.split(",") if t.strip()]
    if not named:
        raise typer.BadParameter(
            "names no event type; leave --types out for every type of the service",
            param_hint="'--types'",
        )
    return named


def _run(url: str, action: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    async def in_key_store(pool: asyncpg.Pool) -> T:
        await ensure_key_store(pool)
        return await action(pool)

    return with_pool(url, in_key_store)


@app.command()
def create(
    service: ServiceOption,
    partner: Annotated[str, typer.Option("--partner", help="partner slug, e.g. rvo-crm")],
    types: Annotated[
        str | None,
        typer.Option("--types", help="comma-separated event types; default: all of the service"),
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Issue a key; prints it once."""
    event_types = event_types_option(types)
    try:
        issued: IssuedKey = _run(
            database_url(service, database),
            lambda pool: create_key(
                pool, service=service, partner=partner, event_types=event_types
            ),
        )
    except InvalidKeyRequest as error:
        raise typer.BadParameter(str(error)) from None
    err.print(
        f"key {issued.key_id} for {issued.partner} on {issued.service}, "
        f"source /partners/{issued.partner}, {len(issued.event_types)} event types. "
        "Store it now: it is shown only once."
    )
    print(issued.key)


@app.command("list")
def list_command(service: ServiceOption, database: DatabaseOption = None) -> None:
    """List the keys of a service (never the secrets)."""
    keys: list[StoredKey] = _run(
        database_url(service, database), lambda pool: stored_keys(pool, service=service)
    )
    table = Table("key id", "partner", "service", "event types", "created", "revoked")
    for key in keys:
        table.add_row(
            key.key_id,
            key.partner,
            key.service,
            "\n".join(key.event_types),
            key.created_at.isoformat(timespec="seconds"),
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    Console().print(table)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="the key id (the 8 characters after tnl_)")],
    service: ServiceOption,
    database: DatabaseOption = None,
) -> None:
    """Revoke a key of the service at once."""
    url = database_url(service, database)
    if not _run(url, lambda pool: revoke_stored_key(pool, key_id, service)):
        err.print(f"[red]no active key {key_id} on {service}[/]")
        raise typer.Exit(1)
    err.print(f"[green]revoked[/] {key_id}")


@app.command()
def parked(
    service: ServiceOption,
    database: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="the service's database; default <SERVICE>_DATABASE_URL"
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
) -> None:
    """List the outbox rows the relay could never publish (newest first), with the reason."""
    url = database or os.environ.get(f"{service.upper()}_DATABASE_URL")
    if not url:
        raise typer.BadParameter(f"give --database-url or set {service.upper()}_DATABASE_URL")
    rows: list[ParkedRow] = _run(url, lambda pool: parked_rows(pool, limit))
    table = Table("seq", "source", "id", "type", "topic", "bytes", "parked", "reason")
    for row in rows:
        table.add_row(
            str(row.seq),
            row.event_source,
            row.event_id,
            row.event_type,
            row.topic,
            str(row.size),
            row.parked_at.isoformat(timespec="seconds"),
            row.reason,
        )
    Console().print(table)
    err.print(f"{len(rows)} parked row(s)")


if __name__ == "__main__":
    app()
