"""Each coherence rule raising its finding from real events, and clearing it.

Time-based rules run on the dashboard's scheduler (every 0.2 s here) against an injected
clock: the test moves the clock, it never sleeps, and no event is needed to raise them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from dashboard_harness import FakeClock, dashboard_settings, make_event, running_dashboard
from support import eventually
from teamnl_dashboard.rules import pair_activities
from teamnl_dashboard.rules.engine import RULES_LOCK
from teamnl_dashboard.rules.facts import FactContext, load_facts
from teamnl_dashboard.rules.model import DEAD_LETTER_IDS, ActivityFact, DeadLettersFact
from teamnl_shared.contract.topics import deadletter_topic
from teamnl_shared.kafka import ensure_topics, idempotent_producer, manual_commit_consumer

pytestmark = pytest.mark.integration

NOW = datetime(2019, 7, 1, 12, tzinfo=UTC)
MISSION_HELD = "nl.teamnl.nlib.mission.held.v1"
FOLLOWUP = "nl.teamnl.nlib.mission.followup.held.v1"
ACTIVITY = "nl.teamnl.tinl.activity.held.v1"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def dash(database_url: str, kafka_bootstrap: str, clock: FakeClock):
    async with running_dashboard(dashboard_settings(database_url, kafka_bootstrap), clock) as d:
        yield d


def mission(mission_id: str, country: str, city: str, start: str, end: str):
    return make_event(
        MISSION_HELD,
        mission_id=mission_id,
        country=country,
        city=city,
        city_of_opportunity=None,
        start_date=start,
        end_date=end,
        time=NOW,
    )


def activity(
    activity_id: str, market: str, city: str, start: str, end: str, country: str | None = None
):
    return make_event(
        ACTIVITY,
        activity_id=activity_id,
        market=market,
        city=city,
        country=country or market,
        start_date=start,
        end_date=end,
        time=NOW,
    )


async def test_followup_overdue_is_raised_by_time_alone_and_cleared_by_a_followup(
    dash, clock: FakeClock
) -> None:
    clock.set(datetime(2019, 5, 1, tzinfo=UTC))
    held = mission("m1", "VN", "Hanoi", "2019-04-08", "2019-04-12")
    await dash.publish(held)
    await dash.wait_applied(1)
    await dash.app.state.engine.tick(dash.pool)  # one run at the current time: nothing due
    assert await dash.findings("mission-followup-overdue") == []

    clock.set(datetime(2019, 6, 12, tzinfo=UTC))  # 61 days after the end; no new events
    [finding] = await dash.wait_findings("mission-followup-overdue", "open")
    assert finding["finding_key"] == "m1" and finding["event_ids"] == [held.id]
    assert finding["severity"] == "warning"

    await dash.publish(make_event(FOLLOWUP, mission_id="m1", followup_id="m1-ws"))
    [cleared] = await dash.wait_findings("mission-followup-overdue", "resolved")
    assert cleared["id"] == finding["id"] and cleared["resolved_by"] == "rules"


async def test_duplication_in_a_market_and_joint_action_counted_instead(dash) -> None:
    nlib = mission("m-cn", "CN", "Shanghai", "2019-05-01", "2019-05-04")
    apart = activity("a-cn", "CN", "Beijing", "2019-05-20", "2019-05-21")
    await dash.publish(nlib, apart)
    [finding] = await dash.wait_findings("market-duplication", "open")
    assert finding["finding_key"] == "m-cn|a-cn"
    assert set(finding["event_ids"]) == {nlib.id, apart.id}

    # the TINL partner corrects the activity: it was part of the mission in Shanghai
    await dash.publish(activity("a-cn", "CN", "Shanghai", "2019-05-02", "2019-05-03"))
    await dash.wait_findings("market-duplication", "resolved")
    await dash.app.state.engine.tick(dash.pool)
    score = (await dash.get("/api/v1/coherence/score"))["current"]
    # one joint action, and China worked by NLIB and TINL: one complementary link
    assert score["joint_actions"] == 2 and score["duplications"] == 0


async def test_the_rules_read_only_the_activities_that_pair(dash) -> None:
    """The duplication rule's facts are the activities abroad with one of the other family
    in the same foreign market within the window: nothing at home, nothing out of reach,
    and no pair of the whole history lost."""
    held = [  # id, family, market, country, city, start, end
        ("m-cn", "nlib", "CN", "CN", "Shanghai", "2019-05-01", "2019-05-04"),
        ("a-cn-near", "tinl", "CN", "CN", "Beijing", "2019-05-20", "2019-05-21"),
        ("a-cn-far", "tinl", "CN", "CN", "Beijing", "2019-09-01", "2019-09-02"),
        ("a-cn-home", "tinl", "CN", "NL", "Tilburg", "2019-05-02", "2019-05-03"),
        ("m-us", "nlib", "US", "US", "New York", "2019-03-01", "2019-03-02"),
        ("a-nyc", "tinl", "smart-cities", "US", "New York", "2019-03-30", "2019-03-31"),
        ("m-vn", "nlib", "VN", "VN", "Hanoi", "2019-05-01", "2019-05-02"),
        ("a-de", "tinl", "DE", "DE", "Hannover", "2019-05-01", "2019-05-02"),
    ]
    published = [
        mission(id_, country, city, start, end)
        if family == "nlib"
        else activity(id_, market, city, start, end, country)
        for id_, family, market, country, city, start, end in held
    ]
    await dash.publish(*published)
    await dash.wait_applied(len(published))
    every = tuple(
        ActivityFact(*fields[:5], *map(date.fromisoformat, fields[5:]), e.id)
        for fields, e in zip(held, published, strict=True)
    )

    async def loaded(window: int | None, as_of: date | None = None) -> set[str]:
        async with dash.pool.acquire() as conn:
            context = FactContext(NOW, {}, as_of=as_of, pair_window_days=window)
            facts = await load_facts(conn, {"paired_activities"}, context)
        days = 30 if window is None else window
        assert pair_activities(facts.paired_activities, days) == pair_activities(
            tuple(a for a in every if not as_of or a.start_date <= as_of), days
        )
        return {a.activity_id for a in facts.paired_activities}

    assert await loaded(30) == {"m-cn", "a-cn-near", "m-us", "a-nyc"}
    assert await loaded(None) == {"m-cn", "a-cn-near", "a-cn-far", "m-us", "a-nyc"}
    assert await loaded(30, as_of=date(2019, 5, 19)) == {"m-us", "a-nyc"}  # not yet near
    assert await loaded(20) == {"m-cn", "a-cn-near"}  # New York's were 28 days apart


async def test_isolated_werkplaats_project_until_nlib_goes_there(dash) -> None:
    await dash.publish(
        make_event(
            "nl.teamnl.werkplaats.project.onboarded.v1", project_id="w-ke", country="KE", time=NOW
        )
    )
    [finding] = await dash.wait_findings("isolated-project", "open")
    assert finding["finding_key"] == "w-ke" and finding["severity"] == "info"
    await dash.publish(mission("m-ke", "KE", "Nairobi", "2019-06-01", "2019-06-03"))
    await dash.wait_findings("isolated-project", "resolved")


async def test_project_facts_read_as_the_projections_hold_them(dash) -> None:
    """Proves: each project fact carries the project's own values in its own fields (read
    by position from the row, `facts._projects`), now and as of a day before it ended."""
    wp = "nl.teamnl.werkplaats.project"
    onboarded = [
        make_event(f"{wp}.onboarded.v1", project_id=p, country=c, onboarded_on=on, time=NOW)
        for p, c, on in (("p-ke", "KE", "2018-03-01"), ("p-in", "IN", "2019-02-01"))
    ]
    await dash.publish(
        *onboarded,
        make_event(f"{wp}.graduated.v1", project_id="p-ke", graduated_on="2019-05-01", time=NOW),
    )
    await dash.wait_applied(3)

    async def projects(as_of: date | None) -> dict[str, tuple[object, ...]]:
        async with dash.pool.acquire() as conn:
            facts = await load_facts(conn, {"projects"}, FactContext(NOW, {}, as_of=as_of))
        return {
            p.project_id: (p.country, p.status, p.event_id, p.onboarded_on, p.ended_on)
            for p in facts.projects
        }

    ke, india = onboarded
    assert await projects(None) == {
        "p-ke": ("KE", "graduated", ke.id, date(2018, 3, 1), date(2019, 5, 1)),
        "p-in": ("IN", "active", india.id, date(2019, 2, 1), None),
    }
    assert await projects(date(2019, 4, 30)) == {
        "p-ke": ("KE", "active", ke.id, date(2018, 3, 1), None),
        "p-in": ("IN", "active", india.id, date(2019, 2, 1), None),
    }
    assert await projects(date(2018, 12, 31)) == {
        "p-ke": ("KE", "active", ke.id, date(2018, 3, 1), None)
    }


async def test_werkplaats_portfolio_per_finished_year_against_its_target(
    dash, clock: FakeClock
) -> None:
    """A project counts in every year it was supported: onboarded by the year's end, not
    ended before the year began (counted from the running portfolio totals)."""
    wp = "nl.teamnl.werkplaats.project"

    def onboarded(project_id: str, on: str):
        return make_event(f"{wp}.onboarded.v1", project_id=project_id, onboarded_on=on, time=NOW)

    clock.set(datetime(2021, 1, 2, 12, tzinfo=UTC))
    first = [onboarded("p1", "2018-03-01"), onboarded("p2", "2019-06-01")]
    third = onboarded("p3", "2020-02-01")
    await dash.publish(
        *first,
        make_event(f"{wp}.graduated.v1", project_id="p1", graduated_on="2019-05-01", time=NOW),
        third,
        make_event(f"{wp}.stopped.v1", project_id="p3", stopped_on="2020-03-01", time=NOW),
    )
    await dash.wait_applied(5)
    expected = {
        2019: ({"year": 2019, "portfolio": 2, "target": 20}, [first[0].id, first[1].id]),
        2020: ({"year": 2020, "portfolio": 2, "target": 30}, [first[1].id, third.id]),
    }

    async def judged() -> bool:  # the rules follow the projections by one evaluation
        short = await dash.findings("werkplaats-portfolio-target", "open")
        return {f["details"]["year"]: (f["details"], f["event_ids"]) for f in short} == expected

    await eventually(judged)


async def test_gaps_in_focus_markets_and_cities_of_opportunity(dash, clock: FakeClock) -> None:
    await dash.publish(
        activity("a1", "CN", "Tilburg", "2019-05-13", "2019-05-17", "NL"),
        make_event(
            "nl.teamnl.nlib.city.programme.updated.v1",
            city_id="warsaw",
            city="Warsaw",
            country="PL",
            updated_on="2018-05-01",  # in the programme for over a year
            time=NOW,
        ),
    )
    gaps = await dash.wait_findings("focus-market-gap", "open", 3)
    assert {f["finding_key"] for f in gaps} == {"DE", "US", "smart-cities"}
    [city] = await dash.wait_findings("city-gap", "open")
    assert city["finding_key"] == "warsaw"

    await dash.publish(
        activity("a2", "DE", "Munich", "2019-06-01", "2019-06-02"),
        mission("m-pl", "PL", "Warsaw", "2019-06-10", "2019-06-12"),
    )
    [de] = await dash.wait_findings("focus-market-gap", "resolved")
    assert de["finding_key"] == "DE"
    await dash.wait_findings("city-gap", "resolved")

    clock.set(datetime(2020, 7, 1, tzinfo=UTC))  # a year later China and Germany are gaps
    await dash.wait_findings("focus-market-gap", "open", 4)


async def test_globalstars_lead_time_over_five_months(dash) -> None:
    await dash.publish(
        make_event(
            "nl.teamnl.globalstars.call.opened.v1",
            call_id="gs-tw",
            negotiation_started_on="2018-09-01",
            opened_on="2018-10-01",
            time=NOW,
        )
    )
    [late] = await dash.wait_findings("globalstars-lead-time", "open")  # still open in 2019
    assert late["finding_key"] == "gs-tw"
    await dash.publish(
        make_event(
            "nl.teamnl.globalstars.call.closed.v1",
            call_id="gs-tw",
            closed_on="2019-01-15",
            time=NOW,
        )
    )
    await dash.wait_findings("globalstars-lead-time", "resolved")


async def test_budget_off_pace_and_overspent(dash) -> None:
    def spend(spend_id: str, cents: int):
        return make_event(
            "nl.teamnl.tinl.budget.spent.v1",
            spend_id=spend_id,
            amount_cents=cents,
            year=2019,
            time=NOW,
        )

    await dash.publish(spend("s1", 15_000_000))  # 10 % of 1.5 M at half the year
    [slow] = await dash.wait_findings("budget-off-pace", "open")
    assert slow["finding_key"] == "tinl:2019" and slow["severity"] == "warning"
    await dash.publish(spend("s2", 60_000_000))  # 50 %: on pace
    await dash.wait_findings("budget-off-pace", "resolved")
    await dash.publish(spend("s3", 100_000_000))  # 117 %: over the allocation
    [over] = await dash.wait_findings("budget-off-pace", "open")
    assert over["severity"] == "critical"


async def test_each_services_latest_event_now_and_as_of_a_past_date(dash) -> None:
    """Proves: the ``services`` facts name each service's latest event of its families (TINL
    publishes the Global Stars calls too), now and as of a past date."""

    def at(day: int) -> datetime:
        return datetime(2019, 6, day, 12, tzinfo=UTC)

    tinl_early = make_event(ACTIVITY, activity_id="a1", time=at(1))
    nlib = make_event("nl.teamnl.nlib.budget.spent.v1", spend_id="s1", time=at(5))
    tinl_late = make_event(ACTIVITY, activity_id="a2", time=at(10))
    call = make_event("nl.teamnl.globalstars.call.opened.v1", call_id="c1", time=at(20))
    await dash.publish(tinl_early, nlib, tinl_late, call)
    await dash.wait_applied(4)

    async def latest(as_of: date | None) -> list[tuple[str, datetime, str]]:
        facts = await load_facts(dash.pool, {"services"}, FactContext(NOW, {}, as_of=as_of))
        return [(s.service, s.last_event_at, s.last_event_id) for s in facts.services]

    assert await latest(None) == [("nlib", at(5), nlib.id), ("tinl", at(20), call.id)]
    assert await latest(date(2019, 6, 9)) == [
        ("nlib", at(5), nlib.id),
        ("tinl", at(1), tinl_early.id),
    ]


async def test_a_silent_service(dash, clock: FakeClock) -> None:
    await dash.publish(
        make_event(
            "nl.teamnl.werkplaats.milestone.reached.v1", time=datetime(2019, 6, 20, tzinfo=UTC)
        )
    )
    await dash.wait_applied(1)
    clock.set(datetime(2019, 7, 25, tzinfo=UTC))
    [silent] = await dash.wait_findings("service-silent", "open")
    assert silent["finding_key"] == "werkplaats"
    await dash.publish(
        make_event(
            "nl.teamnl.werkplaats.milestone.reached.v1", time=datetime(2019, 7, 24, tzinfo=UTC)
        )
    )
    await dash.wait_findings("service-silent", "resolved")


async def test_invalid_and_poison_records_go_to_the_dead_letter_topic_without_blocking(
    dash, clock: FakeClock, kafka_bootstrap: str
) -> None:
    good = make_event("nl.teamnl.nlib.budget.spent.v1", spend_id="x1", time=NOW)
    # well-formed JSON with every header, but an amount beyond the contract's bound (and
    # beyond the database's bigint): refused when parsed, never reaching a projection
    too_big = json.dumps({**json.loads(good.data_json()), "amount_cents": 10**20}).encode()
    after = make_event("nl.teamnl.nlib.budget.spent.v1", spend_id="x1", time=NOW, amount_cents=7)
    await dash.publish(good)
    await dash.publish_raw(
        "teamnl.nlib.events",
        b"{not json",
        b"x1",
        [("ce_id", b"broken-1"), ("ce_type", b"nl.teamnl.nlib.budget.spent.v1")],
    )
    await dash.publish_raw("teamnl.nlib.events", too_big, b"x1", good.to_kafka_headers())
    await dash.publish(after)  # same key as the broken records: same partition

    await dash.wait_applied(2)
    budget = await dash.get("/api/v1/budget", period="2019")
    assert next(b for b in budget if b["family"] == "nlib")["spent_cents"] == 7
    # The finding opens at the first dead letter; the evaluation after the second counts both
    # (the two may reach the rules in one evaluation or in two).
    found: list[dict[str, object]] = []

    async def both_counted() -> bool:
        found[:] = await dash.findings("invalid-events", "open")
        return len(found) == 1 and json.loads(json.dumps(found[0]["details"]))["count"] == 2

    await eventually(both_counted)
    assert "broken-1" in found[0]["event_ids"]  # type: ignore[operator]

    dead = manual_commit_consumer(
        kafka_bootstrap, "dlq-reader", deadletter_topic(dash.settings.group)
    )
    await dead.start()
    try:
        records = []

        async def both_dead_lettered() -> bool:
            batch = await dead.getmany(timeout_ms=200)
            records.extend(r for rs in batch.values() for r in rs)
            return len(records) >= 2

        await eventually(both_dead_lettered)
    finally:
        await dead.stop()
    reasons = [dict(r.headers)["teamnl_error"].decode() for r in records]
    assert any("data/amount_cents" in reason for reason in reasons), reasons

    clock.advance(days=8)  # outside the rule's window: cleared without new events
    await dash.wait_findings("invalid-events", "resolved")


async def test_the_secretariat_acknowledges_and_resolves_members_cannot(dash) -> None:
    await dash.publish(
        make_event(
            "nl.teamnl.werkplaats.project.onboarded.v1", project_id="w-ng", country="NG", time=NOW
        )
    )
    [finding] = await dash.wait_findings("isolated-project", "open")
    path = f"/api/v1/findings/{finding['id']}"
    assert (await dash.member.post(f"{path}/acknowledge")).status_code == 403
    acked = await dash.secretariat.post(f"{path}/acknowledge", json={"note": "NLIB asked"})
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert (body["state"], body["acknowledged_by"]) == (
        "acknowledged",
        "secretariat@iso.example.org",
    )
    assert body["acknowledged_at"].startswith("2019-07-01")
    assert (await dash.secretariat.post(f"{path}/acknowledge")).status_code == 409
    resolved = (await dash.secretariat.post(f"{path}/resolve")).json()
    assert resolved["state"] == "resolved"
    assert [c["state"] for c in resolved["changes"]] == ["open", "acknowledged", "resolved"]
    assert (await dash.secretariat.post("/api/v1/findings/999999/resolve")).status_code == 404

    # resolved by hand while the situation holds: the scheduler does not raise it again
    await dash.app.state.engine.tick(dash.pool)
    assert await dash.findings("isolated-project", "open") == []


async def test_changes_are_pushed_to_the_live_stream(dash) -> None:
    async with asyncio.timeout(30), dash.member.stream("GET", "/api/v1/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        await dash.publish(
            make_event(
                "nl.teamnl.werkplaats.project.onboarded.v1",
                project_id="w-eg",
                country="EG",
                time=NOW,
            )
        )
        kinds: set[str] = set()
        async for line in lines:
            if line.startswith("event: "):
                kinds.add(line.removeprefix("event: "))
            if {"event", "finding"} <= kinds:
                break


async def test_dead_letters_are_counted_per_topic_within_the_window_in_the_database(
    dash, clock: FakeClock
) -> None:
    """Proves: the ``invalid-events`` facts are one per topic, counted within the rule's
    window (7 days), naming the latest reason and the latest `DEAD_LETTER_IDS` event ids
    oldest first; records without an id count but name none. (Read one row each before: a
    flood of invalid records made every evaluation read them all.)"""
    rows = [
        ("t.nlib", n, f"e{n}" if n % 2 else None, f"reason {n}", NOW - timedelta(hours=60 - n))
        for n in range(50)
    ]
    rows += [("t.nlib", 100, "too-old", "old", NOW - timedelta(days=8))]
    rows += [("t.tinl", 0, "t0", "tinl's", NOW - timedelta(days=1))]
    await dash.pool.executemany(
        "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, event_id, reason,"
        " recorded_at) VALUES ($1, 0, $2, $3, $4, $5)",
        rows,
    )
    facts = await load_facts(dash.pool, {"dead_letters"}, FactContext(NOW, {}, dead_letter_days=7))
    odd = [f"e{n}" for n in range(1, 50, 2)]
    assert facts.dead_letters == (
        DeadLettersFact("t.nlib", 50, "reason 49", tuple(odd[-DEAD_LETTER_IDS:])),
        DeadLettersFact("t.tinl", 1, "tinl's", ("t0",)),
    )
    everything = await load_facts(dash.pool, {"dead_letters"}, FactContext(NOW, {}))
    assert [d.count for d in everything.dead_letters] == [51, 1]


async def test_a_dead_letter_does_not_wait_for_an_evaluation_of_the_rules(dash) -> None:
    """Proves: while an evaluation of the rules holds their lock, an invalid record is
    dead-lettered and the valid event behind it (same partition) is projected; the
    ``invalid-events`` finding follows once the lock is free. The consumer evaluated that
    rule itself, in the dead letter's transaction: it waited for the lock, its partitions
    behind it (at 15,479 missions and 154,836 conversions an evaluation held it for minutes)."""
    after = make_event("nl.teamnl.nlib.budget.spent.v1", spend_id="x1", time=NOW, amount_cents=7)
    async with dash.pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT pg_advisory_xact_lock($1)", RULES_LOCK)
        await dash.publish_raw(
            "teamnl.nlib.events",
            b"{not json",
            b"x1",
            [("ce_id", b"broken-1"), ("ce_type", b"nl.teamnl.nlib.budget.spent.v1")],
        )

        async def recorded() -> bool:
            return await dash.pool.fetchval("SELECT count(*) FROM dead_letters") == 1

        await eventually(recorded)
        await dash.publish(after)  # same key: the partition goes on
        await dash.wait_applied(1)
        assert await dash.findings("invalid-events") == []
    [finding] = await dash.wait_findings("invalid-events", "open")
    assert "broken-1" in finding["event_ids"]


FLOOD = 40
"""Invalid records in one fetch."""


async def test_a_fetch_of_invalid_records_is_recorded_at_once_owing_the_rule_once(
    database_url: str, kafka_bootstrap: str, clock: FakeClock
) -> None:
    """Proves: a fetch's invalid records are each recorded in ``dead_letters`` and owe the
    ``invalid-events`` rule one ``rules_pending`` row, not one each (a transaction and a row
    per record held a flood of them at about 450 a second); the finding then names them.
    The records are in their partition before the dashboard starts, so that its first fetch
    holds them all, and the rules' lock is held, so that the row is counted before the rules
    worker works it off."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    topic = settings.topic("teamnl.nlib.events")
    await ensure_topics(kafka_bootstrap, [topic], partitions=settings.topic_partitions)
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        for n in range(FLOOD):
            headers = [("ce_id", f"broken-{n}".encode()), ("ce_type", b"nl.teamnl.nlib.x.v1")]
            await producer.send_and_wait(topic, b"{not json", partition=0, headers=headers)
    finally:
        await producer.stop()
    holder = await asyncpg.connect(database_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", RULES_LOCK)
        async with running_dashboard(settings, clock) as dash:

            async def all_recorded() -> bool:
                return await dash.pool.fetchval("SELECT count(*) FROM dead_letters") == FLOOD

            await eventually(all_recorded)
            owed = await dash.pool.fetchval(
                "SELECT count(*) FROM rules_pending WHERE 'invalid-events' = ANY(rules)"
            )
            assert owed == 1, f"{owed} rows owe the rule for {FLOOD} records of one fetch"
            await holder.execute("SELECT pg_advisory_unlock($1)", RULES_LOCK)
            [finding] = await dash.wait_findings("invalid-events", "open")
    finally:
        await holder.close()
    assert finding["details"]["count"] == FLOOD
    assert f"broken-{FLOOD - 1}" in finding["event_ids"]
