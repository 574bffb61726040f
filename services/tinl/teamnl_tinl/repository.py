"""All SQL of the TINL service (TINL activities and the Global Stars calls)."""

from __future__ import annotations

from typing import Any

import asyncpg

from teamnl_shared.contract.globalstars import CallClosed, CallOpened, ProposalSubmitted
from teamnl_shared.contract.tinl import ActivityHeld, KnowledgeShared

UPSERT_ACTIVITY = (
    "INSERT INTO activities (activity_id, title, kind, market, country, city, start_date,"
    " end_date, partners) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    " ON CONFLICT (activity_id) DO UPDATE SET title = excluded.title, kind = excluded.kind,"
    " market = excluded.market, country = excluded.country, city = excluded.city,"
    " start_date = excluded.start_date, end_date = excluded.end_date,"
    " partners = excluded.partners, updated_at = now()"
)


def activity_args(activity: ActivityHeld) -> tuple[Any, ...]:
    return (
        activity.activity_id,
        activity.title,
        activity.kind.value,
        activity.market,
        activity.country,
        activity.city,
        activity.start_date,
        activity.end_date,
        [partner.value for partner in activity.partners],
    )


UPSERT_KNOWLEDGE = (
    "INSERT INTO knowledge_sharings (knowledge_id, topic, partners, shared_on)"
    " VALUES ($1, $2, $3, $4) ON CONFLICT (knowledge_id) DO UPDATE SET"
    " topic = excluded.topic, partners = excluded.partners, shared_on = excluded.shared_on"
)


def knowledge_args(knowledge: KnowledgeShared) -> tuple[Any, ...]:
    return (
        knowledge.knowledge_id,
        knowledge.topic,
        [partner.value for partner in knowledge.partners],
        knowledge.shared_on,
    )


async def lock_call(conn: asyncpg.Connection, call_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT status, opened_on FROM calls WHERE call_id = $1 FOR UPDATE", call_id
    )


async def open_call(conn: asyncpg.Connection, call: CallOpened) -> bool:
    opened = await conn.fetchval(
        "INSERT INTO calls (call_id, country, theme, negotiation_started_on, opened_on, status)"
        " VALUES ($1, $2, $3, $4, $5, 'open') ON CONFLICT DO NOTHING RETURNING true",
        call.call_id,
        call.country,
        call.theme,
        call.negotiation_started_on,
        call.opened_on,
    )
    return bool(opened)


async def add_proposal(conn: asyncpg.Connection, proposal: ProposalSubmitted) -> bool:
    added = await conn.fetchval(
        "INSERT INTO proposals (proposal_id, call_id, lead_organisation, dutch, submitted_on)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
        proposal.proposal_id,
        proposal.call_id,
        proposal.lead_organisation,
        proposal.dutch,
        proposal.submitted_on,
    )
    if added:
        await conn.execute(
            "UPDATE calls SET proposals_submitted = proposals_submitted + 1,"
            " dutch_proposals_submitted = dutch_proposals_submitted + $2::int"
            " WHERE call_id = $1",
            proposal.call_id,
            int(proposal.dutch),
        )
    return bool(added)


async def close_call(conn: asyncpg.Connection, closed: CallClosed) -> None:
    await conn.execute(
        "UPDATE calls SET status = 'closed', closed_on = $2, dutch_proposals = $3"
        " WHERE call_id = $1",
        closed.call_id,
        closed.closed_on,
        closed.dutch_proposals,
    )
