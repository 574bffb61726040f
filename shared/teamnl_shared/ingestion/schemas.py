"""Response bodies of the ingestion API (documented in OpenAPI)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from teamnl_shared.problem import ProblemDetails


class Receipt(BaseModel):
    """What an accepted event answers (202), and every replay of it (200, same body)."""

    status: Literal["accepted"] = "accepted"
    id: str
    source: str
    type: str
    subject: str = Field(description="the aggregate id, also the Kafka key")
    topic: str = Field(description="the Kafka topic the event is published on")
    sequence: int = Field(description="position in this service's outbox")
    accepted_at: str = Field(description="RFC 3339 time of the first acceptance")


class BatchItem(BaseModel):
    index: int = Field(description="position of the event in the batch")
    status: int = Field(description="202 accepted, 200 replay, or the 4xx of `problem`")
    receipt: Receipt | None = None
    problem: ProblemDetails | None = None


class BatchResult(BaseModel):
    accepted: int
    replayed: int
    rejected: int
    results: list[BatchItem]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    database: bool
    kafka: bool = Field(description="information only: a broker outage keeps the pod ready")
    relay: bool = Field(description="the relay task runs")
    relay_leader: bool = Field(description="this process's relay holds the leader lock")
    relay_stuck: bool = Field(
        description="leader, Kafka reachable, yet the oldest unpublished row is older than "
        "relay_stuck_seconds"
    )
    outbox_backlog: int | None
    outbox_oldest_age_seconds: float | None
    outbox_parked: int | None = Field(
        description="rows the relay could never publish (teamnl-keys parked lists them)"
    )
    draining: bool
