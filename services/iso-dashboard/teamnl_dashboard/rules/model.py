"""What the coherence rules reason about: plain, frozen facts and the hits they produce.

Nothing here touches a database; `facts.py` loads these from the projections and
`findings.py` stores what the rules conclude.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, NamedTuple


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Hit:
    """A situation a rule sees now; `key` names it so it is raised once and cleared once."""

    key: str
    severity: Severity
    summary: str
    event_ids: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MissionFact:
    mission_id: str
    country: str
    end_date: date
    held_event_id: str
    followed_up: bool = False
    """Whether a follow-up took place (as of the reading's date)."""
    leads: int = 0
    converted_leads: int = 0


@dataclass(frozen=True, slots=True)
class ActivityFact:
    """An NLIB mission or a TINL activity, as the market rules compare them."""

    activity_id: str
    family: str
    market: str | None  # a country code or 'smart-cities'
    country: str | None  # where it took place
    city: str | None
    start_date: date
    end_date: date
    event_id: str


class ProjectFact(NamedTuple):
    """A Werkplaats project. A named tuple, not a frozen dataclass like the other facts: a
    portfolio's worth are made at every evaluation of its rules, one per project (151,000
    at 908,000 events), and a frozen dataclass's ``__init__`` took 0.70 us against 0.20 for
    a tuple's ``_make`` of the row as it is read (`facts._projects`)."""

    project_id: str
    country: str
    status: str
    event_id: str
    onboarded_on: date | None = None
    ended_on: date | None = None  # graduated or stopped

    def known_on(self, day: date) -> ProjectFact | None:
        """The project as known at the end of `day`: None when onboarded after it, active
        (no end) when it ended after it; as the rules' facts read it as of a date in SQL
        (`facts._PROJECTS`), so that a part of the portfolio read once serves every day of
        a score series."""
        if self.onboarded_on is not None and self.onboarded_on > day:
            return None
        if self.ended_on is not None and self.ended_on <= day:
            return self
        return self if self.status == "active" else self._replace(status="active", ended_on=None)


@dataclass(frozen=True, slots=True)
class PortfolioFact:
    """De Werkplaats's portfolio of a finished year: the projects supported at some point in
    it (onboarded by its end, not ended before it started), and the last of their
    onboarding events (at most 20, by project id)."""

    year: int
    projects: int
    event_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CallFact:
    call_id: str
    negotiation_started_on: date | None
    closed_on: date | None
    event_ids: tuple[str, ...]
    country: str | None = None


@dataclass(frozen=True, slots=True)
class BudgetFact:
    family: str
    year: int
    allocation_cents: int
    spent_cents: int
    event_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceFact:
    service: str
    last_event_at: datetime
    last_event_id: str


DEAD_LETTER_IDS = 20
"""The latest dead letters' event ids a topic's fact (and its finding) names."""


@dataclass(frozen=True, slots=True)
class DeadLettersFact:
    """One topic's dead letters recorded within the facts' window
    (``FactContext.dead_letter_days``): how many, the latest one's reason, and the event ids
    of the latest `DEAD_LETTER_IDS` that carry one, oldest first."""

    topic: str
    count: int
    last_reason: str
    event_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CityProgrammeFact:
    city_id: str
    city: str
    event_id: str
    updated_on: date | None = None
    tier: str | None = None
    soft_landing: str | None = None


@dataclass(frozen=True, slots=True)
class PartnerFact:
    """A TINL convenant partner and when it last took part (an activity or knowledge
    shared); None: never."""

    partner: str
    last_on: date | None
    event_id: str | None


@dataclass(frozen=True, slots=True)
class PartnerQualityFact:
    """One partner key of one ingestion service: its events and refusals (rejected or
    conflicting) per hour, from the services' quality reports, and its last acceptance."""

    partner: str
    service: str
    last_accepted_at: datetime | None
    hourly: tuple[tuple[datetime, int, int], ...] = ()
    """(hour, events, refused), oldest first."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What a batch of events can have changed, for a rule that judges only that part
    (``ScopedRule``): the keys of its subject the batch named (projects, missions, calls)
    and the foreign markets it was active in."""

    keys: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()

    def __or__(self, other: Scope) -> Scope:
        return Scope(self.keys | other.keys, self.countries | other.countries)

    def __bool__(self) -> bool:
        """Whether the scope names anything at all."""
        return bool(self.keys or self.countries)

    def as_json(self) -> dict[str, list[str]]:
        return {"keys": sorted(self.keys), "countries": sorted(self.countries)}

    @classmethod
    def of_json(cls, value: dict[str, list[str]]) -> Scope:
        """A scope queued as JSON; one queued by an earlier version names its keys ``projects``."""
        keys = value.get("keys", value.get("projects", ()))
        return cls(frozenset(keys), frozenset(value.get("countries", ())))


@dataclass(frozen=True, slots=True)
class Subject:
    """What a scoped rule judges one at a time, each with a finding of its own key: the rows
    of a projection's table by their key; a scope's countries select them by `country`
    (for a subject that has one)."""

    fact: str
    """The field of :class:`Facts` whose loader reads only a scope's keys."""
    table: str
    key: str
    country: str | None = None
    factual: str | None = None
    """The condition (SQL on the table's row) of every row its loader can read a fact of
    (None: every row): a whole evaluation judges those, and ends the findings of the others
    as of keys no longer there."""


PROJECTS = Subject("projects", "wp_projects", "project_id", "country")
# The missions held: a whole evaluation read the planned too (151,000 of the bench's 158,000
# missions), 80 parts of 2,000 missions for each mission rule where 4 hold the missions held
MISSIONS = Subject("missions", "nlib_missions", "mission_id", factual="status = 'held'")
CALLS = Subject("calls", "gs_calls", "call_id")


@dataclass(frozen=True, slots=True)
class Facts:
    """The facts one evaluation needs; a loader fills only the fields its rules ask for."""

    missions: tuple[MissionFact, ...] = ()
    paired_activities: tuple[ActivityFact, ...] = ()
    """NLIB and TINL activities of the foreign markets where both were active."""
    latest_activities: tuple[ActivityFact, ...] = ()
    """Per family, market, country and city: the latest activity and the latest started."""
    projects: tuple[ProjectFact, ...] = ()
    portfolio: tuple[PortfolioFact, ...] = ()
    """Per finished year from the first year with a target (2019)."""
    calls: tuple[CallFact, ...] = ()
    budgets: tuple[BudgetFact, ...] = ()
    services: tuple[ServiceFact, ...] = ()
    dead_letters: tuple[DeadLettersFact, ...] = ()
    """Per topic, within the window of the ``invalid-events`` rule."""
    city_programmes: tuple[CityProgrammeFact, ...] = ()
    tinl_partners: tuple[PartnerFact, ...] = ()
    partner_quality: tuple[PartnerQualityFact, ...] = ()
