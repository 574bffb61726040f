"""The one place the rules engine is assembled from the dashboard settings."""

from __future__ import annotations

from ..settings import DashboardSettings
from .catalogue import all_rules
from .engine import Clock, RulesEngine, system_clock


def build_engine(settings: DashboardSettings, clock: Clock = system_clock) -> RulesEngine:
    return RulesEngine(
        all_rules(settings),
        allocations_cents=settings.allocations_cents,
        duplication_window_days=settings.rules.overlap_window_days,
        clock=clock,
    )
