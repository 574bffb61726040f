"""Cross-network projections: activity-like facts, budget and dead letters (the event log,
``events``, is written as the inbox records each event: `ledger`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import NamedTuple

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


class DeadLetter(NamedTuple):
    """A record dead-lettered, by its original position, as ``dead_letters`` keeps it."""

    topic: str
    partition: int
    offset: int
    reason: str
    event_id: str | None
    event_type: str | None
    recorded_at: datetime


async def record_dead_letters(conn: asyncpg.Connection, letters: Sequence[DeadLetter]) -> None:
    """Record `letters` in one statement; one recorded before (a fetch read again) is
    skipped. Their texts come from the records (their headers, or what a reason quotes of
    them), which any producer may have written: they are stored without NUL, which
    PostgreSQL's text cannot hold, and cut short (a refused dead letter was retried for
    ever, its partition stuck behind it)."""
    await conn.execute(
        "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, event_id, event_type,"
        " reason, recorded_at) SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[],"
        " $4::text[], $5::text[], $6::text[], $7::timestamptz[]) ON CONFLICT DO NOTHING",
        [letter.topic for letter in letters],
        [letter.partition for letter in letters],
        [letter.offset for letter in letters],
        [_storable(letter.event_id, DEAD_LETTER_NAME_CHARACTERS) for letter in letters],
        [_storable(letter.event_type, DEAD_LETTER_NAME_CHARACTERS) for letter in letters],
        [_storable(letter.reason, DEAD_LETTER_REASON_CHARACTERS) for letter in letters],
        [letter.recorded_at for letter in letters],
    )


DEAD_LETTER_NAME_CHARACTERS = 1000
"""The most of a dead letter's event id and type kept (the contract's are far shorter)."""
DEAD_LETTER_REASON_CHARACTERS = 2000


def _storable(text: str | None, most: int) -> str | None:
    return None if text is None else text.replace("\x00", "")[:most]
