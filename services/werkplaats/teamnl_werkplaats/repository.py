"""All SQL of the Werkplaats service."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg

from teamnl_shared.contract.werkplaats import MilestoneReached, ProjectOnboarded


async def lock_project(conn: asyncpg.Connection, project_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT status, onboarded_on, consortium_members FROM projects"
        " WHERE project_id = $1 FOR UPDATE",
        project_id,
    )


ONBOARD = (
    "INSERT INTO projects (project_id, title, country, sectors, sdgs, consortium_members,"
    " onboarded_on, status) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active')"
    " ON CONFLICT DO NOTHING"
)


def onboard_args(project: ProjectOnboarded) -> tuple[Any, ...]:
    return (
        project.project_id,
        project.title,
        project.country,
        list(project.sectors),
        list(project.sdgs),
        list(project.consortium_members),
        project.onboarded_on,
    )


async def add_member(conn: asyncpg.Connection, project_id: str, member: str) -> None:
    await conn.execute(
        "UPDATE projects SET consortium_members = array_append(consortium_members, $2),"
        " updated_at = now() WHERE project_id = $1",
        project_id,
        member,
    )


async def add_milestone(conn: asyncpg.Connection, milestone: MilestoneReached) -> bool:
    added = await conn.fetchval(
        "INSERT INTO project_milestones (project_id, milestone, reached_on)"
        " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true",
        milestone.project_id,
        milestone.milestone,
        milestone.reached_on,
    )
    if added:
        await conn.execute(
            "UPDATE projects SET milestones_reached = milestones_reached + 1,"
            " last_milestone = $2, updated_at = now() WHERE project_id = $1",
            milestone.project_id,
            milestone.milestone,
        )
    return bool(added)


async def end_project(
    conn: asyncpg.Connection,
    project_id: str,
    status: str,
    ended_on: date,
    reason: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE projects SET status = $2, ended_on = $3, stop_reason = $4, updated_at = now()"
        " WHERE project_id = $1",
        project_id,
        status,
        ended_on,
        reason,
    )
