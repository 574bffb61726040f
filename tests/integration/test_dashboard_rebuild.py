"""Rebuild: replay the topics into a fresh schema and switch over while serving.

Phase 1 (quiet): the projections, the API views and the findings after a rebuild equal
those before it, while the API is read throughout. Phase 2: events published during a
rebuild are all applied exactly once, whichever side of the switch they land on.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from test_dashboard_api import NOW, network_events
from typer.testing import CliRunner

from dashboard_harness import (
    APPLIED,
    FakeClock,
    announcement,
    dashboard_settings,
    make_event,
    running_dashboard,
)
from support import eventually, login_role
from teamnl_dashboard import queries
from teamnl_dashboard import rebuild as rebuild_module
from teamnl_dashboard.database import prepare_database
from teamnl_dashboard.projections import schema as schema_module
from teamnl_dashboard.projections.schema import (
    PROJECTION_VERSION,
    REBUILD_DEADLOCK_TIMEOUT,
    complete_load,
    create_schema,
    drop_schema,
    live_positions,
    lock_for_swap,
    schema_exists,
)
from teamnl_dashboard.rebuild import rebuild
from teamnl_dashboard.runtime import open_runtime
from teamnl_suite.cli import app as suite_app

pytestmark = pytest.mark.integration

VOLATILE = {"applied_at", "recorded_at", "built_at"}
VIEWS = (
    "/api/v1/overview?year=2019",
    "/api/v1/budget",
    "/api/v1/markets",
    "/api/v1/cities",
    "/api/v1/initiatives/nlib",
    "/api/v1/initiatives/tinl",
    "/api/v1/initiatives/globalstars",
    "/api/v1/initiatives/werkplaats",
    "/api/v1/activity",
)


# The running totals hold delta rows that `fold_totals()` folds now and then; consumers (or
# rebuild processes) folding at the same time may each leave a row for one key, and readers
# sum them. What they hold is their sums per key (as schema.sql's fold_totals sums them).
RUNNING_TOTALS = {
    "family_totals": "SELECT family, day, sum(events) AS events,"
    " max(last_event_at) AS last_event_at, sum(activities) AS activities"
    " FROM proj.family_totals GROUP BY 1, 2 HAVING sum(events) <> 0 OR sum(activities) <> 0",
    "activity_months": "SELECT family, market, month, sum(n) AS n FROM proj.activity_months"
    " GROUP BY 1, 2, 3 HAVING sum(n) <> 0",
    "tinl_partner_sets": "SELECT partners, sum(activities) AS activities, sum(knowledge) AS"
    " knowledge FROM proj.tinl_partner_sets GROUP BY 1"
    " HAVING sum(activities) <> 0 OR sum(knowledge) <> 0",
    "wp_portfolio": "SELECT status, since, until, sum(n) AS n FROM proj.wp_portfolio"
    " GROUP BY 1, 2, 3 HAVING sum(n) <> 0",
    "wp_sdgs": "SELECT sdg, since, until, sum(n) AS n FROM proj.wp_sdgs"
    " GROUP BY 1, 2, 3 HAVING sum(n) <> 0",
    "gs_call_totals": "SELECT closed_on, months, sum(calls) AS calls, sum(dutch) AS dutch,"
    " max(latest) AS latest FROM proj.gs_call_totals GROUP BY 1, 2"
    " HAVING sum(calls) <> 0 OR sum(dutch) <> 0",
    "budget_totals": "SELECT family, year, sum(spends) AS spends, sum(spent_cents) AS"
    " spent_cents FROM proj.budget_totals GROUP BY 1, 2"
    " HAVING sum(spends) <> 0 OR sum(spent_cents) <> 0",
}


async def projection_tables(pool: asyncpg.Pool) -> dict[str, list[tuple[Any, ...]]]:
    names = [
        r["tablename"]
        for r in await pool.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'proj' ORDER BY tablename"
        )
    ]
    tables = {}
    for name in names:
        rows = await pool.fetch(RUNNING_TOTALS.get(name, f"SELECT * FROM proj.{name}"))
        tables[name] = sorted(
            tuple((k, repr(v)) for k, v in dict(r).items() if k not in VOLATILE) for r in rows
        )
    return tables


async def snapshot(dash) -> dict[str, Any]:
    views = {path: (await dash.member.get(path)).json() for path in VIEWS}
    views["findings"] = [
        (f["id"], f["rule"], f["finding_key"], f["state"])
        for f in await dash.get("/api/v1/findings")
    ]
    return {"tables": await projection_tables(dash.pool), "views": views}


async def projected_network(dash) -> tuple[list[Any], dict[str, Any]]:
    """The network's events, published and projected, with the rules run; their snapshot."""
    events = network_events()
    await dash.publish(*events)
    await dash.wait_applied(len(events))
    await dash.app.state.engine.tick(dash.pool)
    return events, await snapshot(dash)


async def test_rebuild_gives_the_same_projections_and_keeps_serving(
    database_url: str, kafka_bootstrap: str
) -> None:
    clock = FakeClock(NOW)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, clock) as dash:
        events, before = await projected_network(dash)
        assert before["tables"]["events"] and before["views"]["findings"]

        lines: list[str] = []
        async with dash.app.state.hub.subscribe() as announced:
            rebuilding = asyncio.create_task(rebuild(settings, progress=lines.append, clock=clock))
            served = 0
            while not rebuilding.done():
                response = await dash.member.get("/api/v1/initiatives/nlib")
                assert response.status_code == 200 and response.json()["missions_held"] == 2
                served += 1
            result = await rebuilding
            # the switch is announced: caches and open pages learn of it at once
            switched = await announcement(announced, "projections")
        assert switched["rebuilt"] == result.schema
        assert served > 0 and result.applied == len(events)
        assert any(line.startswith("replayed") for line in lines)
        assert await snapshot(dash) == before

        # phase 2: events arriving during a rebuild land once, on either side of the switch
        more = [
            make_event(
                "nl.teamnl.nlib.budget.spent.v1", spend_id=f"late-{i}", amount_cents=1, year=2019
            )
            for i in range(200)
        ]
        rebuilding = asyncio.create_task(rebuild(settings, progress=lines.append, clock=clock))
        await dash.publish(*more)
        await rebuilding
        await dash.wait_applied(len(events) + len(more))
        assert (
            await dash.pool.fetchval(
                "SELECT count(*) FROM proj.budget_spent WHERE spend_id LIKE 'late-%'"
            )
            == 200
        )
        assert await dash.applied() == len(events) + len(more)
        assert await projection_schemas(dash.pool) == ["proj"]


async def projection_schemas(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'proj%' ORDER BY nspname"
    )
    return [row["nspname"] for row in rows]


async def test_projections_of_an_older_version_are_rebuilt_at_start_up(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: live projections built by an older PROJECTION_VERSION (here: version 1,
    whose events table has no titles) are rebuilt from the topics when the dashboard
    starts, before anything reads them; current ones are left alone."""
    clock = FakeClock(NOW)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    events = network_events()
    async with running_dashboard(settings, clock) as dash:
        await dash.publish(*events)
        await dash.wait_applied(len(events))
        built_at = await dash.pool.fetchval("SELECT built_at FROM proj.projection_meta")
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(
            "ALTER TABLE proj.events DROP COLUMN title; UPDATE proj.projection_meta SET version = 1"
        )
    finally:
        await admin.close()

    async with open_runtime(settings, clock=clock) as runtime:
        meta = await runtime.pool.fetch("SELECT version, built_at FROM projection_meta")
        assert [r["version"] for r in meta] == [PROJECTION_VERSION]
        assert meta[0]["built_at"] > built_at
        assert await runtime.pool.fetchval(APPLIED) == len(events)
        latest = await queries.recent_events(runtime.pool, limit=len(events))
        assert len(latest) == len(events) and all(e["title"] for e in latest)
    async with open_runtime(settings, clock=clock) as runtime:  # current: not rebuilt again
        again = await runtime.pool.fetchval("SELECT built_at FROM projection_meta")
        assert again == meta[0]["built_at"]


async def test_a_rebuild_read_in_many_small_fetches_gives_the_same_projections(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: with the next fetch read and parsed while the one before is in the database
    (here three records per fetch, so every fetch overlaps another), each record is still
    applied once, in order: the projections, views and findings equal those before. The
    replay loads tables with no running totals kept and no secondary index (the totals are
    summed from the loaded rows once, then the indexes built): when it has loaded every
    record, the totals are empty, the primary keys are the only indexes and autovacuum is
    off on every table. Only a
    catch-up, its triggers then in place, adds delta rows, folded once per catch-up: none
    is left."""
    monkeypatch.setattr(rebuild_module, "REPLAY_BATCH", 3)
    folds = 0
    loaded: dict[str, int] = {}
    fold = rebuild_module._Replayer.fold
    complete_load = rebuild_module._Replayer.complete_load

    async def counted_fold(replayer: Any) -> None:
        nonlocal folds
        folds += 1
        await fold(replayer)

    async def looked_at_load(replayer: Any, schema: str) -> None:
        async with replayer.pool.acquire() as conn:
            for table in RUNNING_TOTALS:
                loaded[table] = await conn.fetchval(f"SELECT count(*) FROM {schema}.{table}")
            loaded["indexes"] = await conn.fetchval(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = $1"
                " AND indexname NOT LIKE '%_pkey'",
                schema,
            )
            loaded["triggers"] = await conn.fetchval(
                "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal",
                schema,
            )
            loaded["tables autovacuumed"] = await conn.fetchval(
                "SELECT count(*) FROM pg_class WHERE relnamespace = $1::regnamespace"
                " AND relkind = 'r'"
                " AND NOT coalesce('autovacuum_enabled=false' = ANY(reloptions), false)",
                schema,
            )
        await complete_load(replayer, schema)

    monkeypatch.setattr(rebuild_module._Replayer, "fold", counted_fold)
    monkeypatch.setattr(rebuild_module._Replayer, "complete_load", looked_at_load)
    clock = FakeClock(NOW)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, clock) as dash:
        events, before = await projected_network(dash)
        lines: list[str] = []
        result = await rebuild(settings, progress=lines.append, clock=clock)
        assert result.records == result.applied == len(events) > 3 * 4
        assert sum(line.startswith("replayed ") for line in lines) >= len(events) // 3
        assert await snapshot(dash) == before
        assert loaded == dict.fromkeys(
            [*RUNNING_TOTALS, "indexes", "triggers", "tables autovacuumed"], 0
        )
        assert folds == 1  # the switch's catch-up
        for table in ("family_totals", "activity_months"):
            assert await dash.pool.fetchval(f"SELECT count(*) FROM proj.{table} WHERE delta") == 0


async def test_a_rebuilt_schema_has_the_indexes_and_triggers_of_a_fresh_one(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: what a rebuild's loaded schema left out until loaded - its secondary indexes,
    its running totals' triggers, autovacuum on its tables - is there once it is switched
    in, the same as in a schema created fresh (named apart from the schema)."""
    clock = FakeClock(NOW)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, clock) as dash:
        await projected_network(dash)
        fresh = await schema_objects(dash.pool, "proj")
        assert len(fresh["indexes"]) > len(RUNNING_TOTALS) and len(fresh["triggers"]) >= 6
        await rebuild(settings, progress=lambda _line: None, clock=clock)
        assert await schema_objects(dash.pool, "proj") == fresh


async def test_a_loaded_schema_is_completed_on_two_connections_at_once(database_url: str) -> None:
    """Proves: the completion of a loaded schema (the totals summed, the indexes and
    triggers made, autovacuum on again, every table analysed) is split by table between two
    connections that work at the same time: two server processes run its jobs, interleaved,
    each table's in one job; and the schema then has the indexes, triggers and table
    options of one created fresh."""
    await prepare_database(database_url)
    ran: list[tuple[int, str]] = []  # (server process, statement), as each ended

    async def logged(conn: asyncpg.Connection) -> None:
        pid = conn.get_server_pid()
        conn.add_query_logger(lambda query: ran.append((pid, query.query)))

    loaded, fresh = "proj_rebuild_lanes", "proj_retired_lanes"
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=2, init=logged)
    assert pool is not None
    try:
        async with pool.acquire() as conn, conn.transaction():
            await create_schema(conn, loaded, to_load=True)
            await create_schema(conn, fresh)
        ran.clear()
        await complete_load(pool, loaded, lanes=2)

        jobs = [(pid, query) for pid, query in ran if "ANALYZE" in query]
        assert len({pid for pid, _ in jobs}) == 2, "one connection did every job"
        lanes = [pid for pid, query in ran if query.strip() not in ("", "BEGIN;", "COMMIT;")]
        first = lanes[0]
        assert first in lanes[lanes.index(next(p for p in lanes if p != first)) :], (
            "the second connection began only after the first was done"
        )
        analysed = [t for _, query in jobs for t in re.findall(r"ANALYZE (\w+);", query)]
        assert sorted(analysed) == sorted(set(analysed)), "a table's work split between jobs"
        made, expected = await schema_objects(pool, loaded), await schema_objects(pool, fresh)
        assert {k: [v.replace(loaded, "S") for v in vs] for k, vs in made.items()} == {
            k: [v.replace(fresh, "S") for v in vs] for k, vs in expected.items()
        }
    finally:
        async with pool.acquire() as conn:
            for schema in (loaded, fresh):
                await drop_schema(conn, schema)
        await pool.close()


async def test_a_failed_lane_ends_the_others_and_raises_its_own_error(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: when one connection's job fails, the completion raises that job's error (not
    a group of errors), the other connection's job is cancelled rather than waited for, and
    both connections go back to the pool usable."""
    await prepare_database(database_url)
    jobs = ["SELECT pg_sleep(30);", "SELECT 1/0;", "SELECT 1;"]
    monkeypatch.setattr(schema_module, "_load_jobs", lambda _sizes: list(jobs))
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=2)
    assert pool is not None
    try:
        ended = asyncio.create_task(complete_load(pool, "proj", lanes=2))
        with pytest.raises(asyncpg.DivisionByZeroError):
            await asyncio.wait_for(ended, 20)  # the sleeping job did not hold it up
        assert [await pool.fetchval("SELECT 1") for _ in range(2)] == [1, 1]
        assert pool.get_idle_size() == pool.get_size() == 2
    finally:
        await pool.close()


async def schema_objects(pool: asyncpg.Pool, schema: str) -> dict[str, list[str]]:
    """Every index and trigger of `schema`, as its definition."""
    indexes = await pool.fetch(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname", schema
    )
    triggers = await pool.fetch(
        "SELECT pg_get_triggerdef(t.oid) AS def FROM pg_trigger t"
        " JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal ORDER BY t.tgname",
        schema,
    )
    tables = await pool.fetch(
        "SELECT relname, reloptions FROM pg_class WHERE relnamespace = $1::regnamespace"
        " AND relkind = 'r' ORDER BY relname",
        schema,
    )
    return {
        "indexes": [r["indexdef"] for r in indexes],
        "triggers": [r["def"] for r in triggers],
        "tables": [f"{r['relname']} {r['reloptions']}" for r in tables],
    }


async def test_a_rebuild_split_between_processes_gives_the_same_projections(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: a log replayed by three processes, its partitions split between them (each
    partition in order in one of them), gives the same projections, views and findings,
    and the switch-over then goes on from where each part stopped."""
    monkeypatch.setattr(rebuild_module, "PARALLEL_FROM_RECORDS", 0)
    clock = FakeClock(NOW)
    settings = dashboard_settings(database_url, kafka_bootstrap).model_copy(
        update={"rebuild_processes": 3}
    )
    async with running_dashboard(settings, clock) as dash:
        events, before = await projected_network(dash)
        lines: list[str] = []
        result = await rebuild(settings, progress=lines.append, clock=clock)
        assert result.records == result.applied == len(events)
        assert any(line.startswith("replaying in 3 processes") for line in lines)
        assert await snapshot(dash) == before


async def test_a_reader_in_a_transaction_does_not_hold_up_the_switch(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: a reader holding a live table in an open transaction does not hold the
    switch up (the switch retires the live schema by renaming it, which locks none of its
    tables): the switch commits meanwhile, the reader's next statement reads the new
    projections, and only the drop of the retired schema waits for the reader."""
    clock = FakeClock(NOW)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, clock) as dash:
        events, before = await projected_network(dash)
        live_events = await dash.pool.fetchval("SELECT 'proj.events'::regclass::oid")
        reader = await asyncpg.connect(database_url)
        try:
            reading = reader.transaction()
            await reading.start()
            await reader.fetchval("SELECT count(*) FROM proj.events")
            lines: list[str] = []
            rebuilding = asyncio.create_task(rebuild(settings, progress=lines.append, clock=clock))

            async def retired_drop_waits() -> bool:
                return bool(
                    await dash.pool.fetchval(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted"
                        " AND mode = 'AccessExclusiveLock' AND relation = $1)",
                        live_events,
                    )
                )

            await eventually(retired_drop_waits, timeout=60, interval=0.02)
            assert any(line.startswith("evaluating every coherence rule") for line in lines)
            assert await reader.fetchval("SELECT 'proj.events'::regclass::oid") != live_events
            assert await reader.fetchval(APPLIED) == len(events)
            assert not rebuilding.done()
            await reading.commit()
        finally:
            await reader.close()
        result = await rebuilding
        assert result.records == result.applied == len(events)
        assert await snapshot(dash) == before
        assert await projection_schemas(dash.pool) == ["proj"]


async def test_a_rebuild_drops_the_schemas_a_killed_one_left(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: what a rebuild killed midway leaves - its own schema, half loaded, or the
    live schema it retired and had not dropped yet - the next rebuild drops first, and it
    builds the same projections."""
    clock = FakeClock(NOW)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, clock) as dash:
        events, before = await projected_network(dash)
        async with dash.pool.acquire() as conn, conn.transaction():
            await create_schema(conn, "proj_rebuild_killed", to_load=True)
            await create_schema(conn, "proj_retired_killed")
        lines: list[str] = []
        result = await rebuild(settings, progress=lines.append, clock=clock)
        for left in ("proj_rebuild_killed", "proj_retired_killed"):
            assert f"dropped {left}, left by an earlier rebuild" in lines
        assert result.records == result.applied == len(events)
        assert await snapshot(dash) == before
        assert await projection_schemas(dash.pool) == ["proj"]


async def test_a_retired_schema_not_dropped_is_left_to_the_next_rebuild(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: a rebuild whose drop of the retired schema fails (here: refused by the
    server) is done all the same, says what it left, and the next rebuild drops it."""
    drop_schema = rebuild_module.drop_schema

    async def refused_for_retired(conn: asyncpg.Connection, schema: str) -> None:
        if schema.startswith("proj_retired_"):
            await conn.execute("SELECT 1/0")  # a PostgreSQL error, as a deadlock would be
        await drop_schema(conn, schema)

    clock = FakeClock(NOW)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, clock) as dash:
        events, before = await projected_network(dash)
        lines: list[str] = []
        with monkeypatch.context() as patched:
            patched.setattr(rebuild_module, "drop_schema", refused_for_retired)
            result = await rebuild(settings, progress=lines.append, clock=clock)
        [left] = [line.split()[0] for line in lines if "is left for the next rebuild" in line]
        assert result.records == result.applied == len(events)
        assert await snapshot(dash) == before
        assert await projection_schemas(dash.pool) == ["proj", left]

        lines.clear()
        await rebuild(settings, progress=lines.append, clock=clock)
        assert f"dropped {left}, left by an earlier rebuild" in lines
        assert await projection_schemas(dash.pool) == ["proj"]
        assert await snapshot(dash) == before


async def test_a_rebuild_whose_rules_fail_raises_their_error_after_switching(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: when evaluating the rules fails after the switch, the rebuild raises that
    error itself (not an exception group holding it); the rebuilt projections are live,
    and the next rebuild leaves only them."""

    class RulesFailed(RuntimeError):
        pass

    async def failing(*_: object) -> None:
        raise RulesFailed("the rules could not be evaluated")

    clock = FakeClock(NOW)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, clock) as dash:
        events, before = await projected_network(dash)
        live = "SELECT oid FROM pg_namespace WHERE nspname = 'proj'"
        replaced = await dash.pool.fetchval(live)
        with monkeypatch.context() as patched:
            patched.setattr(rebuild_module, "_reconcile_findings", failing)
            with pytest.raises(RulesFailed, match="could not be evaluated"):
                await rebuild(settings, progress=lambda _: None, clock=clock)
        assert await dash.pool.fetchval(live) != replaced  # switched to the rebuilt schema
        assert await snapshot(dash) == before
        result = await rebuild(settings, progress=lambda _: None, clock=clock)
        assert result.records == result.applied == len(events)
        assert await projection_schemas(dash.pool) == ["proj"]
        assert await snapshot(dash) == before


async def test_the_switch_reads_where_live_projections_of_either_shape_stopped(
    database_url: str,
) -> None:
    """Proves: the positions the switch catches up from are the live projections' inbox
    rows and dead letters: a network event's ``events`` row from version 10 on, and, in
    live projections of version 9 (which a rebuild by this code replaces), every event's
    ``inbox`` row."""
    await prepare_database(database_url)
    admin = await asyncpg.connect(database_url, server_settings={"search_path": "proj, public"})
    try:
        await admin.execute(
            "INSERT INTO proj.inbox VALUES ('/p', 'ops-1', 't', 'ops', 0, 7, now());"
            " INSERT INTO proj.dead_letters (topic, kafka_partition, kafka_offset, reason)"
            " VALUES ('nlib', 1, 30, 'invalid');"
            " INSERT INTO proj.events VALUES ('e1', '/p', 't', 'nlib', 's', now(), 't',"
            " 'nlib', 1, 41), ('e2', '/p', 't', 'tinl', 's', now(), 't', 'tinl', 0, 3)"
        )
        assert await live_positions(admin) == {("ops", 0): 8, ("nlib", 1): 42, ("tinl", 0): 4}

        await admin.execute(  # version 9's shape: no position in events, every inbox row
            "ALTER TABLE proj.events DROP COLUMN topic, DROP COLUMN kafka_partition,"
            " DROP COLUMN kafka_offset;"
            " INSERT INTO proj.inbox VALUES ('/p', 'e1', 't', 'nlib', 1, 41, now());"
            " UPDATE proj.projection_meta SET version = 9"
        )
        assert await live_positions(admin) == {("ops", 0): 8, ("nlib", 1): 42}
    finally:
        await admin.close()


async def test_the_swap_and_drops_wait_less_for_locks_where_their_role_may_say_so(
    database_url: str,
) -> None:
    """Proves: the swap's transaction, and a schema's drop, wait `REBUILD_DEADLOCK_TIMEOUT`
    for a lock before PostgreSQL looks for a deadlock (and cancels an autovacuum in their
    way, rather than after the server's second), until their transaction ends; a role that
    may not set it locks the live inbox, and drops a schema, all the same, waiting as long
    as the server says."""
    await prepare_database(database_url)
    admin = await asyncpg.connect(database_url)
    try:
        server = await admin.fetchval("SHOW deadlock_timeout")
        assert server != REBUILD_DEADLOCK_TIMEOUT
        async with admin.transaction():
            await lock_for_swap(admin)
            assert await admin.fetchval("SHOW deadlock_timeout") == REBUILD_DEADLOCK_TIMEOUT
        assert await admin.fetchval("SHOW deadlock_timeout") == server
        async with admin.transaction():  # a drop's setting too holds until the end of it
            await create_schema(admin, "proj_retired_waitsless")
            await drop_schema(admin, "proj_retired_waitsless")
            assert await admin.fetchval("SHOW deadlock_timeout") == REBUILD_DEADLOCK_TIMEOUT
        assert await admin.fetchval("SHOW deadlock_timeout") == server
        assert not await schema_exists(admin, "proj_retired_waitsless")

        async with login_role(admin, database_url, "swapper") as role_url:
            role = urlsplit(role_url).username
            await admin.execute(f"GRANT USAGE ON SCHEMA proj TO {role}")
            await admin.execute(f"GRANT UPDATE ON proj.inbox, proj.events TO {role}")
            other = await asyncpg.connect(role_url)
            try:
                async with other.transaction():
                    await lock_for_swap(other)
                    assert await other.fetchval("SHOW deadlock_timeout") == server
                    held = await other.fetch(
                        "SELECT relation::regclass::text, mode FROM pg_locks"
                        " WHERE pid = pg_backend_pid() AND relation = ANY($1::regclass[])",
                        ["proj.inbox", "proj.events"],
                    )
                    assert {tuple(r) for r in held} == {
                        ("proj.inbox", "AccessExclusiveLock"),
                        ("proj.events", "ExclusiveLock"),
                    }
                await other.execute("CREATE SCHEMA proj_retired_itsown")
                await drop_schema(other, "proj_retired_itsown")
                assert not await schema_exists(admin, "proj_retired_itsown")
            finally:
                await other.close()
    finally:
        await admin.close()


async def test_a_rebuild_with_kafka_out_of_reach_says_so_and_leaves_the_projections(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`teamnl rebuild` names Kafka (not the database) in one line, exit status 1; the live
    projections stand and no schema it began is left."""
    monkeypatch.setenv("DASHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens on 1
    await prepare_database(database_url)

    result = await asyncio.to_thread(CliRunner().invoke, suite_app, ["rebuild"])

    said = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "cannot reach Kafka at 127.0.0.1:1" in said and "Traceback" not in result.output
    conn = await asyncpg.connect(database_url)
    try:
        schemas = await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'proj%'")
    finally:
        await conn.close()
    assert [row["nspname"] for row in schemas] == ["proj"]
