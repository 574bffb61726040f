"""View models of the pages, built from the backend's read functions (``queries``).

This is the one place where the pages meet the backend: each function returns plain data
shaped for one template (see the templates for the fields).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg
import pycountry

from .. import actions, queries
from ..queries import INITIATIVE_NAMES
from ..reference import FAMILIES
from . import geo


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


async def _targets(pool: asyncpg.Pool) -> dict[str, list[dict[str, Any]]]:
    """The initiatives' own targets (DOMAIN.md, "What ISO NL wants to see")."""
    nlib, tinl = await queries.nlib_rates(pool), await queries.tinl_summary(pool)
    stars, werkplaats = await queries.globalstars(pool), await queries.werkplaats_summary(pool)
    portfolio = werkplaats["portfolio"]
    return {
        "nlib": [
            {"label": "follow-up rate", "value": _pct(nlib["followup_rate"]), "target": None},
            {"label": "lead conversion", "value": _pct(nlib["lead_conversion"]), "target": None},
        ],
        "tinl": [
            {"label": "activities", "value": tinl["activities"], "target": None},
            {"label": "partner pairs", "value": tinl["partner_pairs"], "target": None},
        ],
        "globalstars": [
            {"label": "calls closed", "value": stars["calls_closed"], "target": None},
            {"label": "Dutch proposals", "value": stars["dutch_proposals"], "target": None},
            {
                "label": "calls within 5 months",
                "value": sum(1 for c in stars["calls"] if c["within_target"]),
                "target": None,
            },
        ],
        "werkplaats": [
            {
                "label": f"portfolio {portfolio['year']}" if portfolio else "portfolio",
                "value": portfolio["portfolio"] if portfolio else 0,
                "target": portfolio["target"] if portfolio else None,
            },
            {"label": "SDGs covered", "value": werkplaats["sdgs_covered"], "target": 17},
            {"label": "graduations", "value": werkplaats["graduations"], "target": None},
        ],
    }


async def recent_events(pool: asyncpg.Pool, limit: int = 20) -> list[dict[str, Any]]:
    """The latest events with their titles (the overview's feed and ``/live/events``)."""
    return [_event(row) for row in await queries.recent_events(pool, limit=limit)]


async def overview(pool: asyncpg.Pool, allocations_cents: Mapping[str, int]) -> dict[str, Any]:
    network = await queries.overview(pool, allocations_cents=allocations_cents)
    targets = await _targets(pool)
    scores = [{**row, "at": _text(row["at"])[:10]} for row in await queries.score_series(pool)]
    return {
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
        "activity_chart": chart(await queries.activity_series(pool), "period", "family", "count"),
        "coherence_chart": chart(scores, "at", None, "score"),
        "events": await recent_events(pool),
        "findings": [_finding(row) for row in await queries.findings(pool, state="open", limit=50)],
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


async def markets(pool: asyncpg.Pool) -> dict[str, Any]:
    return {"markets": [_market(row) for row in await queries.markets(pool)]}


async def market(pool: asyncpg.Pool, code: str) -> dict[str, Any] | None:
    row = await queries.market(pool, code)
    if row is None:
        return None
    activities = row["activities"]
    return {
        **_market(row),
        "initiatives": [
            {"name": INITIATIVE_NAMES[f], "events": row[f]} for f in FAMILIES if row.get(f)
        ],
        "activity_chart": chart(
            await queries.activity_series(pool, market=code), "period", "family", "count"
        ),
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


async def world_map(pool: asyncpg.Pool) -> dict[str, Any]:
    activity = {row["market"]: row["total"] for row in await queries.markets(pool)}
    coverage = await queries.cities(pool)
    cities = [
        {**c, "last_activity": _text(c["last_activity_on"]) or None} for c in coverage["cities"]
    ]
    return {"world": geo.world(activity, cities)}


async def findings(pool: asyncpg.Pool, state: str | None) -> dict[str, Any]:
    return {"findings": [_finding(row) for row in await queries.findings(pool, state=state)]}


async def change_finding(pool: asyncpg.Pool, finding_id: int, state: str, by: str) -> bool:
    """False when there is no such finding; FindingRefused when its state forbids it."""
    try:
        return await actions.change_finding(pool, finding_id, state, by) is not None
    except actions.TransitionRefused as error:
        raise FindingRefused(str(error)) from error
