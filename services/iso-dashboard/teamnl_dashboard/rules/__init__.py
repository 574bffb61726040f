"""The coherence rules engine: pure rules, their facts, findings and the score."""

from .build import build_engine
from .catalogue import Rule, all_rules, describe, pair_activities
from .engine import Clock, RulesEngine, system_clock
from .model import Facts, Hit, Severity

__all__ = [
    "Clock",
    "Facts",
    "Hit",
    "Rule",
    "RulesEngine",
    "Severity",
    "all_rules",
    "build_engine",
    "describe",
    "pair_activities",
    "system_clock",
]
