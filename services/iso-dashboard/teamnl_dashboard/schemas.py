"""Response models of the JSON API and the probes: what the OpenAPI document describes.

They mirror the dicts `queries` returns (field for field; a field added there is added
here). Instants are written as ``datetime.isoformat()`` (``+00:00``), like the CSV exports.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from teamnl_shared.contract.registry import Family

Instant = Annotated[
    datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str, when_used="json")
]
Severity = Literal["info", "warning", "critical"]
FindingState = Literal["open", "acknowledged", "resolved"]


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- probes ----------------------------------------------------------------------------------


class Readiness(Schema):
    status: Literal["ready", "not ready"]
    database: bool = Field(description="PostgreSQL answers")
    kafka: bool = Field(description="a Kafka broker answers")
    consumer: bool = Field(description="the consumer is connected and consuming")
    consumer_stalled: bool = Field(
        False, description="every attempt to apply has failed for longer than allowed"
    )
    rules_stalled: bool = Field(
        False, description="every attempt to evaluate the queued rules has failed for too long"
    )
    live: bool = Field(description="the live hub listens for changes")

    @property
    def ready(self) -> bool:
        return self.status == "ready"


# -- the network -----------------------------------------------------------------------------


class BudgetShare(Schema):
    allocation_cents: int
    spent_cents: int
    spent_pct: float | None = Field(description="0..100, one decimal; None without allocation")


class InitiativeSummary(Schema):
    family: Family
    name: str
    events: int
    last_event_at: Instant | None
    activities: int
    budget: BudgetShare


class Score(Schema):
    at: Instant
    score: float = Field(description="0..100")
    joint_actions: int
    duplications: int
    weighted_findings: float


class Reading(Schema):
    period: str | None = Field(description="the period read: 2018 or 2017-2021")
    as_of: date | None = Field(description="the date the figures are read at")


class Overview(Reading):
    illustrative: bool = Field(
        description="the reading holds seeded demo events: figures the letter does not state"
        " are illustrative"
    )
    initiatives: list[InitiativeSummary]
    findings_open: dict[str, int] = Field(description="not resolved findings per severity")
    score: Score | None


class ActivityPoint(Schema):
    period: str = Field(description="2019-04-08, 2019-04 or 2019 by granularity")
    family: Family
    count: int


class Budget(Schema):
    family: Family
    name: str
    year: int
    allocation_cents: int
    spent_cents: int
    spent_pct: float | None
    remaining_cents: int


class Market(Schema):
    market: str = Field(description="ISO 3166-1 alpha-2 country code, or 'smart-cities'")
    focus: bool = Field(description="a TINL focus market")
    nlib: int
    tinl: int
    globalstars: int
    werkplaats: int
    total: int
    last_activity_on: date | None


class MarketActivity(Schema):
    event_id: str
    family: Family
    kind: str
    country: str | None
    city: str | None
    on_date: date


class MarketProject(Schema):
    project_id: str
    title: str
    status: str
    onboarded_on: date
    sdgs: list[int]


class ComplementaryInitiative(Schema):
    family: Family
    activities: int = Field(description="its activities for the market in the period")
    first_on: date
    last_on: date


class Preparation(Schema):
    event_id: str
    city: str = Field(description="where in the Netherlands")
    on_date: date


class Complementarity(Schema):
    market: str
    initiatives: list[ComplementaryInitiative]
    links: list[list[Family]] = Field(description="each pair of initiatives present")
    preparation: list[Preparation] = Field(
        description="TINL activities held in the Netherlands about the market"
    )
    complementary: bool = Field(description="two or more initiatives worked the market")


class MarketDetail(Market):
    activities: list[MarketActivity]
    projects: list[MarketProject]
    complementarity: Complementarity


class CityProgramme(Schema):
    tier: str
    soft_landing: str
    updated_on: date


class City(Schema):
    slug: str
    name: str
    tier: str
    country: str
    programme: CityProgramme | None
    missions: int
    tinl_activities: int
    last_activity_on: date | None
    covered: bool


class Cities(Reading):
    stated: int = Field(description="how many Cities of Opportunity the letter says: 40")
    total: int = Field(description="how many it names: 38")
    covered: int = Field(description="named cities with activity in the period")
    coverage_pct: float | None
    with_programme: int
    soft_landing_active: int
    covered_cities: list[str]
    cities: list[City]


# -- coherence -------------------------------------------------------------------------------


class Rule(Schema):
    name: str
    version: int
    description: str
    thresholds: dict[str, Any]
    triggers: list[str] = Field(description="event types that evaluate the rule at once")
    scheduled: bool = Field(description="also evaluated on the scheduler's interval")


class Finding(Schema):
    id: int | None = Field(description="None for a finding read as of a past date")
    rule: str
    rule_version: int
    finding_key: str
    severity: Severity
    summary: str
    details: dict[str, Any]
    event_ids: list[str]
    state: FindingState
    condition_holds: bool = Field(description="the rule still sees the situation")
    raised_at: Instant | None
    updated_at: Instant | None
    acknowledged_by: str | None
    acknowledged_at: Instant | None
    resolved_by: str | None
    resolved_at: Instant | None


class FindingChange(Schema):
    state: str
    changed_by: str
    changed_at: Instant
    note: str | None


class FindingWithHistory(Finding):
    changes: list[FindingChange]


class CoherenceScore(Schema):
    definition: str
    current: Score | None
    series: list[Score]


class Status(Schema):
    projection_version: int | None
    built_at: Instant | None
    events_applied: int
    dead_letters: int
    last_event_at: dict[str, Instant]
