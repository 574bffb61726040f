"""One handler per NLIB event type: check the domain rules on locked rows, update state.

The kit runs each handler inside the request's transaction and writes the outbox row after
it; a :class:`Rejected` rolls everything back and answers 4xx naming the field. A type whose
rule fits in its one statement is a :class:`SetHandler` (applied many at a time).
"""

from __future__ import annotations

import asyncpg

from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.nlib import (
    CityProgrammeUpdated,
    CompanySupported,
    LeadConverted,
    MissionFollowupHeld,
    MissionHeld,
    MissionPlanned,
    NlibBudgetSpent,
)
from teamnl_shared.ingestion import Handler, Rejected, SetHandler, data_as
from teamnl_shared.ingestion.budget import handle_budget_spent

from . import repository


def _already_held(event: Event) -> Rejected:
    mission_id = data_as(event, MissionPlanned).mission_id
    return Rejected("data/mission_id", f"mission {mission_id} was already held", status=409)


handle_mission_planned = SetHandler(
    table="missions",
    statement=repository.PLAN_MISSION,
    args=lambda event: repository.mission_args(data_as(event, MissionPlanned), "planned"),
    refusal=_already_held,
)

handle_mission_held = SetHandler(
    table="missions",
    statement=repository.UPSERT_MISSION,
    args=lambda event: repository.mission_args(data_as(event, MissionHeld), "held"),
)


async def handle_mission_followup_held(conn: asyncpg.Connection, event: Event) -> None:
    followup = data_as(event, MissionFollowupHeld)
    mission = await repository.lock_mission(conn, followup.mission_id)
    if mission is None or mission["status"] != "held":
        raise Rejected("data/mission_id", f"no mission {followup.mission_id} was held")
    if followup.held_on < mission["end_date"]:
        raise Rejected(
            "data/held_on",
            f"{followup.held_on} is before the mission ended ({mission['end_date']})",
        )
    if not await repository.add_followup(conn, followup):
        raise Rejected(
            "data/followup_id", f"follow-up {followup.followup_id} is already recorded", status=409
        )


async def handle_lead_converted(conn: asyncpg.Connection, event: Event) -> None:
    lead = data_as(event, LeadConverted)
    mission = await repository.lock_mission(conn, lead.mission_id)
    if mission is None:
        raise Rejected("data/mission_id", f"no mission {lead.mission_id} is known")
    if lead.converted_on < mission["start_date"]:
        raise Rejected(
            "data/converted_on",
            f"{lead.converted_on} is before the mission started ({mission['start_date']})",
        )
    if not await repository.add_lead(conn, lead):
        raise Rejected("data/lead_id", f"lead {lead.lead_id} was already converted", status=409)


handle_city_programme_updated = SetHandler(
    table="cities",
    statement=repository.UPSERT_CITY,
    args=lambda event: repository.city_args(data_as(event, CityProgrammeUpdated)),
)

handle_company_supported = SetHandler(
    table="companies",
    statement=repository.RECORD_SUPPORT,
    args=lambda event: repository.support_args(data_as(event, CompanySupported)),
)


HANDLERS: dict[str, Handler | SetHandler] = {
    MissionPlanned.TYPE: handle_mission_planned,
    MissionHeld.TYPE: handle_mission_held,
    MissionFollowupHeld.TYPE: handle_mission_followup_held,
    LeadConverted.TYPE: handle_lead_converted,
    CityProgrammeUpdated.TYPE: handle_city_programme_updated,
    CompanySupported.TYPE: handle_company_supported,
    NlibBudgetSpent.TYPE: handle_budget_spent,
}
