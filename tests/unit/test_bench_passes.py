"""Each closed-loop pass of the bench sends events of its own (one reusing another pass's
ids on the same service would be answered as replays, 200 with nothing written)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench import run
from bench.loadgen import LoadConfig, Target
from bench.sizes import SIZES


def test_every_closed_pass_has_its_own_run_id(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sent: list[LoadConfig] = []

    def loadgen(config: LoadConfig, *_: Any, **__: Any) -> dict[str, Any]:
        sent.append(config)
        return {"events_acked": 1, "loadgen_cpu_s": 0.0}

    monkeypatch.setattr(run, "run_loadgen", loadgen)
    stack = SimpleNamespace(
        workdir=tmp_path, run_id="r", cpu_pids=dict, services={}, metrics_token="t" * 43
    )
    bench = run.Bench(stack, SIZES["smoke"])  # type: ignore[arg-type]  # what _closed reads
    target = Target("nlib", "http://127.0.0.1:1")
    # the labels of the nlib and durable one-client passes end alike, as in `single`
    for label in ("single-nlib-one-client", "single-durable-one-client", "single-nlib"):
        bench._closed(target, label, one_client=label.endswith("client"))
    bench._closed(target, "single-nlib")
    assert len({config.run_id for config in sent}) == 4


def test_each_side_goes_first_in_its_round() -> None:
    sides = ["noop", "durable", "nlib"]
    assert [run.rotated(sides, turn)[0] for turn in range(4)] == ["noop", "durable", "nlib", "noop"]
    assert all(sorted(run.rotated(sides, turn)) == sorted(sides) for turn in range(3))


def test_a_side_reports_its_median_round_whole_with_every_rounds_rate() -> None:
    rounds = [
        {"achieved_rate": 900.0, "service_ms": {"p50": 70.0}},
        {"achieved_rate": 1_100.0, "service_ms": {"p50": 50.0}},
        {"achieved_rate": 1_000.0, "service_ms": {"p50": 60.0}},
    ]
    median = run.median_round(rounds)
    assert median["achieved_rate"] == 1_000.0 and median["service_ms"] == {"p50": 60.0}
    assert median["round_rates"] == [900.0, 1_100.0, 1_000.0]
    assert "round_rates" not in rounds[2]  # the round itself is left as it was
