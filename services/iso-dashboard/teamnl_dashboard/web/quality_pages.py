"""The per-partner data-quality scorecard: the ``/partners`` page and
``/api/v1/partners/quality`` (both for signed-in members). Read from the ingestion services'
quality reports (:mod:`teamnl_dashboard.quality`); a window of ``hours`` (default: the
``partner-quality`` rule's).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from .. import api, quality
from ..auth.config import pool_of
from ..auth.dependencies import CurrentMember
from . import i18n
from .templating import render

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["dashboard"], responses=api.RESPONSES)

Hours = Annotated[
    int | None,
    Query(ge=1, le=quality.MAX_WINDOW_HOURS, description="hours looked back (default: the rule's)"),
]

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "nav.partners": "Partners",
        "quality.title": "Data quality per partner key",
        "quality.window": "Reports of the last {hours} hours (until {until})",
        "quality.partner": "Partner",
        "quality.service": "Service",
        "quality.accepted": "Accepted",
        "quality.rejected": "Rejected",
        "quality.replayed": "Replayed",
        "quality.conflicting": "Conflicting (409)",
        "quality.parked": "Dead-lettered",
        "quality.refused_share": "Refused",
        "quality.lateness_p50": "Lateness (median)",
        "quality.lateness_max": "Lateness (max)",
        "quality.silence": "Silent for",
        "quality.reasons": "Rejected by reason",
        "quality.none": "No quality reports yet: the ingestion services report once a minute.",
        "quality.dropped": "quality dropped",
        "quality.note": "Lateness: acceptance time minus the event's own time. Refused: rejected "
        "or conflicting, of every event sent. The rule partner-quality raises a finding.",
    },
    "nl": {
        "nav.partners": "Partners",
        "quality.title": "Datakwaliteit per partnersleutel",
        "quality.window": "Rapportages van de laatste {hours} uur (tot {until})",
        "quality.partner": "Partner",
        "quality.service": "Dienst",
        "quality.accepted": "Geaccepteerd",
        "quality.rejected": "Afgewezen",
        "quality.replayed": "Herhaald",
        "quality.conflicting": "Conflicterend (409)",
        "quality.parked": "Niet gepubliceerd",
        "quality.refused_share": "Geweigerd",
        "quality.lateness_p50": "Vertraging (mediaan)",
        "quality.lateness_max": "Vertraging (max)",
        "quality.silence": "Stil sinds",
        "quality.reasons": "Afgewezen per reden",
        "quality.none": "Nog geen kwaliteitsrapportages: de diensten rapporteren elke minuut.",
        "quality.dropped": "kwaliteit gedaald",
        "quality.note": "Vertraging: tijd van acceptatie min de eigen tijd van het event. "
        "Geweigerd: afgewezen of conflicterend, van alle verzonden events. De regel "
        "partner-quality meldt een bevinding.",
    },
}


class PartnerScore(BaseModel):
    partner: str
    service: str
    events: int = Field(description="accepted + replayed + conflicting + rejected")
    accepted: int
    replayed: int
    conflicting: int
    rejected: int
    rejected_by_reason: dict[str, int]
    parked: int = Field(description="accepted, never published: dead-lettered by the relay")
    refused_share: float | None = Field(description="(rejected + conflicting) / events")
    lateness_samples: int
    lateness_p50_seconds: float | None = Field(description="sample-weighted window medians")
    lateness_max_seconds: float | None
    last_accepted_at: datetime | None
    last_report_at: datetime
    silence_seconds: float | None = Field(description="since the last accepted event")


class Scorecard(BaseModel):
    since: datetime
    until: datetime
    hours: int
    partners: list[PartnerScore]


def install(app: FastAPI) -> None:
    for language, texts in MESSAGES.items():
        i18n.MESSAGES[language].update(texts)
    app.include_router(router)
    app.include_router(api_router)


async def _scorecard(request: Request, hours: int | None) -> dict[str, Any]:
    window = hours or request.app.state.settings.rules.partner_quality_hours
    return await quality.scorecard(pool_of(request), request.app.state.clock(), window)


@api_router.get(
    "/partners/quality",
    response_model=Scorecard,
    summary="Data quality per partner key: accepted, rejected by reason, replayed, "
    "conflicting, dead-lettered, lateness and silence",
)
async def partner_quality(
    request: Request, member: CurrentMember, hours: Hours = None
) -> dict[str, Any]:
    return await _scorecard(request, hours)


@router.get("/partners")
async def partners_page(request: Request, member: CurrentMember, hours: Hours = None) -> Response:
    card = await _scorecard(request, hours)
    share = request.app.state.settings.rules.partner_refused_share
    return await render(request, "partners.html", {"card": card, "threshold": share})
