"""The bench's ``--pg-stats``: PostgreSQL loads pg_stat_statements, the report shows its top."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench import report
from bench.pgstats import ServerLog, section
from bench.stack import private_infra
from teamnl_suite.infra import InfraConfig
from teamnl_suite.infra.postgres import LocalPostgres


def test_the_server_loads_pg_stat_statements_only_when_asked(tmp_path: Path) -> None:
    plain = dataclasses.replace(InfraConfig.from_env(), state_dir=tmp_path)
    asked = dataclasses.replace(
        plain, postgres_settings=private_infra(statements=True).config.postgres_settings
    )
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


CHECKPOINT_DONE = (
    "2026-12-02 12:51:12.910 UTC [1852] LOG:  checkpoint complete: wrote 3768 buffers (23.0%);"
    " 0 WAL file(s) added, 0 removed, 33 recycled; write=36.912 s, sync=0.459 s, total=37.424 s"
)


def test_the_server_log_gives_the_maintenance_logged_since_the_mark(tmp_path: Path) -> None:
    """Proves: a latency step keeps what PostgreSQL logged of its own maintenance while the
    step ran, and nothing from before it or of other kinds."""
    path = tmp_path / "postgres.log"
    path.write_text("2026-12-02 12:50:35.486 UTC [1852] LOG:  checkpoint starting: wal\n")
    log = ServerLog(path)
    log.mark()
    with path.open("a") as server:
        server.write("2026-12-02 12:51:00.001 UTC [2000] LOG:  connection received\n")
        server.write(CHECKPOINT_DONE + "\n")
        server.write(
            '2026-12-02 12:51:20.500 UTC [2100] LOG:  automatic vacuum of table "b.proj.inbox":'
            " index scans: 0\n\tpages: 0 removed, 120 remain\n"
        )
    assert log.since() == [
        "12:51:12.910 checkpoint complete: wrote 3768 buffers (23.0%); 0 WAL file(s) added, 0"
        " removed, 33 recycled; write=36.912 s, sync=0.459 s, total=37.424 s",
        '12:51:20.500 automatic vacuum of table "b.proj.inbox": index scans: 0',
    ]


def test_without_a_log_file_nothing_was_logged(tmp_path: Path) -> None:
    log = ServerLog(tmp_path / "absent.log")
    log.mark()
    assert log.since() == []


def test_the_step_not_sustained_names_what_the_server_logged_meanwhile() -> None:
    step = {"offered_rate": 253, "pg_log": ["12:51:12.910 checkpoint complete: wrote 3768"]}
    assert "`12:51:12.910 checkpoint complete: wrote 3768`" in report._server_log(step)
    assert "no checkpoint" in report._server_log({**step, "pg_log": []})
    assert report._server_log({"offered_rate": 253}) == ""  # a run from before the log
