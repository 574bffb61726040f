"""Operations events, v1: what the ingestion services report about their partners.

Not initiative facts: no partner key may send them (no service accepts them over HTTP); an
ingestion service writes them through its own outbox. The dashboard reads them for the
per-partner data-quality scorecard.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field, Strict, field_validator

from teamnl_shared.contract.types import EventData, Identifier, Slug, event, not_before

MAX_REPORTED_COUNT = 10**9
"""Events of one partner in one report window: far above any real rate."""
MAX_REJECTION_REASONS = 32
"""Distinct rejection reasons in one report (problem kinds: a short, fixed list)."""
MAX_LATENESS_SECONDS = 10.0**10
"""About 300 years: a partner-supplied ``time`` further off than this is clamped."""

OpsCount = Annotated[int, Strict(), Field(ge=0, le=MAX_REPORTED_COUNT)]
Seconds = Annotated[float, Field(ge=0, le=MAX_LATENESS_SECONDS, allow_inf_nan=False)]

PARTNER_QUALITY_EXAMPLE = {
    "report_id": "nlib-3f2a9c1e-000042-rvo",
    "service": "nlib",
    "reporter": "nlib-3f2a9c1e",
    "partner": "rvo",
    "window_start": "2019-03-14T10:00:00Z",
    "window_end": "2019-03-14T10:01:00Z",
    "accepted": 118,
    "replayed": 3,
    "conflicting": 1,
    "parked": 0,
    "rejected": {"invalid-event": 4, "forbidden": 1},
    "lateness_samples": 118,
    "lateness_p50_seconds": 2.5,
    "lateness_max_seconds": 86400.0,
    "last_accepted_at": "2019-03-14T10:00:59Z",
}


@event(
    "nl.teamnl.ops.partner.quality.reported.v1",
    aggregate="partner",
    example=PARTNER_QUALITY_EXAMPLE,
)
class PartnerQualityReported(EventData):
    """An ingestion service reports what one partner key sent it in one window."""

    # Counted in memory per process (never a database write per refused request) and
    # reported once per window with activity; replicas report their own windows, so the
    # dashboard sums the reports of every reporter.

    report_id: Identifier = Field(description="unique per reporter, window and partner")
    service: Slug = Field(description="the ingestion service that counted")
    reporter: Identifier = Field(description="the process that counted (one per replica)")
    partner: Slug
    window_start: AwareDatetime
    window_end: AwareDatetime
    accepted: OpsCount = Field(description="events accepted (202)")
    replayed: OpsCount = Field(description="replays of an accepted event (200)")
    conflicting: OpsCount = Field(description="an id sent again with other content (409)")
    parked: OpsCount = Field(
        description="accepted events the outbox relay could never publish (dead-lettered)"
    )
    rejected: dict[Slug, OpsCount] = Field(
        max_length=MAX_REJECTION_REASONS,
        description="events refused (4xx other than 409), by problem kind",
    )
    lateness_samples: OpsCount = Field(description="accepted events the lateness is read from")
    lateness_p50_seconds: Seconds | None = Field(
        description="median of acceptance time minus the event's own time (0 if in future)"
    )
    lateness_max_seconds: Seconds | None
    last_accepted_at: AwareDatetime | None = Field(description="the latest acceptance")

    check_window_end = field_validator("window_end")(not_before("window_start"))
