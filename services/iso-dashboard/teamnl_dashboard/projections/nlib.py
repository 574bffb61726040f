"""NLinBusiness projections: missions, follow-ups, converted leads, cities, support."""

from __future__ import annotations

import asyncpg

from teamnl_shared.contract import nlib
from teamnl_shared.contract.envelope import Event

from .network import record_activity, record_spend

_MISSION_COLUMNS = (
    "mission_id, title, direction, country, city, city_of_opportunity, start_date, end_date"
)


def _mission_values(data: nlib.Mission) -> tuple[object, ...]:
    return (
        data.mission_id,
        data.title,
        data.direction.value,
        data.country,
        data.city,
        data.city_of_opportunity,
        data.start_date,
        data.end_date,
    )


async def mission_planned(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, nlib.MissionPlanned)
    await conn.execute(
        f"INSERT INTO nlib_missions ({_MISSION_COLUMNS}, status, planned_event_id)"  # noqa: S608
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'planned', $9)"
        " ON CONFLICT (mission_id) DO UPDATE SET planned_event_id = excluded.planned_event_id"
        " WHERE nlib_missions.status = 'planned'",
        *_mission_values(data),
        event.id,
    )


async def mission_held(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, nlib.MissionHeld)
    await conn.execute(
        f"INSERT INTO nlib_missions ({_MISSION_COLUMNS}, status, companies, business_mixers,"  # noqa: S608
        " leads, held_event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'held', $9, $10, $11, $12)"
        " ON CONFLICT (mission_id) DO UPDATE SET title = excluded.title,"
        " direction = excluded.direction, country = excluded.country, city = excluded.city,"
        " city_of_opportunity = excluded.city_of_opportunity, start_date = excluded.start_date,"
        " end_date = excluded.end_date, status = 'held', companies = excluded.companies,"
        " business_mixers = excluded.business_mixers, leads = excluded.leads,"
        " held_event_id = excluded.held_event_id",
        *_mission_values(data),
        data.companies,
        data.business_mixers,
        data.leads,
        event.id,
    )
    await record_activity(
        conn,
        event,
        kind="mission",
        on_date=data.start_date,
        market=data.country,
        country=data.country,
        city=data.city_of_opportunity or data.city,
    )


async def followup_held(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, nlib.MissionFollowupHeld)
    await conn.execute(
        "INSERT INTO nlib_followups (followup_id, mission_id, held_on, kind, companies, event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (followup_id) DO UPDATE SET"
        " held_on = excluded.held_on, kind = excluded.kind, companies = excluded.companies,"
        " event_id = excluded.event_id",
        data.followup_id,
        data.mission_id,
        data.held_on,
        data.kind.value,
        data.companies,
        event.id,
    )
    await record_activity(conn, event, kind="followup", on_date=data.held_on)


async def lead_converted(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, nlib.LeadConverted)
    await conn.execute(
        "INSERT INTO nlib_leads_converted (lead_id, mission_id, company, contract_value_cents,"
        " converted_on, event_id) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (lead_id) DO UPDATE SET mission_id = excluded.mission_id,"
        " company = excluded.company, contract_value_cents = excluded.contract_value_cents,"
        " converted_on = excluded.converted_on, event_id = excluded.event_id",
        data.lead_id,
        data.mission_id,
        data.company,
        data.contract_value_cents,
        data.converted_on,
        event.id,
    )


async def city_programme_updated(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, nlib.CityProgrammeUpdated)
    await conn.execute(
        "INSERT INTO nlib_cities (city_id, city, country, tier, soft_landing, updated_on,"
        " event_id) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (city_id) DO UPDATE SET city = excluded.city, country = excluded.country,"
        " tier = excluded.tier, soft_landing = excluded.soft_landing,"
        " updated_on = excluded.updated_on, event_id = excluded.event_id"
        " WHERE nlib_cities.updated_on <= excluded.updated_on",
        data.city_id,
        data.city,
        data.country,
        data.tier.value,
        data.soft_landing.value,
        data.updated_on,
        event.id,
    )


async def company_supported(conn: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, nlib.CompanySupported)
    await conn.execute(
        "INSERT INTO nlib_companies_supported (event_id, source, company_id, kind, country,"
        " supported_on) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        event.id,
        event.source,
        data.company_id,
        data.kind.value,
        data.country,
        data.supported_on,
    )
    await record_activity(
        conn,
        event,
        kind="support",
        on_date=data.supported_on,
        market=data.country,
        country=data.country,
    )


PROJECTORS = {
    nlib.MissionPlanned.TYPE: mission_planned,
    nlib.MissionHeld.TYPE: mission_held,
    nlib.MissionFollowupHeld.TYPE: followup_held,
    nlib.LeadConverted.TYPE: lead_converted,
    nlib.CityProgrammeUpdated.TYPE: city_programme_updated,
    nlib.CompanySupported.TYPE: company_supported,
    nlib.NlibBudgetSpent.TYPE: record_spend,
}
