"""The coherence rules of ISO NL, each small, named, versioned and pure.

A rule is a frozen dataclass: its fields are its thresholds (from settings), its class
variables say what it is (``name``, ``version``, ``description``), which facts it reads
(``needs``), which event types re-evaluate it as they arrive (``triggers``) and whether the
scheduler evaluates it as time passes (``scheduled``). ``check(facts, now)`` returns every
situation it sees now; the engine raises findings for new ones and resolves the rest.
Bump ``version`` when a rule's meaning changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

from dateutil.relativedelta import relativedelta

from teamnl_shared.contract import globalstars, nlib, tinl, werkplaats
from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.registry import CATALOGUE
from teamnl_shared.contract.topics import PUBLISHED_BY
from teamnl_shared.contract.types import BudgetSpent

from ..reference import FOCUS_MARKETS, city_for, market_of, normalise
from ..settings import DashboardSettings
from .model import ActivityFact, Facts, Hit, Scope, Severity

MISSION_HELD = nlib.MissionHeld.TYPE
FOLLOWUP_HELD = nlib.MissionFollowupHeld.TYPE
CITY_UPDATED = nlib.CityProgrammeUpdated.TYPE
ACTIVITY_HELD = tinl.ActivityHeld.TYPE
CALL_OPENED = globalstars.CallOpened.TYPE
CALL_CLOSED = globalstars.CallClosed.TYPE
PROJECT_EVENTS = frozenset(
    {
        werkplaats.ProjectOnboarded.TYPE,
        werkplaats.ProjectGraduated.TYPE,
        werkplaats.ProjectStopped.TYPE,
    }
)
BUDGET_SPENT = frozenset(t for t, spec in CATALOGUE.items() if issubclass(spec.model, BudgetSpent))
MARKET_ACTIVITY = frozenset({MISSION_HELD, ACTIVITY_HELD})


class Rule(Protocol):
    name: ClassVar[str]
    version: ClassVar[int]
    description: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    triggers: ClassVar[frozenset[str]]
    scheduled: ClassVar[bool]

    def check(self, facts: Facts, now: datetime) -> list[Hit]: ...


@runtime_checkable
class ScopedRule(Rule, Protocol):
    """A rule that, as events arrive, judges only what the batch can have changed; the
    scheduler still evaluates it whole."""

    def scope(self, events: Iterable[Event]) -> Scope: ...

    def judged(self, facts: Facts) -> set[str]: ...


def describe(rule: Rule) -> dict[str, Any]:
    """What the API lists for a rule."""
    return {
        "name": rule.name,
        "version": rule.version,
        "description": rule.description,
        "thresholds": asdict(rule),  # type: ignore[call-overload]
        "triggers": sorted(rule.triggers),
        "scheduled": rule.scheduled,
    }


# -- NLIB: follow-up -------------------------------------------------------------------------


@dataclass(frozen=True)
class MissionFollowupOverdue:
    followup_days: int = 60

    name: ClassVar[str] = "mission-followup-overdue"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "A mission was held and no follow-up (e.g. a work session) took place within "
        "`followup_days` of its end; clears when a follow-up is reported."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"missions"})
    triggers: ClassVar[frozenset[str]] = frozenset({MISSION_HELD, FOLLOWUP_HELD})
    scheduled: ClassVar[bool] = True

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        return [
            Hit(
                m.mission_id,
                Severity.WARNING,
                f"Mission {m.mission_id} ({m.country}) ended {m.end_date} and has had no "
                f"follow-up within {self.followup_days} days",
                (m.held_event_id,),
                {"mission_id": m.mission_id, "due": str(due)},
            )
            for m in facts.missions
            if not m.followup_event_ids
            and now.date() > (due := m.end_date + timedelta(days=self.followup_days))
        ]


# -- the network: duplication and joint action ------------------------------------------------


@dataclass(frozen=True)
class Pair:
    nlib: ActivityFact
    tinl: ActivityFact
    joint: bool


def _gap_days(a: ActivityFact, b: ActivityFact) -> int:
    """Days between two date ranges; 0 when they overlap."""
    return max((b.start_date - a.end_date).days, (a.start_date - b.end_date).days, 0)


def _overlap(a: ActivityFact, b: ActivityFact) -> bool:
    return a.start_date <= b.end_date and b.start_date <= a.end_date


def _same_city(a: ActivityFact, b: ActivityFact) -> bool:
    city_a, city_b = city_for(a.city), city_for(b.city)
    if city_a is not None or city_b is not None:
        return city_a == city_b
    return bool(a.city and b.city and normalise(a.city) == normalise(b.city))


def pair_activities(activities: tuple[ActivityFact, ...], window_days: int) -> list[Pair]:
    """NLIB missions and TINL activities in one foreign market within `window_days`.

    Acting together = overlapping dates in the same city (e.g. a TINL fair during an NLIB
    mission); otherwise two initiatives worked the same market apart (duplication).
    """
    by_market: dict[str, dict[str, list[ActivityFact]]] = defaultdict(lambda: defaultdict(list))
    for activity in activities:
        market = market_of(activity.market, activity.country)
        if market is not None:
            by_market[market][activity.family].append(activity)
    return [
        Pair(a, b, _overlap(a, b) and _same_city(a, b))
        for families in by_market.values()
        for a in families["nlib"]
        for b in families["tinl"]
        if _gap_days(a, b) <= window_days
    ]


@dataclass(frozen=True)
class MarketDuplication:
    overlap_window_days: int = 30

    name: ClassVar[str] = "market-duplication"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "An NLIB mission and a TINL activity in the same foreign market within "
        "`overlap_window_days` of each other without acting together (same city, "
        "overlapping dates). Acting together is counted as a coherence success instead."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"paired_activities"})
    triggers: ClassVar[frozenset[str]] = MARKET_ACTIVITY
    scheduled: ClassVar[bool] = False

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        return [
            Hit(
                f"{p.nlib.activity_id}|{p.tinl.activity_id}",
                Severity.WARNING,
                f"NLIB mission {p.nlib.activity_id} and TINL activity {p.tinl.activity_id} "
                f"worked {market_of(p.tinl.market, p.tinl.country)} within "
                f"{self.overlap_window_days} days without acting together",
                (p.nlib.event_id, p.tinl.event_id),
                {"market": market_of(p.tinl.market, p.tinl.country)},
            )
            for p in pair_activities(facts.paired_activities, self.overlap_window_days)
            if not p.joint
        ]


# -- De Werkplaats: isolated projects ---------------------------------------------------------


@dataclass(frozen=True)
class IsolatedProject:
    isolation_days: int = 365

    name: ClassVar[str] = "isolated-project"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "An active Werkplaats project in a country where neither NLIB nor TINL has been "
        "active in the last `isolation_days`: an isolated project, or an opportunity to link."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"projects", "latest_activities"})
    triggers: ClassVar[frozenset[str]] = PROJECT_EVENTS | MARKET_ACTIVITY
    scheduled: ClassVar[bool] = True

    def scope(self, events: Iterable[Event]) -> Scope:
        """What a batch can have changed: the projects it names, the markets it was in."""
        projects, countries = set(), set()
        for event in events:
            if event.type in PROJECT_EVENTS:
                projects.add(event.data.project_id)  # type: ignore[union-attr]
            elif event.type in MARKET_ACTIVITY:
                data = event.data
                countries.add(market_of(getattr(data, "market", None), data.country))  # type: ignore[union-attr]
        return Scope(frozenset(projects), frozenset(countries - {None}))

    def judged(self, facts: Facts) -> set[str]:
        """The finding keys one evaluation over `facts` decides on: its projects."""
        return {p.project_id for p in facts.projects}

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        since = now.date() - timedelta(days=self.isolation_days)
        active = {
            market_of(a.market, a.country)
            for a in facts.latest_activities
            if since <= a.end_date and a.start_date <= now.date()
        }
        return [
            Hit(
                p.project_id,
                Severity.INFO,
                f"Werkplaats project {p.project_id} in {p.country}: no NLIB or TINL activity "
                f"there in the last {self.isolation_days} days",
                (p.event_id,),
                {"country": p.country},
            )
            for p in facts.projects
            if p.status == "active" and p.country not in active
        ]


# -- gaps ---------------------------------------------------------------------------------------


def _last_activity(activities: list[ActivityFact]) -> ActivityFact | None:
    return max(activities, key=lambda a: a.end_date, default=None)


@dataclass(frozen=True)
class FocusMarketGap:
    focus_market_gap_days: int = 180

    name: ClassVar[str] = "focus-market-gap"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "A TINL focus market (China, Germany, USA, Smart Cities) with no TINL activity in "
        "the last `focus_market_gap_days`, once TINL has reported any activity at all."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"latest_activities"})
    triggers: ClassVar[frozenset[str]] = frozenset({ACTIVITY_HELD})
    scheduled: ClassVar[bool] = True

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        tinl = [a for a in facts.latest_activities if a.family == "tinl"]
        if not tinl:
            return []
        since = now.date() - timedelta(days=self.focus_market_gap_days)
        hits = []
        for market in FOCUS_MARKETS:
            last = _last_activity([a for a in tinl if a.market == market])
            if last is None or last.end_date < since:
                hits.append(
                    Hit(
                        market,
                        Severity.WARNING,
                        f"No TINL activity in focus market {market} since "
                        f"{last.end_date if last else 'the start'}",
                        (last.event_id,) if last else (),
                        {"market": market},
                    )
                )
        return hits


@dataclass(frozen=True)
class CityGap:
    city_gap_days: int = 365

    name: ClassVar[str] = "city-gap"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "A City of Opportunity in NLIB's programme with no NLIB mission or TINL activity "
        "in the last `city_gap_days`."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"city_programmes", "latest_activities"})
    triggers: ClassVar[frozenset[str]] = frozenset({CITY_UPDATED}) | MARKET_ACTIVITY
    scheduled: ClassVar[bool] = True

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        since = now.date() - timedelta(days=self.city_gap_days)
        by_city: dict[str, list[ActivityFact]] = defaultdict(list)
        for activity in facts.latest_activities:
            city = city_for(activity.city)
            if city is not None:
                by_city[city.slug].append(activity)
        hits = []
        for programme in facts.city_programmes:
            city = city_for(programme.city_id, programme.city)
            slug = city.slug if city else programme.city_id
            last = _last_activity(by_city.get(slug, []))
            if last is None or last.end_date < since:
                ids = (programme.event_id, *((last.event_id,) if last else ()))
                hits.append(
                    Hit(
                        slug,
                        Severity.INFO,
                        f"No mission or activity in {programme.city} since "
                        f"{last.end_date if last else 'the programme started'}",
                        ids,
                        {"city": programme.city},
                    )
                )
        return hits


# -- Global Stars ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GlobalStarsLeadTime:
    lead_time_max_months: int = 5

    name: ClassVar[str] = "globalstars-lead-time"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "A Global Stars call whose lead time (first negotiation to closing) exceeds "
        "`lead_time_max_months`, or a call still open past that limit."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"calls"})
    triggers: ClassVar[frozenset[str]] = frozenset({CALL_OPENED, CALL_CLOSED})
    scheduled: ClassVar[bool] = True

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        hits = []
        for call in facts.calls:
            if call.negotiation_started_on is None:
                continue
            limit = call.negotiation_started_on + relativedelta(months=self.lead_time_max_months)
            end = call.closed_on or now.date()
            if end > limit:
                state = f"closed {call.closed_on}" if call.closed_on else "still open"
                hits.append(
                    Hit(
                        call.call_id,
                        Severity.WARNING,
                        f"Global Stars call {call.call_id}: negotiation started "
                        f"{call.negotiation_started_on}, {state}; limit {limit}",
                        call.event_ids,
                        {"limit": str(limit)},
                    )
                )
        return hits


# -- budget -------------------------------------------------------------------------------------


def year_elapsed(now: datetime, year: int) -> float:
    """Share of `year` that has passed at `now` (0 before it starts, 1 after it ends)."""
    start, end = date(year, 1, 1), date(year + 1, 1, 1)
    passed = (min(max(now.date(), start), end) - start).days
    return passed / (end - start).days


@dataclass(frozen=True)
class BudgetOffPace:
    budget_pace_tolerance: float = 0.25

    name: ClassVar[str] = "budget-off-pace"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "An initiative's spending this year is off pace: the share of the allocation spent "
        "differs from the share of the year passed by more than `budget_pace_tolerance` "
        "(warning), or spending exceeds the allocation in any year (critical)."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"budgets"})
    triggers: ClassVar[frozenset[str]] = BUDGET_SPENT
    scheduled: ClassVar[bool] = True

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        return [
            hit
            for budget in facts.budgets
            if budget.allocation_cents > 0 and (hit := self._check_one(budget, now))
        ]

    def _check_one(self, budget: Any, now: datetime) -> Hit | None:
        spent = budget.spent_cents / budget.allocation_cents
        key = f"{budget.family}:{budget.year}"
        details = {"family": budget.family, "year": budget.year, "spent_share": round(spent, 4)}
        if spent > 1:
            return Hit(
                key,
                Severity.CRITICAL,
                f"{budget.family} spent {spent:.0%} of its {budget.year} allocation",
                budget.event_ids,
                details,
            )
        elapsed = year_elapsed(now, budget.year)
        if budget.year == now.year and abs(spent - elapsed) > self.budget_pace_tolerance:
            return Hit(
                key,
                Severity.WARNING,
                f"{budget.family} spent {spent:.0%} of its {budget.year} allocation "
                f"with {elapsed:.0%} of the year passed",
                budget.event_ids,
                {**details, "elapsed_share": round(elapsed, 4)},
            )
        return None


# -- the services themselves -----------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSilent:
    silent_days: int = 30

    name: ClassVar[str] = "service-silent"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "An initiative service that has published events before published none in the "
        "last `silent_days`."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"services"})
    triggers: ClassVar[frozenset[str]] = frozenset(CATALOGUE)
    scheduled: ClassVar[bool] = True

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        return [
            Hit(
                s.service,
                Severity.WARNING,
                f"Service {s.service} has published nothing since {s.last_event_at:%Y-%m-%d}",
                (s.last_event_id,),
                {"last_event_at": s.last_event_at.isoformat()},
            )
            for s in facts.services
            if now - s.last_event_at > timedelta(days=self.silent_days)
        ]


@dataclass(frozen=True)
class InvalidEvents:
    deadletter_window_days: int = 7

    name: ClassVar[str] = "invalid-events"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "Records on an initiative topic failed validation (or could not be projected) in "
        "the last `deadletter_window_days`; they are on the dashboard's dead-letter topic."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"dead_letters"})
    triggers: ClassVar[frozenset[str]] = frozenset()  # evaluated when a record is dead-lettered
    scheduled: ClassVar[bool] = True

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        since = now - timedelta(days=self.deadletter_window_days)
        by_topic: dict[str, list[Any]] = defaultdict(list)
        for dead in facts.dead_letters:
            if dead.recorded_at >= since:
                by_topic[dead.topic].append(dead)
        return [
            Hit(
                topic,
                Severity.WARNING,
                f"{len(dead)} record(s) on {topic} failed validation; last: {dead[-1].reason}",
                tuple(d.event_id for d in dead if d.event_id)[-20:],
                {"count": len(dead)},
            )
            for topic, dead in sorted(by_topic.items())
        ]


def all_rules(settings: DashboardSettings) -> list[Rule]:
    """Every rule with its thresholds from settings."""
    t = settings.rules
    return [
        MissionFollowupOverdue(t.followup_days),
        MarketDuplication(t.overlap_window_days),
        IsolatedProject(t.isolation_days),
        FocusMarketGap(t.focus_market_gap_days),
        CityGap(t.city_gap_days),
        GlobalStarsLeadTime(t.lead_time_max_months),
        BudgetOffPace(t.budget_pace_tolerance),
        ServiceSilent(t.silent_days),
        InvalidEvents(t.deadletter_window_days),
    ]


SERVICES: tuple[str, ...] = tuple(sorted(set(PUBLISHED_BY.values())))
