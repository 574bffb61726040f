"""De Werkplaats events, v1: the life of a consortium project, and budget."""

from __future__ import annotations

from pydantic import Field

from teamnl_shared.contract.types import (
    BUDGET_SPENT_EXAMPLE,
    MAX_LIST_ITEMS,
    BudgetSpent,
    CountryCode,
    Day,
    EventData,
    Identifier,
    NonEmptyStr,
    NonEmptyUniqueList,
    Sdg,
    event,
)

_PROJECT = "gw-ganges"
MAX_CONSORTIUM_MEMBERS = MAX_LIST_ITEMS
"""The most members one project's consortium holds, those it was onboarded with and those
that joined: as many as an onboarding may list. Each join used to grow the project's row
(at 50,000 members of 500 characters a join took 0.24 s and reading the project answered
25 MB); a join past it is refused (409)."""


@event(
    "nl.teamnl.werkplaats.project.onboarded.v1",
    aggregate="project_id",
    example={
        "project_id": _PROJECT,
        "title": "Cleaning the Ganges",
        "country": "IN",
        "sectors": ["water", "waste management"],
        "sdgs": [6, 14],
        "consortium_members": ["Witteveen+Bos", "TU Delft"],
        "onboarded_on": "2018-02-05",
    },
)
class ProjectOnboarded(EventData):
    """A project in a foreign growth market joined the Werkplaats portfolio."""

    project_id: Identifier
    title: NonEmptyStr
    country: CountryCode
    sectors: NonEmptyUniqueList[NonEmptyStr]
    sdgs: NonEmptyUniqueList[Sdg]
    consortium_members: NonEmptyUniqueList[NonEmptyStr] = Field(
        description="Dutch companies and knowledge institutions in the consortium"
    )
    onboarded_on: Day


@event(
    "nl.teamnl.werkplaats.consortium.member.joined.v1",
    aggregate="project_id",
    example={"project_id": _PROJECT, "member": "Deltares", "joined_on": "2018-06-11"},
)
class ConsortiumMemberJoined(EventData):
    """A company or knowledge institution joined a project's consortium; a consortium
    holds at most as many members as an onboarding may list, and a join past that is
    refused."""

    project_id: Identifier
    member: NonEmptyStr
    joined_on: Day


@event(
    "nl.teamnl.werkplaats.milestone.reached.v1",
    aggregate="project_id",
    example={"project_id": _PROJECT, "milestone": "feasibility study", "reached_on": "2018-11-30"},
)
class MilestoneReached(EventData):
    """A project reached a milestone."""

    project_id: Identifier
    milestone: NonEmptyStr
    reached_on: Day


@event(
    "nl.teamnl.werkplaats.project.graduated.v1",
    aggregate="project_id",
    example={"project_id": _PROJECT, "graduated_on": "2019-10-01"},
)
class ProjectGraduated(EventData):
    """A project runs on its own; Werkplaats support stops."""

    project_id: Identifier
    graduated_on: Day


@event(
    "nl.teamnl.werkplaats.project.stopped.v1",
    aggregate="project_id",
    example={"project_id": _PROJECT, "reason": "no financing found", "stopped_on": "2019-10-01"},
)
class ProjectStopped(EventData):
    """A project stopped without graduating."""

    project_id: Identifier
    reason: NonEmptyStr
    stopped_on: Day


@event("nl.teamnl.werkplaats.budget.spent.v1", aggregate="spend_id", example=BUDGET_SPENT_EXAMPLE)
class WerkplaatsBudgetSpent(BudgetSpent):
    """De Werkplaats spent money from its share of the public budget."""
