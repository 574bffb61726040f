"""Issue 10, items 2 and 4, against real Kafka and PostgreSQL.

- A database error the same record meets on every retry (a value out of range, a check
  violated) is poison: that record is dead-lettered with the reason, the partition goes on;
  an outage is retried, and the consumer reports itself stalled while it lasts.
- An event's identity is (source, id) within its topic: the same partner sending the same
  id to two services, or two partners sending the same id, are different events, and the
  dashboard keeps every one. Version-3 projections are upgraded in place, keeping their rows.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord

from dashboard_harness import dashboard_settings, running_dashboard
from support import eventually, topic_prefix
from teamnl_dashboard.projections.schema import (
    PROJECTION_VERSION,
    create_schema,
    live_version,
)
from teamnl_dashboard.rebuild import upgrade_projections
from teamnl_shared.contract import nlib, werkplaats
from teamnl_shared.contract.envelope import Event, parse_event
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.contract.topics import deadletter_topic
from teamnl_shared.inbox import DeadLetters, Inbox, InboxConsumer
from teamnl_shared.kafka import ensure_topics, idempotent_producer
from teamnl_shared.outbox import NOTICE_HEADER

pytestmark = pytest.mark.integration


def mission(n: int, leads: int, *, source: str = "/partners/test") -> Event:
    return event(nlib.MissionHeld.TYPE, f"m-{n}", source, mission_id="m-1", leads=leads)


def event(event_type: str, event_id: str, source: str, **data: Any) -> Event:
    attributes = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": datetime(2018, 6, 1, tzinfo=UTC),
    }
    return parse_event(attributes, {**spec_for(event_type).example, **data})


def as_record(item: Event, offset: int) -> ConsumerRecord:
    value = item.data_json()
    return ConsumerRecord(
        "t", 0, offset, 0, 0, b"k", value, None, 1, len(value), item.to_kafka_headers()
    )


async def store_leads(conn: asyncpg.Connection, item: Event, record: ConsumerRecord) -> None:
    await conn.execute("INSERT INTO effects (id, leads) VALUES ($1, $2)", item.id, item.data.leads)


async def test_a_value_the_database_refuses_is_dead_lettered_and_the_rest_applied(
    migrated_pool: asyncpg.Pool,
) -> None:
    """leads 40,000 does not fit a smallint: a data error (class 22) on every retry."""
    await migrated_pool.execute("CREATE TABLE effects (id text, leads smallint)")
    inbox = Inbox(migrated_pool, store_leads, "g")
    items = [mission(0, 1), mission(1, 40_000), mission(2, 3)]

    outcome = await inbox.apply([as_record(e, i) for i, e in enumerate(items)])

    assert [e.id for e, _ in outcome.applied] == ["m-0", "m-2"]
    [(record, reason)] = outcome.dead
    assert record.offset == 1
    assert "the database refused it (22" in reason and "out of int16 range" in reason, reason
    rows = await migrated_pool.fetch("SELECT id FROM effects ORDER BY id")
    assert [r["id"] for r in rows] == ["m-0", "m-2"]
    inbox_rows = await migrated_pool.fetchval("SELECT count(*) FROM inbox")
    assert inbox_rows == 2, "the refused event is not recorded as applied"


async def test_a_batch_step_the_database_refuses_isolates_its_record_on_the_dead_letter_topic(
    migrated_pool: asyncpg.Pool, make_topics, kafka_bootstrap: str
) -> None:
    """``before_commit`` folds a running total with a CHECK; the one event that breaks it
    fails the whole batch's commit step. The consumer applies that batch one record at a
    time, dead-letters the one that fails, and goes on with the events after it."""
    await migrated_pool.execute("CREATE TABLE effects (id text, leads int)")
    await migrated_pool.execute(
        "CREATE TABLE total (v bigint NOT NULL CHECK (v < 1000)); INSERT INTO total VALUES (0)"
    )

    async def fold(conn: asyncpg.Connection, applied: list[tuple[Event, Any]]) -> None:
        added = sum(item.data.leads for item, _ in applied)
        await conn.execute("UPDATE total SET v = v + $1", added)

    [topic] = await make_topics("poison", partitions=1)
    consumer = InboxConsumer(
        migrated_pool,
        kafka_bootstrap,
        f"{topic_prefix()}g",
        [topic],
        store_leads,
        before_commit=fold,
        retry_backoff=0.1,
    )
    await ensure_topics(kafka_bootstrap, [consumer.deadletter_topic], partitions=1)
    items = (mission(0, 1), mission(1, 5_000), mission(2, 3), mission(3, 4))
    await _publish(kafka_bootstrap, topic, [(i.data_json(), i.to_kafka_headers()) for i in items])
    await _consume_until(
        consumer, lambda: consumer.applied_total == 3 and consumer.deadletter_total
    )
    assert not consumer.stalled(0.0)

    rows = await migrated_pool.fetch("SELECT id FROM effects ORDER BY id")
    assert [r["id"] for r in rows] == ["m-0", "m-2", "m-3"]
    assert await migrated_pool.fetchval("SELECT v FROM total") == 8
    dead = await _read_dead(kafka_bootstrap, consumer.deadletter_topic)
    assert [dict(r.headers)["ce_id"] for r in dead] == [b"m-1"]
    assert b"23514" in dict(dead[0].headers)["teamnl_error"], "names the check violation"


async def test_records_with_a_header_without_a_value_are_dead_lettered_and_the_rest_applied(
    migrated_pool: asyncpg.Pool, make_topics, kafka_bootstrap: str
) -> None:
    """Kafka allows a header without a value. Reading one stopped the consumer (the
    CloudEvents SDK decodes every header) and, a missing ``ce_id`` given a made-up id, a
    redelivery would have been applied again: each is now an invalid event, dead-lettered
    with the attribute it lacks, and the partition goes on."""
    await migrated_pool.execute("CREATE TABLE effects (id text, leads int)")
    [topic] = await make_topics("null-header", partitions=1)
    consumer = InboxConsumer(
        migrated_pool, kafka_bootstrap, f"{topic_prefix()}g", [topic], store_leads
    )
    await ensure_topics(kafka_bootstrap, [consumer.deadletter_topic], partitions=1)
    emptying = ((mission(0, 1), "ce_id"), (mission(1, 2), "ce_type"), (mission(2, 3), ""))
    records = [
        (item.data_json(), [(k, None if k == emptied else v) for k, v in item.to_kafka_headers()])
        for item, emptied in emptying
    ]
    await _publish(kafka_bootstrap, topic, records)
    await _consume_until(
        consumer, lambda: consumer.applied_total == 1 and consumer.deadletter_total == 2
    )
    assert not consumer.stalled(0.0)

    rows = await migrated_pool.fetch("SELECT id FROM effects ORDER BY id")
    assert [r["id"] for r in rows] == ["m-2"]
    dead = await _read_dead(kafka_bootstrap, consumer.deadletter_topic)
    reasons = [dict(r.headers)["teamnl_error"] for r in dead]
    assert len(reasons) == 2
    assert b"'id'" in reasons[0] and b"'type'" in reasons[1], reasons


FLOOD = 20
"""Invalid records in one fetch."""


async def test_a_fetchs_dead_letters_are_all_on_their_topic_before_one_call_tells_of_them(
    migrated_pool: asyncpg.Pool, make_topics, kafka_bootstrap: str
) -> None:
    """Proves: the invalid records of one fetch are all on the dead-letter topic, in their
    order, when ``on_deadletters`` is told of them, all in one call; the valid event after
    them is applied. (Each was sent and awaited alone and told of on its own: a flood of
    invalid records went by at about 450 a second, a dashboard transaction each.)"""
    await migrated_pool.execute("CREATE TABLE effects (id text, leads int)")
    [topic] = await make_topics("flood", partitions=1)
    told: list[tuple[list[int], int]] = []  # (offsets told of, records on the topic by then)

    async def tell(dead: DeadLetters) -> None:
        on_topic = await _read_dead(kafka_bootstrap, consumer.deadletter_topic)
        told.append(([record.offset for record, _ in dead], len(on_topic)))

    group = f"{topic_prefix()}g"
    consumer = InboxConsumer(
        migrated_pool, kafka_bootstrap, group, [topic], store_leads, on_deadletters=tell
    )
    await ensure_topics(kafka_bootstrap, [consumer.deadletter_topic], partitions=1)
    invalid, valid = mission(0, 1).to_kafka_headers(), mission(1, 2)
    # all in the partition before the consumer starts: its first fetch holds them all
    records = [(b"{not json", invalid)] * FLOOD + [(valid.data_json(), valid.to_kafka_headers())]
    await _publish(kafka_bootstrap, topic, records)
    await _consume_until(
        consumer, lambda: consumer.applied_total + consumer.deadletter_total > FLOOD
    )

    assert told == [(list(range(FLOOD)), FLOOD)], told
    assert (consumer.applied_total, consumer.deadletter_total) == (1, FLOOD)
    dead = await _read_dead(kafka_bootstrap, consumer.deadletter_topic)
    offsets = [int(dict(r.headers)["teamnl_original_offset"]) for r in dead]
    assert offsets == list(range(FLOOD)), "each once, in the partition's order"


async def test_the_consumer_reports_itself_stalled_while_every_attempt_fails(
    migrated_pool: asyncpg.Pool, make_topics, kafka_bootstrap: str
) -> None:
    """An outage (here: a connection error from the handler) is retried, never
    dead-lettered; ``stalled`` says so after the threshold and clears on success."""
    await migrated_pool.execute("CREATE TABLE effects (id text, leads int)")
    outage = asyncio.Event()
    outage.set()

    async def flaky(conn: asyncpg.Connection, item: Event, record: ConsumerRecord) -> None:
        if outage.is_set():
            raise asyncpg.exceptions.ConnectionFailureError("the database went away")
        await store_leads(conn, item, record)

    [topic] = await make_topics("stall", partitions=1)
    consumer = InboxConsumer(
        migrated_pool,
        kafka_bootstrap,
        f"{topic_prefix()}g",
        [topic],
        flaky,
        retry_backoff=0.1,
    )
    item = mission(0, 1)
    await _publish(kafka_bootstrap, topic, [(item.data_json(), item.to_kafka_headers())])
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: _true(consumer.stalled(0.5)))
        assert consumer.deadletter_total == 0 and consumer.applied_total == 0
        outage.clear()
        await eventually(lambda: _true(consumer.applied_total == 1))
        assert not consumer.stalled(0.0)
    finally:
        await consumer.stop()
        await task


async def test_one_id_at_two_services_and_at_two_partners_are_all_kept(
    database_url: str, kafka_bootstrap: str
) -> None:
    shared_id = f"crm-{uuid.uuid4().hex[:6]}"
    rvo, kvk = "/partners/rvo-crm", "/partners/kvk"
    items = [
        # the same partner, the same id, two services
        event(nlib.CompanySupported.TYPE, shared_id, rvo, company_id="c-1"),
        event(werkplaats.MilestoneReached.TYPE, shared_id, rvo),
        # another partner, the same id, the same services
        event(nlib.CompanySupported.TYPE, shared_id, kvk, company_id="c-2"),
        event(werkplaats.MilestoneReached.TYPE, shared_id, kvk),
    ]
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings) as dash:
        await dash.publish(*items)
        await dash.wait_applied(4)
        pool = dash.pool
        assert (
            await pool.fetchval("SELECT count(*) FROM proj.events WHERE event_id = $1", shared_id)
            == 4
        )
        supported = await pool.fetch(
            "SELECT source, company_id FROM proj.nlib_companies_supported WHERE event_id = $1"
            " ORDER BY source",
            shared_id,
        )
        assert [(r["source"], r["company_id"]) for r in supported] == [(kvk, "c-2"), (rvo, "c-1")]
        milestones = await pool.fetchval(
            "SELECT count(*) FROM proj.wp_milestones WHERE event_id = $1", shared_id
        )
        assert milestones == 2
        activities = await pool.fetchval(
            "SELECT count(*) FROM proj.activities WHERE event_id = $1", shared_id
        )
        assert activities == 2, "each partner's supported company is an activity"
        await dash.publish(items[0])  # a true replay is still applied once
        await asyncio.sleep(1.0)
        assert await dash.applied() == 4


# The version-3 shape of the tables version 4 re-keyed (projections/schema.sql at v3), the
# per-row totals triggers of versions 3 to 5 and the totals (per family, folded whole) of
# versions 3 to 6; and the inbox row beside each event's row (versions before 10).
_DOWN_TO_V3 = """
DROP TABLE gs_call_totals;
DROP TRIGGER gs_calls_total ON gs_calls;
DROP TRIGGER gs_proposals_total ON gs_proposals;
DROP FUNCTION count_call(), count_proposal(), months_taken(date, date);
DROP TABLE wp_sdgs;
DROP TABLE wp_portfolio;
CREATE TABLE wp_portfolio (
    status text NOT NULL, since int NOT NULL, until int, sdgs int[] NOT NULL, n bigint NOT NULL
);
CREATE OR REPLACE FUNCTION count_project() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO wp_portfolio VALUES (OLD.status, extract(year FROM OLD.onboarded_on),
            extract(year FROM coalesce(OLD.graduated_on, OLD.stopped_on)), OLD.sdgs, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO wp_portfolio VALUES (NEW.status, extract(year FROM NEW.onboarded_on),
            extract(year FROM coalesce(NEW.graduated_on, NEW.stopped_on)), NEW.sdgs, 1);
    END IF;
    RETURN NULL;
END $$;
ALTER TABLE budget_totals ALTER COLUMN spent_cents TYPE bigint;
ALTER TABLE budget_totals DROP COLUMN spent_on, DROP COLUMN delta;
CREATE OR REPLACE FUNCTION sum_spend() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO budget_totals VALUES (OLD.family, OLD.year, -1, -OLD.amount_cents);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO budget_totals VALUES (NEW.family, NEW.year, 1, NEW.amount_cents);
    END IF;
    RETURN NULL;
END $$;
ALTER TABLE events DROP COLUMN topic, DROP COLUMN kafka_partition, DROP COLUMN kafka_offset;
ALTER TABLE family_totals DROP COLUMN day, DROP COLUMN delta;
ALTER TABLE activity_months DROP COLUMN delta;
DROP INDEX activity_months_key, nlib_missions_end, nlib_companies_supported_on;
DROP INDEX nlib_leads_converted_mission, gs_proposals_call, wp_milestones_project;
CREATE OR REPLACE FUNCTION fold_totals() RETURNS void LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM family_totals RETURNING *)
    INSERT INTO family_totals SELECT family, sum(events), max(last_event_at), sum(activities)
    FROM gone GROUP BY family;
    WITH gone AS (DELETE FROM activity_months RETURNING *)
    INSERT INTO activity_months SELECT family, market, month, sum(n)
    FROM gone GROUP BY family, market, month;
    WITH gone AS (DELETE FROM tinl_partner_sets RETURNING *)
    INSERT INTO tinl_partner_sets SELECT partners, sum(activities), sum(knowledge)
    FROM gone GROUP BY partners;
    WITH gone AS (DELETE FROM wp_portfolio RETURNING *)
    INSERT INTO wp_portfolio SELECT status, since, until, sdgs, sum(n)
    FROM gone GROUP BY status, since, until, sdgs;
    WITH gone AS (DELETE FROM budget_totals RETURNING *)
    INSERT INTO budget_totals SELECT family, year, sum(spends), sum(spent_cents)
    FROM gone GROUP BY family, year;
$$;
DROP TRIGGER events_total ON events;
DROP TRIGGER activities_total ON activities;
DROP FUNCTION count_events();
DROP FUNCTION count_activities();
CREATE FUNCTION count_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO family_totals (family, events, last_event_at) VALUES (NEW.family, 1, NEW.time);
    RETURN NULL;
END $$;
CREATE TRIGGER events_total AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION count_event();
CREATE FUNCTION count_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO family_totals (family, activities) VALUES (NEW.family, 1);
    INSERT INTO activity_months
    VALUES (NEW.family, NEW.market, date_trunc('month', NEW.on_date)::date, 1);
    RETURN NULL;
END $$;
CREATE TRIGGER activities_total AFTER INSERT ON activities
    FOR EACH ROW EXECUTE FUNCTION count_activity();
ALTER TABLE inbox DROP CONSTRAINT inbox_pkey;
ALTER TABLE inbox ADD PRIMARY KEY (event_source, event_id);
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (source, event_id);
ALTER TABLE activities DROP CONSTRAINT activities_pkey;
ALTER TABLE activities DROP COLUMN source;
ALTER TABLE activities ADD PRIMARY KEY (event_id);
ALTER TABLE nlib_companies_supported DROP CONSTRAINT nlib_companies_supported_pkey;
ALTER TABLE nlib_companies_supported DROP COLUMN source;
ALTER TABLE nlib_companies_supported ADD PRIMARY KEY (event_id);
ALTER TABLE wp_milestones DROP CONSTRAINT wp_milestones_pkey;
ALTER TABLE wp_milestones DROP COLUMN source;
ALTER TABLE wp_milestones ADD PRIMARY KEY (event_id);
DELETE FROM projection_meta;
INSERT INTO projection_meta (version) VALUES (3);
INSERT INTO inbox VALUES ('/partners/a', 'e1', 't', 'nlib', 0, 0, now());
INSERT INTO events VALUES ('e1', '/partners/a', 't', 'nlib', 's', now(), 'title');
INSERT INTO activities VALUES ('e1', 'nlib', 'company', 'IN', 'IN', NULL, '2018-05-01');
INSERT INTO nlib_companies_supported VALUES ('e1', 'c-1', 'sme', 'IN', '2018-05-01');
INSERT INTO budget_spent VALUES ('nlib', 's-1', 2018, 500, 'travel', '2018-05-02', 'e2');
INSERT INTO budget_spent VALUES ('nlib', 's-2', 2018, 700, 'travel', '2018-06-02', 'e3');
INSERT INTO gs_calls (call_id, negotiation_started_on, opened_on, closed_on)
    VALUES ('gs-1', '2018-01-10', '2018-02-01', '2018-06-20'), ('gs-2', NULL, '2018-03-01', NULL);
INSERT INTO gs_proposals VALUES ('p-1', 'gs-1', 'x', true, '2018-03-01', 'e4'),
    ('p-2', 'gs-1', 'y', false, '2018-03-02', 'e5'), ('p-3', 'gs-2', 'z', true, '2018-04-01', 'e6');
INSERT INTO wp_portfolio VALUES ('active', 2018, NULL, '{6, 9}', 1),
    ('active', 2018, NULL, '{6}', 1), ('stopped', 2018, 2019, '{9}', 1);
"""


async def test_version_3_projections_are_upgraded_in_place_keeping_their_rows(
    database_url: str, kafka_bootstrap: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await create_schema(conn, "proj")
            await conn.execute("SET LOCAL search_path = proj")
            await conn.execute(_DOWN_TO_V3)
        assert await live_version(conn) == 3

        settings = dashboard_settings(database_url, kafka_bootstrap)
        assert await upgrade_projections(settings, engine=None) is None  # type: ignore[arg-type]

        assert await live_version(conn) == PROJECTION_VERSION
        row = await conn.fetchrow("SELECT source, on_date FROM proj.activities")
        assert (row["source"], row["on_date"]) == ("/partners/a", date(2018, 5, 1))
        assert await conn.fetchval("SELECT source FROM proj.nlib_companies_supported") == (
            "/partners/a"
        )
        # version 15: Global Stars calls and Dutch proposals per closing day
        calls = "SELECT closed_on, months, calls, dutch, latest FROM proj.gs_call_totals"
        assert [tuple(r) for r in await conn.fetch(calls + " ORDER BY closed_on")] == [
            (date(2018, 6, 20), 6, 1, 1, date(2018, 6, 20)),
            (date.max, -1, 1, 1, date(2018, 4, 1)),
        ]
        # version 14: De Werkplaats's spans without the sets of SDGs, and per SDG apart
        spans = "SELECT * FROM proj.wp_portfolio ORDER BY status"
        assert [tuple(r) for r in await conn.fetch(spans)] == [
            ("active", 2018, None, 2),
            ("stopped", 2018, 2019, 1),
        ]
        sdgs = "SELECT * FROM proj.wp_sdgs ORDER BY sdg, until"
        assert [tuple(r) for r in await conn.fetch(sdgs)] == [
            (6, 2018, None, 2),
            (9, 2018, 2019, 1),
            (9, 2018, None, 1),
        ]
        # version 13: the budget's running totals per day spent, folded by their delta rows
        budget = "SELECT family, year, spends, spent_cents, spent_on, delta FROM proj.budget_totals"
        assert [tuple(r) for r in await conn.fetch(budget + " ORDER BY spent_on")] == [
            ("nlib", 2018, 1, 500, date(2018, 5, 2), False),
            ("nlib", 2018, 1, 700, date(2018, 6, 2), False),
        ]
        # version 12: the index of the item each conversion, proposal, milestone belongs to
        indexes = "SELECT indexname FROM pg_indexes WHERE schemaname = 'proj'"
        assert {r["indexname"] for r in await conn.fetch(indexes)} >= {
            "nlib_leads_converted_mission",
            "gs_proposals_call",
            "wp_milestones_project",
        }
        # version 11: the budget's running totals in numeric
        spent = "SELECT data_type FROM information_schema.columns WHERE table_schema = 'proj'"
        spent += " AND table_name = 'budget_totals' AND column_name = 'spent_cents'"
        assert await conn.fetchval(spent) == "numeric"
        # version 10: the event's row is its inbox row, where it came from
        assert await conn.fetchval("SELECT count(*) FROM proj.inbox") == 0
        came = await conn.fetchrow("SELECT topic, kafka_partition, kafka_offset FROM proj.events")
        assert tuple(came) == ("nlib", 0, 0)
        # version 7 counts the totals again, per day; version 6 counts a statement's events
        # in one delta row
        assert await conn.fetchval("SELECT sum(events) FROM proj.family_totals") == 1
        activity_days = await conn.fetch(
            "SELECT day, activities FROM proj.family_totals WHERE activities > 0"
        )
        assert [tuple(r) for r in activity_days] == [(date(2018, 5, 1), 1)]
        rows = await conn.fetchval("SELECT count(*) FROM proj.family_totals")
        await conn.execute("SET search_path = proj, public")  # as the dashboard's connections
        await conn.execute(
            "INSERT INTO proj.events SELECT 'e' || n, '/partners/a', 't', 'nlib', 's', now(), 't',"
            " 'nlib', 0, n FROM generate_series(2, 3) n"
        )
        totals = await conn.fetchrow("SELECT count(*), sum(events) FROM proj.family_totals")
        assert tuple(totals) == (rows + 1, 3)
        # the new identity: the same (source, id) on another topic is another event
        await conn.execute(
            "INSERT INTO proj.inbox VALUES ('/partners/a', 'e1', 't', 'tinl', 0, 0, now());"
            " INSERT INTO proj.events VALUES ('e1', '/partners/a', 't', 'tinl', 's', now(), 't',"
            " 'tinl', 0, 1)"
        )
        # every function is as a fresh schema has it: language and body (version 8: the
        # totals' fold in PL/pgSQL, whose plans a connection keeps)
        async with conn.transaction():
            await create_schema(conn, "proj_rebuild_fresh")
            assert await _functions(conn, "proj") == await _functions(conn, "proj_rebuild_fresh")
            await conn.execute("DROP SCHEMA proj_rebuild_fresh CASCADE")
    finally:
        await conn.close()


async def _functions(conn: asyncpg.Connection, schema: str) -> dict[str, tuple[str, str]]:
    """The functions of `schema`: name -> (language, body)."""
    rows = await conn.fetch(
        "SELECT p.proname, l.lanname, p.prosrc FROM pg_proc p"
        " JOIN pg_language l ON l.oid = p.prolang"
        " WHERE p.pronamespace = $1::regnamespace",
        schema,
    )
    return {r["proname"]: (r["lanname"], r["prosrc"]) for r in rows}


async def _true(value: bool) -> bool:
    return value


Headers = list[tuple[str, bytes | None]]


async def _publish(bootstrap: str, topic: str, records: list[tuple[bytes, Headers]]) -> None:
    """Each (value, headers) on `topic`, in order, under one key (one partition)."""
    producer = idempotent_producer(bootstrap)
    await producer.start()
    try:
        for value, headers in records:
            await producer.send_and_wait(topic, value, key=b"m-1", headers=headers)
    finally:
        await producer.stop()


async def _consume_until(consumer: InboxConsumer, done: Callable[[], object]) -> None:
    """Run `consumer` until `done()` is true, then stop it."""
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: _true(bool(done())))
    finally:
        await consumer.stop()
        await task


async def _read_dead(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    from teamnl_shared.kafka import assigned_reader, partitions_of

    reader = assigned_reader(bootstrap, auto_offset_reset="earliest")
    await reader.start()
    try:
        partitions = await partitions_of(bootstrap, [topic])
        reader.assign(partitions)
        ends = await reader.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        while sum(ends.values()) > len(records):
            batch = await reader.getmany(timeout_ms=1000)
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await reader.stop()


async def test_a_row_an_initiative_relay_parked_raises_an_invalid_events_finding(
    database_url: str, kafka_bootstrap: str
) -> None:
    """The relay's notice of a parked row (``teamnl.deadletter.nlib``) reaches the
    dashboard's ``dead_letters`` and its ``invalid-events`` finding names the event."""
    notice = {
        "service": "nlib",
        "ce_source": "/partners/rvo-crm",
        "ce_id": "too-big-1",
        "type": nlib.MissionHeld.TYPE,
        "topic": "teamnl.nlib.events",
        "reason": "MessageSizeTooLargeError: the record is too large",
        "parked_at": datetime.now(UTC).isoformat(),
    }
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings) as dash:
        await dash.publish_raw(
            deadletter_topic("nlib"),
            json.dumps(notice).encode(),
            key=b"/partners/rvo-crm",
            headers=[(NOTICE_HEADER, b"outbox-parked")],
        )
        [finding] = await dash.wait_findings("invalid-events", "open")
        assert "too-big-1" in finding["event_ids"], finding
        assert (
            "nlib parked an event" in finding["summary"]
            and "MessageSizeTooLarge" in (finding["summary"])
        )

        async def counted() -> bool:  # counted once its transaction has committed
            return dash.app.state.runtime.notices.recorded_total == 1

        await eventually(counted)


async def test_notices_with_values_postgresql_cannot_take_do_not_stop_the_notices_after_them(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Any producer can write to the notices topic: a notice whose values are numbers, lists,
    hold NUL or run long is recorded as far as it tells anything, and the notices after it
    are recorded. Before, the first of them stopped the notices' consumer for good (its
    restart met it again)."""
    hostile = [
        {"service": "nlib", "ce_id": 12345, "type": ["x"], "reason": {"a": 1}},
        {"service": "nl\x00ib", "ce_id": "nul-\x00", "type": "t\x00", "reason": "r\x00"},
        {"service": "s" * 100_000, "ce_id": "i" * 100_000, "reason": "r" * 100_000},
    ]
    good = {"service": "nlib", "ce_id": "after-them", "type": nlib.MissionHeld.TYPE, "reason": "r"}
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings) as dash:
        for notice in [*hostile, good]:
            await dash.producer.send_and_wait(
                settings.topic(deadletter_topic("nlib")),
                json.dumps(notice).encode(),
                key=b"same-partition",
                headers=[(NOTICE_HEADER, b"outbox-parked")],
            )

        async def all_recorded() -> bool:
            return dash.app.state.runtime.notices.recorded_total == len(hostile) + 1

        await eventually(all_recorded)
        rows = await dash.pool.fetch(
            "SELECT event_id, event_type, reason FROM proj.dead_letters ORDER BY kafka_offset"
        )
    assert [row["event_id"] for row in rows] == [None, "nul-", "i" * 1000, "after-them"]
    assert [row["event_type"] for row in rows] == [None, "t", None, nlib.MissionHeld.TYPE]
    assert all("\x00" not in row["reason"] and len(row["reason"]) <= 2000 for row in rows)
