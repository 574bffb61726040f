"""The schema holding the projections: created once, rebuilt and swapped by `rebuild`.

Every dashboard connection runs with ``search_path = proj, public``, so projection SQL
names its tables without a schema and finds the live ones; the rebuild's connections put
their own schema first instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import deque
from importlib import resources

import asyncpg

LIVE_SCHEMA = "proj"  # also written out in the SQL below
# 2: events.title; 3: running totals, indexes for the rules; 4: identity (topic, source, id);
# 5: date indexes for the TINL partners' latest participation and for budget readings;
# 6: event and activity totals counted per statement; 7: those totals kept per day;
# 8: their fold in PL/pgSQL (its plans kept per connection); 9: the small totals folded whole;
# 10: a network event's `events` row is its inbox row (topic, partition, offset);
# 11: the budget's running totals in numeric (a bigint overflowed); 12: indexes on the
# item a conversion, a proposal and a milestone belong to (each item's read scanned them all);
# 13: the budget's running totals per day spent (a reading as of a date summed every spending);
# 14: De Werkplaats's spans without the projects' sets of SDGs, and per SDG apart (wp_sdgs);
# 15: Global Stars calls and Dutch proposals per closing day (gs_call_totals)
PROJECTION_VERSION = 15
# Versions reachable in place from the one before, keeping every row (upgrade_<n>.sql); a
# version without one is reached by a rebuild from the topics.
IN_PLACE_UPGRADES = frozenset({4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
_EVENTS_ARE_INBOX = 10  # the version from which a network event's inbox row is in `events`
_INSTALL_LOCK = 7_310_101  # one installer or swapper at a time
_REBUILDING = "proj_rebuild_"
_RETIRED = "proj_retired_"
_SET_APART = (_REBUILDING, _RETIRED)
"""The prefixes of a schema being rebuilt (:func:`rebuilding_schema`) and of a live schema
the rebuild swapped out (:func:`swap_in`), until the rebuild drops it."""
_SCHEMA_NAME = re.compile(rf"^(?:{LIVE_SCHEMA}|(?:{'|'.join(_SET_APART)})[a-z0-9]+)$")


def search_path(schema: str = LIVE_SCHEMA) -> str:
    return f"{_checked(schema)}, public"


def rebuilding_schema() -> str:
    """A fresh name for a schema a rebuild fills."""
    return _set_apart(_REBUILDING)


def _set_apart(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _checked(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"not a projection schema name: {schema!r}")
    return schema


_AFTER_LOAD = re.compile(r"^CREATE (?:INDEX|TRIGGER)\b[^;]*;", re.MULTILINE)
"""The statements of schema.sql that a schema created to be loaded leaves out until it is
loaded (:func:`complete_load`): its secondary indexes (the primary keys stay, for the
upserts and the inbox) and the triggers that keep the running totals."""


def _sql(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text()


def _ddl() -> str:
    return _sql("schema.sql")


async def create_schema(conn: asyncpg.Connection, schema: str, *, to_load: bool = False) -> None:
    """Create ``schema`` with empty projection tables (inside the caller's transaction).
    With `to_load` (a rebuild's replay), without the secondary indexes and the running
    totals' triggers, and with autovacuum off on its tables: :func:`complete_load` adds
    them and turns it back on once the log is loaded.

    Autovacuum would vacuum and analyse the tables again and again while they fill, on the
    cores the replay uses, and the indexes built at the end wait for it: ``CREATE INDEX``
    on a table autovacuum is working on waits until PostgreSQL cancels that (after
    ``deadlock_timeout``, 1 s). In a bench rebuild of 2.1 million events the load phase
    waited so on four tables, 14.4 s against 8.7 s in the run before."""
    name = _checked(schema)
    await conn.execute(f"CREATE SCHEMA {name}")
    await conn.execute(f"SET LOCAL search_path = {name}")
    await conn.execute(_AFTER_LOAD.sub("", _ddl()) if to_load else _ddl())
    await conn.execute("INSERT INTO projection_meta (version) VALUES ($1)", PROJECTION_VERSION)
    if to_load:
        await _autovacuum_off(conn, name)
    await conn.execute("SET LOCAL search_path = DEFAULT")


async def complete_load(pool: asyncpg.Pool, schema: str, *, lanes: int = 2) -> None:
    """Make a schema created with ``to_load`` and since loaded the same as one kept up
    event by event (nothing writing to it meanwhile): its running totals summed from the
    loaded rows once (``load_totals.sql``), then the indexes built over the loaded tables
    and the triggers that keep the totals from now on; autovacuum on again, and every table
    analysed. Each costs less so than kept up row by row: an index built over a table sorts
    its rows once, and the triggers wrote a delta row per key and statement, then folded
    them.

    The work is split by table (:func:`_load_jobs`) between `lanes` connections of `pool`,
    each in a transaction of its own, so PostgreSQL works on as many cores: a rebuild of
    458,000 events took 2.12-2.14 s so on one connection, 1.54-1.89 s on two (A/B pairs on
    one stack, two cores). A lane that fails ends the others and raises its error; the
    schema is then the rebuild's to drop (it is not live)."""
    name = _checked(schema)
    async with pool.acquire() as conn:
        sizes = {
            row["relname"]: row["size"]
            for row in await conn.fetch(
                "SELECT c.relname, pg_total_relation_size(c.oid) AS size FROM pg_class c"
                " WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r'",
                name,
            )
        }
    jobs = deque(_load_jobs(sizes))

    async def lane() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL search_path = {name}")
            while jobs:
                await conn.execute(jobs.popleft())

    running = [asyncio.create_task(lane()) for _ in range(max(1, min(lanes, len(jobs))))]
    try:
        await asyncio.gather(*running)
    except BaseException:
        for task in running:
            task.cancel()  # its transaction rolls back
        await asyncio.gather(*running, return_exceptions=True)
        raise


_ON_TABLE = re.compile(r"\sON\s+(\w+)")
_TOTALS_TABLE = re.compile(r"^INSERT INTO (\w+)", re.MULTILINE)


def _load_jobs(sizes: dict[str, int]) -> list[str]:
    """:func:`complete_load`'s work, one job (statements run as one) per table: its indexes
    and triggers, autovacuum back on, ``ANALYZE`` (statistics for the first readers' plans:
    the rules, right after the switch); the totals' sums with the tables they fill first
    (they read every loaded table), then the others largest first (`sizes`: bytes per
    table), so the lanes end about together. Two lanes never touch one table: an index
    built in one would hold up a trigger or an ``ANALYZE`` on its table in the other until
    its lane commits."""
    after_load: dict[str, list[str]] = {}
    for statement in _AFTER_LOAD.findall(_ddl()):
        match = _ON_TABLE.search(statement)
        assert match is not None, statement
        after_load.setdefault(match[1], []).append(statement)

    def completed(table: str) -> list[str]:
        return [
            *after_load.pop(table, []),
            f"ALTER TABLE {table} RESET (autovacuum_enabled);",
            f"ANALYZE {table};",
        ]

    totals = _sql("load_totals.sql")
    filled = _TOTALS_TABLE.findall(totals)
    jobs = ["\n".join([totals, *(s for table in filled for s in completed(table))])]
    for table in sorted(set(sizes) - set(filled), key=lambda table: (-sizes[table], table)):
        jobs.append("\n".join(completed(table)))
    assert not after_load, f"indexes or triggers on tables not in the schema: {after_load}"
    return jobs


async def _autovacuum_off(conn: asyncpg.Connection, schema: str) -> None:
    """Autovacuum off on every table of `schema` (:func:`_load_jobs` turns it on again, a
    table at a time)."""
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    await conn.execute(
        "".join(
            f"ALTER TABLE {schema}.{row['tablename']} SET (autovacuum_enabled = false);"
            for row in rows
        )
    )


async def ensure_live_schema(conn: asyncpg.Connection) -> bool:
    """Create the live schema on first start; True when it was created."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _INSTALL_LOCK)
    if await schema_exists(conn, LIVE_SCHEMA):
        return False
    await create_schema(conn, LIVE_SCHEMA)
    return True


async def schema_exists(conn: asyncpg.Connection, schema: str) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema)
    )


def can_upgrade_in_place(version: int) -> bool:
    """Whether every version after ``version`` has an in-place upgrade."""
    return version > 0 and all(
        v in IN_PLACE_UPGRADES for v in range(version + 1, PROJECTION_VERSION + 1)
    )


async def upgrade_in_place(conn: asyncpg.Connection, version: int) -> None:
    """Bring the live schema from ``version`` to this code's, keeping its rows (inside the
    caller's transaction, after :func:`lock_for_swap`)."""
    await conn.execute(f"SET LOCAL search_path = {LIVE_SCHEMA}")
    for step in range(version + 1, PROJECTION_VERSION + 1):
        await conn.execute(resources.files(__package__).joinpath(f"upgrade_{step}.sql").read_text())
    await conn.execute("SET LOCAL search_path = DEFAULT")


async def live_version(conn: asyncpg.Connection) -> int | None:
    return await conn.fetchval("SELECT max(version) FROM proj.projection_meta")


async def lock_for_swap(conn: asyncpg.Connection) -> None:
    """Stop live consumers between their batches: they all write the live inbox first, a
    network event's ``events`` row and then an ops event's ``inbox`` row (`ledger`), and
    they are locked in that order. ``events`` in ``EXCLUSIVE`` mode, which lets the pages
    read it meanwhile; ``inbox``, which no page reads, in ``ACCESS EXCLUSIVE``.

    An autovacuum of the live inbox (frequent: the table only grows) holds a lock that
    this one waits for, while the live consumers wait behind it. PostgreSQL cancels the
    autovacuum once its waiter has waited ``deadlock_timeout``, 1 s by default; the swap's
    transaction waits `REBUILD_DEADLOCK_TIMEOUT` instead where its role may set it (the
    caller's transaction: an upgrade in place, or the rebuild's switch)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _INSTALL_LOCK)
    await _wait_less_for_locks(conn)
    await conn.execute("LOCK TABLE proj.events IN EXCLUSIVE MODE")
    await conn.execute("LOCK TABLE proj.inbox IN ACCESS EXCLUSIVE MODE")


REBUILD_DEADLOCK_TIMEOUT = "50ms"
"""How long the swap (`lock_for_swap`) and the drop of a schema (`drop_schema`) wait for a
lock before PostgreSQL looks for a deadlock and cancels an autovacuum in their way. On the
bench machine, a table being autovacuumed (slowed down by its cost settings): ``LOCK
TABLE`` took 51 ms so, against 1,001 with the default. In rebuild A/Bs without it, one
switch in six took 1.19 s (the others 0.15-0.17 s), the server's log showing an autovacuum
of ``proj.inbox`` cancelled; and a drop of the retired schema waited 1 s for each of two
autovacuums of its tables (``activities``, ``budget_spent``)."""


async def _wait_less_for_locks(conn: asyncpg.Connection) -> None:
    """``deadlock_timeout`` for the rest of the caller's transaction, in a savepoint: only a
    superuser, or a role granted ``SET`` on it (PostgreSQL 15), may; another goes on with
    the server's."""
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        async with conn.transaction():
            await conn.execute(f"SET LOCAL deadlock_timeout = '{REBUILD_DEADLOCK_TIMEOUT}'")


async def live_positions(conn: asyncpg.Connection) -> dict[tuple[str, int], int]:
    """Next offset per partition that the live projections have seen (applied or dead):
    in their inbox rows (``events`` and ``inbox``; live projections older than version 10,
    which a rebuild by this code replaces, kept every event's in ``inbox``) and their dead
    letters."""
    seen = ["proj.inbox", "proj.dead_letters"]
    if (await live_version(conn) or 0) >= _EVENTS_ARE_INBOX:
        seen.insert(0, "proj.events")
    union = " UNION ALL ".join(
        f"SELECT topic, kafka_partition, kafka_offset FROM {table}"  # noqa: S608 - constants
        for table in seen
    )
    rows = await conn.fetch(
        "SELECT topic, kafka_partition, max(kafka_offset) + 1 AS next"  # noqa: S608 - constants
        f" FROM ({union}) seen GROUP BY topic, kafka_partition"
    )
    return {(r["topic"], r["kafka_partition"]): r["next"] for r in rows}


async def swap_in(conn: asyncpg.Connection, schema: str) -> str:
    """Put ``schema`` in the live schema's place (after :func:`lock_for_swap`, same
    transaction); returns the name the live schema was renamed to, for the caller to drop
    once this is committed (:func:`drop_schema`).

    Renaming a schema locks none of its tables; dropping one locks each of them and waits
    for whoever holds one, while the live consumers wait for the swap: a reader in the
    middle of a transaction (it may then wait for the locked inbox: a deadlock), or
    autovacuum on a live table, which PostgreSQL cancels only after ``deadlock_timeout``
    (then 1 s by default). Dropped within the swap, the live schema took 1.7 s of it so.
    Statements after the commit find the tables by name in the new schema (PostgreSQL looks
    a name up again once it holds the lock, and renaming a schema invalidates every cached
    plan)."""
    retired = _set_apart(_RETIRED)
    await conn.execute(f"ALTER SCHEMA {LIVE_SCHEMA} RENAME TO {retired}")
    await conn.execute(f"ALTER SCHEMA {_checked(schema)} RENAME TO {LIVE_SCHEMA}")
    return retired


async def set_apart_schemas(conn: asyncpg.Connection) -> list[str]:
    """The schemas being rebuilt or swapped out (see ``_SET_APART``). Only a caller holding
    the rebuild's lock knows them all to be left over from a rebuild that did not finish."""
    rows = await conn.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname ^@ ANY($1::text[]) ORDER BY nspname",
        list(_SET_APART),
    )
    return [row["nspname"] for row in rows]


async def drop_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Drop a schema and its tables, cancelling an autovacuum of one of them after
    `REBUILD_DEADLOCK_TIMEOUT` (a retired live schema is often being vacuumed); a reader in
    the middle of a transaction on one of them is waited for."""
    async with conn.transaction():
        await _wait_less_for_locks(conn)
        await conn.execute(f"DROP SCHEMA IF EXISTS {_checked(schema)} CASCADE")
