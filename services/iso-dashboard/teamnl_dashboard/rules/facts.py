"""Loads the facts the rules need from the projections (the rules' repository)."""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from teamnl_shared.contract.topics import PUBLISHED_BY

from ..period import end_of_day
from ..quality import MAX_WINDOW_HOURS
from ..reference import HOME_COUNTRY, TINL_PARTNERS, WERKPLAATS_TARGET_FIRST_YEAR, market_of
from .model import (
    DEAD_LETTER_IDS,
    ActivityFact,
    BudgetFact,
    CallFact,
    CityProgrammeFact,
    DeadLettersFact,
    Facts,
    MissionFact,
    PartnerFact,
    PartnerQualityFact,
    PortfolioFact,
    ProjectFact,
    Scope,
    ServiceFact,
    Subject,
)

Loader = Callable[[asyncpg.Connection, "FactContext"], Awaitable[tuple[Any, ...]]]


class FactContext:
    """What loaders need besides the connection: the clock's now, the allocations, for an
    evaluation of what a batch of events changed its scope (None: everything), for a
    reading as of a past date that date (facts dated after it are left out), and the days
    within which an NLIB and a TINL activity pair (None: every activity abroad in a market
    both worked is read) and the days back within which dead letters count (None: all)."""

    def __init__(
        self,
        now: datetime,
        allocations_cents: Mapping[str, int],
        scope: Scope | None = None,
        as_of: date | None = None,
        pair_window_days: int | None = None,
        dead_letter_days: int | None = None,
    ) -> None:
        self.now = now
        self.allocations_cents = allocations_cents
        self.scope = scope
        self.as_of = as_of
        self.pair_window_days = pair_window_days
        self.dead_letter_days = dead_letter_days

    def known(self, day: date | None) -> bool:
        """Whether a fact dated `day` is known at the reading's date."""
        return self.as_of is None or (day is not None and day <= self.as_of)


_MISSIONS = (
    "SELECT m.mission_id, m.country, m.end_date, m.held_event_id, m.leads,"
    " EXISTS (SELECT FROM nlib_followups f WHERE f.mission_id = m.mission_id"
    "  AND ($1::date IS NULL OR f.held_on <= $1)) AS followed_up,"
    " (SELECT count(*) FROM nlib_leads_converted l WHERE l.mission_id = m.mission_id"
    "  AND ($1::date IS NULL OR l.converted_on <= $1)) AS converted"
    " FROM nlib_missions m"
    " WHERE m.status = 'held' AND ($1::date IS NULL OR m.end_date <= $1)"
)


async def _missions(conn: asyncpg.Connection, ctx: FactContext) -> tuple[MissionFact, ...]:
    """The missions held, or within a scope those of its keys."""
    rows = await conn.fetch(*_scoped(_MISSIONS, "m.mission_id", ctx))
    return tuple(
        MissionFact(
            r["mission_id"],
            r["country"],
            r["end_date"],
            r["held_event_id"],
            r["followed_up"],
            r["leads"] or 0,
            r["converted"],
        )
        for r in rows
    )


def _activity_facts(rows: list[asyncpg.Record]) -> tuple[ActivityFact, ...]:
    return tuple(
        ActivityFact(
            r["id"],
            r["family"],
            r["market"],
            r["country"],
            r["city"],
            r["start_date"],
            r["end_date"],
            r["ev"],
        )
        for r in rows
    )


_PLACES = {
    "nlib": (
        "nlib_missions",
        "mission_id",
        "held_event_id",
        "status = 'held' AND direction <> 'incoming'",
        ("country", "country", "coalesce(city_of_opportunity, city)"),
    ),
    "tinl": ("tinl_activities", "activity_id", "event_id", "true", ("market", "country", "city")),
}
"""Where each family's activities are: table, id, event id, filter, (market, country, city)
- the columns of the place indexes (schema.sql). An incoming mission (from Bavaria) is held
in the Netherlands: it is no NLIB activity in its market's cities."""
_EACH_PLACE = """
WITH RECURSIVE place (m, c, ci) AS (
    (SELECT {m}, {c}, {ci} FROM {table} WHERE {where} ORDER BY 1, 2, 3 LIMIT 1)
    UNION ALL
    SELECT n.* FROM place CROSS JOIN LATERAL (SELECT {m}, {c}, {ci} FROM {table}
        WHERE {where} AND ({m}, {c}, {ci}) > (place.m, place.c, place.ci)
        ORDER BY 1, 2, 3 LIMIT 1) n
)"""
"""Walks a place index one place at a time (a loose index scan), so that what is read per
place costs with the number of places, not of activities."""
_ACTIVITY = (
    "SELECT {id} AS id, '{family}' AS family, {m} AS market, {c} AS country,"
    " {ci} AS city, start_date, end_date, {ev} AS ev FROM {table}"
)
_LATEST_PER_PLACE = (
    _EACH_PLACE
    + """
SELECT a.* FROM place CROSS JOIN LATERAL (
    ({activity} WHERE {where} AND ({m}, {c}, {ci}) = (place.m, place.c, place.ci)
     ORDER BY end_date DESC, {id} LIMIT 1)
    UNION
    ({activity} WHERE {where} AND ({m}, {c}, {ci}) = (place.m, place.c, place.ci)
     AND start_date <= $1 ORDER BY end_date DESC, {id} LIMIT 1)
) a"""
)
_PLACE_LIST = _EACH_PLACE + " SELECT m, c, ci FROM place"  # noqa: S608 - constants
_IN_PLACES = """
SELECT a.*, p.mk FROM unnest(${m_}::text[], ${c_}::text[], ${ci_}::text[], ${mk_}::text[])
    p (m, c, ci, mk)
CROSS JOIN LATERAL ({activity} WHERE {where} AND ({m}, {c}, {ci}) = (p.m, p.c, p.ci)
    AND ($1::date IS NULL OR start_date <= $1)) a"""
"""A family's activities in the given places (one place index probe each), known at the
reading's date ($1), each with its place's foreign market (``mk``)."""
_PAIRABLE = """
WITH a AS ({nlib} UNION ALL {tinl}), near AS (
    SELECT a.*,
        max(end_date) FILTER (WHERE family = 'nlib') OVER before AS nlib_end,
        max(end_date) FILTER (WHERE family = 'tinl') OVER before AS tinl_end,
        min(start_date) FILTER (WHERE family = 'nlib') OVER after AS nlib_start,
        min(start_date) FILTER (WHERE family = 'tinl') OVER after AS tinl_start
    FROM a WINDOW
        before AS (PARTITION BY mk ORDER BY start_date
                   RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        after AS (PARTITION BY mk ORDER BY start_date DESC
                  RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT id, family, market, country, city, start_date, end_date, ev FROM near
WHERE $2::int IS NULL OR CASE family
    WHEN 'nlib' THEN tinl_end >= start_date - $2::int OR tinl_start <= end_date + $2::int
    ELSE nlib_end >= start_date - $2::int OR nlib_start <= end_date + $2::int END"""
"""The activities of the given places that have one of the other family in the same foreign
market within $2 days (``catalogue._gap_days``); every one when $2 is null. In one sort per
market by start, each way (frames from the partition's edge, so that each aggregate runs
once over the rows): an activity of the other family that started no later than this one is
near when its end is (the latest such end), one that started later when its start is (the
earliest such start); every activity ends on or after its start (the contract's
``not_before``)."""


def _sql(template: str, family: str, **more: object) -> str:
    table, id_, ev, where, (m, c, ci) = _PLACES[family]
    names = {
        "table": table,
        "id": id_,
        "ev": ev,
        "where": where,
        "family": family,
        "m": m,
        "c": c,
        "ci": ci,
    }
    return template.format(activity=_ACTIVITY.format(**names), **names, **more)


async def _places(conn: asyncpg.Connection, family: str) -> list[tuple[str, str, str]]:
    rows = await conn.fetch(_sql(_PLACE_LIST, family))
    return [(r["m"], r["c"], r["ci"]) for r in rows]


async def _paired_activities(
    conn: asyncpg.Connection, ctx: FactContext
) -> tuple[ActivityFact, ...]:
    """The activities abroad that pair (``catalogue.pair_activities``): those with one of
    the other family in the same foreign market within the context's pairing window. What
    Python reads grows with the pairs, not with the history; SQL reads only the places
    abroad in markets where both families were active (an activity at home, such as a China
    Business Week in Tilburg, never pairs)."""
    places = {
        family: [
            (m, c, ci, market)
            for m, c, ci in await _places(conn, family)
            if c != HOME_COUNTRY and (market := market_of(m, c)) is not None
        ]
        for family in _PLACES
    }
    both = set.intersection(*({p[3] for p in found} for found in places.values()))
    if not both:
        return ()
    args: list[object] = [ctx.as_of, ctx.pair_window_days]
    parts: dict[str, str] = {}
    for family, found in places.items():
        at = len(args) + 1
        parts[family] = _sql(_IN_PLACES, family, m_=at, c_=at + 1, ci_=at + 2, mk_=at + 3)
        args += map(list, zip(*(p for p in found if p[3] in both), strict=True))
    rows = await conn.fetch(_PAIRABLE.format(**parts), *args)
    return _activity_facts(sorted(rows, key=lambda r: r["id"]))


def _known(rows: list[asyncpg.Record], ctx: FactContext) -> list[asyncpg.Record]:
    return [r for r in rows if ctx.known(r["start_date"])]


async def _latest_activities(
    conn: asyncpg.Connection, ctx: FactContext
) -> tuple[ActivityFact, ...]:
    """Per family, market, country and city: its latest activity, and its latest one that
    has started by now - enough to tell since when a market, city or country is quiet."""
    rows = [
        row
        for family in _PLACES
        for row in await conn.fetch(_sql(_LATEST_PER_PLACE, family), ctx.now.date())
    ]
    return _activity_facts(sorted(_known(rows, ctx), key=lambda r: r["id"]))


_PROJECTS = (  # the columns of ProjectFact, in its order; as of $1, as known then
    "SELECT project_id, country,"
    " CASE WHEN $1::date IS NULL OR coalesce(graduated_on, stopped_on) <= $1 THEN status"
    "  ELSE 'active' END AS status,"
    " onboarded_event_id, onboarded_on,"
    " CASE WHEN $1::date IS NULL OR coalesce(graduated_on, stopped_on) <= $1"
    "  THEN coalesce(graduated_on, stopped_on) END AS ended_on"
    " FROM wp_projects WHERE ($1::date IS NULL OR onboarded_on <= $1)"
)
"""A project as of a date in SQL, as :meth:`ProjectFact.known_on` tells it in Python for the
earlier days of a score series (`scoped_known_on`): in Python here too, each of 250,501
projects cost 1.3 s of a reading's CPU. Each point of a series is tested against a
reading of its day alone."""


def projects_known_on(projects: Iterable[ProjectFact], day: date) -> tuple[ProjectFact, ...]:
    """`projects` as known at the end of `day`: those onboarded by then."""
    return tuple(p for p in (project.known_on(day) for project in projects) if p is not None)


async def _projects(conn: asyncpg.Connection, ctx: FactContext) -> tuple[ProjectFact, ...]:
    """Every project, or within a scope those of its keys and those in its countries."""
    if ctx.scope is None:
        rows = await conn.fetch(f"{_PROJECTS} ORDER BY project_id", ctx.as_of)  # noqa: S608
    else:
        # The ids as rows joined to the key, not `project_id = ANY($2) OR country = ANY($3)`:
        # for a part of 2,000 ids PostgreSQL scanned the whole table, each part again (23 ms
        # a part at 167,000 projects, 4-5 ms so).
        rows = await conn.fetch(
            f"{_PROJECTS} AND project_id IN (SELECT unnest($2::text[])"  # noqa: S608
            "  UNION ALL SELECT project_id FROM wp_projects WHERE country = ANY($3::text[]))"
            " ORDER BY project_id",
            ctx.as_of,
            sorted(ctx.scope.keys),
            sorted(ctx.scope.countries),
        )
    return tuple(map(ProjectFact._make, rows))  # a row's values are the fact's, in order


_CALLS = (
    "SELECT call_id, country, negotiation_started_on, opened_event_id,"
    " CASE WHEN $1::date IS NULL OR closed_on <= $1 THEN closed_on END AS closed_on,"
    " CASE WHEN $1::date IS NULL OR closed_on <= $1 THEN closed_event_id END AS closed_id"
    " FROM gs_calls WHERE ($1::date IS NULL"
    "  OR coalesce(negotiation_started_on, opened_on, closed_on) <= $1)"
)


def _scoped(query: str, key: str, ctx: FactContext) -> tuple[Any, ...]:
    """`query` (as of ``$1``) with its arguments, ordered by `key`; within the context's
    scope, only the rows of its keys (joined as rows to the key, as :func:`_projects`
    reads them)."""
    if ctx.scope is None:
        return f"{query} ORDER BY {key}", ctx.as_of
    return (
        f"{query} AND {key} IN (SELECT unnest($2::text[])) ORDER BY {key}",
        ctx.as_of,
        sorted(ctx.scope.keys),
    )


async def _calls(conn: asyncpg.Connection, ctx: FactContext) -> tuple[CallFact, ...]:
    """The calls, or within a scope those of its keys."""
    rows = await conn.fetch(*_scoped(_CALLS, "call_id", ctx))
    return tuple(
        CallFact(
            r["call_id"],
            r["negotiation_started_on"],
            r["closed_on"],
            tuple(i for i in (r["opened_event_id"], r["closed_id"]) if i),
            r["country"],
        )
        for r in rows
    )


def _active_families(param: str) -> str:
    """The families (of the array `param`) with an event projected: one probe of
    ``family_totals_key`` each, however many days the running totals hold. (A family
    without events must not reach a latest-event lookup: PostgreSQL may walk the whole
    ``events_time`` index for it.)"""
    return (
        f"(SELECT f FROM unnest({param}::text[]) f"  # noqa: S608 - a parameter's number
        " WHERE EXISTS (SELECT 1 FROM family_totals WHERE family = f)) families"
    )


async def _budgets(conn: asyncpg.Connection, ctx: FactContext) -> tuple[BudgetFact, ...]:
    rows = await conn.fetch(  # the running totals per day spent, up to a past date's
        "WITH t AS (SELECT family, year, sum(spent_cents) AS spent FROM budget_totals"  # noqa: S608
        "  WHERE $2::date IS NULL OR spent_on <= $2 GROUP BY family, year"
        "  HAVING sum(spends) > 0)"
        " SELECT t.family, t.year, t.spent, ARRAY(SELECT b.event_id FROM budget_spent b"
        "  WHERE b.family = t.family AND b.year = t.year"
        "  AND ($2::date IS NULL OR b.spent_on <= $2)"
        "  ORDER BY b.spent_on DESC, b.spend_id LIMIT 20) AS ids FROM t"
        f" UNION ALL SELECT f, $1::int, 0, '{{}}'::text[] FROM {_active_families('$3')}"
        " WHERE NOT EXISTS (SELECT 1 FROM t WHERE t.family = f AND t.year = $1)"
        " ORDER BY 1, 2",
        ctx.now.year,
        ctx.as_of,
        list(PUBLISHED_BY),
    )
    return tuple(
        BudgetFact(
            r["family"],
            r["year"],
            ctx.allocations_cents.get(r["family"], 0),
            int(r["spent"]),
            tuple(r["ids"]),
        )
        for r in rows
    )


async def _services(conn: asyncpg.Connection, ctx: FactContext) -> tuple[ServiceFact, ...]:
    """Each service's latest event: its family's latest time (``max``, read backwards on
    ``events_family_time``), then an event of that time. Ordered by time and limited, the
    lookup walked ``events_time`` from the newest event down to the family's latest,
    passing every other family's since: 0.6 s an evaluation (every event triggers the
    ``service-silent`` rule) with 700,000 events since a quiet family's last, which is
    what that rule is for."""
    rows = await conn.fetch(
        f"SELECT f AS family, e.time, e.event_id FROM {_active_families('$2')}"  # noqa: S608
        " CROSS JOIN LATERAL (SELECT max(time) AS at FROM events WHERE family = f"
        "  AND ($1::timestamptz IS NULL OR time <= $1)) latest"
        " CROSS JOIN LATERAL (SELECT time, event_id FROM events WHERE family = f"
        "  AND time = latest.at LIMIT 1) e",
        end_of_day(ctx.as_of) if ctx.as_of else None,
        list(PUBLISHED_BY),
    )
    latest: dict[str, ServiceFact] = {}
    for r in rows:
        service = PUBLISHED_BY[r["family"]]
        seen = latest.get(service)
        if seen is None or r["time"] > seen.last_event_at:
            latest[service] = ServiceFact(service, r["time"], r["event_id"])
    return tuple(latest[s] for s in sorted(latest))


async def _dead_letters(conn: asyncpg.Connection, ctx: FactContext) -> tuple[DeadLettersFact, ...]:
    """Per topic, the dead letters recorded within ``ctx.dead_letter_days`` before now (all
    when None), counted in the database: one row each before, so a flood of invalid records
    made every evaluation read them all."""
    since = ctx.now - timedelta(days=ctx.dead_letter_days) if ctx.dead_letter_days else None
    rows = await conn.fetch(
        "SELECT topic, count(*) AS n, (array_agg(reason ORDER BY recorded_at DESC,"
        "  kafka_partition DESC, kafka_offset DESC))[1] AS last_reason,"
        " (array_agg(event_id ORDER BY recorded_at DESC, kafka_partition DESC,"
        "  kafka_offset DESC) FILTER (WHERE event_id IS NOT NULL))[1:$3] AS ids"
        " FROM dead_letters WHERE ($1::timestamptz IS NULL OR recorded_at >= $1)"
        " AND ($2::timestamptz IS NULL OR recorded_at <= $2) GROUP BY topic ORDER BY topic",
        since,
        end_of_day(ctx.as_of) if ctx.as_of else None,
        DEAD_LETTER_IDS,
    )
    return tuple(
        DeadLettersFact(r["topic"], r["n"], r["last_reason"], tuple(reversed(r["ids"] or ())))
        for r in rows
    )


async def _city_programmes(
    conn: asyncpg.Connection, ctx: FactContext
) -> tuple[CityProgrammeFact, ...]:
    rows = await conn.fetch(
        "SELECT city_id, city, event_id, updated_on, tier, soft_landing FROM nlib_cities"
        " WHERE ($1::date IS NULL OR updated_on <= $1) ORDER BY city_id",
        ctx.as_of,
    )
    return tuple(
        CityProgrammeFact(
            r["city_id"], r["city"], r["event_id"], r["updated_on"], r["tier"], r["soft_landing"]
        )
        for r in rows
    )


_TAKING_PART = """
SELECT p AS partner, sum(activities) > 0 AS in_activities, sum(knowledge) > 0 AS in_knowledge
FROM tinl_partner_sets, unnest(partners) p WHERE p = ANY($1::text[]) GROUP BY p
"""
_LATEST_PARTICIPATION = """
SELECT p.partner, l.on_date, l.event_id
FROM unnest($2::text[], $3::bool[], $4::bool[]) p (partner, in_activities, in_knowledge)
CROSS JOIN LATERAL (
    (SELECT end_date AS on_date, event_id FROM tinl_activities
     WHERE p.in_activities AND partners @> ARRAY[p.partner]
     AND ($1::date IS NULL OR end_date <= $1) ORDER BY end_date DESC, event_id LIMIT 1)
    UNION ALL
    (SELECT shared_on, event_id FROM tinl_knowledge
     WHERE p.in_knowledge AND partners @> ARRAY[p.partner]
     AND ($1::date IS NULL OR shared_on <= $1) ORDER BY shared_on DESC, event_id LIMIT 1)
    ORDER BY 1 DESC, 2 LIMIT 1
) l
"""
"""Per partner its latest activity or knowledge shared, walking the date indexes from the
latest down (``tinl_*_latest``) in the tables it appears in (the running
``tinl_partner_sets``): the walk stops at the partner's latest, so a partner that takes
part often costs a few rows, not the whole table."""


async def _tinl_partners(conn: asyncpg.Connection, ctx: FactContext) -> tuple[PartnerFact, ...]:
    """Every convenant partner and its latest participation (known at the reading)."""
    taking_part = await conn.fetch(_TAKING_PART, list(TINL_PARTNERS))
    rows = await conn.fetch(
        _LATEST_PARTICIPATION,
        ctx.as_of,
        [r["partner"] for r in taking_part],
        [r["in_activities"] for r in taking_part],
        [r["in_knowledge"] for r in taking_part],
    )
    latest = {r["partner"]: r for r in rows}
    return tuple(
        PartnerFact(
            p,
            latest[p]["on_date"] if p in latest else None,
            latest[p]["event_id"] if p in latest else None,
        )
        for p in TINL_PARTNERS
    )


_PORTFOLIO = """
SELECT y AS year, (SELECT coalesce(sum(n), 0) FROM wp_portfolio
        WHERE since <= y AND (until IS NULL OR until >= y))::bigint AS projects,
    ARRAY(SELECT event_id FROM (SELECT project_id, onboarded_event_id AS event_id
        FROM wp_projects WHERE extract(year FROM onboarded_on) <= y
        AND (coalesce(graduated_on, stopped_on) IS NULL
             OR extract(year FROM coalesce(graduated_on, stopped_on)) >= y)
        ORDER BY project_id DESC LIMIT 20) last ORDER BY project_id) AS event_ids
FROM generate_series($1::int, $2::int - 1) y ORDER BY y
"""


async def _portfolio(conn: asyncpg.Connection, ctx: FactContext) -> tuple[PortfolioFact, ...]:
    """De Werkplaats's portfolio per finished year, counted from the running
    ``wp_portfolio`` totals (per onboarding and end year). As of a past date the finished
    years are those before its year, whose portfolios no later event changes: a project
    onboarded after the date was onboarded in its year or later, and one that ended after
    it was still supported in the years before."""
    rows = await conn.fetch(_PORTFOLIO, WERKPLAATS_TARGET_FIRST_YEAR, ctx.now.year)
    return tuple(PortfolioFact(r["year"], r["projects"], tuple(r["event_ids"])) for r in rows)


_HOURLY = """
SELECT partner, service, date_trunc('hour', window_end) AS hour,
    sum(accepted + replayed + conflicting + rejected_total) AS events,
    sum(conflicting + rejected_total) AS refused
FROM partner_quality_reports WHERE window_end > $1
GROUP BY partner, service, hour
"""

_LAST_ACCEPTED = """
SELECT partner, service, max(last_accepted_at) AS last_accepted_at
FROM partner_quality_reports GROUP BY partner, service
"""


async def _partner_quality(
    conn: asyncpg.Connection, ctx: FactContext
) -> tuple[PartnerQualityFact, ...]:
    """Per partner key and service: events and refusals per hour over the longest window
    the rule may look at (quality.MAX_WINDOW_HOURS), and the last acceptance."""
    hourly: dict[tuple[str, str], list[tuple[datetime, int, int]]] = {}
    for r in await conn.fetch(_HOURLY, ctx.now - timedelta(hours=MAX_WINDOW_HOURS)):
        hourly.setdefault((r["partner"], r["service"]), []).append(
            (r["hour"], r["events"], r["refused"])
        )
    return tuple(
        PartnerQualityFact(
            r["partner"],
            r["service"],
            r["last_accepted_at"],
            tuple(sorted(hourly.get((r["partner"], r["service"]), []))),
        )
        for r in await conn.fetch(_LAST_ACCEPTED)
    )


def scoped_known_on(own: Facts, days: Sequence[date]) -> Iterator[tuple[date, Facts]]:
    """A part's scoped facts (`own`, read as of the last of `days` or later) as known at the
    end of each of `days` (ascending). The projects no day changes (as known on the first
    as read: onboarded, and ended if at all, by then) are split off once and shared by
    every day; each day reads the others as known then. So a part costs its changes, not
    its projects, on each day: the bench's 250,501 projects known on each of twelve month
    ends took 4.3 s."""
    steady, changing = [], []
    for project in own.projects:
        (steady if project.known_on(days[0]) is project else changing).append(project)
    for day in days:
        yield day, replace(own, projects=(*steady, *projects_known_on(changing, day)))


async def scoped_parts(
    conn: asyncpg.Connection, subject: Subject, scope: Scope | None, size: int
) -> AsyncIterator[list[str]]:
    """What a scoped rule judges of its `subject` within `scope` (None: everything), `size`
    keys at a time by key: the keys the scope names that are there and, for a subject with
    a country, those in its countries; without a scope, the rows a fact can be read of
    (``subject.factual``). Read through a cursor, a part at a time, so that
    what is held is bounded by `size`, not by the subject's rows (the caller's transaction
    keeps the cursor; it may run other statements between parts)."""
    key, table = subject.key, subject.table
    query = f"SELECT {key} FROM {table}"  # noqa: S608 - constants
    if scope is None:
        factual = f" WHERE {subject.factual}" if subject.factual else ""
        cursor = await conn.cursor(f"{query}{factual} ORDER BY {key}")
    elif subject.country is None:
        cursor = await conn.cursor(
            f"{query} WHERE {key} = ANY($1::text[]) ORDER BY 1", sorted(scope.keys)
        )
    else:
        cursor = await conn.cursor(
            f"{query} WHERE {key} = ANY($1::text[]) OR {subject.country} = ANY($2::text[])"
            " ORDER BY 1",
            sorted(scope.keys),
            sorted(scope.countries),
        )
    while rows := await cursor.fetch(size):
        yield [r[key] for r in rows]


async def stale_keys(conn: asyncpg.Connection, rule: str, subject: Subject) -> list[str]:
    """The live findings of a scoped rule about keys of its `subject` no longer there, or
    no longer rows a fact can be read of (``subject.factual``): a whole evaluation does not
    judge those."""
    factual = f" AND {subject.factual}" if subject.factual else ""
    rows = await conn.fetch(
        "SELECT finding_key FROM findings f WHERE f.rule = $1 AND f.condition_holds"  # noqa: S608 - constants
        f" AND NOT EXISTS (SELECT 1 FROM {subject.table} s"
        f"  WHERE s.{subject.key} = f.finding_key{factual})",
        rule,
    )
    return [r["finding_key"] for r in rows]


LOADERS: dict[str, Loader] = {
    "missions": _missions,
    "paired_activities": _paired_activities,
    "latest_activities": _latest_activities,
    "projects": _projects,
    "portfolio": _portfolio,
    "calls": _calls,
    "budgets": _budgets,
    "services": _services,
    "dead_letters": _dead_letters,
    "city_programmes": _city_programmes,
    "tinl_partners": _tinl_partners,
    "partner_quality": _partner_quality,
}


async def load_facts(conn: asyncpg.Connection, needs: Iterable[str], ctx: FactContext) -> Facts:
    return Facts(**{name: await LOADERS[name](conn, ctx) for name in sorted(set(needs))})
