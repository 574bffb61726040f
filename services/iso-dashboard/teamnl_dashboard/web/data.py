"""View models of the pages, built from the backend's read functions (``queries``).

This is the one place where the pages meet the backend: each function returns plain data
shaped for one template (see the templates for the fields).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import asyncpg
import pycountry

from .. import actions, queries
from ..period import Reading
from ..queries import INITIATIVE_NAMES
from ..reading import FindingsThen
from ..reference import FAMILIES
from . import geo

# The overview lists the newest open findings, then links to all of them (/findings): 50
# rows with their forms were two thirds of the page's rendering.
OVERVIEW_FINDINGS = 10


class FindingRefused(ValueError):
    """The finding's state does not allow the change (e.g. acknowledging a resolved one)."""


def country_name(code: str) -> str:
    found = pycountry.countries.get(alpha_2=code) if len(code) == 2 else None
    return found.name if found else code


def chart(rows: Iterable[Mapping[str, Any]], x: str, series: str | None, y: str) -> dict[str, Any]:
    """Rows of (x, series, y) as chart.js data: one dataset per series, zeros filled in."""
    labels: list[str] = []
    values: dict[str, dict[str, Any]] = defaultdict(dict)
    for row in rows:
        label = str(row[x])
        if label not in labels:
            labels.append(label)
        values[str(row[series]) if series else y][label] = row[y]
    return {
        "labels": labels,
        "datasets": [
            {"label": name, "data": [points.get(label, 0) for label in labels]}
            for name, points in values.items()
        ],
    }


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _event(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["event_id"],
        "time": _text(row["time"]),
        "initiative": row["family"],
        "type": row["type"],
        "title": row["title"],
    }


def _finding(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "rule": row["rule"],
        "severity": row["severity"],
        "state": row["state"],
        "summary": row["summary"],
        "raised_at": _text(row["raised_at"]),
    }


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


async def _targets(pool: queries.DB, read: Reading) -> dict[str, list[dict[str, Any]]]:
    """The initiatives' own targets (DOMAIN.md, "What ISO NL wants to see")."""
    nlib = await queries.nlib_rates(pool, period=read.period, as_of=read.as_of)
    tinl = await queries.tinl_summary(pool, period=read.period, as_of=read.as_of)
    stars = await queries.globalstars_summary(pool, period=read.period, as_of=read.as_of)
    werkplaats = await queries.werkplaats_summary(pool, period=read.period, as_of=read.as_of)
    portfolio, next_target = werkplaats["portfolio"], werkplaats["next_target"]
    return {
        "nlib": [
            {"label": "follow-up rate", "value": _pct(nlib["followup_rate"]), "target": None},
            {"label": "lead conversion", "value": _pct(nlib["lead_conversion"]), "target": None},
        ],
        "tinl": [
            {"label": "activities", "value": tinl["activities"], "target": None},
            {"label": "partners taking part", "value": tinl["partners_taking_part"], "target": 8},
            {"label": "partner pairs", "value": tinl["partner_pairs"], "target": None},
        ],
        "globalstars": [
            {"label": "calls closed", "value": stars["calls_closed"], "target": None},
            {"label": "Dutch proposals", "value": stars["dutch_proposals"], "target": None},
            {
                "label": "calls within 5 months",
                "value": stars["within_target"],
                "target": None,
            },
        ],
        "werkplaats": [
            {
                "label": _portfolio_label(portfolio, next_target),
                "value": portfolio["portfolio"] if portfolio else 0,
                "target": next_target["target"] if next_target else None,
            },
            {"label": "SDGs covered", "value": werkplaats["sdgs_covered"], "target": 17},
            {"label": "graduations", "value": werkplaats["graduations"], "target": None},
        ],
    }


def _portfolio_label(portfolio: Mapping[str, Any] | None, target: Mapping[str, Any] | None) -> str:
    """'portfolio 2018 (target 2019)' when the year has no target of its own (2017-2018)."""
    if portfolio is None:
        return "portfolio"
    if target is None or target["year"] == portfolio["year"]:
        return f"portfolio {portfolio['year']}"
    return f"portfolio {portfolio['year']} (target {target['year']})"


def reading_view(read: Reading, past: bool) -> dict[str, Any]:
    """The period and as-of date a page shows (and its form lets a member change)."""
    return {"period": read.period.label, "as_of": read.as_of.isoformat(), "past": past}


async def recent_events(
    pool: queries.DB, limit: int = 20, as_of: date | None = None
) -> list[dict[str, Any]]:
    """The latest events with their titles (the overview's feed and ``/live/events``)."""
    return [_event(row) for row in await queries.recent_events(pool, limit=limit, as_of=as_of)]


async def overview(
    pool: asyncpg.Pool,
    allocations_cents: Mapping[str, int],
    read: Reading,
    as_of_findings: FindingsThen | None = None,
    as_of_scores: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The overview as of `read`; for a past date, the rules' findings and scores as of
    then (``as_of_findings``, ``as_of_scores``) instead of the stored ones. Its dozen
    queries share one connection (each pool query would pay its own acquire and reset)."""
    async with pool.acquire() as conn:
        return await _overview(conn, allocations_cents, read, as_of_findings, as_of_scores)


async def _overview(
    conn: asyncpg.Connection,
    allocations_cents: Mapping[str, int],
    read: Reading,
    as_of_findings: FindingsThen | None,
    as_of_scores: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    open_by_severity = as_of_findings.open_by_severity if as_of_findings is not None else None
    network = await queries.overview(
        conn,
        period=read.period,
        as_of=read.as_of,
        allocations_cents=allocations_cents,
        findings_open=open_by_severity,
        past=as_of_findings is not None,
    )
    targets = await _targets(conn, read)
    stored = as_of_scores if as_of_scores is not None else await queries.score_series(conn)
    scores = [{**row, "at": _text(row["at"])[:10]} for row in stored]
    found = (
        as_of_findings.rows
        if as_of_findings is not None
        else await queries.findings(conn, state="open", limit=OVERVIEW_FINDINGS)
    )
    return {
        "illustrative": network["illustrative"],
        "initiatives": [
            {
                "key": i["family"],
                "name": i["name"],
                "events": i["events"],
                "budget_spent_cents": i["budget"]["spent_cents"],
                "budget_allocation_cents": i["budget"]["allocation_cents"],
                "targets": targets.get(i["family"], []),
            }
            for i in network["initiatives"]
        ],
        "activity_chart": chart(
            await queries.activity_series(conn, period=read.period, as_of=read.as_of),
            "period",
            "family",
            "count",
        ),
        "coherence_chart": chart(scores, "at", None, "score"),
        "events": await recent_events(conn, as_of=read.as_of),
        "findings": [_finding(row) for row in found[:OVERVIEW_FINDINGS]],
        "findings_open": sum(network["findings_open"].values()),
    }


def _market(row: Mapping[str, Any]) -> dict[str, Any]:
    code = row["market"]
    return {
        "country": code,
        "name": country_name(code),
        "initiatives": [f for f in FAMILIES if row.get(f)],
        "events": row["total"],
        "last_activity": _text(row["last_activity_on"]),
        "focus": row.get("focus"),
    }


async def markets(pool: asyncpg.Pool, read: Reading) -> dict[str, Any]:
    together = {
        c["market"]: c
        for c in await queries.complementarity(pool, period=read.period, as_of=read.as_of)
    }
    return {
        "markets": [
            {**_market(row), "complementarity": _together(together.get(row["market"]))}
            for row in await queries.markets(pool, period=read.period, as_of=read.as_of)
        ]
    }


def _together(entry: Mapping[str, Any] | None) -> dict[str, Any]:
    """A market's complementarity as the pages show it: initiative names, and the TINL
    preparation held at home."""
    if entry is None:
        return {"initiatives": [], "links": 0, "preparation": []}
    return {
        "initiatives": [INITIATIVE_NAMES[i["family"]] for i in entry["initiatives"]],
        "links": len(entry["links"]),
        "preparation": [
            {"city": p["city"], "on_date": _text(p["on_date"])} for p in entry["preparation"]
        ],
    }


async def market(pool: asyncpg.Pool, code: str, read: Reading) -> dict[str, Any] | None:
    row = await queries.market(pool, code, period=read.period, as_of=read.as_of)
    if row is None:
        return None
    activities = row["activities"]
    return {
        **_market(row),
        "initiatives": [
            {"name": INITIATIVE_NAMES[f], "events": row[f]} for f in FAMILIES if row.get(f)
        ],
        "activity_chart": chart(
            await queries.activity_series(
                pool, period=read.period, as_of=read.as_of, market=row["market"]
            ),
            "period",
            "family",
            "count",
        ),
        "complementarity": _together(row["complementarity"]),
        "events": [
            {
                "id": a["event_id"],
                "time": _text(a["on_date"]),
                "initiative": a["family"],
                "type": a["kind"],
                "title": ", ".join(filter(None, (a["city"], a["country"]))),
            }
            for a in activities
        ],
        "findings": [],
    }


async def world_map(pool: asyncpg.Pool, read: Reading) -> dict[str, Any]:
    activity = {
        row["market"]: row["total"]
        for row in await queries.markets(pool, period=read.period, as_of=read.as_of)
    }
    coverage = await queries.cities(pool, period=read.period, as_of=read.as_of)
    cities = [
        {**c, "last_activity": _text(c["last_activity_on"]) or None} for c in coverage["cities"]
    ]
    preparation = [
        {"city": p["city"], "market": c["market"], "on_date": _text(p["on_date"])}
        for c in await queries.complementarity(pool, period=read.period, as_of=read.as_of)
        for p in c["preparation"]
    ]
    return {
        "world": geo.world(activity, cities, preparation),
        "coverage": {k: coverage[k] for k in ("stated", "total", "covered", "covered_cities")},
    }


async def findings(
    pool: asyncpg.Pool, state: str | None, as_of_findings: FindingsThen | None = None
) -> dict[str, Any]:
    """The stored findings (by state), or those the rules saw as of a past date: the first
    :data:`queries.FINDINGS_SHOWN` (as of a past date of the bench's million events, the
    rules saw 250,000: 112 MB of HTML)."""
    if as_of_findings is not None:
        rows = as_of_findings.rows[: queries.FINDINGS_SHOWN] if state in (None, "open") else []
    else:
        rows = await queries.findings(pool, state=state)
    return {"findings": [_finding(row) for row in rows]}


async def change_finding(pool: asyncpg.Pool, finding_id: int, state: str, by: str) -> bool:
    """False when there is no such finding; FindingRefused when its state forbids it."""
    try:
        return await actions.change_finding(pool, finding_id, state, by) is not None
    except actions.TransitionRefused as error:
        raise FindingRefused(str(error)) from error
