"""Set-based projection writes: a batch's statements, sent as one ``executemany`` per run.

The projectors write through :class:`BufferedWrites` in place of the connection: it records
each statement and its arguments (projectors only write, never read) and, at
:meth:`~BufferedWrites.flush`, sends every run of the same statement on a table as one
``executemany`` - one round trip per run instead of one per row. Order is kept where it
matters: statements on one table run in the order they came (a run ends when another
statement on that table comes in between, e.g. a project onboarded, then one ended, then
another onboarded); different tables are independent of each other (their triggers only add
delta rows, which commute).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

import asyncpg

_TABLE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE)\s+(\w+)", re.IGNORECASE)


@dataclass
class _Run:
    sql: str
    rows: list[Sequence[object]] = field(default_factory=list)


class BufferedWrites:
    """The connection the projectors write through for one savepoint of the inbox."""

    def __init__(self) -> None:
        self._runs: list[_Run] = []
        self._last_run_of: dict[str, _Run] = {}

    def as_connection(self) -> asyncpg.Connection:
        """This buffer, typed as what the projectors take (they call only `execute` and
        `executemany`)."""
        return cast(asyncpg.Connection, self)

    async def execute(self, sql: str, *args: object) -> str:
        self._add(sql, [args])
        return ""

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self._add(sql, list(rows))

    def _add(self, sql: str, rows: list[Sequence[object]]) -> None:
        if not rows:
            return
        table = _table_of(sql)
        run = self._last_run_of.get(table)
        if run is None or run.sql != sql:
            run = _Run(sql)
            self._runs.append(run)
            self._last_run_of[table] = run
        run.rows.extend(rows)

    async def flush(self, conn: asyncpg.Connection) -> None:
        """Send what was buffered, in order, on `conn`; the buffer is empty afterwards."""
        runs = self._runs
        self.discard()
        for run in runs:
            await conn.executemany(run.sql, run.rows)

    def discard(self) -> None:
        self._runs = []
        self._last_run_of = {}


@functools.cache  # the projectors' statements are constants: a few dozen strings
def _table_of(sql: str) -> str:
    match = _TABLE.match(sql)
    if match is None:
        raise ValueError(f"a projector may only INSERT or UPDATE: {sql[:80]!r}")
    return match.group(1).lower()
