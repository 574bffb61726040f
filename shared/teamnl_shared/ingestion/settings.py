"""Settings every initiative service shares; each service subclasses this with its prefix."""

from __future__ import annotations

from pydantic import Field

from teamnl_shared.settings import ServiceSettings


class IngestionSettings(ServiceSettings):
    rate_limit_per_second: float = Field(
        20.0, gt=0, description="per partner key, in process: token bucket refill rate"
    )
    rate_limit_burst: int = Field(100, ge=1, description="per partner key: bucket size")
    max_event_bytes: int = Field(256 * 1024, ge=1024, description="largest single event body")
    max_batch_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest batch body")
    max_batch_events: int = Field(1000, ge=1, le=1000, description="events in one batch")
    ready_max_outbox_backlog: int = Field(
        10_000, ge=1, description="/readyz answers 503 once this many outbox rows wait"
    )
    relay_poll_interval: float = Field(
        1.0, gt=0, description="seconds between outbox polls when no NOTIFY arrives"
    )
    relay_flush_timeout: float = Field(
        15.0, gt=0, description="seconds shutdown waits for the relay to flush the outbox"
    )
    shutdown_grace_seconds: float = Field(
        20.0, ge=0, description="seconds in-flight requests get to finish on shutdown"
    )
    db_pool_max_size: int = Field(10, ge=1, description="PostgreSQL connections per process")
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
        description="seconds a group-commit writer waits for more requests once it has one",
    )
    group_commit_writers: int = Field(
        2,
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
    keys_database_url: str = Field(
        "",
        description="empty: keys in the service's own database; one database shared by "
        "the three services makes another service's key answer 403 instead of 401",
    )
