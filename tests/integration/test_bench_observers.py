"""The bench's observer of when each event's projection committed: a trigger on the
dashboard's inbox, NOTIFY at commit."""

from __future__ import annotations

import time

import asyncpg

from bench.harness import LIVE_INBOX, CommitObserver


async def test_every_id_of_a_fetch_is_seen_once_its_transaction_commits(database_url: str) -> None:
    """A fetch's rows: every id is seen, a redelivered one once, and none before the commit."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            f"CREATE SCHEMA proj; CREATE TABLE {LIVE_INBOX} (event_id text PRIMARY KEY)"
        )
        ids = [f"e-{index}" for index in range(300)]
        with CommitObserver(database_url) as observer:
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {LIVE_INBOX} SELECT unnest($1::text[])", ids[:200])
                await conn.execute(  # a redelivered row is not inserted again
                    f"INSERT INTO {LIVE_INBOX} SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                    ids[150:],
                )
                time.sleep(0.5)
                assert observer.seen == {}
            assert observer.wait_for(set(ids), timeout=10) == set()
        assert set(observer.seen) == set(ids)
    finally:
        await conn.close()
