"""Global Stars projections: calls (with their lead time) and proposals."""

from __future__ import annotations

import asyncpg

from teamnl_shared.contract import globalstars
from teamnl_shared.contract.envelope import Event

from .network import record_activity, record_spend


async def call_opened(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, globalstars.CallOpened)
    await conn.execute(
        "INSERT INTO gs_calls (call_id, country, theme, negotiation_started_on, opened_on,"
        " opened_event_id) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (call_id) DO UPDATE SET country = excluded.country,"
        " theme = excluded.theme, negotiation_started_on = excluded.negotiation_started_on,"
        " opened_on = excluded.opened_on, opened_event_id = excluded.opened_event_id",
        data.call_id,
        data.country,
        data.theme,
        data.negotiation_started_on,
        data.opened_on,
        event.id,
    )
    await record_activity(
        conn, event, kind="call", on_date=data.opened_on, market=data.country, country=data.country
    )


async def proposal_submitted(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, globalstars.ProposalSubmitted)
    await conn.execute(
        "INSERT INTO gs_proposals (proposal_id, call_id, lead_organisation, dutch, submitted_on,"
        " event_id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (proposal_id) DO UPDATE SET"
        " call_id = excluded.call_id, lead_organisation = excluded.lead_organisation,"
        " dutch = excluded.dutch, submitted_on = excluded.submitted_on,"
        " event_id = excluded.event_id",
        data.proposal_id,
        data.call_id,
        data.lead_organisation,
        data.dutch,
        data.submitted_on,
        event.id,
    )


async def call_closed(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, globalstars.CallClosed)
    await conn.execute(
        "INSERT INTO gs_calls (call_id, closed_on, dutch_proposals, closed_event_id)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (call_id) DO UPDATE SET"
        " closed_on = excluded.closed_on, dutch_proposals = excluded.dutch_proposals,"
        " closed_event_id = excluded.closed_event_id",
        data.call_id,
        data.closed_on,
        data.dutch_proposals,
        event.id,
    )


PROJECTORS = {
    globalstars.CallOpened.TYPE: call_opened,
    globalstars.ProposalSubmitted.TYPE: proposal_submitted,
    globalstars.CallClosed.TYPE: call_closed,
    globalstars.GlobalStarsBudgetSpent.TYPE: record_spend,
}
