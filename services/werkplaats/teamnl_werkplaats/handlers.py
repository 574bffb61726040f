"""One handler per Werkplaats event type (rules checked on the locked project row; a type
whose rule fits in its one statement is a :class:`SetHandler`, applied many at a time)."""

from __future__ import annotations

from datetime import date

import asyncpg

from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.werkplaats import (
    MAX_CONSORTIUM_MEMBERS,
    ConsortiumMemberJoined,
    MilestoneReached,
    ProjectGraduated,
    ProjectOnboarded,
    ProjectStopped,
    WerkplaatsBudgetSpent,
)
from teamnl_shared.ingestion import Handler, Rejected, SetHandler, data_as
from teamnl_shared.ingestion.budget import handle_budget_spent

from . import repository


async def _active_project(
    conn: asyncpg.Connection, project_id: str, on: date, date_field: str
) -> asyncpg.Record:
    project = await repository.lock_project(conn, project_id)
    if project is None:
        raise Rejected("data/project_id", f"no project {project_id} was onboarded")
    if project["status"] != "active":
        raise Rejected(
            "data/project_id", f"project {project_id} is {project['status']}", status=409
        )
    if on < project["onboarded_on"]:
        raise Rejected(
            f"data/{date_field}",
            f"{on} is before the project was onboarded ({project['onboarded_on']})",
        )
    return project


def _already_onboarded(event: Event) -> Rejected:
    project_id = data_as(event, ProjectOnboarded).project_id
    return Rejected("data/project_id", f"project {project_id} is already onboarded", status=409)


handle_project_onboarded = SetHandler(
    table="projects",
    statement=repository.ONBOARD,
    args=lambda event: repository.onboard_args(data_as(event, ProjectOnboarded)),
    refusal=_already_onboarded,
)


async def handle_member_joined(conn: asyncpg.Connection, event: Event) -> None:
    joined = data_as(event, ConsortiumMemberJoined)
    project = await _active_project(conn, joined.project_id, joined.joined_on, "joined_on")
    if joined.member in project["consortium_members"]:
        raise Rejected("data/member", f"{joined.member} is already a member", status=409)
    if len(project["consortium_members"]) >= MAX_CONSORTIUM_MEMBERS:
        raise Rejected(
            "data/member",
            f"the consortium of project {joined.project_id} already has"
            f" {MAX_CONSORTIUM_MEMBERS} members, the most one holds",
            status=409,
        )
    await repository.add_member(conn, joined.project_id, joined.member)


async def handle_milestone_reached(conn: asyncpg.Connection, event: Event) -> None:
    milestone = data_as(event, MilestoneReached)
    await _active_project(conn, milestone.project_id, milestone.reached_on, "reached_on")
    if not await repository.add_milestone(conn, milestone):
        raise Rejected("data/milestone", f"{milestone.milestone!r} was already reached", status=409)


async def handle_project_graduated(conn: asyncpg.Connection, event: Event) -> None:
    graduated = data_as(event, ProjectGraduated)
    await _active_project(conn, graduated.project_id, graduated.graduated_on, "graduated_on")
    await repository.end_project(conn, graduated.project_id, "graduated", graduated.graduated_on)


async def handle_project_stopped(conn: asyncpg.Connection, event: Event) -> None:
    stopped = data_as(event, ProjectStopped)
    await _active_project(conn, stopped.project_id, stopped.stopped_on, "stopped_on")
    await repository.end_project(
        conn, stopped.project_id, "stopped", stopped.stopped_on, stopped.reason
    )


HANDLERS: dict[str, Handler | SetHandler] = {
    ProjectOnboarded.TYPE: handle_project_onboarded,
    ConsortiumMemberJoined.TYPE: handle_member_joined,
    MilestoneReached.TYPE: handle_milestone_reached,
    ProjectGraduated.TYPE: handle_project_graduated,
    ProjectStopped.TYPE: handle_project_stopped,
    WerkplaatsBudgetSpent.TYPE: handle_budget_spent,
}
