"""Global Stars events, v1: innovation-cooperation calls run by RVO, proposals, budget."""

from __future__ import annotations

from pydantic import Field, field_validator

from teamnl_shared.contract.types import (
    BUDGET_SPENT_EXAMPLE,
    BudgetSpent,
    Count,
    CountryCode,
    Day,
    EventData,
    Identifier,
    NonEmptyStr,
    event,
    not_before,
)


@event(
    "nl.teamnl.globalstars.call.opened.v1",
    aggregate="call_id",
    example={
        "call_id": "gs-in-2018",
        "country": "IN",
        "theme": "Health: antimicrobial resistance, affordable care",
        "negotiation_started_on": "2018-01-15",
        "opened_on": "2018-03-01",
    },
)
class CallOpened(EventData):
    """A Global Stars call opened with a country outside the Eureka countries."""

    # Whether the country is really outside Eureka is a dashboard rule, not a contract check.

    call_id: Identifier
    country: CountryCode
    theme: NonEmptyStr
    negotiation_started_on: Day = Field(description="first negotiation with the country")
    opened_on: Day

    check_opened_on = field_validator("opened_on")(not_before("negotiation_started_on"))


@event(
    "nl.teamnl.globalstars.proposal.submitted.v1",
    aggregate="call_id",
    example={
        "proposal_id": "gs-in-2018-p07",
        "call_id": "gs-in-2018",
        "lead_organisation": "Universiteit Utrecht",
        "dutch": True,
        "submitted_on": "2018-05-20",
    },
)
class ProposalSubmitted(EventData):
    """A project proposal was submitted to a call."""

    # Keyed by call_id, not proposal_id: proposals stay ordered before their call's closing.

    proposal_id: Identifier
    call_id: Identifier
    lead_organisation: NonEmptyStr
    dutch: bool = Field(strict=True, description="a Dutch proposal (counted for the call)")
    submitted_on: Day


@event(
    "nl.teamnl.globalstars.call.closed.v1",
    aggregate="call_id",
    example={"call_id": "gs-in-2018", "closed_on": "2018-06-15", "dutch_proposals": 12},
)
class CallClosed(EventData):
    """A call closed; lead time runs from the call's negotiation start to this date."""

    call_id: Identifier
    closed_on: Day
    dutch_proposals: Count


@event("nl.teamnl.globalstars.budget.spent.v1", aggregate="spend_id", example=BUDGET_SPENT_EXAMPLE)
class GlobalStarsBudgetSpent(BudgetSpent):
    """Global Stars spent money from its yearly budget."""
