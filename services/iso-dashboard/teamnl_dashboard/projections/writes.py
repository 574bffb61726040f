"""Set-based projection writes: a batch's statements, sent as one ``executemany`` per run.

The projectors write through :class:`BufferedWrites` in place of the connection: it records
each statement and its arguments (projectors only write, never read) and, at
:meth:`~BufferedWrites.flush`, sends every run of the same statement on a table as one
``executemany`` - one round trip per run instead of one per row. A run of an insert goes
as one statement where that does what the rows one by one would:

- one that skips existing rows (``INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT DO
  NOTHING``) as ``INSERT INTO t (a, b) SELECT * FROM unnest($1::text[], $2::date[]) ON
  CONFLICT DO NOTHING``: its rows are inserted in their order, so of two with one key the
  first stays, as one by one;
- an upsert (``... ON CONFLICT (a) DO UPDATE SET ...``) likewise, when no two of the run's
  rows share a conflict key: each row then meets only what was there before the run, as
  one by one (a run with a repeated key goes row by row, which PostgreSQL requires).

A long run of an insert that skips existing rows goes first as a ``COPY`` into its table,
under a savepoint of its own (from :data:`~teamnl_shared.inbox.COPY_FROM_ROWS` rows):
PostgreSQL inserts a row that may conflict speculatively, which costs it about 1.7 times a
plain insert, and ``COPY`` costs the client a quarter of an ``unnest`` of array parameters
(see the inbox's). When a row was there already, the savepoint is rolled back and the run
sent as it is; from then on, that statement goes as it is in this process.

One execution, so the table's statement-level triggers (schema.sql) run once per run.
Order is kept where it
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

from teamnl_shared.inbox import COPY_FROM_ROWS

_TABLE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE)\s+(\w+)", re.IGNORECASE)
_SET_INSERT = re.compile(
    r"^INSERT INTO (?P<table>\w+) \((?P<columns>\w+(?:, \w+)*)\)"
    r" VALUES \((?P<values>\$1(?:, \$\d+)*)\) ON CONFLICT"
    r"(?: \((?P<target>\w+(?:, \w+)*)\))? (?P<action>DO NOTHING|DO UPDATE SET .+)$"
)


_UNIQUE = (asyncpg.UniqueViolationError, asyncpg.ExclusionViolationError)


@dataclass(frozen=True)
class _SetForm:
    """An insert's one-statement form; `keys`: the positions of an upsert's conflict key
    among the columns (None: a skipping insert, which takes any run); `copy`: a skipping
    insert's table and columns, for a ``COPY`` of its rows."""

    sql: str
    keys: tuple[int, ...] | None
    copy: tuple[str, tuple[str, ...]] | None = None

    def takes(self, rows: Sequence[Sequence[object]]) -> bool:
        if self.keys is None:
            return True
        return len({tuple(row[k] for k in self.keys) for row in rows}) == len(rows)


# An insert's set form (None: it has none), by its SQL; the parameters' types come from the
# server the first time a run of it is sent (the same in every projection schema).
_set_forms: dict[str, _SetForm | None] = {}
# The skipping inserts a copied run of met a row already there: sent as they are from then on.
_conflicted: set[str] = set()


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
            set_form = await _set_form(conn, run.sql) if len(run.rows) > 1 else None
            if set_form is None or not set_form.takes(run.rows):
                await conn.executemany(run.sql, run.rows)
            elif not await _copied(conn, run, set_form):
                # every row has every column
                columns = [list(column) for column in zip(*run.rows, strict=True)]
                await conn.execute(set_form.sql, *columns)

    def discard(self) -> None:
        self._runs = []
        self._last_run_of = {}


async def _copied(conn: asyncpg.Connection, run: _Run, set_form: _SetForm) -> bool:
    """Whether the run went as a ``COPY``: a long run of a skipping insert that met no row
    already there."""
    if set_form.copy is None or len(run.rows) < COPY_FROM_ROWS or run.sql in _conflicted:
        return False
    table, columns = set_form.copy
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(table, records=run.rows, columns=columns)
    except _UNIQUE:
        _conflicted.add(run.sql)
        return False
    return True


@functools.cache  # the projectors' statements are constants: a few dozen strings
def _table_of(sql: str) -> str:
    match = _TABLE.match(sql)
    if match is None:
        raise ValueError(f"a projector may only INSERT or UPDATE: {sql[:80]!r}")
    return match.group(1).lower()


async def _set_form(conn: asyncpg.Connection, sql: str) -> _SetForm | None:
    """The one-statement form of a run of ``sql``, when ``sql`` is an insert that skips
    existing rows or an upsert on columns it inserts, with one plain parameter per column
    in order (``$1, $2, ...``), none an array (``unnest`` would flatten it) nor in the
    update."""
    if sql in _set_forms:
        return _set_forms[sql]
    form = None
    match = _SET_INSERT.match(sql)
    if match is not None:
        columns = match["columns"].split(", ")
        target = match["target"].split(", ") if match["target"] else []
        upsert = match["action"].startswith("DO UPDATE")
        values = match["values"].split(", ")
        plain = values == [f"${n}" for n in range(1, len(values) + 1)]
        own = "$" not in match["action"]  # an update of its own values (excluded.*) only
        if plain and own and set(target) <= set(columns) and (target or not upsert):
            types = (await conn.prepare(sql)).get_parameters()
            if all(t.kind == "scalar" for t in types):
                arrays = ", ".join(f"${n}::{t.schema}.{t.name}[]" for n, t in enumerate(types, 1))
                conflict = f" ({match['target']})" if target else ""
                insert = (
                    f"INSERT INTO {match['table']} ({match['columns']})"  # noqa: S608 - constants
                    f" SELECT * FROM unnest({arrays})"
                )
                form = _SetForm(
                    f"{insert} ON CONFLICT{conflict} {match['action']}",
                    tuple(columns.index(c) for c in target) if upsert else None,
                    None if upsert else (match["table"], tuple(columns)),
                )
    _set_forms[sql] = form
    return form
