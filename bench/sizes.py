"""How big each run is: ``smoke`` for CI (minutes), ``full`` for people (within 30 minutes,
as issue 11 asks, with the flame graphs' passes of ``--profile``)."""

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
    ramp_start: float  # the ramp's first rate (events/s), low
    ramp_factor: float  # each next step offers this many times the rate before
    ramp_max_steps: int  # a bound on the time only: the ramp stops at the first failed step
    ramp_seconds: float  # each step's length: its p99 over thousands of requests
    ramp_refinements: int  # steps between the last rate sustained and the first not
    projected_events: int  # loaded straight into Kafka for the dashboard figures
    chain_share: float  # of those, the share in dependent chains (bench.chains)
    get_seconds: float
    get_concurrency: int
    drain_timeout: float
    profile_seconds: float  # each flame graph's own pass (``--profile``), after its figure

    def ramp_rates(self) -> list[float]:
        """The rates the ramp climbs through, low to high (it stops where the pipeline breaks)."""
        steps = range(self.ramp_max_steps)
        return [round(self.ramp_start * self.ramp_factor**step) for step in steps]


PHASES = ("single", "batch", "latency", "dashboard", "rebuild")
"""The phases of a run, in their order (``--only`` picks some)."""

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
        ramp_start=10,
        ramp_factor=2,
        ramp_max_steps=8,
        ramp_seconds=8,
        ramp_refinements=1,
        projected_events=5_000,
        chain_share=0.2,
        get_seconds=5,
        get_concurrency=8,
        drain_timeout=60,
        profile_seconds=3,
    ),
    "full": BenchSize(
        "full",
        single_seconds=30,
        single_concurrency=64,
        batch_events=150_000,
        batch_size=500,
        batch_concurrency=6,
        latency_rate=1000,
        latency_seconds=30,
        ramp_start=100,
        ramp_factor=1.5,
        ramp_max_steps=12,
        ramp_seconds=40,  # 60 took the full run to 30.1-33.6 minutes (the limit is 30), 45 to
        # 30.4 on the slowest host yet (no-op FastAPI 2,726 ev/s)
        ramp_refinements=2,
        projected_events=1_000_000,
        chain_share=0.1,
        get_seconds=30,
        get_concurrency=16,
        drain_timeout=1800,
        profile_seconds=10,
    ),
}
