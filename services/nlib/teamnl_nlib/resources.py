"""What the NLIB read API exposes: one model per state table."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel

from teamnl_shared.ingestion import Resource
from teamnl_shared.ingestion.budget import BUDGET_RESOURCE


class MissionState(BaseModel):
    mission_id: str
    title: str
    direction: str
    country: str
    city: str
    city_of_opportunity: str | None
    start_date: date
    end_date: date
    status: str
    companies: int | None
    business_mixers: int | None
    leads: int | None
    followups: int
    leads_converted: int
    contract_value_cents: int


class FollowupState(BaseModel):
    followup_id: str
    mission_id: str
    held_on: date
    kind: str
    companies: int


class LeadState(BaseModel):
    lead_id: str
    mission_id: str
    company: str
    contract_value_cents: int
    converted_on: date


class CityState(BaseModel):
    city_id: str
    city: str
    country: str
    tier: str
    soft_landing: str
    updated_on: date


class CompanyState(BaseModel):
    company_id: str
    company: str
    last_kind: str
    last_country: str | None
    supports: int
    last_supported_on: date


RESOURCES = (
    Resource(
        "missions",
        "missions",
        "mission_id",
        MissionState,
        {"country": str, "direction": str, "status": str},
        "Trade missions",
    ),
    Resource(
        "followups",
        "mission_followups",
        "followup_id",
        FollowupState,
        {"mission_id": str, "kind": str},
        "Mission follow-ups",
    ),
    Resource(
        "leads", "leads", "lead_id", LeadState, {"mission_id": str}, "Leads converted to contracts"
    ),
    Resource(
        "cities",
        "cities",
        "city_id",
        CityState,
        {"country": str, "tier": str, "soft_landing": str},
        "Cities of Opportunity",
    ),
    Resource(
        "companies",
        "companies",
        "company_id",
        CompanyState,
        {"last_kind": str},
        "Companies NLIB supported",
    ),
    BUDGET_RESOURCE,
)
