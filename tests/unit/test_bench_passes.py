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
    stack = SimpleNamespace(workdir=tmp_path, run_id="r", cpu_pids=dict)
    bench = run.Bench(stack, SIZES["smoke"])  # type: ignore[arg-type]  # what _closed reads
    target = Target("nlib", "http://127.0.0.1:1")
    # the labels of the nlib and durable one-client passes end alike, as in `single`
    for label in ("single-nlib-one-client", "single-durable-one-client", "single-nlib"):
        bench._closed(target, label, one_client=label.endswith("client"))
    bench._closed(target, "single-nlib")
    assert len({config.run_id for config in sent}) == 4
