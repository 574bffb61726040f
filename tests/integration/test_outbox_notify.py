"""Who wakes the outbox relay: the NOTIFY of an outbox insert, unless the writer's
connection says it wakes the relay itself (``teamnl.outbox_notify = 'off'``)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from test_outbox_inbox import mission_event

from teamnl_shared.outbox import CHANNEL, OUTBOX_NOTIFY_SETTING, enqueue, notify_relay

pytestmark = pytest.mark.integration


async def _notified(database_url: str, write: object) -> bool:
    """Whether a listener on the relay's channel hears anything while `write` runs."""
    heard = asyncio.Event()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener(CHANNEL, lambda *_: heard.set())
        await write  # type: ignore[misc]
        try:
            await asyncio.wait_for(heard.wait(), 2.0)
        except TimeoutError:
            return False
        return True
    finally:
        await listener.close()


async def _insert(database_url: str, n: int, **connect: object) -> None:
    conn = await asyncpg.connect(database_url, **connect)  # type: ignore[arg-type]
    try:
        async with conn.transaction():
            await enqueue(conn, mission_event(n, 0), topic="t")
    finally:
        await conn.close()


async def test_an_outbox_insert_notifies_the_relay_unless_its_connection_says_off(
    database_url: str, migrated_pool: asyncpg.Pool
) -> None:
    """Proves: a plain writer's commit wakes the relay (NOTIFY); a connection with
    ``teamnl.outbox_notify = 'off'`` (the ingestion services' request pool) commits its rows
    without one; and `notify_relay` wakes it on its own."""
    assert await _notified(database_url, _insert(database_url, 1))
    off = {"server_settings": {OUTBOX_NOTIFY_SETTING: "off"}}
    assert not await _notified(database_url, _insert(database_url, 2, **off))
    assert await migrated_pool.fetchval("SELECT count(*) FROM outbox") == 2, "both rows stored"
    assert await _notified(database_url, notify_relay(migrated_pool))
