"""The coherence rules of ISO NL, each small, named, versioned and pure.

A rule is a frozen dataclass: its fields are its thresholds (from settings), its class
variables say what it is (``name``, ``version``, ``description``), which facts it reads
(``needs``), which event types re-evaluate it as they arrive (``triggers``) and whether the
scheduler evaluates it as time passes (``scheduled``). ``check(facts, now)`` returns every
situation it sees now; the engine raises findings for new ones and resolves the rest.
Bump ``version`` when a rule's meaning changes.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeGuard, runtime_checkable

from dateutil.relativedelta import relativedelta

from teamnl_shared.contract import globalstars, nlib, ops, tinl, werkplaats
from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.registry import CATALOGUE
from teamnl_shared.contract.topics import PUBLISHED_BY
from teamnl_shared.contract.types import BudgetSpent

from ..period import PROGRAMME_FIRST_YEAR, PROGRAMME_LAST_YEAR
from ..reference import (
    EUREKA_COUNTRIES,
    FOCUS_MARKETS,
    HOME_COUNTRY,
    NETWORK_OPERATIONAL_SINCE,
    TINL_CONVENANT_SIGNED,
    WERKPLAATS_TARGET_FIRST_YEAR,
    city_for,
    market_of,
    normalise,
)
from ..settings import DashboardSettings
from .model import (
    CALLS,
    MISSIONS,
    PROJECTS,
    ActivityFact,
    BudgetFact,
    Facts,
    Hit,
    PartnerQualityFact,
    ProjectFact,
    Scope,
    Severity,
    Subject,
)

MISSION_HELD = nlib.MissionHeld.TYPE
LEAD_CONVERTED = nlib.LeadConverted.TYPE
KNOWLEDGE_SHARED = tinl.KnowledgeShared.TYPE
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


def daily(rule: Rule) -> bool:
    """A scheduled rule whose ``check`` reads the clock only through ``now.date()``: time
    alone changes what it finds once a day (events change it as they arrive, through its
    triggers), so the scheduler judges it again only on a new date."""
    return bool(getattr(rule, "by_date", False))


def operational(rule: Rule) -> bool:
    """A rule about the running system (silence, failed validation), not the network: it
    says nothing about a past date, so a reading as of one leaves it out."""
    return bool(getattr(rule, "about_the_system", False))


@runtime_checkable
class ScopedRule(Rule, Protocol):
    """A rule that judges each of its `subject` apart (a project, a mission, a call: a
    finding's key is the subject's), so that as events arrive it judges only what the
    batch can have changed (``scope``), a part of its subject at a time; the scheduler
    still evaluates it whole."""

    subject: ClassVar[Subject]

    def scope(self, events: Iterable[Event]) -> Scope: ...


def missions_named(events: Iterable[Event]) -> Scope:
    """What a batch can have changed of a rule judging each mission: the missions it names
    (held, followed up, a lead converted)."""
    return Scope(frozenset(e.data.mission_id for e in events if hasattr(e.data, "mission_id")))


def calls_named(events: Iterable[Event]) -> Scope:
    """What a batch can have changed of a rule judging each call: the calls it names."""
    return Scope(frozenset(e.data.call_id for e in events if hasattr(e.data, "call_id")))


_SCOPED: dict[type, bool] = {}


def is_scoped(rule: Rule) -> TypeGuard[ScopedRule]:
    """``isinstance(rule, ScopedRule)``, checked once per rule class: a check against a
    runtime protocol looks up each of its members again every time (the engine asks for
    every rule of every batch projected)."""
    kind = type(rule)
    scoped = _SCOPED.get(kind)
    if scoped is None:
        scoped = _SCOPED[kind] = isinstance(rule, ScopedRule)
    return scoped


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
    by_date: ClassVar[bool] = True  # `daily`: a follow-up is late from a date on
    subject: ClassVar[Subject] = MISSIONS
    scope = staticmethod(missions_named)

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
            if not m.followed_up
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

    Only what took place abroad pairs: a TINL event held in the Netherlands about a market
    (China Business Week in Tilburg) prepares companies for it - complementary, never a
    duplication (``queries.complementarity`` counts it).

    Acting together = overlapping dates in the same city (e.g. a TINL fair during an NLIB
    mission); otherwise two initiatives worked the same market apart (duplication).

    Per market, the TINL activities are sorted by start; a mission looks only at those that
    start between its own start less the window and the longest activity, and its end plus
    the window (no other can be within the window), so the cost grows with the pairs, not
    with missions times activities. Pairs keep the order of `activities`.
    """
    by_market: dict[str, dict[str, list[ActivityFact]]] = defaultdict(lambda: defaultdict(list))
    for activity in activities:
        market = market_of(activity.market, activity.country)
        if market is not None and activity.country != HOME_COUNTRY:
            by_market[market][activity.family].append(activity)
    window = timedelta(days=window_days)
    pairs: list[Pair] = []
    for families in by_market.values():
        tinl = families["tinl"]
        by_start = sorted(range(len(tinl)), key=lambda i: tinl[i].start_date)
        starts = [tinl[i].start_date for i in by_start]
        longest = max((b.end_date - b.start_date for b in tinl), default=timedelta(0))
        for a in families["nlib"]:
            low = bisect_left(starts, a.start_date - window - longest)
            high = bisect_right(starts, a.end_date + window)
            pairs.extend(
                Pair(a, b, _overlap(a, b) and _same_city(a, b))
                for b in (tinl[i] for i in sorted(by_start[low:high]))
                if _gap_days(a, b) <= window_days
            )
    return pairs


@dataclass(frozen=True)
class MarketDuplication:
    overlap_window_days: int = 30

    name: ClassVar[str] = "market-duplication"
    version: ClassVar[int] = 2  # 2: activities held in the Netherlands never duplicate
    description: ClassVar[str] = (
        "An NLIB mission and a TINL activity abroad in the same foreign market within "
        "`overlap_window_days` of each other without acting together (same city, "
        "overlapping dates). Acting together is counted as a coherence success instead; "
        "a TINL event held in the Netherlands about the market is preparation, not "
        "duplication."
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
    version: ClassVar[int] = 2  # 2: judged only once project and network ran that long
    description: ClassVar[str] = (
        "An active Werkplaats project in a country where neither NLIB nor TINL has been "
        "active in the last `isolation_days`: an isolated project, or an opportunity to link. "
        "Judged once the project and the network (fully operational since 2018, the letter "
        "says) have both run `isolation_days`."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"projects", "latest_activities"})
    triggers: ClassVar[frozenset[str]] = PROJECT_EVENTS | MARKET_ACTIVITY
    scheduled: ClassVar[bool] = True
    by_date: ClassVar[bool] = True  # `daily`: judging the whole portfolio once a day is enough

    subject: ClassVar[Subject] = PROJECTS

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

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        info, days = Severity.INFO, self.isolation_days  # read once, not once a project
        return [
            Hit(
                p.project_id,
                info,
                f"Werkplaats project {p.project_id} in {p.country}: no NLIB or TINL activity "
                f"there in the last {days} days",
                (p.event_id,),
                {"country": p.country},
            )
            for p in self._isolated(facts, now)
        ]

    def count(self, facts: Facts, now: datetime) -> Counter[str]:
        """The hits of :meth:`check` counted by severity, none made: a past period's score
        series counts them at each of its points."""
        isolated = len(self._isolated(facts, now))
        return Counter({Severity.INFO.value: isolated} if isolated else {})

    def settled(self, facts: Facts, now: datetime, countries: frozenset[str]) -> frozenset[str]:
        """Of `countries`, those where no project is isolated at `now`: NLIB or TINL was
        active there within `isolation_days` (or the network has not run that long). There
        an evaluation can only end findings, so it need judge only the projects that hold
        one: the engine's :meth:`~.engine.RulesEngine._narrowed`."""
        active = self._active(facts, now)
        return countries if active is None else countries & active

    def _active(self, facts: Facts, now: datetime) -> set[str] | None:
        """The markets where NLIB or TINL was active within `isolation_days` of `now`; None
        when the network has not run that long (no project is judged isolated)."""
        since = now.date() - timedelta(days=self.isolation_days)
        if since < NETWORK_OPERATIONAL_SINCE:
            return None
        return {
            market_of(a.market, a.country)
            for a in facts.latest_activities
            if since <= a.end_date and a.start_date <= now.date()
        }

    def _isolated(self, facts: Facts, now: datetime) -> list[ProjectFact]:
        """The isolated projects (judged for every project of the portfolio: 151,000 at
        908,000 bench events)."""
        active = self._active(facts, now)
        if active is None:
            return []  # the network has not run `isolation_days` yet
        since = now.date() - timedelta(days=self.isolation_days)
        return [
            p
            for p in facts.projects
            if p.status == "active"
            and p.country not in active
            and (p.onboarded_on is None or p.onboarded_on <= since)
        ]


# -- gaps ---------------------------------------------------------------------------------------


def _last_activity(activities: list[ActivityFact]) -> ActivityFact | None:
    return max(activities, key=lambda a: a.end_date, default=None)


@dataclass(frozen=True)
class FocusMarketGap:
    focus_market_gap_days: int = 365

    name: ClassVar[str] = "focus-market-gap"
    version: ClassVar[int] = 2  # 2: a year by default (TINL plans and reports per year)
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
    version: ClassVar[int] = 2  # 2: counted from the programme's date; incoming missions not
    description: ClassVar[str] = (
        "A City of Opportunity in NLIB's programme with no outgoing NLIB mission or TINL "
        "activity there in the last `city_gap_days`, counted from the later of its last "
        "activity and its programme's date (a new programme has a year to start)."
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
            seen = (last.end_date if last else None, programme.updated_on)
            latest = max(filter(None, seen), default=None)
            if latest is None or latest < since:
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
    by_date: ClassVar[bool] = True  # `daily`: an open call passes its limit on a date
    subject: ClassVar[Subject] = CALLS
    scope = staticmethod(calls_named)

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


# -- the letter's targets ----------------------------------------------------------------------


@dataclass(frozen=True)
class WerkplaatsPortfolioTarget:
    first_year: int = WERKPLAATS_TARGET_FIRST_YEAR
    first_target: int = 20
    yearly_target: int = 30

    name: ClassVar[str] = "werkplaats-portfolio-target"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "De Werkplaats's portfolio of a finished year fell short of the letter's target: "
        "`first_target` projects in `first_year` (2019), `yearly_target` a year after. "
        "Never judged for the start-up years before `first_year`."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"portfolio"})
    triggers: ClassVar[frozenset[str]] = PROJECT_EVENTS
    scheduled: ClassVar[bool] = True

    def target(self, year: int) -> int | None:
        if year < self.first_year:
            return None
        return self.first_target if year == self.first_year else self.yearly_target

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        hits = []
        for portfolio in facts.portfolio:
            year, target = portfolio.year, self.target(portfolio.year)
            if year < now.year and target is not None and portfolio.projects < target:
                hits.append(
                    Hit(
                        str(year),
                        Severity.WARNING,
                        f"De Werkplaats supported {portfolio.projects} projects in {year}; "
                        f"the target was {target}",
                        portfolio.event_ids,
                        {"year": year, "portfolio": portfolio.projects, "target": target},
                    )
                )
        return hits


@dataclass(frozen=True)
class GlobalStarsOutsideEureka:
    name: ClassVar[str] = "globalstars-outside-eureka"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "A Global Stars call with a country that is one of the 44 Eureka countries: "
        "Global Stars is for 'third' countries without an EU or Eureka instrument "
        "(reference.EUREKA_COUNTRIES)."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"calls"})
    triggers: ClassVar[frozenset[str]] = frozenset({CALL_OPENED, CALL_CLOSED})
    scheduled: ClassVar[bool] = False
    subject: ClassVar[Subject] = CALLS
    scope = staticmethod(calls_named)

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        return [
            Hit(
                call.call_id,
                Severity.WARNING,
                f"Global Stars call {call.call_id} is with {call.country}, a Eureka country",
                call.event_ids,
                {"country": call.country},
            )
            for call in facts.calls
            if call.country in EUREKA_COUNTRIES
        ]


@dataclass(frozen=True)
class LeadsNotConverted:
    lead_conversion_days: int = 365

    name: ClassVar[str] = "leads-not-converted"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "A mission that reported leads has none converted to a contract within "
        "`lead_conversion_days` of its end (the letter: leads should more often become "
        "contracts)."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"missions"})
    triggers: ClassVar[frozenset[str]] = frozenset({MISSION_HELD, LEAD_CONVERTED})
    scheduled: ClassVar[bool] = True
    by_date: ClassVar[bool] = True  # `daily`: leads are unconverted from a date on
    subject: ClassVar[Subject] = MISSIONS
    scope = staticmethod(missions_named)

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        return [
            Hit(
                m.mission_id,
                Severity.INFO,
                f"Mission {m.mission_id} ({m.country}) reported {m.leads} leads; none became "
                f"a contract within {self.lead_conversion_days} days",
                (m.held_event_id,),
                {"mission_id": m.mission_id, "leads": m.leads},
            )
            for m in facts.missions
            if m.leads > 0
            and m.converted_leads == 0
            and now.date() > m.end_date + timedelta(days=self.lead_conversion_days)
        ]


@dataclass(frozen=True)
class TinlPartnerAbsent:
    partner_idle_days: int = 365

    name: ClassVar[str] = "tinl-partner-absent"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "A partner of the TINL convenant (22 January 2018) that took part in no joint "
        "activity and shared no knowledge in the last `partner_idle_days` (judged once "
        "the convenant has run that long)."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"tinl_partners"})
    triggers: ClassVar[frozenset[str]] = frozenset({ACTIVITY_HELD, KNOWLEDGE_SHARED})
    scheduled: ClassVar[bool] = True

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        since = now.date() - timedelta(days=self.partner_idle_days)
        if since < TINL_CONVENANT_SIGNED:
            return []
        return [
            Hit(
                p.partner,
                Severity.WARNING,
                f"TINL partner {p.partner} has taken part in nothing since "
                f"{p.last_on or 'the convenant'}",
                (p.event_id,) if p.event_id else (),
                {"partner": p.partner, "last_on": str(p.last_on) if p.last_on else None},
            )
            for p in facts.tinl_partners
            if p.last_on is None or p.last_on < since
        ]


@dataclass(frozen=True)
class PilotWithoutSoftLanding:
    name: ClassVar[str] = "pilot-without-soft-landing"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "One of the six pilot Cities of Opportunity (Warsaw, Munich, Dubai, Ho Chi Minh "
        "City, Guangzhou/Pearl River Delta, Mexico City) whose programme reports no active "
        "soft landing for Dutch SMEs."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"city_programmes"})
    triggers: ClassVar[frozenset[str]] = frozenset({CITY_UPDATED})
    scheduled: ClassVar[bool] = False

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        hits = []
        for programme in facts.city_programmes:
            city = city_for(programme.city_id, programme.city)
            if city is None or city.tier != "pilot" or programme.soft_landing == "active":
                continue
            hits.append(
                Hit(
                    city.slug,
                    Severity.INFO,
                    f"Pilot city {city.name}: soft landing is {programme.soft_landing}",
                    (programme.event_id,),
                    {"city": city.name, "soft_landing": programme.soft_landing},
                )
            )
        return hits


@dataclass(frozen=True)
class ProgrammeSpending:
    budget_pace_tolerance: float = 0.25
    first_year: int = PROGRAMME_FIRST_YEAR
    last_year: int = PROGRAMME_LAST_YEAR

    name: ClassVar[str] = "programme-spending"
    version: ClassVar[int] = 1
    description: ClassVar[str] = (
        "Spending over the whole programme period 2017-2021 against the yearly allocations "
        "(6 M NLIB, 1 M Global Stars, the rest of the public 4 M): critical when an "
        "initiative, or the public initiatives together, spent more than the period's "
        "allocation; warning when spending runs ahead of the period's elapsed share by more "
        "than `budget_pace_tolerance`."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"budgets"})
    triggers: ClassVar[frozenset[str]] = BUDGET_SPENT
    scheduled: ClassVar[bool] = True

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        years = self.last_year - self.first_year + 1
        elapsed = sum(year_elapsed(now, y) for y in range(self.first_year, self.last_year + 1))
        within = [b for b in facts.budgets if self.first_year <= b.year <= self.last_year]
        groups: dict[str, list[BudgetFact]] = defaultdict(list)
        for budget in within:
            groups[budget.family].append(budget)
            if budget.family != "nlib":
                groups["public"].append(budget)
        hits = []
        for group, budgets in sorted(groups.items()):
            allocation = _yearly_allocation(group, facts.budgets) * years
            spent = sum(b.spent_cents for b in budgets)
            if allocation <= 0:
                continue
            hit = self._judge(group, spent, allocation, elapsed / years, budgets)
            if hit is not None:
                hits.append(hit)
        return hits

    def _judge(
        self,
        group: str,
        spent: int,
        allocation: int,
        elapsed: float,
        budgets: list[BudgetFact],
    ) -> Hit | None:
        share = spent / allocation
        details = {"group": group, "spent_share": round(share, 4), "elapsed": round(elapsed, 4)}
        ids = tuple(i for b in budgets for i in b.event_ids)[-20:]
        period = f"{self.first_year}-{self.last_year}"
        if share > 1:
            summary = f"{group} spent {share:.0%} of its {period} allocation"
            return Hit(group, Severity.CRITICAL, summary, ids, details)
        if share - elapsed > self.budget_pace_tolerance:
            summary = (
                f"{group} spent {share:.0%} of its {period} allocation with "
                f"{elapsed:.0%} of the period passed"
            )
            return Hit(group, Severity.WARNING, summary, ids, details)
        return None


def _yearly_allocation(group: str, budgets: Iterable[BudgetFact]) -> int:
    """The yearly allocation of a family, or of the public three together ("public")."""
    per_family = {b.family: b.allocation_cents for b in budgets}
    if group == "public":
        return sum(cents for family, cents in per_family.items() if family != "nlib")
    return per_family.get(group, 0)


# -- the services themselves -----------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSilent:
    silent_days: int = 30

    name: ClassVar[str] = "service-silent"
    version: ClassVar[int] = 1
    about_the_system: ClassVar[bool] = True
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
    about_the_system: ClassVar[bool] = True
    description: ClassVar[str] = (
        "Records on an initiative topic failed validation (or could not be projected) in "
        "the last `deadletter_window_days`; they are on the dashboard's dead-letter topic."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"dead_letters"})
    triggers: ClassVar[frozenset[str]] = frozenset()  # evaluated when a record is dead-lettered
    scheduled: ClassVar[bool] = True

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        """One hit per topic; its facts are counted within `deadletter_window_days` (the
        engine's ``FactContext.dead_letter_days``)."""
        return [
            Hit(
                dead.topic,
                Severity.WARNING,
                f"{dead.count} record(s) on {dead.topic} failed validation; last: "
                f"{dead.last_reason}",
                dead.event_ids,
                {"count": dead.count},
            )
            for dead in sorted(facts.dead_letters, key=lambda d: d.topic)
        ]


@dataclass(frozen=True)
class PartnerQuality:
    refused_share: float = 0.2
    window_hours: int = 24
    min_events: int = 20
    silent_days: int = 7

    name: ClassVar[str] = "partner-quality"
    version: ClassVar[int] = 1
    about_the_system: ClassVar[bool] = True
    description: ClassVar[str] = (
        "A partner key's data quality dropped: of at least `min_events` events it sent an "
        "ingestion service in the last `window_hours`, `refused_share` or more were refused "
        "(rejected or conflicting); or it had events accepted before and none in the last "
        "`silent_days`."
    )
    needs: ClassVar[frozenset[str]] = frozenset({"partner_quality"})
    triggers: ClassVar[frozenset[str]] = frozenset({ops.PartnerQualityReported.TYPE})
    scheduled: ClassVar[bool] = True

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        hits: list[Hit] = []
        for partner in facts.partner_quality:
            hits += self._refused(partner, now) + self._silent(partner, now)
        return hits

    def _refused(self, partner: PartnerQualityFact, now: datetime) -> list[Hit]:
        since = now - timedelta(hours=self.window_hours)
        recent = [(e, r) for hour, e, r in partner.hourly if hour + timedelta(hours=1) > since]
        events, refused = sum(e for e, _ in recent), sum(r for _, r in recent)
        if events < self.min_events or refused / events < self.refused_share:
            return []
        return [
            Hit(
                f"{partner.service}/{partner.partner}/refused",
                Severity.WARNING,
                f"Partner {partner.partner} ({partner.service}): {refused} of {events} events "
                f"refused in the last {self.window_hours} h",
                (),
                {"events": events, "refused": refused, "share": round(refused / events, 4)},
            )
        ]

    def _silent(self, partner: PartnerQualityFact, now: datetime) -> list[Hit]:
        last = partner.last_accepted_at
        if last is None or now - last <= timedelta(days=self.silent_days):
            return []
        return [
            Hit(
                f"{partner.service}/{partner.partner}/silent",
                Severity.WARNING,
                f"Partner {partner.partner} ({partner.service}) has had nothing accepted "
                f"since {last:%Y-%m-%d}",
                (),
                {"last_accepted_at": last.isoformat()},
            )
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
        WerkplaatsPortfolioTarget(
            first_target=settings.werkplaats_targets.get(WERKPLAATS_TARGET_FIRST_YEAR, 20),
            yearly_target=settings.werkplaats_yearly_target,
        ),
        GlobalStarsOutsideEureka(),
        LeadsNotConverted(t.lead_conversion_days),
        TinlPartnerAbsent(t.partner_idle_days),
        PilotWithoutSoftLanding(),
        ProgrammeSpending(t.budget_pace_tolerance),
        PartnerQuality(
            t.partner_refused_share,
            t.partner_quality_hours,
            t.partner_min_events,
            t.partner_silent_days,
        ),
    ]


SERVICES: tuple[str, ...] = tuple(sorted(set(PUBLISHED_BY.values())))
