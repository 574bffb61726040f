"""Percentiles and rates, computed the same way for every figure and its baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100); nan when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def summarise(
    values: Sequence[float], quantiles: Sequence[float] = (50, 95, 99)
) -> dict[str, float]:
    """``{"n", "mean", "p50", "p95", "p99", "max"}`` of the values."""
    ordered = sorted(values)
    summary: dict[str, float] = {"n": float(len(ordered))}
    summary["mean"] = sum(ordered) / len(ordered) if ordered else math.nan
    for q in quantiles:
        summary[f"p{q:g}"] = percentile(ordered, q)
    summary["max"] = ordered[-1] if ordered else math.nan
    return summary


def ratio(value: float, baseline: float) -> float:
    if not baseline or math.isnan(baseline) or math.isnan(value):
        return math.nan
    return value / baseline


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan
