"""PostgreSQL access: pools, migrations and the one transaction wrapper.

The runtime owns the transaction: request and message wrappers open it with
:func:`transaction`; handlers and repositories receive the connection and never commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

import asyncpg

SHARED_MIGRATIONS = "teamnl_shared.migrations"
_MIGRATION_LOCK = 7_310_001  # pg_advisory_xact_lock key: one migrator at a time


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
    assert pool is not None
    return pool


async def keep_session(_conn: asyncpg.Connection) -> None:
    """A pool's ``reset`` for code that leaves no session state on a connection (no LISTEN,
    session advisory lock, held cursor or plain SET; asyncpg itself rolls back an open
    transaction): the release skips asyncpg's reset query, one round trip less each time."""


async def ping(pool: asyncpg.Pool, timeout: float = 5.0) -> bool:
    """The database answers a query within ``timeout``; any connection failure is "no"."""
    with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return await asyncio.wait_for(pool.fetchval("SELECT true"), timeout) is True
    return False


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction():
        yield conn


def _migration_files(package: str) -> list[tuple[str, str]]:
    root = resources.files(package)
    files = sorted(
        (entry.name, entry.read_text()) for entry in root.iterdir() if entry.name.endswith(".sql")
    )
    return [(f"{package}:{name}", sql) for name, sql in files]


async def migrate(pool: asyncpg.Pool, *packages: str) -> list[str]:
    """Apply every ``*.sql`` file of the packages not applied yet, in name order."""
    applied: list[str] = []
    async with transaction(pool) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for package in (SHARED_MIGRATIONS, *packages):
            for name, sql in _migration_files(package):
                if name not in done:
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                    applied.append(name)
    return applied
