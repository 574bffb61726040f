"""De Werkplaats projections: the project portfolio, consortia, milestones."""

from __future__ import annotations

import asyncpg

from teamnl_shared.contract import werkplaats
from teamnl_shared.contract.envelope import Event

from .network import record_activity, record_spend


async def project_onboarded(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, werkplaats.ProjectOnboarded)
    await conn.execute(
        "INSERT INTO wp_projects (project_id, title, country, sectors, sdgs, onboarded_on,"
        " status, onboarded_event_id) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7)"
        " ON CONFLICT (project_id) DO UPDATE SET title = excluded.title,"
        " country = excluded.country, sectors = excluded.sectors, sdgs = excluded.sdgs,"
        " onboarded_on = excluded.onboarded_on,"
        " onboarded_event_id = excluded.onboarded_event_id",
        data.project_id,
        data.title,
        data.country,
        list(data.sectors),
        sorted(data.sdgs),
        data.onboarded_on,
        event.id,
    )
    await conn.executemany(
        "INSERT INTO wp_members (project_id, member, joined_on) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        [(data.project_id, member, data.onboarded_on) for member in data.consortium_members],
    )
    await record_activity(
        conn,
        event,
        kind="onboarding",
        on_date=data.onboarded_on,
        market=data.country,
        country=data.country,
    )


async def member_joined(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, werkplaats.ConsortiumMemberJoined)
    await conn.execute(
        "INSERT INTO wp_members (project_id, member, joined_on) VALUES ($1, $2, $3)"
        " ON CONFLICT (project_id, member) DO UPDATE SET joined_on = excluded.joined_on",
        data.project_id,
        data.member,
        data.joined_on,
    )


async def milestone_reached(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, werkplaats.MilestoneReached)
    await conn.execute(
        "INSERT INTO wp_milestones (event_id, source, project_id, milestone, reached_on)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        event.id,
        event.source,
        data.project_id,
        data.milestone,
        data.reached_on,
    )


async def project_graduated(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, werkplaats.ProjectGraduated)
    await _end(conn, event, data.project_id, "graduated", graduated_on=data.graduated_on)


async def project_stopped(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, werkplaats.ProjectStopped)
    await _end(
        conn, event, data.project_id, "stopped", stopped_on=data.stopped_on, reason=data.reason
    )


async def _end(
    conn: asyncpg.Connection,
    event: Event,
    project_id: str,
    status: str,
    *,
    graduated_on: object = None,
    stopped_on: object = None,
    reason: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE wp_projects SET status = $2, graduated_on = $3, stopped_on = $4,"
        " stop_reason = $5, ended_event_id = $6 WHERE project_id = $1",
        project_id,
        status,
        graduated_on,
        stopped_on,
        reason,
        event.id,
    )


PROJECTORS = {
    werkplaats.ProjectOnboarded.TYPE: project_onboarded,
    werkplaats.ConsortiumMemberJoined.TYPE: member_joined,
    werkplaats.MilestoneReached.TYPE: milestone_reached,
    werkplaats.ProjectGraduated.TYPE: project_graduated,
    werkplaats.ProjectStopped.TYPE: project_stopped,
    werkplaats.WerkplaatsBudgetSpent.TYPE: record_spend,
}
