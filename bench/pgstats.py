"""Where PostgreSQL's time goes: statement by statement (``python -m bench.run --pg-stats``),
and what its own maintenance did while a latency step ran (:class:`ServerLog`).

The private PostgreSQL then loads pg_stat_statements. Before each phase its counts are reset;
after it, the statements of the run's databases that took the most execution time are kept
in the results (``pg_statements``) and shown in the report. Top-level statements only: a
function's own statements count in its call, so no time is counted twice.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

TOP = 8
QUERY_CHARS = 160

_TOP = """
SELECT d.datname AS database, s.calls, s.total_exec_time, s.rows, s.query,
       sum(s.total_exec_time) OVER () AS all_time
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname LIKE $1
ORDER BY s.total_exec_time DESC
LIMIT $2
"""


@dataclass
class Statements:
    admin_url: str
    run_id: str

    def reset(self) -> None:
        asyncio.run(self._execute("SELECT pg_stat_statements_reset()"))

    def start(self) -> None:
        """The extension in the admin database (its view shows every database's); each phase
        resets the counts itself (:meth:`Bench.run_phase`)."""
        asyncio.run(self._execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))

    def top(self, n: int = TOP) -> list[dict[str, Any]]:
        return asyncio.run(self._top(n))

    async def _execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def _top(self, n: int) -> list[dict[str, Any]]:
        prefix = f"bench_{self.run_id}_"
        conn = await asyncpg.connect(self.admin_url)
        try:
            found = await conn.fetch(_TOP, prefix.replace("_", r"\_") + "%", n)
        finally:
            await conn.close()
        return [
            {
                "database": row["database"].removeprefix(prefix),
                "calls": row["calls"],
                "total_ms": round(row["total_exec_time"], 1),
                "rows": row["rows"],
                "share": round(row["total_exec_time"] / row["all_time"], 3)
                if row["all_time"]
                else None,
                "query": " ".join(row["query"].split())[:QUERY_CHARS],
            }
            for row in found
        ]


_MAINTENANCE = re.compile(r"LOG:\s+(checkpoint (?:starting|complete)|automatic (?:vacuum|analyze))")
LOGGED_LINES = 12
LOGGED_CHARS = 200


@dataclass
class ServerLog:
    """The checkpoints, autovacuums and autoanalyzes the server logged since :meth:`mark`.

    A stall of every service's commits at once (a ramp step's accept and projection hops
    both at seconds, the CPU not saturated) points at the server: this says whether its
    maintenance ran meanwhile. The bench's private server logs each autovacuum and
    autoanalyze of 250 ms or more (``log_autovacuum_min_duration``: the shorter ones, on small
    tables, are many and cannot stall anything); checkpoints it logs by default."""

    path: Path
    offset: int = 0

    def mark(self) -> None:
        try:
            self.offset = self.path.stat().st_size
        except OSError:  # external infrastructure: no log of ours to read
            self.offset = 0

    def since(self) -> list[str]:
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return []
        found = []
        for line in text.splitlines():
            if match := _MAINTENANCE.search(line):
                stamp = line.split(" UTC", 1)[0].rsplit(" ", 1)[-1]  # the time of day
                found.append(f"{stamp} {line[match.start(1) :]}"[:LOGGED_CHARS])
        return found[:LOGGED_LINES]


def section(r: dict[str, Any]) -> list[str]:
    """The report's part: per phase, its statements that took the most time."""
    phases = r.get("pg_statements") or {}
    if not phases:
        return []
    lines = [
        "## Where PostgreSQL's time goes (`--pg-stats`)",
        "",
        "Per phase, the statements of the run's databases that took the most execution time "
        "(pg_stat_statements, top-level statements: a function's own statements count in its "
        "call), with their share of all statement time in the phase. The library costs "
        "PostgreSQL some CPU itself: compare figures with a run without it.",
        "",
        "| phase | database | calls | total ms | ms per call | rows per call | share | statement |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for phase, statements in phases.items():
        for s in statements:
            calls = s["calls"] or 1
            share = "-" if s["share"] is None else f"{s['share']:.0%}"
            query = s["query"].replace("|", "\\|")
            lines.append(
                f"| {phase} | {s['database']} | {s['calls']:,} | {s['total_ms']:,.0f} | "
                f"{s['total_ms'] / calls:.2f} | {s['rows'] / calls:.1f} | {share} | `{query}` |"
            )
    return [*lines, ""]
