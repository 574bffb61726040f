"""The bench's ``--pg-stats``: PostgreSQL loads pg_stat_statements, the report shows its top."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.pgstats import section
from teamnl_suite.infra import InfraConfig
from teamnl_suite.infra.postgres import LocalPostgres


def test_the_server_loads_pg_stat_statements_only_when_asked(tmp_path: Path) -> None:
    plain = dataclasses.replace(InfraConfig.from_env(), state_dir=tmp_path)
    asked = dataclasses.replace(plain, postgres_statements=True)
    assert "shared_preload_libraries=pg_stat_statements" in LocalPostgres(asked)._server_options()
    assert "shared_preload_libraries" not in LocalPostgres(plain)._server_options()


STATEMENT = {
    "database": "dashboard",
    "calls": 2_000,
    "total_ms": 1_500.0,
    "rows": 6_000,
    "share": 0.42,
    "query": "SELECT a | b FROM proj.inbox WHERE event_id = $1",
}


def test_each_phase_statements_are_a_row_each_with_per_call_figures() -> None:
    lines = section({"pg_statements": {"latency": [STATEMENT], "rebuild": []}})
    [row] = [line for line in lines if line.startswith("| latency")]
    cells = [cell.strip() for cell in row.strip("|").split(" | ")]
    assert cells[:7] == ["latency", "dashboard", "2,000", "1,500", "0.75", "3.0", "42%"]
    assert cells[7] == r"`SELECT a \| b FROM proj.inbox WHERE event_id = $1`"  # one cell


def test_a_run_without_pg_stats_has_no_such_section() -> None:
    assert section({}) == []
    assert section({"pg_statements": {}}) == []
