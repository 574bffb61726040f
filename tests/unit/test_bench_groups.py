"""The bench's events per commit (``bench.groups``): read from the services' own
group-size histogram before and after a figure, as its Prometheus page serves it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest

from bench.groups import between, parse
from bench.report import rows
from teamnl_shared.telemetry import Telemetry, setup_telemetry


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    made = setup_telemetry("nlib", "0", "test")
    yield made
    made.shutdown()


def page(telemetry: Telemetry) -> str:
    return generate_latest(telemetry.registry).decode()


def test_a_stretch_counts_only_the_transactions_committed_within_it(
    telemetry: Telemetry,
) -> None:
    metrics = telemetry.metrics
    metrics.group_committed(service="nlib", events=40)  # before the stretch
    before = {"nlib": parse(page(telemetry), "nlib")}
    for events in (1, 3, 3, 9):
        metrics.group_committed(service="nlib", events=events)
    metrics.group_committed(service="tinl", events=5)  # another service's, on the same page
    after = {"nlib": parse(page(telemetry), "nlib"), "tinl": parse(page(telemetry), "tinl")}

    stretch = between(before, after)

    assert stretch["services"]["nlib"] == {
        "transactions": 4,
        "events": 16,
        "mean": 4.0,
        "median_at_most": 4.0,  # 1, 3, 3 of the four are in the buckets up to 4
    }
    assert stretch["services"]["tinl"]["events"] == 5
    assert stretch["all"] == {"transactions": 5, "events": 21, "mean": 4.2}


def test_a_service_that_committed_nothing_or_started_again_has_no_figure(
    telemetry: Telemetry,
) -> None:
    telemetry.metrics.group_committed(service="nlib", events=8)
    earlier = {"nlib": parse(page(telemetry), "nlib")}
    assert between(earlier, earlier) == {}
    again = setup_telemetry("nlib", "0", "test")  # the service started again: counts anew
    try:
        restarted = {"nlib": parse(page(again), "nlib")}
    finally:
        again.shutdown()
    assert between(earlier, restarted) == {}


def test_the_report_shows_the_events_per_commit_of_each_ramp_step() -> None:
    step = {
        "offered_rate": 338.0,
        "achieved_rate": 338.0,
        "sustained": True,
        "e2e_ms": {"p50": 50.0, "p99": 220.0},
        "not_projected": 0,
        "non_accepted": 0,
        "groups": {"all": {"transactions": 100, "events": 812, "mean": 8.12}},
    }
    fixed = {**step, "projected": 812, "hops_ms": {}, "e2e_ms": {"p50": 1, "p95": 2, "p99": 3}}
    latency = {"fixed": fixed, "ramp": [step, {**step, "groups": {}}], "max_sustained_rate": 338}

    cells = [row[1] for row in rows({"latency": latency})]

    assert "(812 events, 8.1 events per commit)" in cells[0]
    assert cells[1].endswith("0 late, 0 non-2xx, 8.1 events per commit")
    assert cells[2].endswith("0 late, 0 non-2xx")  # a step without the figure says nothing
