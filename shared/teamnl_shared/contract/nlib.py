"""NLinBusiness (NLIB) events, v1: missions, leads, Cities of Opportunity, support, budget."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from teamnl_shared.contract.types import (
    BUDGET_SPENT_EXAMPLE,
    BudgetSpent,
    Cents,
    Count,
    CountryCode,
    DateSpan,
    Day,
    EventData,
    Identifier,
    NonEmptyStr,
    Slug,
    event,
)


class Direction(StrEnum):
    OUTGOING = "outgoing"
    INCOMING = "incoming"


class FollowupKind(StrEnum):
    WORK_SESSION = "work_session"
    OTHER = "other"


class CityTier(StrEnum):
    PILOT = "pilot"
    GOLDEN = "golden"
    SILVER = "silver"


class SoftLanding(StrEnum):
    NOT_STARTED = "not_started"
    ACTIVE = "active"
    COMPLETED = "completed"


class SupportKind(StrEnum):
    EXPORT_ADVICE = "export_advice"
    SOFT_LANDING = "soft_landing"
    MATCHMAKING = "matchmaking"
    OTHER = "other"


class Mission(DateSpan):
    """Fields every mission event carries."""

    mission_id: Identifier
    title: NonEmptyStr
    direction: Direction = Field(description="outgoing: Dutch companies go abroad")
    country: CountryCode = Field(description="the foreign country of the mission")
    city: NonEmptyStr
    city_of_opportunity: NonEmptyStr | None = Field(
        default=None, description="name of the City of Opportunity the mission serves, if any"
    )


_MISSION = {
    "mission_id": "m-2019-vn-01",
    "title": "Trade mission to Vietnam",
    "direction": "outgoing",
    "country": "VN",
    "city": "Ho Chi Minh City",
    "start_date": "2019-04-08",
    "end_date": "2019-04-12",
    "city_of_opportunity": "Ho Chi Minh City",
}


@event("nl.teamnl.nlib.mission.planned.v1", aggregate="mission_id", example=_MISSION)
class MissionPlanned(Mission):
    """A trade mission was put on the calendar."""


@event(
    "nl.teamnl.nlib.mission.held.v1",
    aggregate="mission_id",
    example={**_MISSION, "companies": 24, "business_mixers": 2, "leads": 37},
)
class MissionHeld(Mission):
    """A trade mission took place, with its participants, Business Mixers and leads."""

    companies: Count = Field(description="companies taking part")
    business_mixers: Count
    leads: Count


@event(
    "nl.teamnl.nlib.mission.followup.held.v1",
    aggregate="mission_id",
    example={
        "mission_id": "m-2019-vn-01",
        "followup_id": "m-2019-vn-01-ws1",
        "held_on": "2019-05-20",
        "kind": "work_session",
        "companies": 15,
    },
)
class MissionFollowupHeld(EventData):
    """A follow-up of a mission (e.g. a work session) took place."""

    mission_id: Identifier
    followup_id: Identifier
    held_on: Day
    kind: FollowupKind
    companies: Count


@event(
    "nl.teamnl.nlib.lead.converted.v1",
    aggregate="lead_id",
    example={
        "lead_id": "lead-0815",
        "mission_id": "m-2019-vn-01",
        "company": "Van Dijk Pompen B.V.",
        "contract_value_cents": 4_500_000_00,
        "converted_on": "2019-09-02",
    },
)
class LeadConverted(EventData):
    """A lead from a mission became a contract."""

    lead_id: Identifier
    mission_id: Identifier
    company: NonEmptyStr
    contract_value_cents: Cents
    converted_on: Day


@event(
    "nl.teamnl.nlib.city.programme.updated.v1",
    aggregate="city_id",
    example={
        "city_id": "ho-chi-minh-city",
        "city": "Ho Chi Minh City",
        "country": "VN",
        "tier": "pilot",
        "soft_landing": "active",
        "updated_on": "2019-02-01",
    },
)
class CityProgrammeUpdated(EventData):
    """The Cities of Opportunity programme of one city changed (tier, soft landing)."""

    city_id: Slug
    city: NonEmptyStr
    country: CountryCode
    tier: CityTier
    soft_landing: SoftLanding
    updated_on: Day


@event(
    "nl.teamnl.nlib.company.supported.v1",
    aggregate="company_id",
    example={
        "company_id": "kvk-12345678",
        "company": "Van Dijk Pompen B.V.",
        "kind": "export_advice",
        "country": "PL",
        "supported_on": "2019-01-17",
    },
)
class CompanySupported(EventData):
    """NLIB supported a (not yet) exporting company."""

    company_id: Identifier
    company: NonEmptyStr
    kind: SupportKind
    country: CountryCode | None = Field(default=None, description="target market, if any")
    supported_on: Day


@event("nl.teamnl.nlib.budget.spent.v1", aggregate="spend_id", example=BUDGET_SPENT_EXAMPLE)
class NlibBudgetSpent(BudgetSpent):
    """NLIB spent money from its yearly subsidy."""
