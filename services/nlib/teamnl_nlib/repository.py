"""All SQL of the NLIB service. Functions take a connection inside the caller's transaction."""

from __future__ import annotations

from typing import Any

import asyncpg

from teamnl_shared.contract.nlib import (
    CityProgrammeUpdated,
    CompanySupported,
    LeadConverted,
    Mission,
    MissionFollowupHeld,
    MissionHeld,
)


async def lock_mission(conn: asyncpg.Connection, mission_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT status, start_date, end_date FROM missions WHERE mission_id = $1 FOR UPDATE",
        mission_id,
    )


UPSERT_MISSION = (
    "INSERT INTO missions (mission_id, title, direction, country, city, city_of_opportunity,"
    " start_date, end_date, status, companies, business_mixers, leads)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    " ON CONFLICT (mission_id) DO UPDATE SET title = excluded.title,"
    " direction = excluded.direction, country = excluded.country, city = excluded.city,"
    " city_of_opportunity = excluded.city_of_opportunity,"
    " start_date = excluded.start_date, end_date = excluded.end_date,"
    " status = excluded.status, companies = excluded.companies,"
    " business_mixers = excluded.business_mixers, leads = excluded.leads, updated_at = now()"
)
"""A mission's row as planned or held (``$9`` the status)."""

PLAN_MISSION = UPSERT_MISSION + " WHERE missions.status <> 'held'"
"""The same, writing no row over a mission already held."""


def mission_args(mission: Mission, status: str) -> tuple[Any, ...]:
    counts = mission if isinstance(mission, MissionHeld) else None
    return (
        mission.mission_id,
        mission.title,
        mission.direction.value,
        mission.country,
        mission.city,
        mission.city_of_opportunity,
        mission.start_date,
        mission.end_date,
        status,
        counts.companies if counts else None,
        counts.business_mixers if counts else None,
        counts.leads if counts else None,
    )


async def add_followup(conn: asyncpg.Connection, followup: MissionFollowupHeld) -> bool:
    added = await conn.fetchval(
        "INSERT INTO mission_followups (followup_id, mission_id, held_on, kind, companies)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
        followup.followup_id,
        followup.mission_id,
        followup.held_on,
        followup.kind.value,
        followup.companies,
    )
    if added:
        await conn.execute(
            "UPDATE missions SET followups = followups + 1, updated_at = now()"
            " WHERE mission_id = $1",
            followup.mission_id,
        )
    return bool(added)


async def add_lead(conn: asyncpg.Connection, lead: LeadConverted) -> bool:
    added = await conn.fetchval(
        "INSERT INTO leads (lead_id, mission_id, company, contract_value_cents, converted_on)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
        lead.lead_id,
        lead.mission_id,
        lead.company,
        lead.contract_value_cents,
        lead.converted_on,
    )
    if added:
        await conn.execute(
            "UPDATE missions SET leads_converted = leads_converted + 1,"
            " contract_value_cents = contract_value_cents + $2, updated_at = now()"
            " WHERE mission_id = $1",
            lead.mission_id,
            lead.contract_value_cents,
        )
    return bool(added)


UPSERT_CITY = (
    "INSERT INTO cities (city_id, city, country, tier, soft_landing, updated_on)"
    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (city_id) DO UPDATE SET"
    " city = excluded.city, country = excluded.country, tier = excluded.tier,"
    " soft_landing = excluded.soft_landing, updated_on = excluded.updated_on"
)


def city_args(city: CityProgrammeUpdated) -> tuple[Any, ...]:
    return (
        city.city_id,
        city.city,
        city.country,
        city.tier.value,
        city.soft_landing.value,
        city.updated_on,
    )


RECORD_SUPPORT = (
    "INSERT INTO companies (company_id, company, last_kind, last_country, supports,"
    " last_supported_on) VALUES ($1, $2, $3, $4, 1, $5)"
    " ON CONFLICT (company_id) DO UPDATE SET company = excluded.company,"
    " last_kind = excluded.last_kind, last_country = excluded.last_country,"
    " supports = companies.supports + 1,"
    " last_supported_on = greatest(companies.last_supported_on, excluded.last_supported_on)"
)


def support_args(support: CompanySupported) -> tuple[Any, ...]:
    return (
        support.company_id,
        support.company,
        support.kind.value,
        support.country,
        support.supported_on,
    )
