"""Loads the facts the rules need from the projections (the rules' repository)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import asyncpg
from teamnl_shared.contract.topics import PUBLISHED_BY

from .model import (
    ActivityFact,
    BudgetFact,
    CallFact,
    CityProgrammeFact,
    DeadLetterFact,
    Facts,
    MissionFact,
    ProjectFact,
    ServiceFact,
)

Loader = Callable[[asyncpg.Connection, "FactContext"], Awaitable[tuple[Any, ...]]]


class FactContext:
    """What loaders need besides the connection: the clock's now and the allocations."""

    def __init__(self, now: datetime, allocations_cents: Mapping[str, int]) -> None:
        self.now = now
        self.allocations_cents = allocations_cents


async def _missions(conn: asyncpg.Connection, _: FactContext) -> tuple[MissionFact, ...]:
    rows = await conn.fetch(
        "SELECT m.mission_id, m.country, m.end_date, m.held_event_id,"
        " coalesce(array_agg(f.event_id ORDER BY f.held_on) FILTER (WHERE f.event_id IS NOT NULL),"
        " '{}') AS followups"
        " FROM nlib_missions m LEFT JOIN nlib_followups f USING (mission_id)"
        " WHERE m.status = 'held' GROUP BY m.mission_id ORDER BY m.mission_id"
    )
    return tuple(MissionFact(r["mission_id"], r["country"], r["end_date"], r["held_event_id"],
                             tuple(r["followups"])) for r in rows)


async def _activities(conn: asyncpg.Connection, _: FactContext) -> tuple[ActivityFact, ...]:
    rows = await conn.fetch(
        "SELECT mission_id AS id, 'nlib' AS family, country AS market, country,"
        " coalesce(city_of_opportunity, city) AS city, start_date, end_date, held_event_id AS ev"
        " FROM nlib_missions WHERE status = 'held'"
        " UNION ALL SELECT activity_id, 'tinl', market, country, city, start_date, end_date,"
        " event_id FROM tinl_activities ORDER BY 1"
    )
    return tuple(ActivityFact(r["id"], r["family"], r["market"], r["country"], r["city"],
                              r["start_date"], r["end_date"], r["ev"]) for r in rows)


async def _projects(conn: asyncpg.Connection, _: FactContext) -> tuple[ProjectFact, ...]:
    rows = await conn.fetch(
        "SELECT project_id, country, status, onboarded_event_id FROM wp_projects"
        " ORDER BY project_id")
    return tuple(ProjectFact(r["project_id"], r["country"], r["status"],
                             r["onboarded_event_id"]) for r in rows)


async def _calls(conn: asyncpg.Connection, _: FactContext) -> tuple[CallFact, ...]:
    rows = await conn.fetch(
        "SELECT call_id, negotiation_started_on, closed_on, opened_event_id, closed_event_id"
        " FROM gs_calls ORDER BY call_id")
    return tuple(
        CallFact(r["call_id"], r["negotiation_started_on"], r["closed_on"],
                 tuple(i for i in (r["opened_event_id"], r["closed_event_id"]) if i))
        for r in rows)


async def _budgets(conn: asyncpg.Connection, ctx: FactContext) -> tuple[BudgetFact, ...]:
    rows = await conn.fetch(
        "SELECT family, year, sum(amount_cents) AS spent,"
        " (array_agg(event_id ORDER BY spent_on DESC, spend_id))[1:20] AS ids"
        " FROM budget_spent GROUP BY family, year"
        " UNION ALL SELECT DISTINCT family, $1::int, 0, '{}'::text[] FROM events e"
        " WHERE NOT EXISTS (SELECT 1 FROM budget_spent b"
        "  WHERE b.family = e.family AND b.year = $1)"
        " ORDER BY 1, 2", ctx.now.year)
    return tuple(
        BudgetFact(r["family"], r["year"], ctx.allocations_cents.get(r["family"], 0),
                   int(r["spent"]), tuple(r["ids"])) for r in rows)


async def _services(conn: asyncpg.Connection, _: FactContext) -> tuple[ServiceFact, ...]:
    rows = await conn.fetch(
        "SELECT DISTINCT ON (family) family, time, event_id FROM events"
        " ORDER BY family, time DESC")
    latest: dict[str, ServiceFact] = {}
    for r in rows:
        service = PUBLISHED_BY[r["family"]]
        seen = latest.get(service)
        if seen is None or r["time"] > seen.last_event_at:
            latest[service] = ServiceFact(service, r["time"], r["event_id"])
    return tuple(latest[s] for s in sorted(latest))


async def _dead_letters(conn: asyncpg.Connection, _: FactContext) -> tuple[DeadLetterFact, ...]:
    rows = await conn.fetch(
        "SELECT topic, recorded_at, reason, event_id FROM dead_letters"
        " ORDER BY recorded_at, topic, kafka_partition, kafka_offset")
    return tuple(DeadLetterFact(r["topic"], r["recorded_at"], r["reason"], r["event_id"])
                 for r in rows)


async def _city_programmes(conn: asyncpg.Connection, _: FactContext
                           ) -> tuple[CityProgrammeFact, ...]:
    rows = await conn.fetch("SELECT city_id, city, event_id FROM nlib_cities ORDER BY city_id")
    return tuple(CityProgrammeFact(r["city_id"], r["city"], r["event_id"]) for r in rows)


LOADERS: dict[str, Loader] = {
    "missions": _missions,
    "activities": _activities,
    "projects": _projects,
    "calls": _calls,
    "budgets": _budgets,
    "services": _services,
    "dead_letters": _dead_letters,
    "city_programmes": _city_programmes,
}


async def load_facts(conn: asyncpg.Connection, needs: Iterable[str], ctx: FactContext) -> Facts:
    return Facts(**{name: await LOADERS[name](conn, ctx) for name in sorted(set(needs))})
