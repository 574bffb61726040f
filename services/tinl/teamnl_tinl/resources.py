"""What the TINL read API exposes: activities, knowledge sharing, Global Stars calls."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel

from teamnl_shared.ingestion import Resource
from teamnl_shared.ingestion.budget import BUDGET_RESOURCE


class ActivityState(BaseModel):
    activity_id: str
    title: str
    kind: str
    market: str
    country: str
    city: str
    start_date: date
    end_date: date
    partners: list[str]


class KnowledgeState(BaseModel):
    knowledge_id: str
    topic: str
    partners: list[str]
    shared_on: date


class CallState(BaseModel):
    call_id: str
    country: str
    theme: str
    negotiation_started_on: date
    opened_on: date
    status: str
    closed_on: date | None
    dutch_proposals: int | None
    proposals_submitted: int
    dutch_proposals_submitted: int


class ProposalState(BaseModel):
    proposal_id: str
    call_id: str
    lead_organisation: str
    dutch: bool
    submitted_on: date


RESOURCES = (
    Resource(
        "activities",
        "activities",
        "activity_id",
        ActivityState,
        {"market": str, "kind": str, "country": str},
        "Joint TINL activities",
    ),
    Resource(
        "knowledge",
        "knowledge_sharings",
        "knowledge_id",
        KnowledgeState,
        {},
        "Knowledge shared between the TINL partners",
    ),
    Resource(
        "calls",
        "calls",
        "call_id",
        CallState,
        {"country": str, "status": str},
        "Global Stars calls",
    ),
    Resource(
        "proposals",
        "proposals",
        "proposal_id",
        ProposalState,
        {"call_id": str, "dutch": bool},
        "Proposals submitted to Global Stars calls",
    ),
    BUDGET_RESOURCE,
)
