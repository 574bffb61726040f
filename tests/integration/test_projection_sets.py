"""The dashboard's set-based projection writes against a real PostgreSQL: a run of an
insert that skips existing rows, sent as one ``unnest`` statement or a ``COPY``, stores
what row by row would, and the running totals (statement-level triggers) count exactly
the rows it added. The statements are the projectors' own."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from dashboard_harness import make_event
from support import log_copies, login_role
from teamnl_dashboard import projections
from teamnl_dashboard.projections import writes
from teamnl_dashboard.projections.network import INSERT_ACTIVITY as ACTIVITY
from teamnl_dashboard.projections.network import UPSERT_SPEND
from teamnl_dashboard.projections.schema import create_schema
from teamnl_dashboard.projections.totals import VACUUM
from teamnl_dashboard.projections.writes import BufferedWrites
from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.inbox import COPY_FROM_ROWS, PoisonEvent

pytestmark = pytest.mark.integration

AT = datetime(2025, 3, 4, 12, tzinfo=UTC)


EVENT = (
    "INSERT INTO events (event_id, source, type, family, subject, time, title, topic,"
    " kafka_partition, kafka_offset) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    " ON CONFLICT DO NOTHING"
)
"""A skipping insert on a table with the running totals' triggers (the inbox writes an
``events`` row so, `projections.ledger`)."""


def _event(event_id: str, family: str, title: str, day: int = 4) -> tuple[object, ...]:
    return (event_id, "/p", "t", family, "s", AT.replace(day=day), title, family, 0, 0)


def _activity(event_id: str, family: str, market: str | None, on: date) -> tuple[object, ...]:
    return (event_id, "/p", family, "mission", market, None, None, on)


async def _in_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Create the projection schema `schema` and write to it on `conn` from now on."""
    async with conn.transaction():
        await create_schema(conn, schema)
    await conn.execute(f"SET search_path = {schema}, public")


async def _write(conn: asyncpg.Connection, sql: str, rows: list[tuple[object, ...]]) -> None:
    writes = BufferedWrites()
    await writes.executemany(sql, rows)
    async with conn.transaction():
        await writes.flush(conn)
        await conn.execute("SELECT fold_totals()")


async def test_a_run_stores_what_row_by_row_would_and_the_totals_count_what_it_added(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await _in_schema(conn, "proj")
        await _write(conn, EVENT, [_event("e0", "nlib", "before")])

        await _write(
            conn,
            EVENT,
            [
                _event("e1", "nlib", "first", day=9),
                _event("e1", "nlib", "second of one key", day=1),  # skipped: the first stays
                _event("e0", "nlib", "already there"),  # skipped
                _event("e2", "tinl", "other family", day=2),
            ],
        )
        await _write(
            conn,
            ACTIVITY,
            [
                _activity("e1", "nlib", "VN", date(2025, 3, 9)),
                _activity("e1", "nlib", "DE", date(2025, 4, 1)),  # skipped
                _activity("e2", "tinl", None, date(2025, 3, 2)),
                _activity("e3", "tinl", None, date(2025, 3, 30)),
            ],
        )

        titles = dict(await conn.fetch("SELECT event_id, title FROM events ORDER BY event_id"))
        assert titles == {"e0": "before", "e1": "first", "e2": "other family"}
        totals = {
            r["family"]: (r["events"], r["last_event_at"], r["activities"])
            for r in await conn.fetch(
                "SELECT family, sum(events) AS events, max(last_event_at) AS last_event_at,"
                " sum(activities) AS activities FROM family_totals GROUP BY family"
            )
        }
        assert totals == {
            "nlib": (2, AT.replace(day=9), 1),
            "tinl": (1, AT.replace(day=2), 2),
        }
        months = await conn.fetch(
            "SELECT family, market, month, sum(n) AS n FROM activity_months"
            " GROUP BY 1, 2, 3 ORDER BY 1, 2"
        )
        assert [tuple(r) for r in months] == [
            ("nlib", "VN", date(2025, 3, 1), 1),
            ("tinl", None, date(2025, 3, 1), 2),
        ]
        # per day: an event's (UTC) and an activity's own; folded: one row per key, the
        # statement-level triggers' rows included
        days = await conn.fetch(
            "SELECT family, day, events, activities FROM family_totals ORDER BY 1, 2"
        )
        assert [tuple(r) for r in days] == [
            ("nlib", date(2025, 3, 4), 1, 0),
            ("nlib", date(2025, 3, 9), 1, 1),
            ("tinl", date(2025, 3, 2), 1, 1),
            ("tinl", date(2025, 3, 30), 0, 1),
        ]
    finally:
        await conn.close()


async def test_a_long_run_is_copied_until_a_row_is_there_and_stores_the_same(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: a run of a skipping insert of `COPY_FROM_ROWS` rows goes as a ``COPY`` into
    its table while none of its rows is there; one that meets a row already there is rolled
    back and sent with its ON CONFLICT DO NOTHING, as is every later run of that statement;
    each stores what row by row would, and the totals (statement-level triggers, which
    ``COPY`` fires too) count exactly the rows added."""
    monkeypatch.setattr(writes, "_conflicted", set())
    conn = await asyncpg.connect(database_url)
    sent: list[tuple[str, str | None]] = []

    def log_events(logged: asyncpg.connection.LoggedQuery) -> None:
        if "INTO events" in logged.query and "unnest" in logged.query:
            refused = type(logged.exception).__name__ if logged.exception else None
            sent.append(("ON CONFLICT" if "ON CONFLICT" in logged.query else "plain", refused))

    try:
        await _in_schema(conn, "proj")
        conn.add_query_logger(log_events)
        log_copies(monkeypatch, sent)
        run = COPY_FROM_ROWS
        await _write(conn, EVENT, [_event(f"a{n}", "nlib", "first") for n in range(run)])
        assert sent == [("COPY events", None)]

        sent.clear()
        again = [_event("a0", "nlib", "already there"), _event("a1", "nlib", "already there")]
        await _write(conn, EVENT, [*(_event(f"b{n}", "nlib", "t") for n in range(run)), *again])
        assert sent == [("COPY events", "UniqueViolationError"), ("ON CONFLICT", None)]

        sent.clear()
        await _write(conn, EVENT, [_event(f"c{n}", "tinl", "t") for n in range(run)])
        assert sent == [("ON CONFLICT", None)]

        sent.clear()
        await _write(conn, EVENT, [_event(f"d{n}", "tinl", "t") for n in range(run - 1)])
        assert sent == [("ON CONFLICT", None)]  # shorter: never copied

        titles = dict(await conn.fetch("SELECT event_id, title FROM events"))
        assert len(titles) == 4 * run - 1 and titles["a0"] == titles["a1"] == "first"
        counted = await conn.fetch(
            "SELECT family, sum(events) AS n FROM family_totals GROUP BY 1 ORDER BY 1"
        )
        assert [tuple(r) for r in counted] == [("nlib", 2 * run), ("tinl", 2 * run - 1)]
    finally:
        await conn.close()


async def _totals(conn: asyncpg.Connection) -> list[tuple[object, ...]]:
    rows = await conn.fetch(
        "SELECT family, day, sum(events) AS events, count(*) FILTER (WHERE delta) AS deltas"
        " FROM family_totals GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return [tuple(r) for r in rows]


async def test_a_fold_rewrites_only_the_keys_its_batch_touched(database_url: str) -> None:
    """A long history's totals stay as they are: a batch's fold reads and rewrites the keys
    it added delta rows to, and leaves one folded row each."""
    conn = await asyncpg.connect(database_url)
    try:
        await _in_schema(conn, "proj")
        await _write(conn, EVENT, [_event(f"e{d}", "nlib", "t", day=d) for d in range(1, 29)])
        await _write(conn, ACTIVITY, [_activity("a1", "tinl", "CN", date(2025, 3, 9))])
        keyed = "SELECT (family, day)::text, xmin::text FROM family_totals"
        written = dict(await conn.fetch(keyed))
        months = await conn.fetch("SELECT family, month, xmin::text FROM activity_months")

        await _write(conn, EVENT, [_event("e-again", "nlib", "t", day=9)])
        await _write(conn, ACTIVITY, [_activity("a2", "nlib", "VN", date(2025, 4, 1))])

        after = dict(await conn.fetch(keyed))
        rewritten = {key for key, xmin in written.items() if after.get(key) != xmin}
        assert rewritten == {"(nlib,2025-03-09)"}  # the later event's key only
        assert [tuple(r) for r in months] == [
            tuple(r)
            for r in await conn.fetch("SELECT family, month, xmin::text FROM activity_months")
            if r["family"] == "tinl"
        ]
        totals = await _totals(conn)
        assert sum(t[2] for t in totals) == 29 and all(t[3] == 0 for t in totals)
        assert await conn.fetchval("SELECT count(*) FROM family_totals") == len(after)
    finally:
        await conn.close()


async def test_two_folds_at_once_keep_every_count(database_url: str) -> None:
    """Two consumers' batches touching one key fold at the same time: the second waits for
    the first's commit, folds what is left, and the key's rows still sum to every event."""
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        async with first.transaction():
            await create_schema(first, "proj")
        for conn in (first, second):
            await conn.execute("SET search_path = proj, public")
        await _write(first, EVENT, [_event("e0", "nlib", "t")])

        one, two = first.transaction(), second.transaction()
        await one.start()
        await two.start()
        writes = BufferedWrites()
        await writes.executemany(EVENT, [_event("e1", "nlib", "t")])
        await writes.flush(first)
        await first.execute("SELECT fold_totals()")
        writes = BufferedWrites()
        await writes.executemany(EVENT, [_event("e2", "nlib", "t"), _event("e3", "nlib", "t")])
        await writes.flush(second)
        folding = asyncio.ensure_future(second.execute("SELECT fold_totals()"))
        await asyncio.sleep(0.3)
        assert not folding.done()  # it waits for the first fold's rows
        await one.commit()
        await folding
        await two.commit()

        [(family, _, events, deltas)] = await _totals(first)
        assert (family, events, deltas) == ("nlib", 4, 0)
    finally:
        await first.close()
        await second.close()


SMALL_TOTALS = {
    "budget_totals": "INSERT INTO budget_totals (family, year, spends, spent_cents, spent_on)"
    " SELECT 'nlib', 2025, 1, 100, '2025-05-01' FROM generate_series(1, $1)",
    "tinl_partner_sets": "INSERT INTO tinl_partner_sets SELECT ARRAY['rvo', 'nlib'], 1, 0"
    " FROM generate_series(1, $1)",
    "wp_portfolio": "INSERT INTO wp_portfolio SELECT 'active', 2025, NULL, 1"
    " FROM generate_series(1, $1)",
    "wp_sdgs": "INSERT INTO wp_sdgs SELECT 9, 2025, NULL, 1 FROM generate_series(1, $1)",
}
"""A delta row per row written, as the row triggers add them: one key each."""


async def _explaining(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """The plans of what `conn` runs from now on, each with the rows its nodes produced
    (auto_explain with ANALYZE, nested statements too), gathered as PostgreSQL logs them."""
    plans: list[dict[str, Any]] = []
    conn.add_log_listener(
        lambda _c, message: (
            plans.append(json.loads(message.message.split("plan:", 1)[1]))
            if "plan:" in message.message
            else None
        )
    )
    await conn.execute("LOAD 'auto_explain'")
    for setting in (
        "auto_explain.log_min_duration = 0",
        "auto_explain.log_nested_statements = on",
        "auto_explain.log_analyze = on",
        "auto_explain.log_timing = off",
        "auto_explain.log_format = json",
        "client_min_messages = log",
    ):
        await conn.execute(f"SET {setting}")
    return plans


def _rows_read(plan: dict[str, Any]) -> int:
    """The rows every node of a plan produced or read and filtered out, times its loops:
    the work it did."""
    rows = sum(
        int(plan.get(field, 0))
        for field in ("Actual Rows", "Rows Removed by Filter", "Rows Removed by Join Filter")
    )
    own = rows * int(plan.get("Actual Loops", 1))
    return own + sum(_rows_read(child) for child in plan.get("Plans", []))


async def test_the_small_totals_fold_in_work_linear_in_their_rows_after_a_vacuum(
    database_url: str,
) -> None:
    """The folder vacuums the running totals after a fold has left them a row per key in
    the pages a second's delta rows took (statistics: a row in many pages); a second later
    the row triggers have added thousands of delta rows again, and the connection plans its
    fold on the vacuum's statistics. Its plans must still touch each
    row a bounded number of times (joining a table to its own grouping re-grouped every
    row for every row: a fold of 275 ms instead of 4). Counted from the fold's own plans
    (auto_explain with ANALYZE), not timed; and every key still sums to every row."""
    deltas = 1000
    conn = await asyncpg.connect(database_url)
    try:
        await _in_schema(conn, "proj")
        for insert in SMALL_TOTALS.values():
            await conn.execute(insert, deltas)
        await conn.execute("SELECT fold_totals()")
        # the folder's own: each table holds a row per key, in the pages its deltas took
        await conn.execute(VACUUM)
        for insert in SMALL_TOTALS.values():
            await conn.execute(insert, deltas)
        plans = await _explaining(conn)
        async with conn.transaction():
            await conn.execute("SELECT fold_totals()")
        await conn.execute("SET client_min_messages = notice")

        for table in SMALL_TOTALS:
            [plan] = [p["Plan"] for p in plans if f"DELETE FROM {table}" in p["Query Text"]]
            assert _rows_read(plan) <= 10 * deltas, table
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM budget_totals")] == [
            ("nlib", 2025, 2 * deltas, 100 * 2 * deltas, date(2025, 5, 1), False)
        ]
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM tinl_partner_sets")] == [
            (["rvo", "nlib"], 2 * deltas, 0)
        ]
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM wp_portfolio")] == [
            ("active", 2025, None, 2 * deltas)
        ]
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM wp_sdgs")] == [
            (9, 2025, None, 2 * deltas)
        ]
    finally:
        await conn.close()


class Recording:
    """The real connection, noting the statements sent through it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.sent: list[str] = []

    async def execute(self, sql: str, *args: object) -> str:
        self.sent.append(sql)
        return await self.conn.execute(sql, *args)

    async def executemany(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        self.sent.append(sql)
        await self.conn.executemany(sql, rows)

    async def prepare(self, sql: str) -> asyncpg.prepared_stmt.PreparedStatement:
        return await self.conn.prepare(sql)


def _spend(spend_id: str, year: int, cents: int, family: str = "nlib") -> tuple[object, ...]:
    return (family, spend_id, year, cents, "travel", date(year, 5, 1), f"ev-{spend_id}-{cents}")


async def _spent(conn: asyncpg.Connection, schema: str) -> tuple[list[tuple[object, ...]], ...]:
    await conn.execute(f"SET search_path = {schema}, public")
    await conn.execute("SELECT fold_totals()")
    rows = await conn.fetch("SELECT * FROM budget_spent ORDER BY family, spend_id")
    totals = await conn.fetch(
        "SELECT family, year, sum(spends) AS spends, sum(spent_cents) AS cents"
        " FROM budget_totals GROUP BY 1, 2 HAVING sum(spends) <> 0 ORDER BY 1, 2"
    )
    return [tuple(r) for r in rows], [tuple(r) for r in totals]


async def test_a_run_of_an_upsert_stores_and_totals_what_row_by_row_would(
    database_url: str,
) -> None:
    """The projector's budget upsert (a row trigger keeps the totals): a run without a
    repeated key goes as one statement, one with a repeated key row by row; either way the
    rows and the totals are those of the same rows sent one by one."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await create_schema(conn, "proj_rebuild_together")
            await create_schema(conn, "proj_rebuild_onebyone")
        before = [_spend("s1", 2025, 100), _spend("s2", 2025, 50)]
        runs = [
            # s1 moves to 2024, s2 grows, s3 is new (and of another family)
            [_spend("s1", 2024, 70), _spend("s3", 2025, 30, "tinl"), _spend("s2", 2025, 80)],
            # s2 twice in one run: the last stays
            [_spend("s2", 2025, 90), _spend("s4", 2025, 5), _spend("s2", 2024, 60)],
        ]
        sent = []
        for schema in ("proj_rebuild_together", "proj_rebuild_onebyone"):
            await conn.execute(f"SET search_path = {schema}, public")
            await conn.executemany(UPSERT_SPEND, before)
            for rows in runs:
                if schema == "proj_rebuild_together":
                    recording = Recording(conn)
                    writes = BufferedWrites()
                    await writes.executemany(UPSERT_SPEND, rows)
                    async with conn.transaction():
                        await writes.flush(recording)  # type: ignore[arg-type]
                    sent.append(recording.sent)
                else:
                    for row in rows:
                        await conn.execute(UPSERT_SPEND, *row)

        together = await _spent(conn, "proj_rebuild_together")
        one_by_one = await _spent(conn, "proj_rebuild_onebyone")
    finally:
        await conn.close()

    assert together == one_by_one
    assert together[1] == [("nlib", 2024, 2, 130), ("nlib", 2025, 1, 5), ("tinl", 2025, 1, 30)]
    assert [len(s) for s in sent] == [1, 1]
    assert "unnest" in sent[0][0]  # the first run as one statement
    assert sent[1][0] == UPSERT_SPEND  # the second row by row


STAGED_TYPES = (
    "nl.teamnl.tinl.activity.held.v1",  # an array of partners
    "nl.teamnl.werkplaats.project.onboarded.v1",  # arrays (sectors, sdgs), a literal status
    "nl.teamnl.nlib.mission.planned.v1",  # a literal status, an update only while planned
)
PARTNER_SETS = (["bom", "rvo"], ["rvo", "oost-nl", "bom"], ["rotterdam-partners"])


def _staged_run(event_type: str, prefix: str) -> list[Event]:
    """A run of `event_type` of `STAGE_FROM_ROWS` events, keys `<prefix>0`, `<prefix>1` ..."""
    spec = spec_for(event_type)
    changes: list[dict[str, Any]] = []
    for n in range(writes.STAGE_FROM_ROWS):
        data: dict[str, Any] = {spec.aggregate: f"{prefix}{n}", "title": f"{prefix} {n}"}
        if "partners" in spec.example:
            data["partners"] = PARTNER_SETS[n % len(PARTNER_SETS)]
        if "sdgs" in spec.example:
            data["sdgs"] = [9 + n % 9, 1 + n % 8]
            data["sectors"] = ["water", f"sector-{n % 3}"]
        changes.append(data)
    return [make_event(event_type, **data) for data in changes]


async def _contents(conn: asyncpg.Connection, schema: str) -> dict[str, list[tuple[object, ...]]]:
    await conn.execute(f"SET search_path = {schema}, public")
    await conn.execute("SELECT fold_totals()")
    tables = {
        "tinl_activities": "activity_id",
        "wp_projects": "project_id",
        "wp_members": "project_id, member",
        "nlib_missions": "mission_id",
        "events": "event_id",
        "activities": "event_id",
        "tinl_partner_sets": "partners",
        "wp_portfolio": "status, since, until",
        "wp_sdgs": "sdg, since, until",
    }
    found = {
        table: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {order}")]  # noqa: S608 - constants
        for table, order in tables.items()
    }
    found["family_totals"] = [
        tuple(r)
        for r in await conn.fetch(
            "SELECT family, day, sum(events), sum(activities) FROM family_totals"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        )
    ]
    return found


async def test_a_long_run_of_an_upsert_with_an_array_or_a_literal_is_staged_and_stores_the_same(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: a run of `STAGE_FROM_ROWS` TINL activities, Werkplaats onboardings or NLIB
    missions planned (upserts with an array parameter or a literal value, which ``unnest``
    cannot take) goes as a ``COPY`` into a staging table of the connection and one
    ``INSERT`` from it, which leaves the staging table empty; the rows, and the totals the
    row triggers keep, are those of the same events projected one by one, the upserts'
    updates of rows already there (and a mission no longer planned left as it was)
    included. A run one row shorter goes row by row."""
    monkeypatch.setattr(writes, "_may_stage", None)
    monkeypatch.setattr(writes, "_conflicted", set())  # the onboarding's members meet theirs
    conn = await asyncpg.connect(database_url)
    sent: list[tuple[str, str | None]] = []

    def log_staged(logged: asyncpg.connection.LoggedQuery) -> None:
        if logged.query.startswith("WITH staged AS"):
            refused = type(logged.exception).__name__ if logged.exception else None
            sent.append((logged.query.split(" INSERT INTO ")[1].split(" ")[0], refused))

    try:
        async with conn.transaction():
            await create_schema(conn, "proj_rebuild_staged")
            await create_schema(conn, "proj_rebuild_onebyone")
        runs = [_staged_run(event_type, f"k{n}-") for n, event_type in enumerate(STAGED_TYPES)]
        there = [
            make_event(STAGED_TYPES[0], activity_id="k0-1", partners=["bom"], title="before"),
            make_event(STAGED_TYPES[1], project_id="k1-2", sdgs=[3], title="before"),
            make_event(STAGED_TYPES[2], mission_id="k2-3", title="before"),
            make_event("nl.teamnl.nlib.mission.held.v1", mission_id="k2-4", title="held"),
        ]
        short = _staged_run(STAGED_TYPES[0], "short-")[1:]
        for schema in ("proj_rebuild_staged", "proj_rebuild_onebyone"):
            await conn.execute(f"SET search_path = {schema}, public")
            async with conn.transaction():
                for event in there:
                    await projections.apply(conn, event)
            if schema == "proj_rebuild_onebyone":
                async with conn.transaction():
                    for event in [e for run in [*runs, short] for e in run]:
                        await projections.apply(conn, event)
                continue
            conn.add_query_logger(log_staged)
            log_copies(monkeypatch, sent)
            for run in [*runs, short]:
                buffered = BufferedWrites()
                async with conn.transaction():
                    for event in run:
                        await projections.apply(buffered.as_connection(), event)
                    await buffered.flush(conn)
                    staging = await conn.fetch(
                        "SELECT relname FROM pg_class WHERE relnamespace = pg_my_temp_schema()"
                        " AND relkind = 'r'"
                    )
                    for row in staging:
                        assert await conn.fetchval(f"SELECT count(*) FROM pg_temp.{row[0]}") == 0
            conn.remove_query_logger(log_staged)

        staged = await _contents(conn, "proj_rebuild_staged")
        one_by_one = await _contents(conn, "proj_rebuild_onebyone")
    finally:
        await conn.close()

    assert [name for name, _ in sent if not name.startswith("COPY ")] == [
        "tinl_activities",
        "wp_projects",
        "nlib_missions",
    ]
    staging = [(name, refused) for name, refused in sent if "teamnl_stage_" in name]
    assert len(staging) == 3 and all(refused is None for _, refused in staging)
    assert all(refused is None for name, refused in sent if not name.startswith("COPY "))
    assert staged == one_by_one
    activities = {row[0]: row for row in staged["tinl_activities"]}
    assert len(activities) == 2 * writes.STAGE_FROM_ROWS - 1
    assert activities["k0-1"][1] == "k0- 1" and activities["k0-1"][8] == ["bom", "oost-nl", "rvo"]
    missions = {row[0]: row for row in staged["nlib_missions"]}
    assert missions["k2-3"][1] == "before"  # planned before: the insert's update leaves it
    assert missions["k2-4"][1] == "held"  # held: not planned any more
    assert sum(n for *_, n in staged["wp_portfolio"]) == writes.STAGE_FROM_ROWS


async def test_a_role_that_may_not_create_temporary_tables_sends_a_long_run_row_by_row(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the database refuses its role temporary tables, a long run of an upsert goes
    row by row and stores all the same; the refusal ends only its own savepoint."""
    admin = await asyncpg.connect(database_url)
    database = urlsplit(database_url).path.lstrip("/")
    await admin.execute(f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC")
    sent: list[str] = []
    try:
        async with login_role(admin, database_url, "stager") as role_url:
            conn = await asyncpg.connect(role_url)
            try:
                await _in_schema(conn, "proj_rebuild_owned")
                conn.add_query_logger(lambda logged: sent.append(logged.query))
                run = _staged_run(STAGED_TYPES[0], "r")
                buffered = BufferedWrites()
                for event in run:
                    await projections.apply(buffered.as_connection(), event)
                monkeypatch.setattr(writes, "_may_stage", None)
                async with conn.transaction():
                    await buffered.flush(conn)
                assert writes._may_stage is False
                assert await conn.fetchval("SELECT count(*) FROM tinl_activities") == len(run)
                assert not any(query.startswith("WITH staged AS") for query in sent)
            finally:
                await conn.close()
    finally:
        await admin.close()


async def test_a_staged_run_the_database_refuses_is_poison_and_the_next_run_stages_again(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row the database refuses in a staged run (a negative amount breaks a CHECK) makes
    the run poison (the inbox then applies its events one by one); once its savepoint is
    rolled back, the staging table created in it is gone and the next run creates it again
    and stores its rows."""
    monkeypatch.setattr(writes, "_may_stage", None)
    conn = await asyncpg.connect(database_url)
    try:
        await _in_schema(conn, "proj")
        count = writes.STAGE_FROM_ROWS
        refused = [_spend(f"bad{n}", 2025, -1 if n == 7 else 10) for n in range(count)]
        fine = [_spend(f"ok{n}", 2025, 10) for n in range(count)]
        async with conn.transaction():
            buffered = projections.DeferredProjections()
            await buffered.executemany(UPSERT_SPEND, refused)
            with pytest.raises(PoisonEvent, match="amount_cents"):
                async with conn.transaction():
                    await buffered.flush(conn)
            buffered = projections.DeferredProjections()
            await buffered.executemany(UPSERT_SPEND, fine)
            await buffered.flush(conn)
        stored = await conn.fetch("SELECT spend_id FROM budget_spent ORDER BY spend_id")
        assert sorted(r[0] for r in stored) == sorted(f"ok{n}" for n in range(count))
        assert writes._may_stage is True
    finally:
        await conn.close()


async def test_a_long_run_flushed_outside_a_transaction_is_not_staged_and_stores_every_row(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a transaction each statement commits, and the staging table is emptied at
    every commit: a long run of an upsert then goes row by row and stores every row."""
    monkeypatch.setattr(writes, "_may_stage", True)
    conn = await asyncpg.connect(database_url)
    sent: list[str] = []
    try:
        await _in_schema(conn, "proj")
        conn.add_query_logger(lambda logged: sent.append(logged.query))
        buffered = BufferedWrites()
        await buffered.executemany(
            UPSERT_SPEND, [_spend(f"s{n}", 2025, 10) for n in range(writes.STAGE_FROM_ROWS)]
        )
        await buffered.flush(conn)
        assert await conn.fetchval("SELECT count(*) FROM budget_spent") == writes.STAGE_FROM_ROWS
        assert not any(query.startswith(("WITH staged AS", "CREATE TEMPORARY")) for query in sent)
    finally:
        await conn.close()


async def test_a_rebuild_sums_its_totals_in_work_linear_in_the_loaded_rows(
    database_url: str,
) -> None:
    """A rebuild sums the running totals from the loaded rows (``load_totals.sql``) before
    the loaded tables have their secondary indexes: every statement's plan must touch each
    row a bounded number of times (the Global Stars calls' Dutch proposals counted in a
    subquery per call scanned every proposal per call: 27.8 s for the bench's 7,000 calls).
    Counted from the statements' own plans (auto_explain with ANALYZE), not timed."""
    calls, proposals = 300, 1500
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await create_schema(conn, "proj_rebuild_sums", to_load=True)
        await conn.execute("SET search_path = proj_rebuild_sums, public")
        await conn.execute(
            "INSERT INTO gs_calls (call_id, negotiation_started_on, opened_on, closed_on)"
            " SELECT 'c' || n, '2020-01-01'::date + n, '2020-02-01'::date + n,"
            " CASE WHEN n % 5 > 0 THEN '2020-06-01'::date + n END FROM generate_series(1, $1) n",
            calls,
        )
        await conn.execute(
            "INSERT INTO gs_proposals SELECT 'p' || n, 'c' || (n % $1 + 1), 'lead', n % 10 < 7,"
            " '2020-03-01'::date + n % 300, 'e' || n FROM generate_series(1, $2) n",
            calls,
            proposals,
        )
        await conn.execute("ANALYZE")
        plans = await _explaining(conn)
        async with conn.transaction():
            await conn.execute(resources.files(projections).joinpath("load_totals.sql").read_text())
        await conn.execute("SET client_min_messages = notice")
        [summed] = [p["Plan"] for p in plans if p["Plan"].get("Relation Name") == "gs_call_totals"]
        assert _rows_read(summed) <= 10 * (calls + proposals)
        assert all(_rows_read(p["Plan"]) <= 10 * (calls + proposals) for p in plans)
        totals = await conn.fetchrow("SELECT sum(calls), sum(dutch) FROM gs_call_totals")
        assert tuple(totals) == (calls, sum(n % 10 < 7 for n in range(1, proposals + 1)))
    finally:
        await conn.close()
