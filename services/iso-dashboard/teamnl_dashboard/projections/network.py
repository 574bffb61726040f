"""Cross-network projections: activity-like facts, budget and dead letters (the event log,
``events``, is written as the inbox records each event: `ledger`)."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg

from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.types import BudgetSpent

# Inserts that skip existing rows: a batch's run of one goes as one statement (writes.py).
INSERT_ACTIVITY = (
    "INSERT INTO activities (event_id, source, family, kind, market, country, city,"
    " on_date) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"
)

UPSERT_SPEND = (
    "INSERT INTO budget_spent (family, spend_id, year, amount_cents, category, spent_on,"
    " event_id) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    " ON CONFLICT (family, spend_id) DO UPDATE SET year = excluded.year,"
    " amount_cents = excluded.amount_cents, category = excluded.category,"
    " spent_on = excluded.spent_on, event_id = excluded.event_id"
)


async def record_activity(
    conn: asyncpg.Connection,
    event: Event,
    *,
    kind: str,
    on_date: date,
    market: str | None = None,
    country: str | None = None,
    city: str | None = None,
) -> None:
    await conn.execute(
        INSERT_ACTIVITY,
        event.id,
        event.source,
        event.spec.family,
        kind,
        market,
        country,
        city,
        on_date,
    )


async def record_spend(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, BudgetSpent)
    await conn.execute(
        UPSERT_SPEND,
        event.spec.family,
        data.spend_id,
        data.year,
        data.amount_cents,
        data.category,
        data.spent_on,
        event.id,
    )


async def record_dead_letter(
    conn: asyncpg.Connection,
    *,
    topic: str,
    partition: int,
    offset: int,
    reason: str,
    event_id: str | None,
    event_type: str | None,
    recorded_at: datetime,
) -> None:
    """Record a dead letter. Its texts come from the record (its headers, or what a reason
    quotes of it), which any producer may have written: they are stored without NUL, which
    PostgreSQL's text cannot hold, and cut short (a refused dead letter was retried for
    ever, its partition stuck behind it)."""
    await conn.execute(
        "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, event_id, event_type,"
        " reason, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        topic,
        partition,
        offset,
        _storable(event_id, DEAD_LETTER_NAME_CHARACTERS),
        _storable(event_type, DEAD_LETTER_NAME_CHARACTERS),
        _storable(reason, DEAD_LETTER_REASON_CHARACTERS),
        recorded_at,
    )


DEAD_LETTER_NAME_CHARACTERS = 1000
"""The most of a dead letter's event id and type kept (the contract's are far shorter)."""
DEAD_LETTER_REASON_CHARACTERS = 2000


def _storable(text: str | None, most: int) -> str | None:
    return None if text is None else text.replace("\x00", "")[:most]
