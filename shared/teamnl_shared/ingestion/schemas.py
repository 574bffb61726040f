"""Response bodies of the ingestion API (documented in OpenAPI)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .problems import ProblemDetails


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
    kafka: bool
    relay: bool
    outbox_backlog: int | None
    draining: bool
