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

A long run of an upsert (from :data:`STAGE_FROM_ROWS` rows, no key repeated) goes through
a staging table instead: a ``COPY`` of its parameters into a temporary table of this
connection, then one ``INSERT ... SELECT`` that empties it into the table with the upsert's
own ``ON CONFLICT``. That takes the upserts ``unnest`` cannot: those with an array
parameter (it would flatten it) or a literal among the values, which went row by row.

One execution, so the table's statement-level triggers (schema.sql) run once per run.
Order is kept where it
matters: statements on one table run in the order they came (a run ends when another
statement on that table comes in between, e.g. a project onboarded, then one ended, then
another onboarded); different tables are independent of each other (their triggers only add
delta rows, which commute).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

import asyncpg

from teamnl_shared.inbox import COPY_FROM_ROWS

_TABLE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE)\s+(\w+)", re.IGNORECASE)
_SET_INSERT = re.compile(
    r"^INSERT INTO (?P<table>\w+) \((?P<columns>\w+(?:, \w+)*)\)"
    r" VALUES \((?P<values>(?:\$\d+|'\w*')(?:, (?:\$\d+|'\w*'))*)\) ON CONFLICT"
    r"(?: \((?P<target>\w+(?:, \w+)*)\))? (?P<action>DO NOTHING|DO UPDATE SET .+)$"
)


_UNIQUE = (asyncpg.UniqueViolationError, asyncpg.ExclusionViolationError)
STAGE_FROM_ROWS = 500
"""An upsert's run of this many rows or more goes through a staging table (three round
trips: the table created if this connection has none, the ``COPY``, the ``INSERT``). 5,000
rows of the TINL activity upsert (an array of partners) in a transaction took 11.7 us a row
so against 15.9 row by row, the client's CPU 2.6 us against 3.8; 500 rows 19.4 against
23.9; at 128 rows the two were even, below it the round trips cost more than they save.
An upsert ``unnest`` takes gains too, in the client: 5,000 rows of the budget upsert took
16.6 us a row staged against 18.9 through ``unnest``, the client's CPU 0.46 us against
2.95 (asyncpg encodes an array parameter element by element); 600 rows 20.0 against 19.9,
the client's CPU 0.9 against 3.2. A rebuild's replay (whose processes' Python is its
critical path) applies up to 5,000 records a transaction; the live consumers' fetches
reach such runs only in a backlog."""


@dataclass(frozen=True)
class _Stage:
    """An upsert's staged form: its parameters' temporary table (``c1`` ... ``cN``, of the
    parameters' types, emptied at every commit) and the statement that empties it into the
    upsert's table."""

    table: str
    columns: tuple[str, ...]
    create: str
    insert: str


@dataclass(frozen=True)
class _SetForm:
    """An insert's one-statement forms: `sql` through ``unnest`` (None: a parameter is an
    array or a value a literal); `keys`: the positions of an upsert's conflict key among
    the columns (None: a skipping insert, which takes any run); `copy`: a skipping insert's
    table and columns, for a ``COPY`` of its rows; `stage`: an upsert's staged form."""

    sql: str | None
    keys: tuple[int, ...] | None
    copy: tuple[str, tuple[str, ...]] | None = None
    stage: _Stage | None = None

    def takes(self, rows: Sequence[Sequence[object]]) -> bool:
        if self.keys is None:
            return True
        return len({tuple(row[k] for k in self.keys) for row in rows}) == len(rows)


# An insert's set form (None: it has none), by its SQL; the parameters' types come from the
# server the first time a run of it is sent (the same in every projection schema).
_set_forms: dict[str, _SetForm | None] = {}
# The skipping inserts a copied run of met a row already there: sent as they are from then on.
_conflicted: set[str] = set()
# Whether this process's role may create temporary tables (None: not known yet).
_may_stage: bool | None = None


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
            if set_form is not None and set_form.takes(run.rows):
                if await _copied(conn, run, set_form) or await _staged(conn, run, set_form):
                    continue
                if set_form.sql is not None:
                    # every row has every column
                    columns = [list(column) for column in zip(*run.rows, strict=True)]
                    await conn.execute(set_form.sql, *columns)
                    continue
            await conn.executemany(run.sql, run.rows)

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


async def _staged(conn: asyncpg.Connection, run: _Run, set_form: _SetForm) -> bool:
    """Whether the run went through its staging table: a long run of an upsert, inside a
    transaction (outside one, the ``COPY``'s own commit would empty the table before the
    ``INSERT`` read it), where this process's role may create temporary tables."""
    global _may_stage
    stage = set_form.stage
    if stage is None or len(run.rows) < STAGE_FROM_ROWS or _may_stage is False:
        return False
    if not conn.is_in_transaction():
        return False
    if _may_stage is None:
        _may_stage = await _created_if_allowed(conn, stage.create)
        if not _may_stage:
            return False
    else:
        await conn.execute(stage.create)
    await conn.copy_records_to_table(
        stage.table, records=run.rows, columns=stage.columns, schema_name="pg_temp"
    )
    await conn.execute(stage.insert)
    return True


async def _created_if_allowed(conn: asyncpg.Connection, create: str) -> bool:
    """Run `create` in a savepoint; False where the role may not create temporary tables
    (the refusal ends only the savepoint)."""
    try:
        async with conn.transaction():
            await conn.execute(create)
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


@functools.cache  # the projectors' statements are constants: a few dozen strings
def _table_of(sql: str) -> str:
    match = _TABLE.match(sql)
    if match is None:
        raise ValueError(f"a projector may only INSERT or UPDATE: {sql[:80]!r}")
    return match.group(1).lower()


async def _set_form(conn: asyncpg.Connection, sql: str) -> _SetForm | None:
    """The set forms of a run of ``sql``, when ``sql`` is an insert that skips existing rows
    or an upsert on columns it inserts, whose values are its parameters in order (``$1,
    $2, ...``) and literals, none of them in the update: through ``unnest`` when every
    value is a parameter and none an array (``unnest`` would flatten it); staged when an
    upsert."""
    if sql in _set_forms:
        return _set_forms[sql]
    form = None
    match = _SET_INSERT.match(sql)
    if match is not None:
        columns = match["columns"].split(", ")
        target = match["target"].split(", ") if match["target"] else []
        upsert = match["action"].startswith("DO UPDATE")
        values = match["values"].split(", ")
        parameters = [value for value in values if value.startswith("$")]
        ordered = parameters == [f"${n}" for n in range(1, len(parameters) + 1)]
        own = "$" not in match["action"]  # an update of its own values (excluded.*) only
        if (
            ordered
            and own
            and len(values) == len(columns)
            and set(target) <= set(columns)
            and (target or not upsert)
        ):
            types = (await conn.prepare(sql)).get_parameters()
            on = f" ({match['target']})" if target else ""
            conflict = f" ON CONFLICT{on}"
            unnest = None
            if len(parameters) == len(values) and all(t.kind == "scalar" for t in types):
                arrays = ", ".join(f"${n}::{t.schema}.{t.name}[]" for n, t in enumerate(types, 1))
                unnest = (
                    f"INSERT INTO {match['table']} ({match['columns']})"  # noqa: S608 - constants
                    f" SELECT * FROM unnest({arrays}){conflict} {match['action']}"
                )
            if upsert:
                form = _SetForm(
                    unnest,
                    tuple(columns.index(c) for c in target),
                    stage=_stage(match["table"], columns, values, types, conflict, match["action"]),
                )
            elif unnest is not None:
                form = _SetForm(unnest, None, (match["table"], tuple(columns)))
    _set_forms[sql] = form
    return form


def _stage(
    table: str,
    columns: list[str],
    values: list[str],
    types: Sequence[asyncpg.types.Type],
    conflict: str,
    action: str,
) -> _Stage:
    """An upsert's staging table and the statement that empties it into `table`."""
    staged = tuple(f"c{n}" for n in range(1, len(types) + 1))
    typed = ", ".join(f"{c} {t.schema}.{t.name}" for c, t in zip(staged, types, strict=True))
    shape = f"{table} {columns} {values} {typed}"  # one table per shape, on every connection
    name = f"teamnl_stage_{hashlib.blake2b(shape.encode(), digest_size=8).hexdigest()}"
    selected = ", ".join(f"c{value[1:]}" if value.startswith("$") else value for value in values)
    return _Stage(
        name,
        staged,
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({typed}) ON COMMIT DELETE ROWS",
        f"WITH staged AS (DELETE FROM pg_temp.{name} RETURNING *)"  # noqa: S608 - constants
        f" INSERT INTO {table} ({', '.join(columns)}) SELECT {selected} FROM staged"
        f"{conflict} {action}",
    )
