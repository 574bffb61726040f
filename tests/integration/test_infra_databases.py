"""The databases the project creates order text by byte (collation ``C``), which over UTF-8
is code point order: the order the server's own locale gives, at less cost."""

from __future__ import annotations

import uuid

import asyncpg

from teamnl_suite.infra import Infrastructure, with_database
from teamnl_suite.infra.postgres import (
    DATABASE_COLLATION,
    create_databases,
    database_names,
    drop_databases,
)

WORDS = ["b", "B", "a", "é", "e", "z", "Ω", "aa", "a-b", "a_b", "1", "ä", "IJssel", "ijs", "€"]


async def _ordered(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT w FROM unnest($1::text[]) w ORDER BY w", WORDS)
        return [row["w"] for row in rows]
    finally:
        await conn.close()


async def test_a_created_database_orders_text_by_code_point_as_the_server_does(
    infra: Infrastructure,
) -> None:
    name = f"collation_{uuid.uuid4().hex[:8]}"
    admin = infra.admin_database_url()
    await create_databases(admin, [name])
    try:
        conn = await asyncpg.connect(admin)
        try:
            created, server = await conn.fetch(
                "SELECT datcollate, datctype FROM pg_database WHERE datname = $1"
                " UNION ALL SELECT datcollate, datctype FROM pg_database"
                " WHERE datname = 'template1'",
                name,
            )
        finally:
            await conn.close()
        assert created["datcollate"] == DATABASE_COLLATION == "C"
        assert created["datctype"] == server["datctype"]  # character classes: the server's
        in_created = await _ordered(with_database(admin, name))
        assert in_created == await _ordered(admin)  # the server's own locale
        assert in_created == sorted(WORDS)  # Python orders str by code point
        assert name in await database_names(admin)
    finally:
        await drop_databases(admin, [name])
