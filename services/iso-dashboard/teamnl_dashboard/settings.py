"""Settings of the ISO NL dashboard (env prefix ``DASHBOARD_``).

Budget allocations are yearly, in euro cents, per event family. The letter gives NLIB
EUR 6 M and Global Stars EUR 1 M; TINL and De Werkplaats share the rest (EUR 3 M) of the
public EUR 4 M, split evenly here until ISO NL decides otherwise
(``DASHBOARD_ALLOCATIONS_CENTS='{"tinl": 200000000, "werkplaats": 100000000, ...}'``).
"""

from __future__ import annotations

import os

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from teamnl_shared.settings import ServiceSettings, is_placeholder

from .auth.throttle import LoginThrottle

DEFAULT_SESSION_SECRET = "change-me-dashboard-session-secret"  # noqa: S105 - refused in production

DEFAULT_ALLOCATIONS_CENTS: dict[str, int] = {
    "nlib": 600_000_000,
    "globalstars": 100_000_000,
    "tinl": 150_000_000,
    "werkplaats": 150_000_000,
}


class RuleThresholds(BaseModel):
    """Thresholds of the coherence rules; nested as ``DASHBOARD_RULES__<NAME>``."""

    followup_days: int = Field(60, ge=1, description="a held mission needs a follow-up within")
    overlap_window_days: int = Field(
        30, ge=0, description="NLIB and TINL in one market within this many days: duplication"
    )
    isolation_days: int = Field(
        365, ge=1, description="Werkplaats project isolated when NLIB/TINL absent this long"
    )
    focus_market_gap_days: int = Field(
        365, ge=1, description="a focus market without activity (TINL plans per year)"
    )
    city_gap_days: int = Field(365, ge=1, description="a City of Opportunity without activity")
    lead_time_max_months: int = Field(5, ge=1, description="Global Stars lead time limit")
    lead_time_target_min_months: int = Field(4, ge=0, description="lead time target, lower end")
    budget_pace_tolerance: float = Field(
        0.25, gt=0, le=1, description="|spent share - elapsed share of the year| tolerated"
    )
    silent_days: int = Field(30, ge=1, description="a service publishing nothing this long")
    deadletter_window_days: int = Field(7, ge=1, description="dead letters looked back on")
    lead_conversion_days: int = Field(
        365, ge=1, description="a mission's leads should convert to a contract within"
    )
    partner_idle_days: int = Field(
        365, ge=1, description="a TINL convenant partner taking part in nothing this long"
    )
    partner_refused_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="partner-quality: share of a partner key's events refused (rejected or "
        "conflicting) at which its quality counts as dropped",
    )
    partner_quality_hours: int = Field(
        24,
        ge=1,
        le=24 * 90,
        description="partner-quality: hours of quality reports judged (and shown by default)",
    )
    partner_min_events: int = Field(
        20, ge=1, description="partner-quality: fewer events in the window are not judged"
    )
    partner_silent_days: int = Field(
        7, ge=1, description="partner-quality: a partner key accepted nothing this long"
    )


class DashboardSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        extra="ignore", env_prefix="DASHBOARD_", env_nested_delimiter="__"
    )

    service_name: str = "iso-dashboard"
    port: int = 8100
    session_secret: str = DEFAULT_SESSION_SECRET
    secure_cookies: bool = False
    login: LoginThrottle = Field(
        default_factory=LoginThrottle,
        description="sign-in throttling per account and per client address",
    )
    form_max_bytes: int = Field(
        64 * 1024, ge=1024, description="largest request body a form or API POST may send (413)"
    )
    form_max_fields: int = Field(20, ge=5, description="most fields one posted form may have (400)")
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="on SIGTERM, open requests and live streams get this long"
    )
    consumer_group: str = "iso-dashboard"
    worker_metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="a `teamnl_dashboard.worker` process serves its Prometheus metrics on this"
        " port, at `host` (0: none; it also exports them over OTLP when"
        " OTEL_EXPORTER_OTLP_ENDPOINT is set)",
    )
    consumers: int = Field(
        1,
        ge=1,
        le=8,
        description="consumers of the group in each dashboard process: while one waits for"
        " PostgreSQL, another projects (Kafka splits the partitions between all of them);"
        " more work off a backlog faster but cost memory and CPU per event at low rates",
    )
    consumer_session_timeout_ms: int = Field(10_000, ge=6_000)
    fetch_wait_ms: int = Field(
        50,
        ge=0,
        le=500,
        description="how long Kafka holds a fetch for more records while less than"
        " `FETCH_MIN_BYTES` (64 KiB) has arrived: at a low rate one transaction, NOTIFY and"
        " offset commit then carry this many milliseconds of events instead of each event"
        " its own, and events wait at most this long for it (0: a fetch answers as soon as"
        " any record has arrived; at 150 ev/s, 50 instead of 20 cost the dashboard a"
        " quarter less CPU)",
    )
    totals_fold_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        description="the running totals' delta rows are folded into one row per key at most"
        " this often after a commit added some, beside the consumers, in a transaction of"
        " their own (readers sum a key's rows, so unfolded ones read the same)",
    )
    totals_vacuum_seconds: float = Field(
        10.0,
        ge=1,
        le=3600,
        description="after a fold, the running totals' tables are vacuumed at most this often:"
        " every fold rewrites their rows, and their dead rows, until autovacuum came, made"
        " each fold read thousands of pages",
    )
    consumer_stall_seconds: float = Field(
        60.0, gt=0, description="/readyz reports the consumer stalled after failing this long"
    )
    rules_interval_seconds: float = Field(60.0, gt=0, description="time-based rules run every")
    rules_settle_seconds: float = Field(
        2.0,
        ge=0,
        description="the rules worker waits this long after a fetch queued rules, so that"
        " fetches committed close together share one evaluation (at most one evaluation"
        " per this many seconds under a steady stream; findings follow by about as much;"
        " at 0.5 the evaluations cost about 0.1 cores under any steady stream)",
    )
    rules_poll_seconds: float = Field(
        1.0, gt=0, description="the rules worker also looks for rules queued by other instances"
    )
    rules_stall_seconds: float = Field(
        60.0, gt=0, description="/readyz reports the rules stalled after failing this long"
    )
    rebuild_processes: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=64,
        description="a rebuild replays a large log in this many processes, split by partition"
        " (default: the machine's cores)",
    )
    allocations_cents: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_ALLOCATIONS_CENTS)
    )
    werkplaats_targets: dict[int, int] = Field(
        default_factory=lambda: {2019: 20},
        description="portfolio target per year; years not listed use werkplaats_yearly_target",
    )
    werkplaats_yearly_target: int = 30
    rules: RuleThresholds = Field(default_factory=RuleThresholds)
    overview_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="the overview's data (page and JSON) of the current reading is kept"
        " until the projections change (NOTIFY), at most this long; 0: not kept",
    )
    report_browser: str = Field(
        "chromium", description="headless Chromium that prints the progress report as PDF"
    )

    @property
    def group(self) -> str:
        """The consumer group, prefixed like the topics so test runs never share one."""
        return self.topic(self.consumer_group)

    def werkplaats_target(self, year: int) -> int:
        return self.werkplaats_targets.get(year, self.werkplaats_yearly_target)

    def check_production(self) -> None:
        if is_placeholder(self.session_secret) or len(self.session_secret) < 32:
            raise ValueError(
                "DASHBOARD_SESSION_SECRET must be set (32+ characters, not a placeholder)"
                " in production"
            )
        if not self.secure_cookies:
            raise ValueError("DASHBOARD_SECURE_COOKIES must be true in production")
