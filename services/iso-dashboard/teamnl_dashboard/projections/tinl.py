"""Trade & Innovate NL projections: joint activities and knowledge sharing."""

from __future__ import annotations

import asyncpg

from teamnl_shared.contract import tinl
from teamnl_shared.contract.envelope import Event

from .network import record_activity, record_spend


async def activity_held(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, tinl.ActivityHeld)
    partners = sorted(p.value for p in data.partners)
    await conn.execute(
        "INSERT INTO tinl_activities (activity_id, title, kind, market, country, city,"
        " start_date, end_date, partners, event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        " ON CONFLICT (activity_id) DO UPDATE SET title = excluded.title, kind = excluded.kind,"
        " market = excluded.market, country = excluded.country, city = excluded.city,"
        " start_date = excluded.start_date, end_date = excluded.end_date,"
        " partners = excluded.partners, event_id = excluded.event_id",
        data.activity_id,
        data.title,
        data.kind.value,
        data.market,
        data.country,
        data.city,
        data.start_date,
        data.end_date,
        partners,
        event.id,
    )
    await record_activity(
        conn,
        event,
        kind=data.kind.value,
        on_date=data.start_date,
        market=data.market,
        country=data.country,
        city=data.city,
    )


async def knowledge_shared(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, tinl.KnowledgeShared)
    await conn.execute(
        "INSERT INTO tinl_knowledge (knowledge_id, topic, partners, shared_on, event_id)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (knowledge_id) DO UPDATE SET"
        " topic = excluded.topic, partners = excluded.partners,"
        " shared_on = excluded.shared_on, event_id = excluded.event_id",
        data.knowledge_id,
        data.topic,
        sorted(p.value for p in data.partners),
        data.shared_on,
        event.id,
    )


PROJECTORS = {
    tinl.ActivityHeld.TYPE: activity_held,
    tinl.KnowledgeShared.TYPE: knowledge_shared,
    tinl.TinlBudgetSpent.TYPE: record_spend,
}
