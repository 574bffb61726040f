"""Every read of the dashboard: the JSON API and the web pages are thin layers over these.

Each function takes an asyncpg pool or connection (``db``) and returns plain dicts and
lists (dates as ``date``/``datetime``; money in euro cents; rates as fractions 0..1,
percentages as 0..100 with one decimal). Settings-dependent figures take their inputs as
keyword arguments with the documented defaults, e.g. ``allocations_cents``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeAlias

import asyncpg
from dateutil.relativedelta import relativedelta

from .reference import CITIES_OF_OPPORTUNITY, FAMILIES, FOCUS_MARKETS, city_for
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


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _pct(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]


# -- the network -----------------------------------------------------------------------------


async def overview(
    db: DB,
    *,
    year: int | None = None,
    allocations_cents: Mapping[str, int] = DEFAULT_ALLOCATIONS_CENTS,
) -> dict[str, Any]:
    """{"year", "initiatives": [{family, name, events, last_event_at, activities,
    budget: {allocation_cents, spent_cents, spent_pct}}], "findings_open": {severity: n},
    "score": latest score snapshot or None}."""
    year = year or datetime.now(UTC).year
    totals = {
        r["family"]: r
        for r in await db.fetch(
            "SELECT family, sum(events)::bigint AS events, max(last_event_at) AS last_event_at,"
            " sum(activities)::bigint AS activities FROM family_totals GROUP BY family"
        )
    }
    spent = {
        b["family"]: b for b in await budget(db, year=year, allocations_cents=allocations_cents)
    }
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
        "year": year,
        "initiatives": initiatives,
        "findings_open": await open_findings_by_severity(db),
        "score": await latest_score(db),
    }


async def recent_events(db: DB, *, limit: int = 20) -> list[dict[str, Any]]:
    """[{"event_id", "family", "type", "subject", "time", "title"}]: the latest `limit`
    events by their time, newest first. ``title`` is plain text (the event's own title or a
    label per type), never markup."""
    return _rows(
        await db.fetch(
            "SELECT event_id, family, type, subject, time, title FROM events"
            " ORDER BY time DESC, event_id DESC LIMIT $1",
            limit,
        )
    )


async def activity_series(
    db: DB,
    *,
    granularity: str = "month",
    family: str | None = None,
    market: str | None = None,
    since: date | None = None,
) -> list[dict[str, Any]]:
    """[{"period": "2019-04" | "2019" | "2019-04-08", "family", "count"}], by period."""
    formats = {"day": "YYYY-MM-DD", "month": "YYYY-MM", "year": "YYYY"}
    if granularity not in formats:
        raise ValueError(f"granularity must be one of {sorted(formats)}")
    if granularity != "day" and since is None:  # the monthly running totals suffice
        return _rows(
            await db.fetch(
                "SELECT to_char(month, $1) AS period, family, sum(n)::bigint AS count"
                " FROM activity_months WHERE ($2::text IS NULL OR family = $2)"
                " AND ($3::text IS NULL OR market = $3) GROUP BY 1, 2 HAVING sum(n) > 0"
                " ORDER BY 1, 2",
                formats[granularity],
                family,
                market,
            )
        )
    return _rows(
        await db.fetch(
            "SELECT to_char(on_date, $1) AS period, family, count(*) AS count FROM activities"
            " WHERE ($2::text IS NULL OR family = $2) AND ($3::text IS NULL OR market = $3)"
            " AND ($4::date IS NULL OR on_date >= $4)"
            " GROUP BY 1, 2 ORDER BY 1, 2",
            formats[granularity],
            family,
            market,
            since,
        )
    )


async def budget(
    db: DB,
    *,
    year: int | None = None,
    allocations_cents: Mapping[str, int] = DEFAULT_ALLOCATIONS_CENTS,
) -> list[dict[str, Any]]:
    """[{"family", "name", "year", "allocation_cents", "spent_cents", "spent_pct",
    "remaining_cents"}] for every initiative and every year with spending (or `year`)."""
    rows = await db.fetch(
        "SELECT family, year, sum(spent_cents)::bigint AS spent FROM budget_totals"
        " WHERE ($1::int IS NULL OR year = $1) GROUP BY family, year HAVING sum(spends) > 0",
        year,
    )
    spent = {(r["family"], r["year"]): r["spent"] for r in rows}
    years = sorted({y for _, y in spent} | ({year} if year else set()))
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


async def markets(db: DB) -> list[dict[str, Any]]:
    """[{"market", "focus", "nlib", "tinl", "globalstars", "werkplaats", "total",
    "last_activity_on"}] per market (country code or 'smart-cities'), busiest first."""
    rows = await db.fetch(
        "SELECT market, family, count(*) AS n, max(on_date) AS last FROM activities"
        " WHERE market IS NOT NULL GROUP BY market, family"
    )
    table: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = table.setdefault(
            r["market"],
            {
                "market": r["market"],
                "focus": r["market"] in FOCUS_MARKETS,
                **dict.fromkeys(FAMILIES, 0),
                "total": 0,
                "last_activity_on": None,
            },
        )
        entry[r["family"]] = r["n"]
        entry["total"] += r["n"]
        if entry["last_activity_on"] is None or r["last"] > entry["last_activity_on"]:
            entry["last_activity_on"] = r["last"]
    return sorted(table.values(), key=lambda e: (-e["total"], e["market"]))


async def market(db: DB, code: str) -> dict[str, Any] | None:
    """One market: its row of :func:`markets`, its recent activities and Werkplaats
    projects; None when nothing happened there."""
    row = next((m for m in await markets(db) if m["market"] == code), None)
    if row is None:
        return None
    activities = _rows(
        await db.fetch(
            "SELECT event_id, family, kind, country, city, on_date FROM activities"
            " WHERE market = $1 ORDER BY on_date DESC, event_id LIMIT 100",
            code,
        )
    )
    projects = _rows(
        await db.fetch(
            "SELECT project_id, title, status, onboarded_on, sdgs FROM wp_projects"
            " WHERE country = $1 ORDER BY onboarded_on",
            code,
        )
    )
    return {**row, "activities": activities, "projects": projects}


async def cities(db: DB) -> dict[str, Any]:
    """Coverage of the Cities of Opportunity: {"total": 38, "covered", "coverage_pct",
    "with_programme", "cities": [{"slug", "name", "tier", "country", "programme":
    {tier, soft_landing, updated_on} | None, "missions", "tinl_activities",
    "last_activity_on", "covered"}]}. A city is covered when it has a programme or a
    mission or TINL activity took place there."""
    programmes = {}
    for r in await db.fetch(
        "SELECT city_id, city, tier, soft_landing, updated_on FROM nlib_cities"
    ):
        city = city_for(r["city_id"], r["city"])
        if city is not None:
            programmes[city.slug] = {
                "tier": r["tier"],
                "soft_landing": r["soft_landing"],
                "updated_on": r["updated_on"],
            }
    activity = await _city_activity(db)
    entries = [
        _city_entry(c, programmes.get(c.slug), activity.get(c.slug)) for c in CITIES_OF_OPPORTUNITY
    ]
    covered = sum(e["covered"] for e in entries)
    return {
        "total": len(entries),
        "covered": covered,
        "coverage_pct": _pct(covered, len(entries)),
        "with_programme": len(programmes),
        "cities": entries,
    }


async def _city_activity(db: DB) -> dict[str, dict[str, Any]]:
    rows = await db.fetch(
        "SELECT 'nlib' AS family, coalesce(city_of_opportunity, city) AS city, end_date"
        " FROM nlib_missions WHERE status = 'held'"
        " UNION ALL SELECT 'tinl', city, end_date FROM tinl_activities"
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
        "covered": bool(programme or activity["nlib"] or activity["tinl"]),
    }


# -- per initiative --------------------------------------------------------------------------


async def nlib(db: DB) -> dict[str, Any]:
    """{"missions_planned", "missions_held", "missions_followed_up", "followup_rate",
    "leads", "leads_converted", "lead_conversion", "contract_value_cents", "companies",
    "business_mixers", "companies_supported", "missions": [...]}"""
    totals = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'planned') AS planned,"
        " count(*) FILTER (WHERE status = 'held') AS held,"
        " count(*) FILTER (WHERE status = 'held' AND EXISTS (SELECT 1 FROM nlib_followups f"
        "  WHERE f.mission_id = m.mission_id)) AS followed_up,"
        " coalesce(sum(leads), 0)::bigint AS leads, coalesce(sum(companies), 0)::bigint"
        " AS companies, coalesce(sum(business_mixers), 0)::bigint AS mixers"
        " FROM nlib_missions m"
    )
    converted = await db.fetchrow(
        "SELECT count(*) AS n, coalesce(sum(contract_value_cents), 0)::bigint AS value"
        " FROM nlib_leads_converted"
    )
    supported = await db.fetchval("SELECT count(DISTINCT company_id) FROM nlib_companies_supported")
    missions = _rows(
        await db.fetch(
            "SELECT m.mission_id, m.title, m.direction, m.country, m.city, m.start_date,"
            " m.end_date, m.status, m.companies, m.leads,"
            " (SELECT min(held_on) FROM nlib_followups f WHERE f.mission_id = m.mission_id)"
            " AS first_followup_on,"
            " (SELECT count(*) FROM nlib_leads_converted l WHERE l.mission_id = m.mission_id)"
            " AS leads_converted FROM nlib_missions m ORDER BY m.start_date DESC, m.mission_id"
        )
    )
    return {
        "missions_planned": totals["planned"],
        "missions_held": totals["held"],
        "missions_followed_up": totals["followed_up"],
        "followup_rate": _ratio(totals["followed_up"], totals["held"]),
        "leads": totals["leads"],
        "leads_converted": converted["n"],
        "lead_conversion": _ratio(converted["n"], totals["leads"]),
        "contract_value_cents": converted["value"],
        "companies": totals["companies"],
        "business_mixers": totals["mixers"],
        "companies_supported": supported,
        "missions": missions,
    }


async def nlib_rates(db: DB) -> dict[str, Any]:
    """{"followup_rate", "lead_conversion"} of :func:`nlib`, without its mission list."""
    held = await db.fetchrow(
        "SELECT count(*) AS held, count(*) FILTER (WHERE EXISTS (SELECT 1 FROM nlib_followups f"
        "  WHERE f.mission_id = m.mission_id)) AS followed_up,"
        " coalesce(sum(leads), 0) AS leads"  # only held missions report leads
        " FROM nlib_missions m WHERE status = 'held'"
    )
    converted = await db.fetchval("SELECT count(*) FROM nlib_leads_converted")
    return {
        "followup_rate": _ratio(held["followed_up"], held["held"]),
        "lead_conversion": _ratio(converted, held["leads"]),
    }


async def tinl_summary(db: DB) -> dict[str, Any]:
    """{"activities", "partner_pairs"}: the counts of :func:`tinl`'s lists."""
    return dict(
        await db.fetchrow(
            "WITH s AS (SELECT partners, sum(activities) AS a FROM tinl_partner_sets"
            "  GROUP BY partners HAVING sum(activities) + sum(knowledge) > 0)"
            " SELECT (SELECT coalesce(sum(a), 0) FROM s)::bigint AS activities,"
            " (SELECT count(DISTINCT (p1, p2)) FROM s, unnest(partners) p1, unnest(partners) p2"
            "  WHERE p1 < p2) AS partner_pairs"
        )
    )


async def tinl(db: DB) -> dict[str, Any]:
    """{"activities", "knowledge_shared", "focus_markets": [{"market", "activities",
    "last_activity_on"}], "markets": [{"market", "focus", "activities"}], "partners":
    [{"partner", "activities"}], "partner_pairs": [{"partners": [a, b], "activities",
    "knowledge_shared"}]}"""
    per_market = await db.fetch(
        "SELECT market, count(*) AS n, max(end_date) AS last FROM tinl_activities"
        " GROUP BY market ORDER BY n DESC, market"
    )
    by_market = {r["market"]: r for r in per_market}
    pairs = await db.fetch(
        "SELECT a, b, sum(acts)::int AS activities, sum(shares)::int AS knowledge_shared FROM ("
        " SELECT p1 AS a, p2 AS b, 1 AS acts, 0 AS shares FROM tinl_activities,"
        "  unnest(partners) p1, unnest(partners) p2 WHERE p1 < p2"
        " UNION ALL SELECT p1, p2, 0, 1 FROM tinl_knowledge,"
        "  unnest(partners) p1, unnest(partners) p2 WHERE p1 < p2) x"
        " GROUP BY a, b ORDER BY activities DESC, knowledge_shared DESC, a, b"
    )
    partners = await db.fetch(
        "SELECT p AS partner, count(*) AS activities FROM tinl_activities, unnest(partners) p"
        " GROUP BY p ORDER BY activities DESC, p"
    )
    return {
        "activities": sum(r["n"] for r in per_market),
        "knowledge_shared": await db.fetchval("SELECT count(*) FROM tinl_knowledge"),
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
        "partner_pairs": [
            {
                "partners": [r["a"], r["b"]],
                "activities": r["activities"],
                "knowledge_shared": r["knowledge_shared"],
            }
            for r in pairs
        ],
    }


async def globalstars(db: DB, *, target_months: tuple[int, int] = (4, 5)) -> dict[str, Any]:
    """{"calls": [{"call_id", "country", "theme", "negotiation_started_on", "opened_on",
    "closed_on", "proposals", "dutch_proposals", "dutch_proposals_reported",
    "lead_time_days", "lead_time_months", "within_target"}], "calls_closed",
    "proposals", "dutch_proposals", "target_months": [4, 5]}. Lead time runs from the
    first negotiation to the closing; within_target = at most the upper target."""
    calls = await db.fetch(
        "SELECT c.*, (SELECT count(*) FROM gs_proposals p WHERE p.call_id = c.call_id)"
        " AS proposals, (SELECT count(*) FROM gs_proposals p WHERE p.call_id = c.call_id"
        " AND p.dutch) AS dutch FROM gs_calls c ORDER BY c.negotiation_started_on, c.call_id"
    )
    entries = [_call_entry(r, target_months) for r in calls]
    return {
        "calls": entries,
        "calls_closed": sum(e["closed_on"] is not None for e in entries),
        "proposals": sum(e["proposals"] for e in entries),
        "dutch_proposals": sum(e["dutch_proposals"] for e in entries),
        "target_months": list(target_months),
    }


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
    }


async def werkplaats(
    db: DB,
    *,
    targets: Mapping[int, int] = DEFAULT_WERKPLAATS_TARGETS,
    yearly_target: int = DEFAULT_WERKPLAATS_YEARLY_TARGET,
) -> dict[str, Any]:
    """{"projects": n, "active", "graduated", "stopped", "portfolio": [{"year", "onboarded",
    "portfolio", "target", "target_pct"}], "sdg_coverage": [{"sdg", "projects"}] (1..17),
    "sdgs_covered", "graduations": [{"project_id", "title", "graduated_on"}]}.
    The portfolio of a year counts projects supported at some point in it."""
    statuses = {
        r["status"]: r["n"]
        for r in await db.fetch("SELECT status, count(*) AS n FROM wp_projects GROUP BY status")
    }
    portfolio = await db.fetch(
        "SELECT y AS year, count(*) FILTER (WHERE extract(year FROM onboarded_on) = y)"
        " AS onboarded, count(*) AS portfolio FROM wp_projects,"
        " generate_series(extract(year FROM onboarded_on)::int,"
        "  extract(year FROM coalesce(graduated_on, stopped_on, current_date))::int) y"
        " GROUP BY y ORDER BY y"
    )
    sdgs = {
        r["sdg"]: r["n"]
        for r in await db.fetch(
            "SELECT s AS sdg, count(*) AS n FROM wp_projects, unnest(sdgs) s GROUP BY s"
        )
    }
    graduations = _rows(
        await db.fetch(
            "SELECT project_id, title, country, graduated_on FROM wp_projects"
            " WHERE status = 'graduated' ORDER BY graduated_on, project_id"
        )
    )
    return {
        "projects": sum(statuses.values()),
        "active": statuses.get("active", 0),
        "graduated": statuses.get("graduated", 0),
        "stopped": statuses.get("stopped", 0),
        "portfolio": [
            {
                "year": r["year"],
                "onboarded": r["onboarded"],
                "portfolio": r["portfolio"],
                "target": (t := targets.get(r["year"], yearly_target)),
                "target_pct": _pct(r["portfolio"], t),
            }
            for r in portfolio
        ],
        "sdg_coverage": [{"sdg": s, "projects": sdgs.get(s, 0)} for s in range(1, 18)],
        "sdgs_covered": len(sdgs),
        "graduations": graduations,
    }


async def werkplaats_summary(
    db: DB,
    *,
    targets: Mapping[int, int] = DEFAULT_WERKPLAATS_TARGETS,
    yearly_target: int = DEFAULT_WERKPLAATS_YEARLY_TARGET,
) -> dict[str, Any]:
    """{"portfolio": the last entry of :func:`werkplaats`'s portfolio or None,
    "sdgs_covered", "graduations": how many}."""
    row = await db.fetchrow(
        "WITH p AS (SELECT status, since, coalesce(until, extract(year FROM current_date)::int)"
        "  AS until, sdgs, sum(n) AS n FROM wp_portfolio GROUP BY 1, 2, 3, 4"
        "  HAVING sum(n) <> 0), y AS (SELECT max(until) AS year FROM p)"
        " SELECT y.year,"
        " coalesce(sum(n) FILTER (WHERE since = y.year AND y.year <= until), 0)::bigint"
        "  AS onboarded,"
        " coalesce(sum(n) FILTER (WHERE since <= y.year AND y.year <= until), 0)::bigint"
        "  AS portfolio,"
        " (SELECT count(DISTINCT s) FROM p, unnest(sdgs) s) AS sdgs_covered,"
        " coalesce(sum(n) FILTER (WHERE status = 'graduated'), 0)::bigint AS graduations"
        " FROM y LEFT JOIN p ON true GROUP BY y.year"
    )
    portfolio = None
    if row["year"] is not None:
        target = targets.get(row["year"], yearly_target)
        portfolio = {
            "year": row["year"],
            "onboarded": row["onboarded"],
            "portfolio": row["portfolio"],
            "target": target,
            "target_pct": _pct(row["portfolio"], target),
        }
    return {
        "portfolio": portfolio,
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
    limit: int = 500,
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
    "last_event_at": {family: datetime}}"""
    meta = await db.fetchrow(
        "SELECT max(version) AS version, max(built_at) AS built_at FROM projection_meta"
    )
    last = await db.fetch("SELECT family, max(time) AS at FROM events GROUP BY family")
    return {
        "projection_version": meta["version"],
        "built_at": meta["built_at"],
        "events_applied": await db.fetchval("SELECT count(*) FROM inbox"),
        "dead_letters": await db.fetchval("SELECT count(*) FROM dead_letters"),
        "last_event_at": {r["family"]: r["at"] for r in last},
    }
