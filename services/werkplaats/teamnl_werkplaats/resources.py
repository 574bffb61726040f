"""What the Werkplaats read API exposes: the project portfolio."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel

from teamnl_shared.ingestion import Resource
from teamnl_shared.ingestion.budget import BUDGET_RESOURCE


class ProjectState(BaseModel):
    project_id: str
    title: str
    country: str
    sectors: list[str]
    sdgs: list[int]
    consortium_members: list[str]
    onboarded_on: date
    status: str
    milestones_reached: int
    last_milestone: str | None
    ended_on: date | None
    stop_reason: str | None


RESOURCES = (
    Resource(
        "projects",
        "projects",
        "project_id",
        ProjectState,
        {"country": str, "status": str},
        "Werkplaats projects",
    ),
    BUDGET_RESOURCE,
)
