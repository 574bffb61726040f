"""Reads of the per-initiative pages and the progress report, for a period and an as-of date.

Every function takes ``period`` (whole years) and ``as_of`` (a date or None): a fact counts
when its own business date (a mission's start, a follow-up's day, a call's closing, a
project's onboarding, a spend's budget year) lies in the period and not after ``as_of``.
Each listed item carries ``event_ids``: the events behind it, so that every figure can be
traced back (see `evidence`). Money in euro cents, rates as fractions 0..1.

A reading lists at most :data:`.queries.READING_ROWS` items of one kind (missions, projects, calls,
activities, ...): each list is read with that bound, and a longer one is refused as a
reading of a period too long (422 naming ``period``), before its rows are built - a reading
of every item of a million events took the dashboard to 1.9 GB and seconds of its one event
loop. An item's own events (a mission's follow-ups and conversions, a call's proposals) are
items of the reading too, bounded the same way (:func:`_ids_by_item`). Sums, counts and
rates over more (the overview, the budget) are read in SQL, not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import asyncpg

from teamnl_shared.contract.tinl import TinlPartner

from .period import Period
from .queries import DB, INITIATIVE_NAMES, _call_entry, _ratio, within_reading
from .reference import CITIES_OF_OPPORTUNITY, FAMILIES, FOCUS_MARKETS, HOME_COUNTRY, city_for
from .settings import DEFAULT_ALLOCATIONS_CENTS

TINL_PARTNERS: tuple[str, ...] = tuple(p.value for p in TinlPartner)
FIGURE_EVENTS_SHOWN = 1_000
"""The most events the events behind one figure lists (the latest; its count is of all)."""


def window(period: Period, as_of: date | None) -> tuple[date, date]:
    """The first and the last day (both included) a fact may fall on; last < first when
    ``as_of`` lies before the period."""
    last = period.end - timedelta(days=1)
    return period.start, min(last, as_of) if as_of else last


def werkplaats_target(year: int, targets: Mapping[int, int], yearly: int) -> int | None:
    """The letter's portfolio target of ``year``: as listed (20 in 2019), the structural
    yearly target after the listed years, none before them (2017-2018 had no target)."""
    if year in targets:
        return targets[year]
    if targets and year < min(targets):
        return None
    return yearly


# -- spending --------------------------------------------------------------------------------


async def spending(
    db: DB,
    period: Period,
    as_of: date | None,
    *,
    allocations_cents: Mapping[str, int] = DEFAULT_ALLOCATIONS_CENTS,
) -> dict[str, Any]:
    """{"years": [{"family", "name", "year", "allocation_cents", "spent_cents",
    "spent_pct"}], "totals": [{"family", "name", "allocation_cents", "spent_cents",
    "spent_pct"}], "allocation_cents", "spent_cents"}: spending per budget year of the
    period, spent on or before ``as_of`` (sums of any number of spendings; the events
    behind them: :func:`spending_event_ids`)."""
    _, last = window(period, as_of)
    rows = await db.fetch(  # the running totals per day spent
        "SELECT family, year, sum(spent_cents) AS spent FROM budget_totals"
        " WHERE year BETWEEN $1 AND $2 AND spent_on <= $3 GROUP BY family, year"
        " HAVING sum(spends) > 0",
        period.first_year,
        period.last_year,
        last,
    )
    found = {(r["family"], r["year"]): r for r in rows}
    years = [
        _spend_row(f, y, allocations_cents.get(f, 0), found.get((f, y)))
        for y in period.years
        for f in FAMILIES
    ]
    totals = [
        _spend_total(f, [row for row in years if row["family"] == f], len(period.years))
        for f in FAMILIES
    ]
    return {
        "years": years,
        "totals": totals,
        "allocation_cents": sum(t["allocation_cents"] for t in totals),
        "spent_cents": sum(t["spent_cents"] for t in totals),
    }


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _spend_row(
    family: str, year: int, allocation: int, row: asyncpg.Record | None
) -> dict[str, Any]:
    spent = int(row["spent"]) if row else 0  # a numeric sum (it may pass a bigint)
    return {
        "family": family,
        "name": INITIATIVE_NAMES[family],
        "year": year,
        "allocation_cents": allocation,
        "spent_cents": spent,
        "spent_pct": _pct(spent, allocation),
    }


def _spend_total(family: str, rows: list[dict[str, Any]], years: int) -> dict[str, Any]:
    allocation = rows[0]["allocation_cents"] * years if rows else 0
    spent = sum(r["spent_cents"] for r in rows)
    return {
        "family": family,
        "name": INITIATIVE_NAMES[family],
        "allocation_cents": allocation,
        "spent_cents": spent,
        "spent_pct": _pct(spent, allocation),
    }


async def spending_event_ids(
    db: DB, period: Period, as_of: date | None, family: str | None = None
) -> list[str]:
    """The events behind :func:`spending` (of one initiative), in the order spent."""
    _, last = window(period, as_of)
    rows = await within_reading(
        db,
        "spendings",
        "SELECT event_id FROM budget_spent WHERE year BETWEEN $1 AND $2 AND spent_on <= $3"
        " AND ($4::text IS NULL OR family = $4) ORDER BY spent_on, spend_id",
        period.first_year,
        period.last_year,
        last,
        family,
    )
    return [r["event_id"] for r in rows]


# -- NLinBusiness ----------------------------------------------------------------------------


_MISSIONS_STARTED = "m.start_date BETWEEN $1 AND $2"
"""The missions ``m`` of a reading from $1 to $2: those that started in it."""


async def nlib_missions(
    db: DB, period: Period, as_of: date | None, *, followup_days: int = 60
) -> dict[str, Any]:
    """{"missions": [{"mission_id", "title", "direction", "country", "city", "start_date",
    "end_date", "status", "companies", "business_mixers", "leads", "first_followup_on",
    "followup_days", "followed_up_in_time", "followup_overdue", "leads_converted",
    "contract_value_cents", "event_ids", "followup_event_ids", "conversion_event_ids"}],
    "held", "planned", "followed_up", "followed_up_in_time", "overdue", "followup_rate",
    "leads", "leads_converted", "lead_conversion", "contract_value_cents", "companies",
    "business_mixers", "followup_days"}. Missions that started in the period; follow-ups
    and conversions of those missions up to ``as_of``."""
    start, last = window(period, as_of)
    rows = await within_reading(
        db,
        "missions",
        "SELECT m.*, f.first_on,"  # noqa: S608 - constants
        " coalesce(l.n, 0) AS converted, coalesce(l.value, 0) AS value FROM nlib_missions m"
        " LEFT JOIN LATERAL (SELECT min(held_on) AS first_on FROM nlib_followups"
        "  WHERE mission_id = m.mission_id AND held_on <= $2) f ON true"
        " LEFT JOIN LATERAL (SELECT count(*) AS n, sum(contract_value_cents) AS value"
        "  FROM nlib_leads_converted"
        "  WHERE mission_id = m.mission_id AND converted_on <= $2) l ON true"
        f" WHERE {_MISSIONS_STARTED} ORDER BY m.start_date, m.mission_id",
        start,
        last,
    )
    followups = await _ids_by_item(
        db,
        "follow-ups",
        "SELECT f.mission_id AS item, f.event_id FROM nlib_followups f"  # noqa: S608 - constants
        " JOIN nlib_missions m USING (mission_id)"
        f" WHERE {_MISSIONS_STARTED} AND f.held_on <= $2"
        " ORDER BY f.held_on, f.followup_id",
        start,
        last,
    )
    conversions = await _ids_by_item(
        db,
        "conversions",
        "SELECT l.mission_id AS item, l.event_id"  # noqa: S608 - constants
        " FROM nlib_leads_converted l"
        " JOIN nlib_missions m USING (mission_id)"
        f" WHERE {_MISSIONS_STARTED} AND l.converted_on <= $2"
        " ORDER BY l.converted_on, l.lead_id",
        start,
        last,
    )
    missions = [
        {
            **_mission(r, last, followup_days),
            "followup_event_ids": followups.get(r["mission_id"], []),
            "conversion_event_ids": conversions.get(r["mission_id"], []),
        }
        for r in rows
    ]
    held = [m for m in missions if m["status"] == "held"]
    leads = sum(m["leads"] or 0 for m in held)
    converted = sum(m["leads_converted"] for m in held)
    followed_up = sum(m["first_followup_on"] is not None for m in held)
    return {
        "missions": missions,
        "held": len(held),
        "planned": len(missions) - len(held),
        "followed_up": followed_up,
        "followed_up_in_time": sum(bool(m["followed_up_in_time"]) for m in held),
        "overdue": sum(m["followup_overdue"] for m in held),
        "followup_rate": _ratio(followed_up, len(held)),
        "leads": leads,
        "leads_converted": converted,
        "lead_conversion": _ratio(converted, leads),
        "contract_value_cents": sum(m["contract_value_cents"] for m in held),
        "companies": sum(m["companies"] or 0 for m in held),
        "business_mixers": sum(m["business_mixers"] or 0 for m in held),
        "followup_days": followup_days,
    }


def _mission(r: asyncpg.Record, last: date, followup_days: int) -> dict[str, Any]:
    held = r["status"] == "held"
    first = r["first_on"]
    days = (first - r["end_date"]).days if first else None
    due = r["end_date"] + timedelta(days=followup_days)
    return {
        "mission_id": r["mission_id"],
        "title": r["title"],
        "direction": r["direction"],
        "country": r["country"],
        "city": r["city_of_opportunity"] or r["city"],
        "start_date": r["start_date"],
        "end_date": r["end_date"],
        "status": r["status"],
        "companies": r["companies"],
        "business_mixers": r["business_mixers"],
        "leads": r["leads"],
        "first_followup_on": first,
        "followup_days": days,
        "followed_up_in_time": None if days is None else days <= followup_days,
        "followup_overdue": held and first is None and last > due,
        "leads_converted": r["converted"],
        "contract_value_cents": int(r["value"]),
        "event_ids": [e for e in (r["held_event_id"] or r["planned_event_id"],) if e],
    }


async def _ids_by_item(db: DB, what: str, query: str, *args: Any) -> dict[str, list[str]]:
    """The event ids `query` reads (``item``, ``event_id``: the own events of a reading's
    items, in its order) by item, bounded as the items are (:func:`within_reading`): as a
    mission's array, a mission with 300,000 conversions and 100,000 follow-ups made the
    report's NLIB reading hold 34 MiB of ids, and more with each."""
    ids: dict[str, list[str]] = {}
    for r in await within_reading(db, what, query, *args):
        ids.setdefault(r["item"], []).append(r["event_id"])
    return ids


async def cities_of_opportunity(db: DB, period: Period, as_of: date | None) -> dict[str, Any]:
    """{"named": 38, "announced": 40, "with_programme", "active", "cities": [{"slug",
    "name", "tier", "country", "programme": {tier, soft_landing, updated_on} | None,
    "activities", "event_ids", "programme_event_ids"}]}. Activity in a city: an outgoing
    NLIB mission held there or a TINL activity abroad there, in the period."""
    start, last = window(period, as_of)
    programmes: dict[str, asyncpg.Record] = {}
    for r in await within_reading(
        db,
        "city programmes",
        "SELECT city_id, city, tier, soft_landing, updated_on, event_id FROM nlib_cities"
        " WHERE updated_on <= $1",
        last,
    ):
        city = city_for(r["city_id"], r["city"])
        if city is not None:
            programmes[city.slug] = r
    activity: dict[str, list[str]] = {}
    for r in await within_reading(
        db,
        "missions and activities abroad",
        "SELECT coalesce(city_of_opportunity, city) AS city, held_event_id AS event_id"
        " FROM nlib_missions WHERE status = 'held' AND direction = 'outgoing'"
        " AND start_date BETWEEN $1 AND $2"
        " UNION ALL SELECT city, event_id FROM tinl_activities"
        " WHERE country <> $3 AND start_date BETWEEN $1 AND $2",
        start,
        last,
        HOME_COUNTRY,
    ):
        city = city_for(r["city"])
        if city is not None:
            activity.setdefault(city.slug, []).append(r["event_id"])
    entries: list[dict[str, Any]] = [
        {
            "slug": c.slug,
            "name": c.name,
            "tier": c.tier,
            "country": c.country,
            "programme": _programme(programmes.get(c.slug)),
            "activities": len(activity.get(c.slug, [])),
            "event_ids": activity.get(c.slug, []),
            "programme_event_ids": [programmes[c.slug]["event_id"]] if c.slug in programmes else [],
        }
        for c in CITIES_OF_OPPORTUNITY
    ]
    return {
        "announced": 40,
        "named": len(entries),
        "with_programme": sum(e["programme"] is not None for e in entries),
        "active": sum(e["activities"] > 0 for e in entries),
        "cities": entries,
    }


def _programme(r: asyncpg.Record | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"tier": r["tier"], "soft_landing": r["soft_landing"], "updated_on": r["updated_on"]}


# -- Global Stars ----------------------------------------------------------------------------


_CALLS_READ = (
    "coalesce(c.negotiation_started_on, c.opened_on) <= $2"
    " AND (c.closed_on IS NULL OR c.closed_on >= $1)"
)
"""The calls ``c`` of a reading from $1 to $2: under way by its last day, not closed before
its first."""


async def globalstars_calls(
    db: DB, period: Period, as_of: date | None, *, target_months: tuple[int, int] = (4, 5)
) -> dict[str, Any]:
    """{"calls": [queries.globalstars' call fields + "event_ids", "proposal_event_ids"],
    "calls_closed", "dutch_proposals", "within_target", "target_months"}: calls under way
    in the period (negotiated or opened by its end, not closed before its start); a call
    closing after ``as_of`` is still open, proposals count up to ``as_of``."""
    start, last = window(period, as_of)
    rows = await within_reading(
        db,
        "calls",
        "SELECT c.call_id, c.country, c.theme,"  # noqa: S608 - constants
        " c.negotiation_started_on, c.opened_on,"
        " CASE WHEN c.closed_on <= $2 THEN c.closed_on END AS closed_on,"
        " CASE WHEN c.closed_on <= $2 THEN c.dutch_proposals END AS dutch_proposals,"
        " CASE WHEN c.closed_on <= $2 THEN c.closed_event_id END AS closed_event_id,"
        " c.opened_event_id, coalesce(p.n, 0) AS proposals, coalesce(p.dutch, 0) AS dutch"
        " FROM gs_calls c"
        " LEFT JOIN LATERAL (SELECT count(*) AS n, count(*) FILTER (WHERE dutch) AS dutch"
        "  FROM gs_proposals WHERE call_id = c.call_id AND submitted_on <= $2) p ON true"
        f" WHERE {_CALLS_READ} ORDER BY c.negotiation_started_on, c.call_id",
        start,
        last,
    )
    proposals = await _ids_by_item(
        db,
        "proposals",
        "SELECT p.call_id AS item, p.event_id FROM gs_proposals p"  # noqa: S608 - constants
        " JOIN gs_calls c USING (call_id)"
        f" WHERE {_CALLS_READ} AND p.dutch AND p.submitted_on <= $2"
        " ORDER BY p.submitted_on, p.proposal_id",
        start,
        last,
    )
    calls = [
        {
            **_call_entry(r, target_months),
            "event_ids": [e for e in (r["opened_event_id"], r["closed_event_id"]) if e],
            "proposal_event_ids": proposals.get(r["call_id"], []),
        }
        for r in rows
    ]
    closed = [c for c in calls if c["closed_on"] is not None and c["closed_on"] >= start]
    return {
        "calls": calls,
        "calls_closed": len(closed),
        "dutch_proposals": sum(c["dutch_proposals"] for c in closed),
        "within_target": sum(bool(c["within_target"]) for c in closed),
        "target_months": list(target_months),
    }


# -- De Werkplaats ---------------------------------------------------------------------------


async def werkplaats_portfolio(
    db: DB,
    period: Period,
    as_of: date | None,
    *,
    targets: Mapping[int, int] | None = None,
    yearly_target: int = 30,
) -> dict[str, Any]:
    """{"projects": [{"project_id", "title", "country", "sectors", "sdgs", "consortium",
    "onboarded_on", "status", "ended_on", "stop_reason", "milestones", "event_ids"}],
    "years": [{"year", "portfolio", "onboarded", "target"}], "active", "graduated",
    "stopped", "sdgs": [{"sdg", "projects"}], "sdgs_covered"}: projects supported at some
    point in the period; their status as of its last day."""
    targets = {2019: 20} if targets is None else targets
    start, last = window(period, as_of)
    rows = await within_reading(
        db,
        "projects",
        "SELECT p.*, coalesce(m.members, '{}') AS consortium, coalesce(s.n, 0) AS milestones"
        " FROM wp_projects p"
        " LEFT JOIN LATERAL (SELECT array_agg(member ORDER BY member) AS members FROM wp_members"
        "  WHERE project_id = p.project_id AND (joined_on IS NULL OR joined_on <= $2)) m ON true"
        " LEFT JOIN LATERAL (SELECT count(*) AS n FROM wp_milestones"
        "  WHERE project_id = p.project_id AND reached_on <= $2) s ON true"
        " WHERE p.onboarded_on <= $2"
        " AND coalesce(p.graduated_on, p.stopped_on, $2) >= $1"
        " ORDER BY p.onboarded_on, p.project_id",
        start,
        last,
    )
    projects = [_project(r, last) for r in rows]
    sdgs = {s: sum(s in p["sdgs"] for p in projects) for s in range(1, 18)}
    return {
        "projects": projects,
        "years": [_portfolio_year(y, projects, targets, yearly_target) for y in period.years],
        "active": sum(p["status"] == "active" for p in projects),
        "graduated": sum(p["status"] == "graduated" for p in projects),
        "stopped": sum(p["status"] == "stopped" for p in projects),
        "sdgs": [{"sdg": s, "projects": n} for s, n in sdgs.items()],
        "sdgs_covered": sum(n > 0 for n in sdgs.values()),
    }


def _project(r: asyncpg.Record, last: date) -> dict[str, Any]:
    status, ended = "active", None
    for state, on in (("graduated", r["graduated_on"]), ("stopped", r["stopped_on"])):
        if on is not None and on <= last:
            status, ended = state, on
    return {
        "project_id": r["project_id"],
        "title": r["title"],
        "country": r["country"],
        "sectors": list(r["sectors"]),
        "sdgs": list(r["sdgs"]),
        "consortium": list(r["consortium"]),
        "onboarded_on": r["onboarded_on"],
        "status": status,
        "ended_on": ended,
        "stop_reason": r["stop_reason"] if status == "stopped" else None,
        "milestones": r["milestones"],
        "event_ids": [r["onboarded_event_id"]]
        + ([r["ended_event_id"]] if ended and r["ended_event_id"] else []),
    }


def _portfolio_year(
    year: int, projects: list[dict[str, Any]], targets: Mapping[int, int], yearly: int
) -> dict[str, Any]:
    def supported(p: dict[str, Any]) -> bool:
        ended = p["ended_on"]
        return p["onboarded_on"].year <= year and (ended is None or ended.year >= year)

    return {
        "year": year,
        "portfolio": sum(supported(p) for p in projects),
        "onboarded": sum(p["onboarded_on"].year == year for p in projects),
        "target": werkplaats_target(year, targets, yearly),
    }


# -- Trade & Innovate NL ---------------------------------------------------------------------


async def tinl_network(db: DB, period: Period, as_of: date | None) -> dict[str, Any]:
    """{"activities": [{"activity_id", "title", "kind", "market", "country", "city",
    "start_date", "partners", "event_ids"}], "partners": [{"partner", "activities",
    "knowledge", "with": [partner], "acts"}], "acting", "focus_markets": [{"market",
    "activities", "last_activity_on", "partners", "event_ids"}], "knowledge_shared"}:
    which of the eight convenant partners took part, with whom, on which focus market."""
    start, last = window(period, as_of)
    activities = [
        {**dict(r), "partners": list(r["partners"]), "event_ids": [r["event_id"]]}
        for r in await within_reading(
            db,
            "activities",
            "SELECT activity_id, title, kind, market, country, city, start_date, partners,"
            " event_id FROM tinl_activities WHERE start_date BETWEEN $1 AND $2"
            " ORDER BY start_date, activity_id",
            start,
            last,
        )
    ]
    knowledge = await within_reading(
        db,
        "knowledge shares",
        "SELECT partners, event_id FROM tinl_knowledge WHERE shared_on BETWEEN $1 AND $2",
        start,
        last,
    )
    partners = [_partner(p, activities, knowledge) for p in TINL_PARTNERS]
    return {
        "activities": activities,
        "partners": partners,
        "acting": sum(p["acts"] for p in partners),
        "focus_markets": [_focus_market(m, activities) for m in FOCUS_MARKETS],
        "knowledge_shared": len(knowledge),
        "knowledge_event_ids": [r["event_id"] for r in knowledge],
    }


def _partner(
    partner: str, activities: list[dict[str, Any]], knowledge: list[asyncpg.Record]
) -> dict[str, Any]:
    mine = [a for a in activities if partner in a["partners"]]
    shared = [k for k in knowledge if partner in k["partners"]]
    others = {p for a in mine for p in a["partners"]} | {p for k in shared for p in k["partners"]}
    return {
        "partner": partner,
        "activities": len(mine),
        "knowledge": len(shared),
        "with": sorted(others - {partner}),
        "acts": bool(mine or shared),
        "event_ids": [a["event_id"] for a in mine] + [k["event_id"] for k in shared],
    }


def _focus_market(market: str, activities: list[dict[str, Any]]) -> dict[str, Any]:
    mine = [a for a in activities if a["market"] == market]
    return {
        "market": market,
        "activities": len(mine),
        "last_activity_on": max((a["start_date"] for a in mine), default=None),
        "partners": sorted({p for a in mine for p in a["partners"]}),
        "event_ids": [a["event_id"] for a in mine],
    }


# -- the events behind a figure --------------------------------------------------------------


async def events_by_id(db: DB, event_ids: list[str]) -> tuple[int, list[dict[str, Any]]]:
    """How many events these are, and [{"event_id", "source", "type", "family", "subject",
    "time", "title"}] of the latest :data:`FIGURE_EVENTS_SHOWN` of them, oldest first."""
    rows = await db.fetch(
        "SELECT * FROM (SELECT event_id, source, type, family, subject, time, title,"
        " count(*) OVER () AS behind FROM events WHERE event_id = ANY($1::text[])"
        " ORDER BY time DESC, event_id DESC LIMIT $2) latest ORDER BY time, event_id",
        list(dict.fromkeys(event_ids)),
        FIGURE_EVENTS_SHOWN,
    )
    count = rows[0]["behind"] if rows else 0  # every row's, counted before the limit
    return count, [{k: v for k, v in r.items() if k != "behind"} for r in rows]
