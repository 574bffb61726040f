"""The services' pools give a connection back without asyncpg's reset query (one round trip
per request less): their code leaves no session state to reset."""

from __future__ import annotations

import asyncpg

from teamnl_dashboard.database import create_dashboard_pool, prepare_database
from teamnl_shared.ingestion.runtime import _request_pool


async def last_statement_of(database_url: str, pool: asyncpg.Pool) -> str:
    async with pool.acquire() as conn:
        backend = conn.get_server_pid()
        await conn.fetchval("SELECT 'the request''s statement'")
    observer = await asyncpg.connect(database_url)
    try:
        query: str = await observer.fetchval(
            "SELECT query FROM pg_stat_activity WHERE pid = $1", backend
        )
    finally:
        await observer.close()
    return query


async def test_a_released_connection_was_not_reset(database_url: str) -> None:
    await prepare_database(database_url)
    pools = [
        await create_dashboard_pool(database_url, max_size=1),
        await _request_pool(database_url, max_size=1, command_timeout=5),
    ]
    default = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        for pool in pools:
            assert (
                await last_statement_of(database_url, pool) == "SELECT 'the request''s statement'"
            )
        # what asyncpg's own release does, which the services' pools skip
        assert "RESET ALL" in await last_statement_of(database_url, default)
    finally:
        for pool in [*pools, default]:
            await pool.close()
