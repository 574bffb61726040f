"""The progress report to parliament, built from the events for a period and an as-of date.

:func:`progress_report` gathers every figure of the report (spending against the
allocations, missions and follow-ups, Cities of Opportunity, TINL partners and focus
markets, the Werkplaats portfolio, Global Stars calls and lead times, open findings);
:data:`FIGURES` names each figure and says which events lie behind it, so that the report
links every number to ``/events?figure=<name>&period=...`` (and ``/api/v1/events``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from . import initiatives, queries
from .period import Period
from .queries import DB
from .reference import FAMILIES, FOCUS_MARKETS
from .settings import DEFAULT_ALLOCATIONS_CENTS, DashboardSettings


@dataclass(frozen=True)
class ReportSettings:
    """What the report reads from the dashboard's settings (defaults: the letter's)."""

    allocations_cents: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_ALLOCATIONS_CENTS)
    )
    followup_days: int = 60
    target_months: tuple[int, int] = (4, 5)
    werkplaats_targets: Mapping[int, int] = field(default_factory=lambda: {2019: 20})
    werkplaats_yearly_target: int = 30

    @classmethod
    def of(cls, settings: DashboardSettings) -> ReportSettings:
        rules = settings.rules
        return cls(
            allocations_cents=settings.allocations_cents,
            followup_days=rules.followup_days,
            target_months=(rules.lead_time_target_min_months, rules.lead_time_max_months),
            werkplaats_targets=settings.werkplaats_targets,
            werkplaats_yearly_target=settings.werkplaats_yearly_target,
        )


async def nlib_view(db: DB, period: Period, as_of: date | None, s: ReportSettings) -> Any:
    return await initiatives.nlib_missions(db, period, as_of, followup_days=s.followup_days)


async def globalstars_view(db: DB, period: Period, as_of: date | None, s: ReportSettings) -> Any:
    return await initiatives.globalstars_calls(db, period, as_of, target_months=s.target_months)


async def werkplaats_view(db: DB, period: Period, as_of: date | None, s: ReportSettings) -> Any:
    return await initiatives.werkplaats_portfolio(
        db,
        period,
        as_of,
        targets=s.werkplaats_targets,
        yearly_target=s.werkplaats_yearly_target,
    )


async def open_findings(db: DB) -> list[dict[str, Any]]:
    """Findings still open or acknowledged (not yet resolved), newest first."""
    found = [
        f for state in ("open", "acknowledged") for f in await queries.findings(db, state=state)
    ]
    return sorted(found, key=lambda f: (f["raised_at"], f["id"]), reverse=True)


# The seed (teamnl_suite.seed) gives its events ids of this form; where the letter
# states no date, amount, lead or SDG, the seed's are illustrative.
SEED_EVENT_IDS = "seed-%"


async def holds_seeded_events(db: DB) -> bool:
    found: bool = await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM events WHERE event_id LIKE $1)", SEED_EVENT_IDS
    )
    return found


async def progress_report(
    db: DB, period: Period, as_of: date | None, settings: ReportSettings
) -> dict[str, Any]:
    """{"period", "as_of", "spending", "nlib", "cities", "tinl", "globalstars",
    "werkplaats", "findings", "seeded"}: see the functions of `initiatives` for each part;
    ``seeded``: the report holds demo events of the seed, partly illustrative."""
    return {
        "period": period.label,
        "as_of": as_of,
        "spending": await initiatives.spending(
            db, period, as_of, allocations_cents=settings.allocations_cents
        ),
        "nlib": await nlib_view(db, period, as_of, settings),
        "cities": await initiatives.cities_of_opportunity(db, period, as_of),
        "tinl": await initiatives.tinl_network(db, period, as_of),
        "globalstars": await globalstars_view(db, period, as_of, settings),
        "werkplaats": await werkplaats_view(db, period, as_of, settings),
        "findings": await open_findings(db),
        "seeded": await holds_seeded_events(db),
    }


# -- the events behind each figure -----------------------------------------------------------

Report = dict[str, Any]


def _ids(items: list[dict[str, Any]], key: str = "event_ids") -> list[str]:
    return [event_id for item in items for event_id in item[key]]


def _held(report: Report) -> list[dict[str, Any]]:
    return [m for m in report["nlib"]["missions"] if m["status"] == "held"]


def _closed(report: Report) -> list[dict[str, Any]]:
    return [c for c in report["globalstars"]["calls"] if c["closed_on"] is not None]


def _projects(report: Report, status: str | None = None) -> list[dict[str, Any]]:
    return [p for p in report["werkplaats"]["projects"] if status in (None, p["status"])]


Figure = Callable[[DB, Period, date | None, ReportSettings], Awaitable[list[str]]]
"""The event ids behind one figure, for a reading."""


def _from_report(pick: Callable[[Report], list[str]]) -> Figure:
    """A figure whose events the report's items name (it lists them)."""

    async def ids(db: DB, period: Period, as_of: date | None, s: ReportSettings) -> list[str]:
        return pick(await progress_report(db, period, as_of, s))

    return ids


def _spending(family: str | None) -> Figure:
    """The spending's events, read apart: the report sums any number of spendings."""

    async def ids(db: DB, period: Period, as_of: date | None, _: ReportSettings) -> list[str]:
        return await initiatives.spending_event_ids(db, period, as_of, family)

    return ids


def _focus_market(market: str) -> Figure:
    def pick(report: Report) -> list[str]:
        return _ids([m for m in report["tinl"]["focus_markets"] if m["market"] == market])

    return _from_report(pick)


FIGURES: dict[str, Figure] = {
    "spending": _spending(None),
    **{f"spending.{family}": _spending(family) for family in FAMILIES},
    "missions.held": _from_report(lambda r: _ids(_held(r))),
    "missions.followed_up": _from_report(lambda r: _ids(_held(r), "followup_event_ids")),
    "missions.followed_up_in_time": _from_report(
        lambda r: _ids([m for m in _held(r) if m["followed_up_in_time"]], "followup_event_ids")
    ),
    "missions.overdue": _from_report(
        lambda r: _ids([m for m in _held(r) if m["followup_overdue"]])
    ),
    "leads.converted": _from_report(lambda r: _ids(_held(r), "conversion_event_ids")),
    "cities.programmes": _from_report(lambda r: _ids(r["cities"]["cities"], "programme_event_ids")),
    "cities.active": _from_report(lambda r: _ids(r["cities"]["cities"])),
    "tinl.activities": _from_report(lambda r: _ids(r["tinl"]["activities"])),
    "tinl.partners": _from_report(lambda r: _ids(r["tinl"]["partners"])),
    "tinl.knowledge": _from_report(lambda r: list(r["tinl"]["knowledge_event_ids"])),
    **{f"tinl.market.{market}": _focus_market(market) for market in FOCUS_MARKETS},
    "calls.closed": _from_report(lambda r: _ids(_closed(r))),
    "calls.proposals": _from_report(lambda r: _ids(_closed(r), "proposal_event_ids")),
    "werkplaats.portfolio": _from_report(lambda r: _ids(_projects(r))),
    "werkplaats.graduated": _from_report(lambda r: _ids(_projects(r, "graduated"))),
    "werkplaats.stopped": _from_report(lambda r: _ids(_projects(r, "stopped"))),
}


@dataclass(frozen=True)
class FigureEvents:
    """The events behind one figure: how many, and the latest
    (:data:`initiatives.FIGURE_EVENTS_SHOWN` at most), oldest first."""

    count: int
    events: list[dict[str, Any]]


async def figure_events(
    db: DB, figure: str, period: Period, as_of: date | None, settings: ReportSettings
) -> FigureEvents:
    """The events behind one figure of the report (``figure`` is a key of FIGURES)."""
    ids = await FIGURES[figure](db, period, as_of, settings)
    return FigureEvents(*await initiatives.events_by_id(db, ids))
