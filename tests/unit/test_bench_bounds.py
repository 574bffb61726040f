"""The bench report's bound per target: the most the machine can give whatever the code,
from the run's own baselines (``bench.report.bounds``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.report import (
    BENCH_BUDGET_S,
    accept_floor,
    bounds,
    cpu_section,
    projection_ms,
    rows,
    targets_section,
    telemetry_share,
    worker_ratio,
)
from bench.run import RESULTS, results_folder
from bench.sizes import PHASES


def cpu(ms: float) -> dict[str, Any]:
    return {
        "cpu": {
            "machine_cpu_ms_per_event": ms,
            "cpu_ms_per_event": {},
            "cores": 2,
            "cores_busy": 1.5,
        }
    }


def by_process(ms: float, process: str = "dashboard") -> dict[str, Any]:
    """:func:`cpu`, all of it spent by `process`."""
    return {"cpu": cpu(ms)["cpu"] | {"cpu_ms_per_event": {process: ms}}}


def run() -> dict[str, Any]:
    """A run on 2 cores: a no-op request costs 0.5 ms of CPU, a projection 1.0 ms in one
    process and 0.5 ms with a worker, validating a record 0.25 ms (4,000 per second)."""
    return {
        "single": {
            "baseline": {"achieved_rate": 1_000, **cpu(0.5)},
            "durable": {"achieved_rate": 400, **cpu(1.0)},
        },
        "dashboard": {"projection": cpu(1.0), "projection_with_worker": cpu(0.5)},
        "batch": {"baseline": {"rate": 10_000}},
        "latency": {"fixed": {"offered_rate": 1_000}},
        "rebuild": {"bare_validate": {"rate": 4_000}},
    }


def test_an_accepted_event_costs_at_least_a_no_op_request_and_its_cheapest_projection() -> None:
    r = run()
    assert projection_ms(r) == 0.5
    floor = accept_floor(r)
    assert floor is not None and floor[1] == 1.0  # 0.5 + 0.5: 2 cores give at most 2,000 ev/s
    assert floor[0].startswith("a request as cheap as the no-op's (0.50 ms) and the projection")


def test_an_accepted_event_costs_a_traced_request_and_its_record_sent_where_measured() -> None:
    """Every request a service answers is traced, and every accepted event is put into
    Kafka: measured in the run, the traced no-op's request (not the untraced one's) and the
    bare producer's CPU per record count in the floor of an accepted event, and the record's
    in the batch's too."""
    r = run()
    r["single"]["traced"] = {"achieved_rate": 800, **cpu(0.7)}
    r["batch"]["baseline"] |= cpu(0.05)
    r["rebuild"]["bare_validate"] = {"rate": 4_000}
    floor = accept_floor(r)

    assert floor is not None and floor[1] == pytest.approx(1.25)  # 0.7 + 0.05 + 0.5
    assert floor[0] == (
        "a request as cheap as the traced no-op's (0.70 ms), its record sent as the bare"
        " producer sends one (0.050 ms) and the projection (0.50 ms): 1.25 ms of CPU per event"
    )
    found = bounds(r)
    assert "at most 1,600 ev/s" in found["single"]
    assert found["highest"].endswith(
        "0.533x of the target (3,000 ev/s): out of reach on this machine"
    )
    # validating (0.25 ms), sending (0.05 ms) and projecting (0.5 ms): 2,500 ev/s
    assert "sending its record as the bare producer does (0.050 ms)" in found["batch"]
    assert "at most 2,500 ev/s" in found["batch"]
    cpu_rows = [
        line.split(" | ")[0] for line in cpu_section({k: r[k] for k in ("single", "batch")})
    ]
    assert "| 1. no-op FastAPI, traced as the services are" in cpu_rows
    assert "| 2. bare producer, while it sends (per record)" in cpu_rows


def test_the_single_post_is_a_row_against_the_traced_no_op_where_measured() -> None:
    def side(rate: float) -> dict[str, Any]:
        return {"achieved_rate": rate, "concurrency": 64, "service_ms": {"p50": 1, "p99": 2}}

    single = {"baseline": side(5_000), "pipeline": side(1_000), "ratio": 0.2}
    assert not [row for row in rows({"single": single}) if "traced" in row[2]]
    single |= {"traced": side(4_000), "ratio_traced": 0.25}
    [row] = [row for row in rows({"single": single}) if "traced" in row[2]]
    assert row[2].startswith("no-op FastAPI traced as the services are 4,000 ev/s")
    assert row[3] == "0.25x"


def test_a_target_beyond_what_the_cores_give_is_out_of_reach() -> None:
    found = bounds(run())

    # 2,000 ev/s: five times the durable INSERT's 400 and 0.4 x 1,000; not the 3,000 goal
    assert found["single"].count("within reach") == 2
    assert "at most 2,000 ev/s" in found["single"]
    assert found["highest"].endswith(
        "0.667x of the target (3,000 ev/s): out of reach on this machine"
    )
    assert found["end-to-end"].endswith("1.00 of 2 cores busy at 1,000 ev/s: within reach")
    # validating (0.25 ms) and projecting (0.5 ms): 2,667 ev/s, below 0.35 x 10,000
    assert "at most 2,667 ev/s" in found["batch"]
    assert found["batch"].endswith("out of reach on this machine")
    assert "at most 4,000 ev/s" in found["projection"]
    assert "at most 8,000 ev/s" in found["rebuild"]


def test_a_run_without_the_baselines_states_no_bound() -> None:
    assert bounds({"batch": {"baseline": {"rate": 10_000}}}) == {}
    assert accept_floor({"dashboard": {"projection": cpu(1.0)}}) is None


def test_the_report_states_each_targets_bound_beside_it() -> None:
    """On the committed full run: every target of a rate has its bound in its row."""
    results = json.loads((Path(__file__).parents[2] / "bench/results/latest.json").read_text())
    rows = [
        line for line in targets_section(results) if line.startswith("| ") and "---" not in line
    ]
    by_target = {row.split(" | ")[0][2:]: row.split(" | ")[3] for row in rows[1:]}

    unbounded = {t for t, bound in by_target.items() if bound == "-"}
    not_rates = ("overview page", "each service", "`make bench`")
    assert unbounded == {t for t in by_target if t.startswith(not_rates)}
    assert all(
        bound.endswith(("within reach", "out of reach on this machine"))
        for t, bound in by_target.items()
        if t not in unbounded
    )


def test_a_worker_ratio_needs_both_projections_timed_over_a_backlog() -> None:
    one = {"rate": 2_000.0, "backlog": 800}
    assert worker_ratio(one, {"rate": 3_000.0, "backlog": 200}) == 1.5
    lower_bound = {"rate": 900.0, "backlog": 0}
    assert math.isnan(worker_ratio(one, lower_bound))
    assert math.isnan(worker_ratio(lower_bound, one))


def test_only_a_full_size_run_writes_the_committed_report(tmp_path: Path) -> None:
    workdir = tmp_path / "runs" / "abc"
    assert results_folder("full", workdir, None) == RESULTS
    assert results_folder("smoke", workdir, None) == workdir
    assert results_folder("smoke", workdir, tmp_path) == tmp_path


def test_a_full_run_of_every_phase_reports_its_own_length_against_30_minutes() -> None:
    """The issue bounds a full-size `make bench` at 30 minutes: the report says whether the
    run kept to it, and where its time went; a partial or smaller run says nothing."""
    phase_s = dict.fromkeys(PHASES, 250.0) | {"dashboard": 500.0}

    def duration_row(**r: Any) -> str | None:
        rows = [line for line in targets_section(r) if line.startswith("| `make bench`")]
        return rows[0] if rows else None

    full = {"size": "full", "phase_s": phase_s}
    kept = duration_row(**full, elapsed_s=1_790.0)
    assert kept is not None and "| 29.8 minutes (1,790 s) | yes |" in kept
    assert "dashboard 500 s, single 250 s" in kept and "start-up and rest 290 s" in kept
    over = duration_row(**full, elapsed_s=BENCH_BUDGET_S + 16.0)
    assert over is not None and "| 30.3 minutes (1,816 s) | no |" in over
    assert duration_row(**(full | {"size": "smoke"}), elapsed_s=200.0) is None
    only = {"size": "full", "phase_s": {"dashboard": 500.0}, "elapsed_s": 700.0}
    assert duration_row(**only) is None


def test_the_batch_target_says_what_the_whole_machine_spent_per_event() -> None:
    """The batch run is measured until every accepted event is in Kafka: its CPU per event
    by process is a row of the CPU table and the batch target's "where the time goes"."""
    r: dict[str, Any] = {}
    r["batch"] = {
        "baseline": {"rate": 10_000},
        "ratio_accept": 0.2,
        "pipeline": {
            "cpu": {
                "cpu_ms_per_event": {"nlib": 0.06, "dashboard": 0.07, "postgres": 0.05},
                "machine_cpu_ms_per_event": 0.4,
                "cores_busy": 1.98,
                "cores": 2,
            }
        },
    }
    [row] = [line for line in targets_section(r) if line.startswith("| batch accept")]
    assert "0.40 ms of CPU per event on the whole machine (dashboard 0.07, nlib 0.06" in row
    assert "1.98 of 2 cores busy; ceiling 5,000 ev/s" in row
    [cpu_row] = [line for line in cpu_section(r) if line.startswith("| 2. batch POST")]
    assert "| 0.06 |" in cpu_row and "| 5,000 ev/s |" in cpu_row


def test_the_single_post_rows_give_the_rate_of_each_round_beside_the_median() -> None:
    def side(rate: float, rounds: list[float] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {"achieved_rate": rate, "concurrency": 64}
        result["service_ms"] = {"p50": 10.0, "p99": 20.0}
        return result | ({"round_rates": rounds} if rounds else {})

    single = {"ratio": 0.2, "ratio_durable": 0.5}
    single |= {"baseline": side(5_000, [5_100, 5_000, 4_900]), "durable": side(2_000)}
    single["pipeline"] = side(1_000, [1_000, 1_050, 950])
    noop_row, durable_row = [row for row in rows({"single": single}) if row[0].startswith("1.")]
    assert noop_row[1].endswith("(median of rounds at 1,000 / 1,050 / 950 ev/s)")
    assert noop_row[2].endswith("(median of rounds at 5,100 / 5,000 / 4,900 ev/s)")
    assert durable_row[2].endswith("p50/p99 10 / 20 ms")  # measured in one go: no rounds


def test_the_end_to_end_target_names_the_flame_graphs_of_its_open_loop() -> None:
    """Under the end-to-end load the three services spend most of the machine's CPU per
    event: nlib's flame graph under it is in the target's "where the time goes", beside the
    dashboard's (the slowest hop's)."""
    hops = {"projection commit (readable -> committed)": {"p50": 90.0, "p99": 230.0}}
    fixed = {"offered_rate": 1_000, "achieved_rate": 800, "sustained": False}
    fixed |= {"e2e_ms": {"p99": 270.0}, "hops_ms": hops, **by_process(2.4, "nlib")}
    profiles = {
        "profile-nlib-latency.svg": {"shares": {"HTTP (uvicorn, starlette, fastapi)": 0.3}},
        "profile-dashboard-latency.svg": {"shares": {"teamnl code": 0.25}},
    }
    r = {"latency": {"fixed": fixed, "ramp": [], "max_sustained_rate": None}}

    def row(results: dict[str, Any]) -> str:
        [found] = [line for line in targets_section(results) if line.startswith("| end-to-end")]
        return found

    assert "projection commit (readable -> committed) 230 ms" in row(r)
    assert "`profile-nlib-latency.svg`: HTTP (uvicorn, starlette, fastapi) 30%" in row(
        r | {"profiles": profiles}
    )
    assert "`profile-dashboard-latency.svg`: teamnl code 25%" in row(r | {"profiles": profiles})
    assert "profile-" not in row(r)


def test_the_targets_say_what_opentelemetry_took_from_the_same_figure_with_it_off() -> None:
    """The single POST and the live projection are measured again with the service
    restarted with OpenTelemetry off: its share of that process's CPU per event is part of
    their "where the time goes", and each pass is a row of the CPU table."""

    single = {"achieved_rate": 1_000, "server_cpu_ms_per_event": 0.8, **by_process(1.2, "nlib")}
    off = {"achieved_rate": 1_300, "server_cpu_ms_per_event": 0.6, **by_process(1.0, "nlib")}
    assert telemetry_share(single, off) == pytest.approx(0.75)
    assert math.isnan(telemetry_share(single, {"achieved_rate": 1_300}))
    r: dict[str, Any] = {
        "single": run()["single"]
        | {"pipeline": single, "telemetry_off": off, "ratio": 1.0, "ratio_durable": 2.5},
        "dashboard": {
            "projection": {"rate": 5_000.0, "applied_total": 10_000} | by_process(0.2),
            "projection_telemetry_off": {"rate": 8_000.0} | by_process(0.12),
            **dict.fromkeys(
                ("overview_page", "overview_api"),
                {"service_ms": {"p95": 20}, "achieved_rate": 500, "concurrency": 8},
            ),
        },
    }
    lines = targets_section(r)

    [single_row] = [line for line in lines if line.startswith("| single POST")]
    assert "OpenTelemetry (spans and metrics): 25% of nlib's CPU per event (nlib 0.80 ms" in (
        single_row
    )
    [projection_row] = [line for line in lines if line.startswith("| live projection >= 10,000")]
    assert "40% of dashboard's CPU per event (dashboard 0.20 ms of CPU per event with it, 0.12" in (
        projection_row
    )
    cpu_rows = [line.split(" | ")[0] for line in cpu_section(r)]
    assert "| 1. single POST (nlib), OpenTelemetry off in nlib" in cpu_rows
    assert "| 4. live projection, OpenTelemetry off in the dashboard" in cpu_rows
    without = targets_section(r | {"single": r["single"] | {"telemetry_off": None}})
    [single_row] = [line for line in without if line.startswith("| single POST")]
    assert "OpenTelemetry (spans" not in single_row  # a run without the pass says nothing


def test_the_single_post_with_one_client_is_a_row_against_the_durable_insert_with_one() -> None:
    """One client sending one event after another: nlib's rate and latency beside the
    durable INSERT's with one client, their ratio, and each pass a row of the CPU table."""

    def pass_of(rate: float, p50: float, process: str, ms: float) -> dict[str, Any]:
        latency = {"p50": p50, "p99": 2 * p50}
        return {"achieved_rate": rate, "service_ms": latency} | by_process(ms, process)

    many = pass_of(1_000, 50, "nlib", 0.8) | {"concurrency": 64}
    single = {
        "baseline": pass_of(4_000, 10, "baseline", 0.2),
        "durable": pass_of(2_000, 20, "baseline", 0.3),
        "pipeline": many,
        "ratio": 0.25,
        "ratio_durable": 0.5,
    }
    without = {"single": single}
    single["durable"] |= {"one_client": pass_of(800, 1.2, "baseline", 0.5)}
    r = {"single": single | {"one_client": pass_of(200, 4.8, "nlib", 2.5)}}

    [row] = [row for row in rows(r) if "one client" in row[0]]
    assert row[1] == "200 ev/s, p50/p99 4.8 / 9.6 ms; nlib 2.50 ms of CPU per event"
    assert row[2] == (
        "one durable INSERT per request, one client 800 ev/s, p50/p99 1.2 / 2.4 ms;"
        " baseline 0.50 ms of CPU per event"
    )
    assert row[3] == "0.25x"
    cpu_rows = [line.split(" | ")[0] for line in cpu_section(r)]
    assert "| 1. single POST (nlib), one client" in cpu_rows
    assert "| 1. durable INSERT, one client" in cpu_rows
    assert not [row for row in rows(without) if "one client" in row[0]]  # not without the pass


def test_a_live_projection_is_bounded_by_validating_and_tracing_each_record() -> None:
    """Measured, the traced floor bounds the live projections (which trace every record),
    at its records per second of CPU (a core of its own); the rebuild traces none and stays
    bounded by validation alone."""
    r = run()
    r["rebuild"]["bare_traced"] = {"rate": 2_000, "cpu_rate": 2_500}
    found = bounds(r)

    one = "validating and tracing each record alone, in one process: at most 2,500 ev/s"
    assert one in found["projection"]
    assert "in two processes: at most 5,000 ev/s" in found["projection-with-worker"]
    assert "validating each record alone, in 2 processes: at most 8,000" in found["rebuild"]
