"""Every read of the dashboard: the JSON API and the web pages are thin layers over these.

Each function takes an asyncpg pool or connection (``db``) and returns plain dicts and
lists (dates as ``date``/``datetime``; money in euro cents; rates as fractions 0..1,
percentages as 0..100 with one decimal). Settings-dependent figures take their inputs as
keyword arguments with the documented defaults, e.g. ``allocations_cents``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from itertools import combinations
from typing import Any, TypeAlias

import asyncpg
from dateutil.relativedelta import relativedelta

from teamnl_shared.contract.types import SMART_CITIES, is_country_code

from .period import InvalidReading, Period, end_of_day
from .reference import (
    CITIES_OF_OPPORTUNITY,
    CITIES_STATED,
    EUREKA_COUNTRIES,
    FAMILIES,
    FOCUS_MARKETS,
    HOME_COUNTRY,
    SEED_EVENT_PREFIX,
    TINL_PARTNERS,
    WERKPLAATS_TARGET_FIRST_YEAR,
    city_for,
)
from .settings import DEFAULT_ALLOCATIONS_CENTS

DB: TypeAlias = asyncpg.Pool | asyncpg.Connection
INITIATIVE_NAMES = {
    "nlib": "NLinBusiness",
    "tinl": "Trade & Innovate NL",
    "globalstars": "Global Stars",
    "werkplaats": "De Werkplaats",
}
DEFAULT_WERKPLAATS_TARGETS: Mapping[int, int] = {2019: 20}
DEFAULT_WERKPLAATS_YEARLY_TARGET = 30
PREPARATION_SHOWN = 20
"""The most TINL activities at home listed as a market's preparation (the latest): every one
of the period's, on the bench's million events, was 12 MB of JSON and 300 MB of the
dashboard's memory for /api/v1/complementarity."""
FINDINGS_SHOWN = 500
"""The most findings a page or the API lists by default (the API's ``limit`` goes to 5,000)."""
READING_ROWS = 10_000
"""The most items of one kind (missions, projects, calls, activities, spendings) a reading of
the pages, the report, the API's lists or a figure's events may list: the network the
letter describes has dozens of missions and projects a year, hundreds of activities. On
the bench's million events, 10,000 missions (or projects, or activities) read in 0.3 s and
17 MB of Python objects, the report with 10,000 of each kind in 1.5 s and 41 MB; all
110,000 missions of the year had taken 8 s and 279 MB."""


async def within_reading(db: DB, what: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """The rows of `query` (its parameters `args`), when they are at most
    :data:`READING_ROWS`: read with that bound (one row more tells), else
    :class:`InvalidReading` of the period, naming `what` is listed."""
    rows: list[asyncpg.Record] = await db.fetch(
        f"{query} LIMIT ${len(args) + 1}", *args, READING_ROWS + 1
    )
    if len(rows) > READING_ROWS:
        raise InvalidReading(
            "period",
            f"the reading lists more than {READING_ROWS:,} {what}, more than a page holds:"
            " read a shorter period or an earlier as_of",
        )
    return rows


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _pct(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]


# -- the reading: period and as-of date -------------------------------------------------------


async def latest_event_on(db: DB) -> date | None:
    """The date of the latest event (by its time): where a seeded data set ends."""
    latest = await db.fetchval("SELECT max(time) FROM events")
    return latest.astimezone(UTC).date() if latest is not None else None


def _bounds(period: Period | None, as_of: date | None) -> tuple[date | None, date | None]:
    """(first day, last day) read, both included; None: unbounded."""
    first = period.start if period else None
    last = date(period.last_year, 12, 31) if period else None
    if as_of is not None:
        last = as_of if last is None else min(last, as_of)
    return first, last


async def covers_all(db: DB, period: Period | None, as_of: date | None) -> bool:
    """Whether the reading holds every event (the usual live reading: this year as of
    today): then the running totals answer instead of counting the period's rows."""
    first, last = _bounds(period, as_of)
    if first is None and last is None:
        return True
    span = await db.fetchrow("SELECT min(time) AS first, max(time) AS last FROM events")
    if span["first"] is None:
        return True
    return (first is None or span["first"] >= _start_of(first)) and (
        last is None or span["last"] <= _end_of(last)
    )


async def reaches_latest(db: DB, last: date | None) -> bool:
    """Whether a reading whose last day is `last` (None: unbounded) holds the latest event.
    Like :func:`covers_all`, it takes no fact to be dated after the latest event's time."""
    if last is None:
        return True
    latest = await db.fetchval("SELECT max(time) FROM events")
    return latest is None or latest <= _end_of(last)


def _reading(period: Period | None, as_of: date | None) -> dict[str, Any]:
    return {"period": period.label if period else None, "as_of": as_of}


# -- the network -----------------------------------------------------------------------------


async def overview(
    db: DB,
    *,
    period: Period | None = None,
    as_of: date | None = None,
    allocations_cents: Mapping[str, int] = DEFAULT_ALLOCATIONS_CENTS,
    findings_open: Mapping[str, int] | None = None,
    past: bool = False,
) -> dict[str, Any]:
    """{"period", "as_of", "initiatives": [{family, name, events, last_event_at,
    activities, budget: {allocation_cents, spent_cents, spent_pct}}], "findings_open":
    {severity: n}, "score"}. Events and activities count those of the period up to
    `as_of`; the budget sums the period's years (allocation = yearly allocation x years).
    ``findings_open`` is given by a caller that evaluated the rules as of a past date;
    otherwise the live findings are counted. ``past``: the reading lies before the
    caller's today - only then is the seeded demo (``illustrative``) looked for."""
    totals = await _family_counts(db, *_bounds(period, as_of))
    spent = await budget_over_period(
        db, period=period, as_of=as_of, allocations_cents=allocations_cents
    )
    initiatives = [
        {
            "family": f,
            "name": INITIATIVE_NAMES[f],
            "events": totals[f]["events"] if f in totals else 0,
            "last_event_at": totals[f]["last_event_at"] if f in totals else None,
            "activities": totals[f]["activities"] if f in totals else 0,
            "budget": {k: spent[f][k] for k in ("allocation_cents", "spent_cents", "spent_pct")},
        }
        for f in FAMILIES
    ]
    return {
        **_reading(period, as_of),
        "illustrative": past and await illustrative(db, period=period, as_of=as_of),
        "initiatives": initiatives,
        "findings_open": dict(findings_open)
        if findings_open is not None
        else await open_findings_by_severity(db),
        "score": await latest_score(db),
    }


async def _family_counts(
    db: DB, first: date | None, last: date | None
) -> dict[str, dict[str, Any]]:
    """{family: {"events", "last_event_at", "activities"}} of the days read (an event's UTC
    day, an activity's date), summed from the running totals kept per day."""
    rows = await db.fetch(
        "SELECT family, sum(events)::bigint AS events, max(last_event_at) AS last_event_at,"
        " sum(activities)::bigint AS activities FROM family_totals"
        " WHERE ($1::date IS NULL OR day >= $1) AND ($2::date IS NULL OR day <= $2)"
        " GROUP BY family",
        first,
        last,
    )
    return {r["family"]: dict(r) for r in rows}


async def illustrative(db: DB, *, period: Period | None = None, as_of: date | None = None) -> bool:
    """Whether the reading holds the seeded demo's events, whose figures the letter does not
    state are illustrative (``teamnl seed``: ids ``seed-...``)."""
    first, last = _bounds(period, as_of)
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM events WHERE event_id LIKE $3"
            " AND ($1::timestamptz IS NULL OR time >= $1)"
            " AND ($2::timestamptz IS NULL OR time <= $2))",
            _start_of(first),
            _end_of(last),
            f"{SEED_EVENT_PREFIX}%",
        )
    )


def _start_of(day: date | None) -> datetime | None:
    return datetime.combine(day, time.min, tzinfo=UTC) if day else None


def _end_of(day: date | None) -> datetime | None:
    return end_of_day(day) if day else None


async def recent_events(
    db: DB, *, limit: int = 20, as_of: date | None = None
) -> list[dict[str, Any]]:
    """[{"event_id", "family", "type", "subject", "time", "title"}]: the latest `limit`
    events by their time (up to `as_of`), newest first. ``title`` is plain text (the
    event's own title or a label per type), never markup."""
    return _rows(
        await db.fetch(
            "SELECT event_id, family, type, subject, time, title FROM events"
            " WHERE ($2::timestamptz IS NULL OR time <= $2)"
            " ORDER BY time DESC, event_id DESC LIMIT $1",
            limit,
            _end_of(as_of),
        )
    )


async def activity_series(
    db: DB,
    *,
    period: Period | None = None,
    as_of: date | None = None,
    granularity: str = "month",
    family: str | None = None,
    market: str | None = None,
    since: date | None = None,
) -> list[dict[str, Any]]:
    """[{"period": "2019-04" | "2019" | "2019-04-08", "family", "count"}], by period;
    activities of `period` up to `as_of` (and from `since`)."""
    formats = {"day": "YYYY-MM-DD", "month": "YYYY-MM", "year": "YYYY"}
    if granularity not in formats:
        raise ValueError(f"granularity must be one of {sorted(formats)}")
    first, last = _bounds(period, as_of)
    first = max(filter(None, (first, since)), default=None)
    months = _whole_months(first, last)
    if granularity == "day" or months is None:
        return _rows(
            await db.fetch(
                "SELECT to_char(on_date, $1) AS period, family, count(*) AS count FROM activities"
                " WHERE ($2::text IS NULL OR family = $2) AND ($3::text IS NULL OR market = $3)"
                " AND ($4::date IS NULL OR on_date >= $4) AND ($5::date IS NULL OR on_date <= $5)"
                " GROUP BY 1, 2 ORDER BY 1, 2",
                formats[granularity],
                family,
                market,
                first,
                last,
            )
        )
    # The whole months from the monthly running totals, the days of a month begun or not
    # ended from the activities themselves: a year as of a day counted its rows.
    start, end = months
    return _rows(
        await db.fetch(
            "SELECT period, family, sum(n)::bigint AS count FROM ("
            " SELECT to_char(month, $1) AS period, family, n FROM activity_months"
            "  WHERE ($2::text IS NULL OR family = $2) AND ($3::text IS NULL OR market = $3)"
            "  AND ($4::date IS NULL OR month >= $4) AND ($5::date IS NULL OR month < $5)"
            " UNION ALL"
            " SELECT to_char(on_date, $1), family, count(*) FROM activities"
            "  WHERE ($2::text IS NULL OR family = $2) AND ($3::text IS NULL OR market = $3)"
            "  AND (on_date >= $6 AND on_date < $4 OR on_date >= $5 AND on_date <= $7)"
            "  GROUP BY 1, 2"
            ") counted GROUP BY 1, 2 HAVING sum(n) > 0 ORDER BY 1, 2",
            formats[granularity],
            family,
            market,
            start,
            end,
            first,
            last,
        )
    )


def _whole_months(first: date | None, last: date | None) -> tuple[date | None, date | None] | None:
    """The first day of the first whole month from `first` to `last` and of the month after
    the last whole one (None: no bound), or None when no month lies wholly within."""
    start = (
        first if first is None or first.day == 1 else first.replace(day=1) + relativedelta(months=1)
    )
    end = None if last is None else (last + relativedelta(days=1)).replace(day=1)
    if start is not None and end is not None and start >= end:
        return None
    return start, end


async def budget(
    db: DB,
    *,
    period: Period | None = None,
    as_of: date | None = None,
    allocations_cents: Mapping[str, int] = DEFAULT_ALLOCATIONS_CENTS,
) -> list[dict[str, Any]]:
    """[{"family", "name", "year", "allocation_cents", "spent_cents", "spent_pct",
    "remaining_cents"}] for every initiative and every year of `period` (without one:
    every year with spending), spent up to `as_of`."""
    years_read = (period.first_year, period.last_year) if period else (None, None)
    rows = await db.fetch(  # the running totals per day spent: a period sums its days
        "SELECT family, year, sum(spent_cents) AS spent FROM budget_totals"
        " WHERE ($1::int IS NULL OR year BETWEEN $1 AND $2)"
        " AND ($3::date IS NULL OR spent_on <= $3) GROUP BY family, year"
        " HAVING sum(spends) > 0",
        *years_read,
        as_of,
    )
    spent = {(r["family"], r["year"]): int(r["spent"]) for r in rows}  # numeric sums
    years = sorted({y for _, y in spent} | (set(period.years) if period else set()))
    return [
        {
            "family": f,
            "name": INITIATIVE_NAMES[f],
            "year": y,
            "allocation_cents": allocations_cents.get(f, 0),
            "spent_cents": spent.get((f, y), 0),
            "spent_pct": _pct(spent.get((f, y), 0), allocations_cents.get(f, 0)),
            "remaining_cents": allocations_cents.get(f, 0) - spent.get((f, y), 0),
        }
        for y in years
        for f in FAMILIES
    ]


async def budget_over_period(
    db: DB,
    *,
    period: Period | None = None,
    as_of: date | None = None,
    allocations_cents: Mapping[str, int] = DEFAULT_ALLOCATIONS_CENTS,
) -> dict[str, dict[str, Any]]:
    """{family: {"years", "allocation_cents", "spent_cents", "spent_pct",
    "remaining_cents"}}: :func:`budget` summed over the period's years (the letter's
    6 M / 4 M / 1 M a year times the years read)."""
    rows = await budget(db, period=period, as_of=as_of, allocations_cents=allocations_cents)
    totals: dict[str, dict[str, Any]] = {}
    for f in FAMILIES:
        own = [r for r in rows if r["family"] == f]
        allocation = sum(r["allocation_cents"] for r in own)
        spent = sum(r["spent_cents"] for r in own)
        totals[f] = {
            "years": [r["year"] for r in own],
            "allocation_cents": allocation,
            "spent_cents": spent,
            "spent_pct": _pct(spent, allocation),
            "remaining_cents": allocation - spent,
        }
    return totals


def known_market(code: str) -> bool:
    """A market code the dashboard can show: 'smart-cities' or an ISO 3166-1 alpha-2 (in
    either case)."""
    return code == SMART_CITIES or is_country_code(code.upper())


async def markets(
    db: DB, *, period: Period | None = None, as_of: date | None = None
) -> list[dict[str, Any]]:
    """[{"market", "focus", "nlib", "tinl", "globalstars", "werkplaats", "total",
    "last_activity_on"}] per market (country code or 'smart-cities') with activity in
    `period` up to `as_of`, busiest first."""
    first, last = _bounds(period, as_of)
    rows = await db.fetch(
        "SELECT market, family, count(*) AS n, max(on_date) AS last FROM activities"
        " WHERE market IS NOT NULL AND ($1::date IS NULL OR on_date >= $1)"
        " AND ($2::date IS NULL OR on_date <= $2) GROUP BY market, family",
        first,
        last,
    )
    table: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = table.setdefault(r["market"], _market_row(r["market"]))
        entry[r["family"]] = r["n"]
        entry["total"] += r["n"]
        if entry["last_activity_on"] is None or r["last"] > entry["last_activity_on"]:
            entry["last_activity_on"] = r["last"]
    return sorted(table.values(), key=lambda e: (-e["total"], e["market"]))


def _market_row(code: str) -> dict[str, Any]:
    return {
        "market": code,
        "focus": code in FOCUS_MARKETS,
        **dict.fromkeys(FAMILIES, 0),
        "total": 0,
        "last_activity_on": None,
    }


async def market(
    db: DB, code: str, *, period: Period | None = None, as_of: date | None = None
) -> dict[str, Any] | None:
    """One market: its row of :func:`markets`, its activities, Werkplaats projects and
    cross-initiative complementarity in `period` up to `as_of`; None for a code that is no
    market (an empty row for a known market without activity)."""
    code = code if code == SMART_CITIES else code.upper()
    if not known_market(code):
        return None
    found = await markets(db, period=period, as_of=as_of)
    row = next((m for m in found if m["market"] == code), _market_row(code))
    first, last = _bounds(period, as_of)
    activities = _rows(
        await db.fetch(
            "SELECT event_id, family, kind, country, city, on_date FROM activities"
            " WHERE market = $1 AND ($2::date IS NULL OR on_date >= $2)"
            " AND ($3::date IS NULL OR on_date <= $3) ORDER BY on_date DESC, event_id LIMIT 100",
            code,
            first,
            last,
        )
    )
    projects = _rows(
        await db.fetch(
            "SELECT project_id, title, status, onboarded_on, sdgs FROM wp_projects"
            " WHERE country = $1 AND ($2::date IS NULL OR onboarded_on <= $2)"
            " ORDER BY onboarded_on",
            code,
            last,
        )
    )
    together = await complementarity(db, period=period, as_of=as_of, market=code)
    empty = {
        "market": code,
        "initiatives": [],
        "links": [],
        "preparation": [],
        "complementary": False,
    }
    return {
        **row,
        "activities": activities,
        "projects": projects,
        "complementarity": together[0] if together else empty,
    }


async def cities(
    db: DB, *, period: Period | None = None, as_of: date | None = None
) -> dict[str, Any]:
    """Coverage of the Cities of Opportunity in `period` up to `as_of`: {"stated": 40
    (the letter's count), "total": 38 (the cities it names), "covered", "coverage_pct",
    "with_programme", "soft_landing_active", "covered_cities": [names], "cities":
    [{"slug", "name", "tier", "country", "programme": {tier, soft_landing, updated_on} |
    None, "missions", "tinl_activities", "last_activity_on", "covered"}]}.

    A city is covered when something took place there: an outgoing NLIB mission held or
    a TINL activity abroad. A programme update alone is not coverage, nor is an incoming
    mission (held in the Netherlands)."""
    first, last = _bounds(period, as_of)
    programmes = {}
    for r in await db.fetch(
        "SELECT city_id, city, tier, soft_landing, updated_on FROM nlib_cities"
        " WHERE ($1::date IS NULL OR updated_on <= $1)",
        last,
    ):
        city = city_for(r["city_id"], r["city"])
        if city is not None:
            programmes[city.slug] = {
                "tier": r["tier"],
                "soft_landing": r["soft_landing"],
                "updated_on": r["updated_on"],
            }
    activity = await _city_activity(db, first, last)
    entries = [
        _city_entry(c, programmes.get(c.slug), activity.get(c.slug)) for c in CITIES_OF_OPPORTUNITY
    ]
    covered = [e for e in entries if e["covered"]]
    return {
        **_reading(period, as_of),
        "stated": CITIES_STATED,
        "total": len(entries),
        "covered": len(covered),
        "coverage_pct": _pct(len(covered), len(entries)),
        "with_programme": len(programmes),
        "soft_landing_active": sum(p["soft_landing"] == "active" for p in programmes.values()),
        "covered_cities": [e["name"] for e in covered],
        "cities": entries,
    }


async def _city_activity(
    db: DB, first: date | None, last: date | None
) -> dict[str, dict[str, Any]]:
    rows = await db.fetch(
        "SELECT 'nlib' AS family, coalesce(city_of_opportunity, city) AS city, end_date"
        " FROM nlib_missions WHERE status = 'held' AND direction <> 'incoming'"
        " AND ($1::date IS NULL OR end_date >= $1) AND ($2::date IS NULL OR end_date <= $2)"
        " UNION ALL SELECT 'tinl', city, end_date FROM tinl_activities WHERE country <> $3"
        " AND ($1::date IS NULL OR end_date >= $1) AND ($2::date IS NULL OR end_date <= $2)",
        first,
        last,
        HOME_COUNTRY,
    )
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        city = city_for(r["city"])
        if city is None:
            continue
        entry = found.setdefault(city.slug, {"nlib": 0, "tinl": 0, "last": None})
        entry[r["family"]] += 1
        entry["last"] = max(filter(None, (entry["last"], r["end_date"])))
    return found


def _city_entry(
    city: Any, programme: dict[str, Any] | None, activity: dict[str, Any] | None
) -> dict[str, Any]:
    activity = activity or {"nlib": 0, "tinl": 0, "last": None}
    return {
        "slug": city.slug,
        "name": city.name,
        "tier": city.tier,
        "country": city.country,
        "programme": programme,
        "missions": activity["nlib"],
        "tinl_activities": activity["tinl"],
        "last_activity_on": activity["last"],
        "covered": bool(activity["nlib"] or activity["tinl"]),
    }


# -- complementarity across the four initiatives ----------------------------------------------


async def complementarity(
    db: DB,
    *,
    period: Period | None = None,
    as_of: date | None = None,
    market: str | None = None,
    since: date | None = None,
) -> list[dict[str, Any]]:
    """Per market (country code or 'smart-cities'), which of the four initiatives worked it
    in `period` up to `as_of` and how they complement each other, most initiatives first:
    [{"market", "initiatives": [{"family", "activities", "first_on", "last_on"}],
    "links": [[family, family], ...], "preparation": [{"event_id", "city", "on_date"}] (the
    latest :data:`PREPARATION_SHOWN`), "complementary": bool}].

    Presence is an activity of the family for the market (an NLIB mission, incoming ones
    too; a TINL activity; a Global Stars call; a Werkplaats onboarding) or a Werkplaats
    project still running in the period. A TINL activity held in the Netherlands about the
    market (China Business Week in Tilburg) is preparation for it: complementary, never
    duplication. Every pair of initiatives present is a link. `since` narrows the period
    (the coherence score's trailing year)."""
    first, last = _bounds(period, as_of)
    first = max(filter(None, (first, since)), default=None)
    rows = await db.fetch(
        "SELECT market, family, count(*) AS n, min(on_date) AS first_on, max(on_date) AS last_on"
        " FROM (SELECT market, family, on_date FROM activities WHERE market IS NOT NULL"
        "  AND ($1::date IS NULL OR on_date >= $1) AND ($2::date IS NULL OR on_date <= $2)"
        "  AND ($3::text IS NULL OR market = $3)"
        " UNION ALL SELECT country, 'werkplaats', onboarded_on FROM wp_projects"
        "  WHERE $1::date IS NOT NULL AND onboarded_on < $1"
        "  AND coalesce(graduated_on, stopped_on, $1) >= $1"
        "  AND ($3::text IS NULL OR country = $3)) p"
        " GROUP BY market, family",
        first,
        last,
        market,
    )
    preparation = await db.fetch(
        "SELECT market, event_id, city, on_date FROM (SELECT market, event_id, city,"
        "  end_date AS on_date, row_number() OVER (PARTITION BY market"
        "  ORDER BY end_date DESC, event_id DESC) AS latest FROM tinl_activities"
        "  WHERE country = $4 AND ($1::date IS NULL OR end_date >= $1)"
        "  AND ($2::date IS NULL OR end_date <= $2) AND ($3::text IS NULL OR market = $3)) p"
        " WHERE latest <= $5 ORDER BY on_date, event_id",
        first,
        last,
        market,
        HOME_COUNTRY,
        PREPARATION_SHOWN,
    )
    table: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = table.setdefault(
            r["market"], {"market": r["market"], "initiatives": {}, "preparation": []}
        )
        entry["initiatives"][r["family"]] = {
            "family": r["family"],
            "activities": r["n"],
            "first_on": r["first_on"],
            "last_on": r["last_on"],
        }
    for r in preparation:
        if r["market"] in table:
            table[r["market"]]["preparation"].append(
                {"event_id": r["event_id"], "city": r["city"], "on_date": r["on_date"]}
            )
    return sorted(
        (_complementary(entry) for entry in table.values()),
        key=lambda e: (-len(e["initiatives"]), e["market"]),
    )


def _complementary(entry: dict[str, Any]) -> dict[str, Any]:
    present = [f for f in FAMILIES if f in entry["initiatives"]]
    return {
        "market": entry["market"],
        "initiatives": [entry["initiatives"][f] for f in present],
        "links": [list(pair) for pair in combinations(present, 2)],
        "preparation": entry["preparation"],
        "complementary": len(present) > 1,
    }


# -- per initiative --------------------------------------------------------------------------

# The period's missions and whether each was held by its last day ($1, $2: first and last
# day read), for the mission list and the overview's rates alike.
_MISSIONS_READ = (
    "nlib_missions m WHERE ($1::date IS NULL OR m.end_date >= $1)"
    " AND ($2::date IS NULL OR m.start_date <= $2)"
)
_HELD = "m.status = 'held' AND ($2::date IS NULL OR m.end_date <= $2)"
_FOLLOWUPS_READ = (
    "nlib_followups f WHERE f.mission_id = m.mission_id AND ($2::date IS NULL OR f.held_on <= $2)"
)
_CONVERSIONS_READ = "($2::date IS NULL OR l.converted_on <= $2)"
# The TINL activities and knowledge shared of the period ($1, $2), for the report and the
# overview's partner counts alike.
_TINL_ACTIVITIES_READ = (
    "(SELECT * FROM tinl_activities WHERE ($1::date IS NULL OR end_date >= $1)"
    " AND ($2::date IS NULL OR end_date <= $2)) a"
)
_TINL_KNOWLEDGE_READ = (
    "(SELECT * FROM tinl_knowledge WHERE ($1::date IS NULL OR shared_on >= $1)"
    " AND ($2::date IS NULL OR shared_on <= $2)) k"
)


async def nlib(
    db: DB, *, period: Period | None = None, as_of: date | None = None
) -> dict[str, Any]:
    """{"missions_planned", "missions_held", "missions_followed_up", "followup_rate",
    "leads", "leads_converted", "lead_conversion", "contract_value_cents", "companies",
    "business_mixers", "companies_supported", "missions": [...]}: the missions ending in
    `period`; a mission counts as held, followed up or converted as of `as_of`."""
    first, last = _bounds(period, as_of)
    missions = _rows(
        await within_reading(
            db,
            "missions",
            "SELECT m.mission_id, m.title, m.direction, m.country, m.city, m.start_date,"  # noqa: S608 - constants
            f" m.end_date, CASE WHEN {_HELD} THEN 'held' ELSE 'planned' END AS status,"
            " m.companies, m.leads, m.business_mixers,"
            f" (SELECT min(held_on) FROM {_FOLLOWUPS_READ}) AS first_followup_on,"
            " (SELECT count(*) FROM nlib_leads_converted l WHERE l.mission_id = m.mission_id"
            f"  AND {_CONVERSIONS_READ}) AS leads_converted,"
            " (SELECT coalesce(sum(contract_value_cents), 0) FROM nlib_leads_converted l"
            f"  WHERE l.mission_id = m.mission_id AND {_CONVERSIONS_READ})"
            "  AS contract_value_cents"
            f" FROM {_MISSIONS_READ}"
            " ORDER BY m.start_date DESC, m.mission_id",
            first,
            last,
        )
    )
    for mission in missions:  # a numeric sum (many conversions may pass a bigint)
        mission["contract_value_cents"] = int(mission["contract_value_cents"])
    held = [m for m in missions if m["status"] == "held"]
    followed = [m for m in held if m["first_followup_on"] is not None]
    leads = sum(m["leads"] or 0 for m in held)
    converted = sum(m["leads_converted"] for m in missions)
    supported = await db.fetchval(
        "SELECT count(DISTINCT company_id) FROM nlib_companies_supported"
        " WHERE ($1::date IS NULL OR supported_on >= $1)"
        " AND ($2::date IS NULL OR supported_on <= $2)",
        first,
        last,
    )
    return {
        **_reading(period, as_of),
        "missions_planned": len(missions) - len(held),
        "missions_held": len(held),
        "missions_followed_up": len(followed),
        "followup_rate": _ratio(len(followed), len(held)),
        "leads": leads,
        "leads_converted": converted,
        "lead_conversion": _ratio(converted, leads),
        "contract_value_cents": sum(m["contract_value_cents"] for m in missions),
        "companies": sum(m["companies"] or 0 for m in missions),
        "business_mixers": sum(m["business_mixers"] or 0 for m in missions),
        "companies_supported": supported,
        "missions": [{k: v for k, v in m.items() if k != "business_mixers"} for m in missions],
    }


async def nlib_rates(
    db: DB, *, period: Period | None = None, as_of: date | None = None
) -> dict[str, Any]:
    """{"followup_rate", "lead_conversion"} of :func:`nlib`, counted in one statement over
    the period's missions (its date index) without listing them."""
    first, last = _bounds(period, as_of)
    row = await db.fetchrow(
        f"WITH m AS (SELECT m.mission_id, m.leads, {_HELD} AS held FROM {_MISSIONS_READ})"  # noqa: S608 - constants
        " SELECT count(*) FILTER (WHERE held) AS held,"
        f" count(*) FILTER (WHERE held AND EXISTS (SELECT 1 FROM {_FOLLOWUPS_READ}))"
        "  AS followed_up,"
        " coalesce(sum(leads) FILTER (WHERE held), 0) AS leads,"  # held missions report leads
        " (SELECT count(*) FROM nlib_leads_converted l JOIN m USING (mission_id)"
        f"  WHERE {_CONVERSIONS_READ}) AS converted"
        " FROM m",
        first,
        last,
    )
    return {
        "followup_rate": _ratio(row["followed_up"], row["held"]),
        "lead_conversion": _ratio(row["converted"], row["leads"]),
    }


async def tinl_summary(
    db: DB, *, period: Period | None = None, as_of: date | None = None
) -> dict[str, Any]:
    """{"activities", "partner_pairs", "partners_taking_part"}: the counts of
    :func:`tinl`'s lists, from the running totals per partner set when the reading holds
    every event, else counted in one statement over the period's rows."""
    if await covers_all(db, period, as_of):
        bounds: tuple[date | None, ...] = ()
        sets = (
            "SELECT partners, sum(activities) AS acts FROM tinl_partner_sets"
            " GROUP BY partners HAVING sum(activities) + sum(knowledge) > 0"
        )
    else:
        bounds = _bounds(period, as_of)
        sets = (
            f"SELECT a.partners, 1 AS acts FROM {_TINL_ACTIVITIES_READ}"  # noqa: S608 - constants
            f" UNION ALL SELECT k.partners, 0 FROM {_TINL_KNOWLEDGE_READ}"
        )
    partners = f"${len(bounds) + 1}"  # after the period's days, if read
    return dict(
        await db.fetchrow(
            f"WITH s AS ({sets})"  # noqa: S608 - constants
            " SELECT (SELECT coalesce(sum(acts), 0) FROM s)::bigint AS activities,"
            " (SELECT count(DISTINCT (p1, p2)) FROM s, unnest(partners) p1, unnest(partners) p2"
            "  WHERE p1 < p2) AS partner_pairs,"
            " (SELECT count(DISTINCT p) FROM s, unnest(partners) p"
            f"  WHERE p = ANY({partners}::text[])) AS partners_taking_part",
            *bounds,
            list(TINL_PARTNERS),
        )
    )


async def tinl(
    db: DB, *, period: Period | None = None, as_of: date | None = None
) -> dict[str, Any]:
    """{"activities", "knowledge_shared", "focus_markets": [{"market", "activities",
    "last_activity_on"}], "markets": [{"market", "focus", "activities"}], "partners":
    [{"partner", "activities"}], "partners_taking_part", "partners_never":
    [convenant partners with no activity nor knowledge shared], "partner_pairs":
    [{"partners": [a, b], "activities", "knowledge_shared"}]}, in `period` up to `as_of`."""
    first, last = _bounds(period, as_of)
    acts, shares = _TINL_ACTIVITIES_READ, _TINL_KNOWLEDGE_READ
    per_market = await db.fetch(
        f"SELECT market, count(*) AS n, max(end_date) AS last FROM {acts}"  # noqa: S608 - constants
        " GROUP BY market ORDER BY n DESC, market",
        first,
        last,
    )
    by_market = {r["market"]: r for r in per_market}
    pairs = await db.fetch(
        "SELECT x.a, x.b, sum(acts)::int AS activities, sum(shares)::int AS knowledge_shared"  # noqa: S608 - constants
        f" FROM (SELECT p1 AS a, p2 AS b, 1 AS acts, 0 AS shares FROM {acts},"  # noqa: S608
        "  unnest(a.partners) p1, unnest(a.partners) p2 WHERE p1 < p2"
        f" UNION ALL SELECT p1, p2, 0, 1 FROM {shares},"
        "  unnest(k.partners) p1, unnest(k.partners) p2 WHERE p1 < p2) x"
        " GROUP BY x.a, x.b ORDER BY activities DESC, knowledge_shared DESC, x.a, x.b",
        first,
        last,
    )
    partners = await db.fetch(
        f"SELECT p AS partner, count(*) AS activities FROM {acts}, unnest(a.partners) p"  # noqa: S608
        " GROUP BY p ORDER BY activities DESC, p",
        first,
        last,
    )
    sharing = {
        r["p"]
        for r in await db.fetch(
            f"SELECT DISTINCT p FROM {shares}, unnest(k.partners) p",  # noqa: S608
            first,
            last,
        )
    }
    taking_part = {r["partner"] for r in partners} | sharing
    return {
        **_reading(period, as_of),
        "activities": sum(r["n"] for r in per_market),
        "knowledge_shared": await db.fetchval(f"SELECT count(*) FROM {shares}", first, last),  # noqa: S608
        "focus_markets": [
            {
                "market": m,
                "activities": by_market[m]["n"] if m in by_market else 0,
                "last_activity_on": by_market[m]["last"] if m in by_market else None,
            }
            for m in FOCUS_MARKETS
        ],
        "markets": [
            {"market": r["market"], "focus": r["market"] in FOCUS_MARKETS, "activities": r["n"]}
            for r in per_market
        ],
        "partners": _rows(partners),
        "partners_taking_part": len(taking_part & set(TINL_PARTNERS)),
        "partners_never": [p for p in TINL_PARTNERS if p not in taking_part],
        "partner_pairs": [
            {
                "partners": [r["a"], r["b"]],
                "activities": r["activities"],
                "knowledge_shared": r["knowledge_shared"],
            }
            for r in pairs
        ],
    }


async def globalstars(
    db: DB,
    *,
    period: Period | None = None,
    as_of: date | None = None,
    target_months: tuple[int, int] = (4, 5),
) -> dict[str, Any]:
    """{"calls": [{"call_id", "country", "theme", "negotiation_started_on", "opened_on",
    "closed_on", "proposals", "dutch_proposals", "dutch_proposals_reported",
    "lead_time_days", "lead_time_months", "within_target", "outside_eureka"}],
    "calls_closed", "proposals", "dutch_proposals", "target_months": [4, 5]}. A call
    belongs to the period it closed in (while open: it opened in); as of `as_of` a call
    closed later is still open and only proposals submitted by then count. Lead time runs
    from the first negotiation to the closing; within_target = at most the upper target."""
    first, last = _bounds(period, as_of)
    calls = await within_reading(
        db,
        "calls",
        "SELECT c.call_id, c.country, c.theme, c.negotiation_started_on, c.opened_on,"  # noqa: S608 - constants
        f" {_GS_CLOSED} AS closed_on,"
        " CASE WHEN $2::date IS NULL OR c.closed_on <= $2 THEN c.dutch_proposals END"
        "  AS dutch_proposals,"
        " (SELECT count(*) FROM gs_proposals p WHERE p.call_id = c.call_id"
        "  AND ($2::date IS NULL OR p.submitted_on <= $2)) AS proposals,"
        f" {_GS_DUTCH} AS dutch{_GS_CALLS}"
        " ORDER BY c.negotiation_started_on, c.call_id",
        first,
        last,
    )
    entries = [_call_entry(r, target_months) for r in calls]
    return {
        **_reading(period, as_of),
        "calls": entries,
        "calls_closed": sum(e["closed_on"] is not None for e in entries),
        "proposals": sum(e["proposals"] for e in entries),
        "dutch_proposals": sum(e["dutch_proposals"] for e in entries),
        "target_months": list(target_months),
    }


_GS_CALLS = (
    " FROM gs_calls c"
    " WHERE ($2::date IS NULL OR coalesce(c.opened_on, c.negotiation_started_on) <= $2)"
    " AND ($1::date IS NULL OR CASE WHEN c.closed_on <= $2 OR $2::date IS NULL"
    "  THEN c.closed_on >= $1 ELSE coalesce(c.closed_on, $1) >= $1 END)"
)
"""The calls ``c`` of a reading from $1 to $2 (either None: unbounded): a call belongs to
the period it closed in (while open, as of $2: it opened in)."""
_GS_CLOSED = "CASE WHEN $2::date IS NULL OR c.closed_on <= $2 THEN c.closed_on END"
_GS_DUTCH = (
    "(SELECT count(*) FROM gs_proposals p WHERE p.call_id = c.call_id AND p.dutch"
    " AND ($2::date IS NULL OR p.submitted_on <= $2))"
)


async def globalstars_summary(
    db: DB,
    *,
    period: Period | None = None,
    as_of: date | None = None,
    target_months: tuple[int, int] = (4, 5),
) -> dict[str, int]:
    """{"calls_closed", "dutch_proposals", "within_target"}: :func:`globalstars`' counts,
    counted in SQL. The overview's targets read them at every change of the projections:
    listing every call to count them took 15% of the dashboard's CPU while the bench's
    5,000 calls were projected, and the page's p95 went from 22 to 264 ms. Summed from the
    running totals per closing day (``gs_call_totals``) when the reading, up to a date,
    holds every date they count (the live reading: this year as of today); else counted
    call by call (15-19 ms for the bench's 1,482 calls of a year)."""
    first, last = _bounds(period, as_of)
    if last is not None and target_months[1] >= 0:
        totals = await db.fetchrow(
            "SELECT max(latest) AS latest,"
            " coalesce(sum(calls) FILTER (WHERE closed_on < 'infinity'), 0)::bigint"
            "  AS calls_closed,"
            " coalesce(sum(dutch), 0)::bigint AS dutch_proposals,"
            " coalesce(sum(calls) FILTER (WHERE months BETWEEN 0 AND $2), 0)::bigint"
            "  AS within_target"
            " FROM gs_call_totals WHERE ($1::date IS NULL OR closed_on >= $1)",
            first,
            target_months[1],
        )
        if totals["latest"] is None or totals["latest"] <= last:
            return {k: totals[k] for k in ("calls_closed", "dutch_proposals", "within_target")}
    row = await db.fetchrow(
        "SELECT count(closed_on) AS calls_closed,"  # noqa: S608 - constants
        " coalesce(sum(dutch), 0)::bigint AS dutch_proposals,"
        " count(*) FILTER (WHERE closed_on"
        "  <= negotiation_started_on + make_interval(months => $3)) AS within_target"
        f" FROM (SELECT c.negotiation_started_on, {_GS_CLOSED} AS closed_on,"
        f" {_GS_DUTCH} AS dutch{_GS_CALLS}) calls",
        first,
        last,
        target_months[1],
    )
    return dict(row)


def _call_entry(r: asyncpg.Record, target: tuple[int, int]) -> dict[str, Any]:
    start, end = r["negotiation_started_on"], r["closed_on"]
    months = None
    if start and end:
        span = relativedelta(end, start)
        months = round(span.years * 12 + span.months + span.days / 30.4, 1)
    return {
        "call_id": r["call_id"],
        "country": r["country"],
        "theme": r["theme"],
        "negotiation_started_on": start,
        "opened_on": r["opened_on"],
        "closed_on": end,
        "proposals": r["proposals"],
        "dutch_proposals": r["dutch"],
        "dutch_proposals_reported": r["dutch_proposals"],
        "lead_time_days": (end - start).days if start and end else None,
        "lead_time_months": months,
        "within_target": None
        if start is None or end is None
        else end <= start + relativedelta(months=target[1]),
        "outside_eureka": None if r["country"] is None else r["country"] not in EUREKA_COUNTRIES,
    }


def werkplaats_target(
    year: int,
    targets: Mapping[int, int] = DEFAULT_WERKPLAATS_TARGETS,
    yearly_target: int = DEFAULT_WERKPLAATS_YEARLY_TARGET,
) -> int | None:
    """The portfolio target of `year`: 20 in 2019, 30 a year after; none before 2019 (the
    letter sets no target for the start-up years 2017-2018)."""
    if year < WERKPLAATS_TARGET_FIRST_YEAR and year not in targets:
        return None
    return targets.get(year, yearly_target)


async def werkplaats(
    db: DB,
    *,
    period: Period | None = None,
    as_of: date | None = None,
    targets: Mapping[int, int] = DEFAULT_WERKPLAATS_TARGETS,
    yearly_target: int = DEFAULT_WERKPLAATS_YEARLY_TARGET,
) -> dict[str, Any]:
    """{"projects": n, "active", "graduated", "stopped", "portfolio": [{"year", "onboarded",
    "portfolio", "target", "target_pct"}], "next_target": {"year", "target"} | None,
    "sdg_coverage": [{"sdg", "projects"}] (1..17), "sdgs_covered", "graduations":
    [{"project_id", "title", "graduated_on"}]}: projects onboarded by `as_of` and supported
    at some point in `period`, with their state as of `as_of`. The portfolio of a year
    counts projects supported at some point in it; no target before 2019. Counted in SQL;
    only the graduations are listed (bounded as a reading's lists are): every project was
    read, 250,000 of them in 4 s and 114 MiB for a past reading's overview."""
    first, last = _bounds(period, as_of)
    counts = await _werkplaats_counts(db, first, last, targets, yearly_target)
    graduations = await within_reading(
        db,
        "graduations",
        "SELECT w.project_id, w.title, w.country, w.graduated_on"  # noqa: S608 - constants
        f" FROM {_WP_PROJECTS}{_WP_RUNNING} AND w.graduated_on IS NOT NULL"
        " ORDER BY w.onboarded_on, w.project_id",
        first,
        last,
    )
    return {**_reading(period, as_of), **counts, "graduations": _rows(graduations)}


# The projects onboarded by $2 with their ends known then, and those of them supported at
# some point from $1 (both None: all).
_WP_PROJECTS = (
    "(SELECT project_id, title, country, sdgs, onboarded_on,"
    " CASE WHEN $2::date IS NULL OR graduated_on <= $2 THEN graduated_on END AS graduated_on,"
    " CASE WHEN $2::date IS NULL OR stopped_on <= $2 THEN stopped_on END AS stopped_on"
    " FROM wp_projects WHERE ($2::date IS NULL OR onboarded_on <= $2)) w"
)
_WP_RUNNING = " WHERE ($1::date IS NULL OR coalesce(w.graduated_on, w.stopped_on, $1) >= $1)"
# The running spans (wp_portfolio, wp_sdgs) of projects supported at some point in the years
# from b.first (None: all) to b.last.
_WP_SPANS = " WHERE since <= b.last AND (b.first IS NULL OR coalesce(until, b.last) >= b.first)"


async def _werkplaats_counts(
    db: DB,
    first: date | None,
    last: date | None,
    targets: Mapping[int, int],
    yearly_target: int,
) -> dict[str, Any]:
    """:func:`werkplaats` without its list: the projects by status, the portfolio per year,
    the next target and the SDGs covered."""
    statuses = await db.fetchrow(
        "SELECT count(*) AS projects,"  # noqa: S608 - constants
        " count(*) FILTER (WHERE w.graduated_on IS NOT NULL) AS graduated,"
        " count(*) FILTER (WHERE w.graduated_on IS NULL AND w.stopped_on IS NOT NULL)"
        "  AS stopped"
        f" FROM {_WP_PROJECTS}{_WP_RUNNING}",
        first,
        last,
    )
    sdgs = {
        r["sdg"]: r["projects"]
        for r in await db.fetch(
            "SELECT s AS sdg, count(*) AS projects"  # noqa: S608 - constants
            f" FROM {_WP_PROJECTS} CROSS JOIN LATERAL unnest(w.sdgs) s{_WP_RUNNING}"
            " GROUP BY s",
            first,
            last,
        )
    }
    portfolio = await db.fetch(  # the projects per span of years within the reading's, then
        # each span's years: a year of each project's own made 2 M rows of 250,501, 2.2 s
        "WITH spans AS (SELECT extract(year FROM onboarded_on)::int AS onboarded,"  # noqa: S608 - constants
        "  greatest(extract(year FROM onboarded_on)::int, extract(year FROM $1::date)::int)"
        "   AS since,"
        "  least(extract(year FROM coalesce(graduated_on, stopped_on, $2, current_date))::int,"
        "   extract(year FROM $2::date)::int) AS until, count(*) AS n"
        f" FROM {_WP_PROJECTS} GROUP BY 1, 2, 3)"
        " SELECT y AS year, coalesce(sum(n) FILTER (WHERE onboarded = y), 0)::bigint"
        "  AS onboarded, sum(n)::bigint AS portfolio"
        " FROM spans, generate_series(since, until) y GROUP BY y ORDER BY y",
        first,
        last,
    )
    entries = [_portfolio_entry(r, targets, yearly_target) for r in portfolio]
    return {
        "projects": statuses["projects"],
        "active": statuses["projects"] - statuses["graduated"] - statuses["stopped"],
        "graduated": statuses["graduated"],
        "stopped": statuses["stopped"],
        "portfolio": entries,
        "next_target": _next_target(entries, targets, yearly_target),
        "sdg_coverage": [{"sdg": s, "projects": sdgs.get(s, 0)} for s in range(1, 18)],
        "sdgs_covered": len(sdgs),
    }


def _portfolio_entry(
    r: Mapping[str, Any], targets: Mapping[int, int], yearly_target: int
) -> dict[str, Any]:
    target = werkplaats_target(r["year"], targets, yearly_target)
    return {
        "year": r["year"],
        "onboarded": r["onboarded"],
        "portfolio": r["portfolio"],
        "target": target,
        "target_pct": _pct(r["portfolio"], target) if target else None,
    }


def _next_target(
    entries: list[dict[str, Any]], targets: Mapping[int, int], yearly_target: int
) -> dict[str, int] | None:
    """The target the latest year is measured against: its own, or the first one after."""
    if not entries:
        return None
    year = entries[-1]["year"]
    while (target := werkplaats_target(year, targets, yearly_target)) is None:
        year += 1
    return {"year": year, "target": target}


async def werkplaats_summary(
    db: DB,
    *,
    period: Period | None = None,
    as_of: date | None = None,
    targets: Mapping[int, int] = DEFAULT_WERKPLAATS_TARGETS,
    yearly_target: int = DEFAULT_WERKPLAATS_YEARLY_TARGET,
) -> dict[str, Any]:
    """{"portfolio": the last entry of :func:`werkplaats`'s portfolio or None,
    "next_target", "sdgs_covered", "graduations": how many}. A reading that runs up to the
    latest event (the live reading: a year as of today) is answered from the running
    ``wp_portfolio`` and ``wp_sdgs`` (per onboarding and end year: a period starts on 1
    January), however early the projects began."""
    first, last = _bounds(period, as_of)
    if not await reaches_latest(db, last):
        found = await _werkplaats_counts(db, first, last, targets, yearly_target)
        return {
            "portfolio": found["portfolio"][-1] if found["portfolio"] else None,
            "next_target": found["next_target"],
            "sdgs_covered": found["sdgs_covered"],
            "graduations": found["graduated"],
        }
    row = await db.fetchrow(
        "WITH b AS (SELECT $1::int AS first, coalesce($2::int,"  # noqa: S608 - constants
        "  extract(year FROM current_date)::int) AS last),"
        " p AS (SELECT status, since, coalesce(until, b.last) AS until, sum(n) AS n"
        f"  FROM wp_portfolio, b{_WP_SPANS} GROUP BY 1, 2, 3 HAVING sum(n) <> 0),"
        " y AS (SELECT max(until) AS year FROM p)"
        " SELECT y.year,"
        " coalesce(sum(n) FILTER (WHERE since = y.year AND y.year <= until), 0)::bigint"
        "  AS onboarded,"
        " coalesce(sum(n) FILTER (WHERE since <= y.year AND y.year <= until), 0)::bigint"
        "  AS portfolio,"
        " (SELECT count(*) FROM (SELECT sdg FROM wp_sdgs, b"
        f"  {_WP_SPANS} GROUP BY sdg HAVING sum(n) <> 0) s) AS sdgs_covered,"
        " coalesce(sum(n) FILTER (WHERE status = 'graduated'), 0)::bigint AS graduations"
        " FROM y LEFT JOIN p ON true GROUP BY y.year",
        first.year if first else None,
        last.year if last else None,
    )
    portfolio = None
    if row["year"] is not None:
        portfolio = _portfolio_entry(dict(row), targets, yearly_target)
    return {
        "portfolio": portfolio,
        "next_target": _next_target([portfolio], targets, yearly_target) if portfolio else None,
        "sdgs_covered": row["sdgs_covered"],
        "graduations": row["graduations"],
    }


# -- findings and the score ------------------------------------------------------------------

_FINDING_FIELDS = (
    "id, rule, rule_version, finding_key, severity, summary, details, event_ids, state,"
    " condition_holds, raised_at, updated_at, acknowledged_by, acknowledged_at,"
    " resolved_by, resolved_at"
)


def _finding(r: asyncpg.Record) -> dict[str, Any]:
    entry = dict(r)
    entry["details"] = json.loads(entry["details"]) if entry["details"] else {}
    entry["event_ids"] = list(entry["event_ids"])
    return entry


async def findings(
    db: DB,
    *,
    state: str | None = None,
    rule: str | None = None,
    severity: str | None = None,
    limit: int = FINDINGS_SHOWN,
) -> list[dict[str, Any]]:
    """[{"id", "rule", "rule_version", "finding_key", "severity", "summary", "details",
    "event_ids", "state", "condition_holds", "raised_at", "updated_at", "acknowledged_by",
    "acknowledged_at", "resolved_by", "resolved_at"}], newest first."""
    rows = await db.fetch(
        f"SELECT {_FINDING_FIELDS} FROM findings WHERE ($1::text IS NULL OR state = $1)"  # noqa: S608 - constant
        " AND ($2::text IS NULL OR rule = $2) AND ($3::text IS NULL OR severity = $3)"
        " ORDER BY raised_at DESC, id DESC LIMIT $4",
        state,
        rule,
        severity,
        limit,
    )
    return [_finding(r) for r in rows]


async def finding(db: DB, finding_id: int) -> dict[str, Any] | None:
    """One finding as in :func:`findings`, plus "changes": [{"state", "changed_by",
    "changed_at", "note"}]."""
    row = await db.fetchrow(f"SELECT {_FINDING_FIELDS} FROM findings WHERE id = $1", finding_id)  # noqa: S608
    if row is None:
        return None
    changes = await db.fetch(
        "SELECT state, changed_by, changed_at, note FROM finding_changes"
        " WHERE finding_id = $1 ORDER BY id",
        finding_id,
    )
    return {**_finding(row), "changes": _rows(changes)}


async def open_findings_by_severity(db: DB) -> dict[str, int]:
    """{severity: open or acknowledged findings}, from the running totals."""
    rows = await db.fetch(
        "SELECT severity, sum(open)::bigint AS n FROM finding_totals GROUP BY severity"
        " HAVING sum(open) > 0"
    )
    return {r["severity"]: r["n"] for r in rows}


async def open_findings_by_rule(db: DB) -> dict[tuple[str, str], int]:
    """{(rule, severity): open or acknowledged findings} (for the findings gauge)."""
    rows = await db.fetch(
        "SELECT rule, severity, count(*) AS n FROM findings WHERE state <> 'resolved'"
        " GROUP BY rule, severity"
    )
    return {(r["rule"], r["severity"]): r["n"] for r in rows}


async def latest_score(db: DB) -> dict[str, Any] | None:
    row = await db.fetchrow(
        "SELECT at, score::float AS score, joint_actions, duplications,"
        " weighted_findings::float AS weighted_findings FROM coherence_scores"
        " ORDER BY at DESC LIMIT 1"
    )
    return dict(row) if row else None


async def score_series(
    db: DB, *, bucket: str = "day", since: datetime | None = None
) -> list[dict[str, Any]]:
    """[{"at", "score", "joint_actions", "duplications", "weighted_findings"}]: the last
    snapshot of each bucket ("hour", "day", "week" or "month"), oldest first."""
    if bucket not in ("hour", "day", "week", "month"):
        raise ValueError("bucket must be hour, day, week or month")
    return _rows(
        await db.fetch(
            "SELECT DISTINCT ON (date_trunc($1, at)) at, score::float AS score, joint_actions,"
            " duplications, weighted_findings::float AS weighted_findings FROM coherence_scores"
            " WHERE ($2::timestamptz IS NULL OR at >= $2)"
            " ORDER BY date_trunc($1, at), at DESC",
            bucket,
            since,
        )
    )


# -- operations ---------------------------------------------------------------------------------


async def status(db: DB) -> dict[str, Any]:
    """{"projection_version", "built_at", "events_applied", "dead_letters",
    "last_event_at": {family: datetime}}: the network's events from the running totals (a
    row per family and day), as the overview reads them. Counting and scanning ``events``
    itself took 0.4-0.5 s of PostgreSQL per request at a million events, for any member
    polling it."""
    meta = await db.fetchrow(
        "SELECT max(version) AS version, max(built_at) AS built_at FROM projection_meta"
    )
    last = await db.fetch(
        "SELECT family, max(last_event_at) AS at FROM family_totals GROUP BY family"
        " HAVING max(last_event_at) IS NOT NULL"
    )
    return {
        "projection_version": meta["version"],
        "built_at": meta["built_at"],
        "events_applied": await db.fetchval(  # each has its inbox row in one of them (ledger)
            "SELECT coalesce((SELECT sum(events) FROM family_totals), 0)::bigint"
            " + (SELECT count(*) FROM inbox)"
        ),
        "dead_letters": await db.fetchval("SELECT count(*) FROM dead_letters"),
        "last_event_at": {r["family"]: r["at"] for r in last},
    }
