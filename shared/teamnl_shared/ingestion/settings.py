"""Settings every initiative service shares; each service subclasses this with its prefix."""

from __future__ import annotations

from pydantic import Field

from teamnl_shared.settings import ServiceSettings


class IngestionSettings(ServiceSettings):
    # Per partner key, in process: a token bucket refilled at `rate_limit_per_second`.
    rate_limit_per_second: float = Field(20.0, gt=0)
    rate_limit_burst: int = Field(100, ge=1)
    max_event_bytes: int = Field(256 * 1024, ge=1024)
    max_batch_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(1000, ge=1, le=1000)
    # /readyz answers 503 once this many outbox rows wait for the relay.
    ready_max_outbox_backlog: int = Field(10_000, ge=1)
    relay_poll_interval: float = Field(1.0, gt=0)
    # How long shutdown waits for the relay to flush the outbox.
    relay_flush_timeout: float = Field(15.0, gt=0)
    shutdown_grace_seconds: float = Field(20.0, ge=0)
    db_pool_max_size: int = Field(10, ge=1)
    # Empty: the keys live in the service's own database. Set it to one database shared by
    # the three services so a key of another service is recognised (and answered 403).
    keys_database_url: str = ""
