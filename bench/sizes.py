"""How big each run is: ``smoke`` for CI (minutes), ``full`` for people (an hour or so)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchSize:
    name: str
    single_seconds: float  # closed loop, per side (baseline, pipeline)
    single_concurrency: int
    batch_events: int
    batch_size: int
    batch_concurrency: int
    latency_rate: float  # events/s offered for the latency figure
    latency_seconds: float
    ramp_rates: tuple[float, ...]  # tried in order until one fails
    ramp_seconds: float  # 60 s in full, as the issue asks
    projected_events: int  # loaded straight into Kafka for the dashboard figures
    get_seconds: float
    get_concurrency: int
    drain_timeout: float


SIZES = {
    "smoke": BenchSize(
        "smoke",
        single_seconds=8,
        single_concurrency=16,
        batch_events=3_000,
        batch_size=100,
        batch_concurrency=3,
        latency_rate=20,
        latency_seconds=10,
        ramp_rates=(20, 40),
        ramp_seconds=8,
        projected_events=5_000,
        get_seconds=5,
        get_concurrency=8,
        drain_timeout=60,
    ),
    "full": BenchSize(
        "full",
        single_seconds=60,
        single_concurrency=64,
        batch_events=150_000,
        batch_size=500,
        batch_concurrency=6,
        latency_rate=100,
        latency_seconds=60,
        ramp_rates=(100, 150, 200, 300, 400, 600, 800),
        ramp_seconds=60,
        projected_events=1_000_000,
        get_seconds=60,
        get_concurrency=16,
        drain_timeout=1800,
    ),
}
