"""The ramp's steps between two of its climb (``bench.run.refine``): a bisection between the
highest rate sustained and the lowest not, so the report's highest rate sustained is not
just the last step of a 1.5x climb."""

from __future__ import annotations

from typing import Any

from bench.report import targets_section
from bench.run import refine


def step(offered: float, limit: float) -> dict[str, Any]:
    """A step of a pipeline that sustains any rate up to `limit`."""
    sustained = offered <= limit
    return {
        "offered_rate": offered,
        "achieved_rate": offered if sustained else limit,
        "sustained": sustained,
        "e2e_ms": {"p50": 50.0, "p99": 150.0 if sustained else 2000.0},
        "not_projected": 0,
        "non_accepted": 0,
    }


def test_each_step_halves_the_gap_between_the_rates_still_apart() -> None:
    climbed = [step(rate, 1_300) for rate in (506, 759, 1_139, 1_709)]
    asked: list[float] = []

    def run(offered: float) -> dict[str, Any]:
        asked.append(offered)
        return step(offered, 1_300)

    found = refine(climbed, 3, run)

    # sqrt(1,139 x 1,709) = 1,395: not sustained; sqrt(1,139 x 1,395) = 1,261: sustained;
    # sqrt(1,261 x 1,395) = 1,326: not sustained
    assert asked == [1_395, 1_261, 1_326]
    assert [s["sustained"] for s in found] == [False, True, False]
    assert all(s["between"] for s in found)


def test_no_step_between_when_the_climb_never_broke_or_broke_at_once() -> None:
    def run(offered: float) -> dict[str, Any]:
        raise AssertionError(f"no step should run ({offered})")

    assert refine([step(rate, 10_000) for rate in (100, 150)], 2, run) == []
    assert refine([step(100, 50)], 2, run) == []


def test_the_report_names_the_highest_rate_found_between_and_the_lowest_not_sustained() -> None:
    ramp = [step(rate, 1_300) for rate in (759, 1_139, 1_709)]
    ramp += refine(ramp, 2, lambda offered: step(offered, 1_300))
    result = {
        "latency": {
            "fixed": {
                "offered_rate": 1_000,
                "achieved_rate": 1_000,
                "sustained": True,
                "e2e_ms": {"p50": 60.0, "p95": 100.0, "p99": 150.0},
            },
            "ramp": ramp,
            "max_sustained_rate": max(s["offered_rate"] for s in ramp if s["sustained"]),
        }
    }
    [row] = [line for line in targets_section(result) if line.startswith("| highest rate")]
    assert "| 1,261 ev/s |" in row
    assert "lowest rate not sustained, 1,395 ev/s" in row
