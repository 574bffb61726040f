"""Upgrading a database whose relay kept published rows (marked ``published_at``): the rows
Kafka has go, the rest stays for the relay, and the relay of this release runs on it."""

from __future__ import annotations

import asyncpg
import pytest

from teamnl_shared.db import SHARED_MIGRATIONS, _migration_files, create_pool, migrate

pytestmark = pytest.mark.integration

UPGRADE = f"{SHARED_MIGRATIONS}:006_outbox_holds_the_unsent.sql"
ROW = (
    "INSERT INTO outbox (event_id, event_source, event_type, topic, key, headers, value,"
    " published_at) VALUES ($1, 'src', 'type', 'topic', 'key', '[]', ''::bytea, $2)"
)


async def _as_the_previous_release(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "CREATE TABLE schema_migrations ("
        " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    for name, sql in _migration_files(SHARED_MIGRATIONS):
        if name < UPGRADE:
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)


async def test_the_upgrade_deletes_the_rows_marked_published_and_keeps_the_unsent(
    database_url: str,
) -> None:
    pool = await create_pool(database_url, max_size=2)
    try:
        async with pool.acquire() as conn:
            await _as_the_previous_release(conn)
            published_at = await conn.fetchval("SELECT now()")
            await conn.execute(ROW, "sent", published_at)
            await conn.execute(ROW, "unsent", None)

        assert await migrate(pool) == [UPGRADE]

        assert [r["event_id"] for r in await pool.fetch("SELECT event_id FROM outbox")] == [
            "unsent"
        ]
        columns = await pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'outbox'"
        )
        assert "published_at" not in {r["column_name"] for r in columns}
        assert await migrate(pool) == []
    finally:
        await pool.close()
