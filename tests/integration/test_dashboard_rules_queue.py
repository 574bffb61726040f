"""What consumed events owe the rules: queued with their projections, worked off once by
the rules worker, off the consumer's path (`rules.pending`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from dashboard_harness import FakeClock, dashboard_settings, make_event, running_dashboard
from support import eventually
from teamnl_dashboard.database import create_dashboard_pool, prepare_database
from teamnl_dashboard.rules import Facts, Hit, RulesEngine, build_engine
from teamnl_dashboard.rules import engine as engine_module
from teamnl_dashboard.rules.engine import RULES_LOCK
from teamnl_dashboard.rules.facts import FactContext, load_facts, scoped_parts
from teamnl_dashboard.rules.model import PROJECTS, Scope
from teamnl_dashboard.rules.pending import RulesWorker
from teamnl_shared.db import transaction

pytestmark = pytest.mark.integration

NOW = datetime(2019, 7, 1, 12, tzinfo=UTC)
ONBOARDED = "nl.teamnl.werkplaats.project.onboarded.v1"


def isolated_project(project_id: str):  # no NLIB or TINL activity in Kenya, ever
    return make_event(
        ONBOARDED, project_id=project_id, country="KE", onboarded_on="2018-01-02", time=NOW
    )


def mission_held(mission_id: str, country: str, city: str):  # in June 2019
    return make_event(
        "nl.teamnl.nlib.mission.held.v1",
        mission_id=mission_id,
        country=country,
        city=city,
        city_of_opportunity=None,
        start_date="2019-06-01",
        end_date="2019-06-03",
        time=NOW,
    )


def loads_of(monkeypatch: pytest.MonkeyPatch, fact: str) -> list[list[str]]:
    """Each load of `fact` (a scoped rule's subject) by the rules engine: its part's keys."""
    loads: list[list[str]] = []
    load_facts = engine_module.load_facts

    async def recorded(conn, needs, ctx):
        if fact in needs:
            assert ctx.scope is not None, "a subject is read a part at a time"
            loads.append(sorted(ctx.scope.keys))
        return await load_facts(conn, needs, ctx)

    monkeypatch.setattr(engine_module, "load_facts", recorded)
    return loads


async def projects_in_india(pool, count: int) -> None:
    """`count` projects onboarded in India early in 2018 (wp-in-1...), written directly."""
    await pool.execute(
        "INSERT INTO proj.wp_projects (project_id, title, country, sectors, sdgs,"
        " onboarded_on, status, onboarded_event_id) SELECT 'wp-in-' || n, 'in India', 'IN',"
        " '{}', '{}', '2018-01-02', 'active', 'e-' || n FROM generate_series(1, $1::int) n",
        count,
    )


async def pending(pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM rules_pending"))


async def _none_pending(pool) -> bool:
    return await pending(pool) == 0


async def counted(dash: Any, rule: str) -> dict[str, int]:
    """The rule's findings counted by state (the findings API lists a page of them)."""
    rows = await dash.pool.fetch(
        "SELECT state, count(*) AS n FROM findings WHERE rule = $1 GROUP BY state", rule
    )
    return {row["state"]: row["n"] for row in rows}


async def evaluated(dash: Any, *events: Any) -> None:
    """`events` published, projected, and what they owe the rules worked off."""
    before = await dash.applied()
    await dash.publish(*events)
    await dash.wait_applied(before + len(events))
    await eventually(lambda: _none_pending(dash.pool), timeout=60)


async def test_the_consumer_projects_while_the_rules_are_busy_and_the_rules_catch_up(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap, rules_interval_seconds=3600)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        async with transaction(dash.pool) as busy:  # an evaluation that takes its time
            await busy.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
            await dash.publish(isolated_project("wp-ke-1"), isolated_project("wp-ke-2"))
            await dash.wait_applied(2)
            assert await dash.pool.fetchval("SELECT count(*) FROM proj.wp_projects") == 2
            assert await pending(dash.pool) >= 1
            assert await dash.findings("isolated-project") == []
        found = await dash.wait_findings("isolated-project", "open", 2)
        assert {f["finding_key"] for f in found} == {"wp-ke-1", "wp-ke-2"}

        async def worked_off() -> bool:
            return await pending(dash.pool) == 0

        await eventually(worked_off)
        raised = await dash.pool.fetchval(
            "SELECT count(*) FROM finding_changes c JOIN findings f ON f.id = c.finding_id"
            " WHERE f.rule = 'isolated-project' AND c.state = 'open'"
        )
        assert raised == 2  # each raised once, however many evaluations ran


@dataclass(frozen=True)
class Failing:
    """A rule whose evaluation fails (a bug, a database refusal)."""

    name: ClassVar[str] = "failing"
    version: ClassVar[int] = 1
    description: ClassVar[str] = "always fails"
    needs: ClassVar[frozenset[str]] = frozenset()
    triggers: ClassVar[frozenset[str]] = frozenset({ONBOARDED})
    scheduled: ClassVar[bool] = False

    def check(self, facts: Facts, now: datetime) -> list[Hit]:
        raise RuntimeError("the rule failed")


async def test_what_is_owed_stays_queued_when_an_evaluation_fails(database_url: str) -> None:
    await prepare_database(database_url)
    pool = await create_dashboard_pool(database_url)
    try:
        engine = RulesEngine(
            [Failing()], allocations_cents={}, duplication_window_days=30, clock=lambda: NOW
        )
        async with transaction(pool) as conn:
            assert await engine.queue(conn, [isolated_project("wp-1")])
        worker = RulesWorker(engine, pool, poll_seconds=0.05, backoff_seconds=0.05)
        with pytest.raises(RuntimeError):
            await worker.work_off()
        assert await pending(pool) == 1  # rolled back with the failed evaluation
        assert not worker.stalled(0)
        stopping = asyncio.Event()
        task = asyncio.create_task(worker.run(stopping))

        async def reported() -> bool:
            return worker.stalled(0.1)

        await eventually(reported)
        stopping.set()
        await task
        assert await pending(pool) == 1
    finally:
        await pool.close()


async def test_an_evaluation_growing_the_findings_finds_each_through_its_index(
    database_url: str,
) -> None:
    """Proves: an evaluation that writes many times more findings than the table held
    reaches each through an index to the end, not by scanning the table for each, though
    PostgreSQL's plans on its connection were made for a table of ten (PostgreSQL's count
    of the rows the transaction read from ``findings`` by scanning it: 32,004,020 without
    :class:`~teamnl_dashboard.rules.findings.Growth`). On a fresh
    database, the plans cached for a near-empty table stayed as one evaluation grew it:
    the foreign key's check of each finding's history scanned ``findings`` for each row,
    and 82,000 missions evaluated at once ran for more than 15 minutes (18 s so)."""
    await prepare_database(database_url)
    pool = await create_dashboard_pool(database_url)
    try:
        engine = build_engine(dashboard_settings(database_url, "127.0.0.1:1"), lambda: NOW)
        isolated = [engine.rule("isolated-project")]
        async with pool.acquire() as conn:  # PostgreSQL keeps its plans per connection
            await conn.execute("ANALYZE findings")  # empty, as a rebuild leaves it
            await projects_in_india(conn, 10)  # no activity there: each project isolated
            async with conn.transaction():
                await engine.evaluate(conn, isolated)
            await conn.execute("DELETE FROM proj.wp_projects")
            await projects_in_india(conn, 8000)  # wp-in-1...: the first ten still there
            async with conn.transaction():
                await engine.evaluate(conn, isolated)
                scanned = await conn.fetchval(
                    "SELECT seq_tup_read FROM pg_stat_xact_user_tables"
                    " WHERE relid = 'findings'::regclass"
                )
            written = await conn.fetchval("SELECT count(*) FROM finding_changes")
    finally:
        await pool.close()
    assert written == 8000
    # a part's live findings may be read by a scan (2,000 keys), as the whole rule's stale
    # keys are: at most a scan a part and one more (four parts), not one a finding written
    assert scanned <= 5 * written, f"{scanned} rows of findings scanned for {written} written"


async def test_a_scoped_rule_judges_a_large_portfolio_in_parts(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Isolated projects are judged `PART_SIZE` at a time (here 2 of 5): every part is
    raised and resolved, and a whole run ends the findings of projects no longer there."""
    monkeypatch.setattr(engine_module, "PART_SIZE", 2)
    loads = loads_of(monkeypatch, "projects")
    settings = dashboard_settings(database_url, kafka_bootstrap, rules_interval_seconds=3600)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        async with dash.app.state.hub.subscribe() as announced:
            await dash.publish(*(isolated_project(f"wp-ke-{i}") for i in range(5)))
            found = await dash.wait_findings("isolated-project", "open", 5)
            told = set()  # each finding raised is announced, and recorded in its history
            while len(told) < 5:
                message = await asyncio.wait_for(announced.get(), 30)
                if message.get("rule") == "isolated-project" and message["state"] == "open":
                    told.add(message["id"])
        assert sorted(f["finding_key"] for f in found) == [f"wp-ke-{i}" for i in range(5)]
        assert told == {f["id"] for f in found}
        history = await dash.pool.fetch(
            "SELECT finding_id, state, changed_by FROM finding_changes"
            " WHERE finding_id = ANY($1::bigint[])",
            sorted(told),
        )
        assert sorted(tuple(h) for h in history) == sorted((i, "open", "rules") for i in told)

        await dash.pool.execute("DELETE FROM proj.wp_projects WHERE project_id = 'wp-ke-4'")
        loads.clear()
        await dash.app.state.engine.tick(dash.pool)  # a whole run, in parts
        assert list(map(len, loads)) == [2, 2]  # wp-ke-0..3
        [gone] = await dash.findings("isolated-project", "resolved")
        assert gone["finding_key"] == "wp-ke-4"

        # time alone changes the rule once a day: the scheduler judges the portfolio again
        # only on a new date
        loads.clear()
        await dash.app.state.engine.tick(dash.pool, since=NOW - timedelta(hours=1))
        assert loads == []
        await dash.app.state.engine.tick(dash.pool, since=NOW - timedelta(days=1))
        assert list(map(len, loads)) == [2, 2]

        nairobi = mission_held("m-ke", "KE", "Nairobi")
        await dash.publish(nairobi)  # NLIB goes to Kenya: no project there is isolated
        await dash.wait_findings("isolated-project", "resolved", 5)
        assert await dash.findings("isolated-project", "open") == []


async def test_a_scoped_rule_reads_its_projects_a_part_at_a_time(
    database_url: str, kafka_bootstrap: str
) -> None:
    """The keys come through a cursor, `size` at a time, however many projects there are;
    other statements of the transaction run between two parts."""
    settings = dashboard_settings(database_url, kafka_bootstrap, rules_interval_seconds=3600)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        await dash.publish(*(isolated_project(f"wp-ke-{i}") for i in range(5)))
        await dash.publish(make_event(ONBOARDED, project_id="wp-gh-0", country="GH", time=NOW))
        await dash.wait_applied(6)
        async with transaction(dash.pool) as conn:
            everything = []
            async for part in scoped_parts(conn, PROJECTS, None, 2):
                everything.append(part)
                reading = await conn.fetchval(  # the keys' query, still open between parts
                    "SELECT count(*) FROM pg_cursors"
                    " WHERE statement LIKE 'SELECT project_id FROM wp_projects%'"
                )
                assert reading == 1, await conn.fetch("SELECT * FROM pg_cursors")
            named = Scope(keys=frozenset({"wp-gh-0"}), countries=frozenset({"KE"}))
            scoped = [part async for part in scoped_parts(conn, PROJECTS, named, 4)]
            nothing = [part async for part in scoped_parts(conn, PROJECTS, Scope(), 4)]

    kenya = [f"wp-ke-{i}" for i in range(5)]
    assert everything == [["wp-gh-0", *kenya[:1]], kenya[1:3], kenya[3:5]]
    assert scoped == [["wp-gh-0", *kenya[:3]], kenya[3:5]]
    assert nothing == []


async def test_a_scoped_rule_reads_only_the_projects_of_its_scope(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: the projects a scope names and those in its countries are found through the
    indexes, both the keys to judge and their facts, however the portfolio is spread: of
    5,000 projects all in India, a batch about one of them and about Kenya reads only that
    one (PostgreSQL's count of the rows the transaction read from the table). Found in the
    bench, whose portfolio is all in one country: its every activity abroad read all of it."""
    settings = dashboard_settings(database_url, kafka_bootstrap, rules_interval_seconds=3600)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        await projects_in_india(dash.pool, 5000)
        await dash.pool.execute("ANALYZE proj.wp_projects")
        scope = Scope(keys=frozenset({"wp-in-7"}), countries=frozenset({"KE"}))
        async with transaction(dash.pool) as conn:
            keys = [part async for part in scoped_parts(conn, PROJECTS, scope, 100)]
            facts = await load_facts(conn, {"projects"}, FactContext(NOW, {}, scope))
            read = await conn.fetchval(
                "SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables"
                " WHERE relid = 'proj.wp_projects'::regclass"
            )
    assert keys == [["wp-in-7"]]
    assert [p.project_id for p in facts.projects] == ["wp-in-7"]
    assert read <= 2, f"{read} rows read to find one project twice"


async def test_an_activity_where_the_network_is_active_judges_only_the_findings_there(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: an activity in a country where NLIB or TINL is active judges there only the
    projects still holding a finding, not every project of the country: of 3,000 isolated
    projects in India, the first Indian mission ends their 3,000 findings, the next one
    judges none. A project it names is judged all the same. Found with the bench's
    portfolio all in India: each Indian mission judged 150,000 projects again, for nothing."""
    judged = loads_of(monkeypatch, "projects")
    settings = dashboard_settings(database_url, kafka_bootstrap, rules_interval_seconds=3600)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        await projects_in_india(dash.pool, 3000)
        await dash.app.state.engine.tick(dash.pool)
        assert await counted(dash, "isolated-project") == {"open": 3000}

        judged.clear()
        await evaluated(
            dash, mission_held("m-in-1", "IN", "Mumbai")
        )  # India is active: every finding there ends
        assert await counted(dash, "isolated-project") == {"resolved": 3000}
        assert sum(map(len, judged)) == 3000

        judged.clear()
        await evaluated(
            dash, mission_held("m-in-2", "IN", "Mumbai")
        )  # nothing there holds a finding: nothing judged
        assert judged == []

        onboarded = make_event(
            ONBOARDED, project_id="wp-in-new", country="IN", onboarded_on="2018-01-02", time=NOW
        )
        await evaluated(dash, mission_held("m-in-3", "IN", "Mumbai"), onboarded)
        assert judged == [["wp-in-new"]]  # the project named, judged in India


async def test_a_follow_up_judges_its_mission_alone_and_the_daily_run_every_mission(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: the mission rules judge, as events arrive, only the missions the events name:
    a follow-up of one of 300 overdue missions reads that mission's facts alone and ends its
    finding alone; the scheduler's run judges every mission held (not the planned ones,
    and it ends the finding of one held no longer). Whole rules before, at the bench's
    82,000 missions every fetch with a mission event judged all of them (1.34 s)."""
    loads = loads_of(monkeypatch, "missions")
    settings = dashboard_settings(database_url, kafka_bootstrap, rules_interval_seconds=3600)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        held = [
            make_event("nl.teamnl.nlib.mission.held.v1", mission_id=f"m-{i:03}", time=NOW)
            for i in range(300)
        ]
        await evaluated(dash, *held)
        assert await counted(dash, "mission-followup-overdue") == {"open": 300}
        assert loads and all(keys for keys in loads)  # the missions named

        loads.clear()
        followup = make_event(
            "nl.teamnl.nlib.mission.followup.held.v1",
            mission_id="m-007",
            followup_id="m-007-ws1",
            time=NOW,
        )
        await evaluated(dash, followup)
        assert loads == [["m-007"]]
        [ended] = await dash.findings("mission-followup-overdue", "resolved")
        assert ended["finding_key"] == "m-007"
        assert await counted(dash, "mission-followup-overdue") == {"open": 299, "resolved": 1}

        loads.clear()
        await dash.pool.execute("DELETE FROM proj.nlib_missions WHERE mission_id = 'm-299'")
        await dash.app.state.engine.tick(dash.pool)  # every mission, for each mission rule
        assert sorted(map(len, loads)) == [299, 299]
        gone = await dash.findings("mission-followup-overdue", "resolved")
        assert sorted(f["finding_key"] for f in gone) == ["m-007", "m-299"]

        # only the missions held are read: none planned, nor one held no longer
        loads.clear()
        await dash.pool.execute(
            "INSERT INTO proj.nlib_missions (mission_id, title, direction, country, city,"
            " start_date, end_date, status) SELECT 'p-' || n, 'planned', 'outgoing', 'IN',"
            " 'Pune', '2030-01-01', '2030-01-05', 'planned' FROM generate_series(1, 50) n"
        )
        await dash.pool.execute(
            "UPDATE proj.nlib_missions SET status = 'planned' WHERE mission_id = 'm-100'"
        )
        await dash.app.state.engine.tick(dash.pool)
        assert sorted(map(len, loads)) == [298, 298]
        gone = await dash.findings("mission-followup-overdue", "resolved")
        assert sorted(f["finding_key"] for f in gone) == ["m-007", "m-100", "m-299"]


async def test_every_rule_evaluated_reads_the_next_parts_on_other_connections(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`evaluate_all` (a rebuild's) judges a scoped rule's parts in its transaction while
    two more connections read the next parts: each part's facts and live findings come from
    a reader, both readers are used, and the findings end as one connection leaves them (a
    project raised, one changed, one gone, the rest as they were)."""
    monkeypatch.setattr(engine_module, "PART_SIZE", 2)
    read_on: list[int] = []  # the backend of each part's read
    judged_on: set[int] = set()  # the backend of every other read: the transaction's
    load_facts = engine_module.load_facts

    async def recorded(conn, needs, ctx):
        (judged_on.add if ctx.scope is None else read_on.append)(conn.get_server_pid())
        return await load_facts(conn, needs, ctx)

    settings = dashboard_settings(database_url, kafka_bootstrap, rules_interval_seconds=3600)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        await dash.publish(*(isolated_project(f"wp-ke-{i}") for i in range(7)))
        await dash.wait_findings("isolated-project", "open", 7)
        await dash.pool.execute(
            "INSERT INTO proj.wp_projects (project_id, title, country, sectors, sdgs,"
            " onboarded_on, status, onboarded_event_id)"
            " VALUES ('wp-ke-7', 'new', 'KE', '{}', '{}', '2018-01-02', 'active', 'e-7')"
        )
        await dash.pool.execute(
            "UPDATE proj.wp_projects SET country = 'UG' WHERE project_id = 'wp-ke-3'"
        )
        await dash.pool.execute("DELETE FROM proj.wp_projects WHERE project_id = 'wp-ke-5'")
        monkeypatch.setattr(engine_module, "load_facts", recorded)
        pool = await create_dashboard_pool(database_url, max_size=3)
        try:
            await dash.app.state.engine.evaluate_all(pool, readers=2)
        finally:
            await pool.close()
        open_now = await dash.findings("isolated-project", "open")
        [gone] = await dash.findings("isolated-project", "resolved")

    assert len(read_on) == 4  # wp-ke-0..7 but 5, two at a time
    assert len(judged_on) == 1
    assert len(set(read_on)) == 2, read_on
    assert not judged_on & set(read_on)
    assert sorted(f["finding_key"] for f in open_now) == [
        f"wp-ke-{i}" for i in (0, 1, 2, 3, 4, 6, 7)
    ]
    [moved] = [f for f in open_now if f["finding_key"] == "wp-ke-3"]
    assert " in UG: " in moved["summary"]
    assert gone["finding_key"] == "wp-ke-5"


async def test_an_evaluation_that_fails_mid_way_leaves_no_read_running(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part whose judging fails ends the evaluation: the reads ahead are cancelled, the
    transaction rolls back (no finding changed) and every connection goes back to the
    pool."""
    monkeypatch.setattr(engine_module, "PART_SIZE", 2)
    settings = dashboard_settings(database_url, kafka_bootstrap, rules_interval_seconds=3600)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        await dash.publish(*(isolated_project(f"wp-ke-{i}") for i in range(7)))
        await dash.wait_findings("isolated-project", "open", 7)
        await dash.pool.execute("UPDATE proj.wp_projects SET country = 'UG'")
        engine = dash.app.state.engine
        rule = type(engine.rule("isolated-project"))
        check = rule.check
        judged = []

        def failing_second(self: Any, facts: Facts, now: datetime) -> list[Hit]:
            judged.append(len(facts.projects))
            if len(judged) == 2:
                raise RuntimeError("the rule failed")
            return check(self, facts, now)

        monkeypatch.setattr(rule, "check", failing_second)
        reads = {"started": 0, "running": 0, "cancelled": 0}
        live_findings = engine_module.live_findings

        async def held(conn, *args):  # a read past the failing part ends only when cancelled
            reads["started"] += 1
            reads["running"] += 1
            try:
                if reads["started"] > 2:
                    await asyncio.Event().wait()
                return await live_findings(conn, *args)
            except asyncio.CancelledError:
                reads["cancelled"] += 1
                raise
            finally:
                reads["running"] -= 1

        monkeypatch.setattr(engine_module, "live_findings", held)
        pool = await create_dashboard_pool(database_url, max_size=3)
        try:
            with pytest.raises(RuntimeError, match="the rule failed"):  # not a timeout
                await asyncio.wait_for(engine.evaluate_all(pool, readers=2), 30)
            # the reads ahead of the second part (the third's, the fourth's if begun) were
            # in flight, whatever the machine's speed, and were cancelled
            assert reads["started"] > 2
            assert reads == {**reads, "running": 0, "cancelled": reads["started"] - 2}
            assert pool.get_size() - pool.get_idle_size() == 0
        finally:
            await asyncio.wait_for(pool.close(), 10)
        still = await dash.findings("isolated-project", "open")

    assert judged == [2, 2]
    assert all(" in KE: " in f["summary"] for f in still)
