"""One handler per TINL and Global Stars event type (rules checked on locked rows; a type
whose rule fits in its one statement is a :class:`SetHandler`, applied many at a time)."""

from __future__ import annotations

import asyncpg

from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.globalstars import (
    CallClosed,
    CallOpened,
    GlobalStarsBudgetSpent,
    ProposalSubmitted,
)
from teamnl_shared.contract.tinl import ActivityHeld, KnowledgeShared, TinlBudgetSpent
from teamnl_shared.ingestion import Handler, Rejected, SetHandler, data_as
from teamnl_shared.ingestion.budget import handle_budget_spent

from . import repository

handle_activity_held = SetHandler(
    table="activities",
    statement=repository.UPSERT_ACTIVITY,
    args=lambda event: repository.activity_args(data_as(event, ActivityHeld)),
)

handle_knowledge_shared = SetHandler(
    table="knowledge_sharings",
    statement=repository.UPSERT_KNOWLEDGE,
    args=lambda event: repository.knowledge_args(data_as(event, KnowledgeShared)),
)


async def handle_call_opened(conn: asyncpg.Connection, event: Event) -> None:
    call = data_as(event, CallOpened)
    if not await repository.open_call(conn, call):
        raise Rejected("data/call_id", f"call {call.call_id} was already opened", status=409)


async def _open_call(conn: asyncpg.Connection, call_id: str) -> asyncpg.Record:
    call = await repository.lock_call(conn, call_id)
    if call is None:
        raise Rejected("data/call_id", f"no call {call_id} was opened")
    if call["status"] != "open":
        raise Rejected("data/call_id", f"call {call_id} is closed", status=409)
    return call


async def handle_proposal_submitted(conn: asyncpg.Connection, event: Event) -> None:
    proposal = data_as(event, ProposalSubmitted)
    call = await _open_call(conn, proposal.call_id)
    if proposal.submitted_on < call["opened_on"]:
        raise Rejected(
            "data/submitted_on",
            f"{proposal.submitted_on} is before the call opened ({call['opened_on']})",
        )
    if not await repository.add_proposal(conn, proposal):
        raise Rejected(
            "data/proposal_id", f"proposal {proposal.proposal_id} is already recorded", status=409
        )


async def handle_call_closed(conn: asyncpg.Connection, event: Event) -> None:
    closed = data_as(event, CallClosed)
    call = await _open_call(conn, closed.call_id)
    if closed.closed_on < call["opened_on"]:
        raise Rejected(
            "data/closed_on", f"{closed.closed_on} is before the call opened ({call['opened_on']})"
        )
    await repository.close_call(conn, closed)


HANDLERS: dict[str, Handler | SetHandler] = {
    ActivityHeld.TYPE: handle_activity_held,
    KnowledgeShared.TYPE: handle_knowledge_shared,
    TinlBudgetSpent.TYPE: handle_budget_spent,
    CallOpened.TYPE: handle_call_opened,
    ProposalSubmitted.TYPE: handle_proposal_submitted,
    CallClosed.TYPE: handle_call_closed,
    GlobalStarsBudgetSpent.TYPE: handle_budget_spent,
}
