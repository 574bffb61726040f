"""The dashboard's database: its pools (search path on the projection schema) and the
start-up preparation (migrations, then the live projection schema on first start)."""

from __future__ import annotations

import asyncpg

from teamnl_shared.db import keep_session, migrate, transaction

from .projections.schema import ensure_live_schema, search_path

MIGRATIONS = "teamnl_dashboard.migrations"


async def create_dashboard_pool(
    url: str, schema_path: str | None = None, *, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": schema_path or search_path()},
        reset=keep_session,  # the dashboard's code leaves none: SET LOCAL, locks per transaction
    )
    assert pool is not None
    return pool


async def prepare_database(url: str) -> None:
    """Apply the migrations (on a connection with the default search path, so that no
    table lands in the projection schema) and create the live projection schema."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    assert pool is not None
    try:
        await migrate(pool, MIGRATIONS)
        async with transaction(pool) as conn:
            await ensure_live_schema(conn)
    finally:
        await pool.close()
