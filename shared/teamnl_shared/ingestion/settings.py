"""Settings every initiative service shares; each service subclasses this with its prefix."""

from __future__ import annotations

from pydantic import Field, model_validator

from teamnl_shared.settings import ServiceSettings

RECORD_HEADROOM_BYTES = 16 * 1024
"""What the relay adds to an accepted event's record (trace context, acceptance time) plus
Kafka's batch framing, with room to spare."""


class IngestionSettings(ServiceSettings):
    rate_limit_per_second: float = Field(
        20.0, gt=0, description="per partner key, in process: token bucket refill rate"
    )
    rate_limit_burst: int = Field(100, ge=1, description="per partner key: bucket size")
    max_event_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="largest single event: the body in single and binary mode, the Kafka "
        "record (data, attributes, extensions) of each event in batch mode; must stay "
        f"{RECORD_HEADROOM_BYTES} bytes below kafka_max_request_bytes",
    )
    kafka_max_request_bytes: int = Field(
        1024 * 1024,
        ge=64 * 1024,
        description="the relay producer's max_request_size (keep it at or below the "
        "broker's message.max.bytes); bounds max_event_bytes",
    )
    max_batch_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest batch body")
    max_batch_events: int = Field(1000, ge=1, le=1000, description="events in one batch")
    batch_bytes_at_once: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="bytes of batch bodies (as declared; max_batch_bytes where undeclared) "
        "read and handled at once in a process; a batch waits its turn beyond (a batch's "
        "events take several times its size in memory; a larger one goes alone)",
    )
    batch_wait_seconds: float = Field(
        30.0,
        gt=0,
        description="seconds a batch waits for its turn before it answers 503 with Retry-After",
    )
    ready_max_outbox_backlog: int = Field(
        10_000, ge=1, description="/readyz answers 503 once this many outbox rows wait"
    )
    relay_poll_interval: float = Field(
        1.0, gt=0, description="seconds between outbox polls when no NOTIFY arrives"
    )
    relay_vacuum_seconds: float = Field(
        5.0,
        ge=0,
        description="the relay vacuums the outbox at most this often while it deletes rows "
        "(a queue: its deleted rows slowed every read until autovacuum came); 0: never",
    )
    relay_flush_timeout: float = Field(
        15.0, gt=0, description="seconds shutdown waits for the relay to flush the outbox"
    )
    shutdown_grace_seconds: float = Field(
        20.0, ge=0, description="seconds in-flight requests get to finish on shutdown"
    )
    relay_stuck_seconds: float = Field(
        60.0,
        gt=0,
        description="/readyz reports the relay stuck (503) once the oldest unpublished outbox "
        "row is this old while Kafka is reachable",
    )
    db_pool_max_size: int = Field(10, ge=1, description="PostgreSQL connections per process")
    db_command_timeout: float = Field(
        10.0, gt=0, description="a statement unanswered this long fails the request with 503"
    )
    db_acquire_timeout: float = Field(
        5.0,
        gt=0,
        description="seconds a request waits for a database connection (connecting "
        "included) before it answers 503 with Retry-After",
    )
    group_commit_max_events: int = Field(
        256, ge=1, le=1000, description="single-event requests committed in one transaction"
    )
    group_commit_linger: float = Field(
        0.002,
        ge=0,
        le=1.0,
        description="seconds a group-commit writer waits for more requests once it has one "
        "(only while requests overlap: one client sending one at a time is never kept waiting)",
    )
    # One writer: while its transaction is in PostgreSQL the next requests queue and share
    # the next one. A second writer splits them into smaller groups: on the bench machine,
    # 64 clients posting to nlib, 0.54 ms of nlib's CPU per event with one, 0.60 with two
    # and 0.67 with four (1,498 / 1,408 / 1,318 ev/s; runs in the issue 11 notes).
    group_commit_writers: int = Field(
        1,
        ge=0,
        le=16,
        description="concurrent group-commit transactions (events routed by key, so one "
        "key's events keep their order); 0: one transaction per request",
    )
    key_cache_seconds: float = Field(
        5.0,
        ge=0,
        le=60,
        description="seconds a verified API key is trusted without asking "
        "the key store again: a revoked key is refused at most this long after revocation "
        "(0: ask on every request)",
    )
    quality_report_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="seconds between the per-partner data-quality reports each process "
        "writes to its outbox (nl.teamnl.ops.partner.quality.reported.v1; also at shutdown)",
    )
    keys_database_url: str = Field(
        "",
        description="empty: keys in the service's own database; one database shared by "
        "the three services makes another service's key answer 403 instead of 401",
    )

    @model_validator(mode="after")
    def _event_fits_a_kafka_request(self) -> IngestionSettings:
        """An accepted event the relay could never send would block its key for ever."""
        most = self.kafka_max_request_bytes - RECORD_HEADROOM_BYTES
        if self.max_event_bytes > most:
            raise ValueError(
                f"max_event_bytes ({self.max_event_bytes}) must be at most "
                f"kafka_max_request_bytes - {RECORD_HEADROOM_BYTES} ({most})"
            )
        return self
