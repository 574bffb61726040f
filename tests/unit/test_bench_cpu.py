"""The bench's CPU per event (``bench.procmem.CpuMeter``): each process tree's share, the time
the host stole from this virtual machine apart, and the rest of the machine as ``other``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench import procmem


@pytest.fixture
def readings(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[float]]]:
    """`/proc` readings handed out in order: the machine's (busy, stolen) and the processes'."""
    given: dict[str, list[float]] = {"busy": [], "steal": [], "dashboard": [], "postgres": []}
    pids = {1: "dashboard", 2: "postgres"}
    monkeypatch.setattr(
        procmem,
        "machine_busy_seconds",
        lambda: (given["busy"].pop(0), given["steal"].pop(0)),
    )
    monkeypatch.setattr(procmem, "tree_cpu_seconds", lambda pid: given[pids[pid]].pop(0))
    yield given


def test_the_time_the_host_stole_is_its_own_share_not_the_rest_of_the_machine(
    readings: dict[str, list[float]],
) -> None:
    # over the run: 10 s busy, 2 of them stolen; the dashboard 4 s, PostgreSQL 3 s
    readings |= {"busy": [100, 110], "steal": [7, 9], "dashboard": [1, 5], "postgres": [2, 5]}
    with procmem.CpuMeter({"dashboard": 1, "postgres": 2}) as meter:
        pass
    ms = meter.per_event(1_000)["cpu_ms_per_event"]
    assert ms == {"dashboard": 4.0, "postgres": 3.0, "steal": 2.0, "other": 1.0}
    assert meter.per_event(1_000)["machine_cpu_ms_per_event"] == 10.0


def test_on_a_quiet_host_nothing_is_stolen(readings: dict[str, list[float]]) -> None:
    readings |= {"busy": [100, 108], "steal": [7, 7], "dashboard": [1, 5], "postgres": [2, 5]}
    with procmem.CpuMeter({"dashboard": 1, "postgres": 2}) as meter:
        pass
    ms = meter.per_event(1_000)["cpu_ms_per_event"]
    assert ms["steal"] == 0.0
    assert ms["other"] == 1.0
