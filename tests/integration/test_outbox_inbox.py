"""The outbox relay and the inbox consumer against real Kafka and real PostgreSQL.

What this proves: 10,000 events written to the outbox reach a consumer group exactly once
in effect and in order per key, while the relay process is killed with SIGKILL and
restarted and the broker is stopped and started once; and Kafka itself holds each event
exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import date
from typing import IO, cast
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from tcp_proxy import TcpProxy

from support import dies_with_parent, eventually, log_copies, topic_prefix
from teamnl_shared.contract.envelope import Event, parse_structured
from teamnl_shared.db import create_pool, migrate
from teamnl_shared.inbox import COPY_FROM_ROWS, Inbox, InboxConsumer, PoisonEvent
from teamnl_shared.outbox import OUTBOX_NOTIFY_SETTING, OutboxRelay, backlog, enqueue
from teamnl_suite.infra import Infrastructure

pytestmark = pytest.mark.integration

EVENTS = 10_000
KEYS = 200
MISSION_HELD = "nl.teamnl.nlib.mission.held.v1"


def mission_event(key: int, n: int) -> Event:
    """The n-th event of aggregate ``key``; ``leads`` carries n to check order per key."""
    return parse_structured(
        {
            "specversion": "1.0",
            "id": f"{key}-{n}",
            "source": "/partners/test",
            "type": MISSION_HELD,
            "data": {
                "mission_id": f"m-{key}",
                "title": f"mission {key}",
                "direction": "outgoing",
                "country": "VN",
                "city": "Hanoi",
                "start_date": str(date(2019, 4, 8)),
                "end_date": str(date(2019, 4, 9)),
                "companies": 1,
                "business_mixers": 0,
                "leads": n,
            },
        }
    )


async def write_outbox(pool: asyncpg.Pool, topic: str) -> None:
    """Write the events in transactions of 100, interleaving keys."""
    events = [mission_event(i % KEYS, i // KEYS) for i in range(EVENTS)]
    for start in range(0, EVENTS, 100):
        async with pool.acquire() as conn, conn.transaction():
            for event in events[start : start + 100]:
                await enqueue(conn, event, topic=topic)


def start_relay(
    database_url: str,
    bootstrap: str,
    *options: str,
    env: dict[str, str] | None = None,
    stdout: IO[bytes] | int = subprocess.DEVNULL,
    stderr: IO[bytes] | int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """nlib's relay as a process of its own, its topics under a fresh prefix unless `env`
    gives one (its dead-letter topic's)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "teamnl_shared.relay_main",
            "--service",
            "nlib",
            "--database-url",
            database_url,
            "--bootstrap",
            bootstrap,
            *options,
        ],
        stdout=stdout,
        stderr=stderr,
        env={**os.environ, "TEAMNL_TOPIC_PREFIX": topic_prefix(), **(env or {})},
        preexec_fn=dies_with_parent,
    )


async def published(pool: asyncpg.Pool, written: int) -> int:
    """Of `written` rows, those the relay published (it deletes a row once Kafka has it)."""
    return written - int(await pool.fetchval("SELECT count(*) FROM outbox"))


async def record_effect(conn: asyncpg.Connection, event: Event, record: ConsumerRecord) -> None:
    data = event.data_dict()
    await conn.execute(
        "INSERT INTO effects (mission_id, n) VALUES ($1, $2)", data["mission_id"], data["leads"]
    )


async def topic_size(bootstrap: str, topic: str, partitions: int) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def test_ten_thousand_events_survive_relay_kill_and_broker_restart(
    infra: Infrastructure,
    database_url: str,
    make_topics,
    kafka_bootstrap: str,
) -> None:
    if infra.config.external_kafka:
        pytest.fail("this test restarts the broker: run it against the project's own Kafka")
    (topic,) = await make_topics("missions", partitions=6)
    outbox_pool = await create_pool(database_url)
    await migrate(outbox_pool)
    consumer_db = f"consumer_{uuid.uuid4().hex[:8]}"
    await infra.ensure_databases([consumer_db])
    consumer_pool = await create_pool(infra.database_url(consumer_db))
    await migrate(consumer_pool)
    await consumer_pool.execute(
        "CREATE TABLE effects (applied bigserial PRIMARY KEY, mission_id text, n int)"
    )
    consumer = InboxConsumer(
        consumer_pool, kafka_bootstrap, f"{topic_prefix()}g", [topic], record_effect
    )
    consumer_task = asyncio.create_task(consumer.run())
    relay = start_relay(database_url, kafka_bootstrap, "--batch-size", "300")
    try:
        await write_outbox(outbox_pool, topic)

        await eventually(lambda: _at_least(published(outbox_pool, EVENTS), 2_000), timeout=120)
        relay.send_signal(signal.SIGKILL)
        relay.wait()
        relay = start_relay(database_url, kafka_bootstrap, "--batch-size", "300")

        await eventually(lambda: _at_least(published(outbox_pool, EVENTS), 5_000), timeout=120)
        await asyncio.to_thread(infra.kafka.stop)
        await asyncio.to_thread(infra.kafka.start)

        await eventually(lambda: _at_least(published(outbox_pool, EVENTS), EVENTS), timeout=180)
        await eventually(
            lambda: _at_least(consumer_pool.fetchval("SELECT count(*) FROM effects"), EVENTS),
            timeout=180,
        )

        assert (await backlog(outbox_pool))[0] == 0
        assert await topic_size(kafka_bootstrap, topic, 6) == EVENTS, "each event once in Kafka"
        effects = await consumer_pool.fetch("SELECT mission_id, n FROM effects ORDER BY applied")
        assert len(effects) == EVENTS
        assert len({(r["mission_id"], r["n"]) for r in effects}) == EVENTS, "no duplicates"
        per_key: dict[str, list[int]] = {}
        for row in effects:
            per_key.setdefault(row["mission_id"], []).append(row["n"])
        assert len(per_key) == KEYS
        for key, ns in per_key.items():
            assert ns == list(range(EVENTS // KEYS)), f"order broken for {key}"
    finally:
        if relay.poll() is None:
            os.kill(relay.pid, signal.SIGKILL)
            relay.wait()
        await consumer.stop()
        await asyncio.wait_for(consumer_task, 30)
        await outbox_pool.close()
        await consumer_pool.close()


async def _at_least(value: object, minimum: int) -> bool:
    return int(await value) >= minimum  # type: ignore[misc]


async def test_relay_restarted_after_a_crash_between_send_and_mark_sends_nothing_twice(
    database_url: str,
    migrated_pool: asyncpg.Pool,
    make_topics,
    kafka_bootstrap: str,
) -> None:
    """The crash window: records reached Kafka, the rows were never marked published."""
    from aiokafka import AIOKafkaProducer

    (topic,) = await make_topics("crash", partitions=2)
    events = [mission_event(i, 0) for i in range(10)]
    async with migrated_pool.acquire() as conn, conn.transaction():
        for event in events:
            await enqueue(conn, event, topic=topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    for event in events[:6]:  # what a relay had sent before it died
        await producer.send_and_wait(
            topic, event.data_json(), key=event.key.encode(), headers=event.to_kafka_headers()
        )
    await producer.stop()

    relay = OutboxRelay(database_url, kafka_bootstrap, poll_interval=0.2)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: _at_least(published(migrated_pool, 10), 10))
    finally:
        await relay.stop()
        await task
    assert await topic_size(kafka_bootstrap, topic, 2) == 10
    assert relay.published_total == 4, "only the rows Kafka did not have yet were sent"


async def test_stop_publishes_a_row_committed_while_a_mark_waits(
    database_url: str, migrated_pool: asyncpg.Pool, make_topics, kafka_bootstrap: str
) -> None:
    """Proves: a row committed after the relay's last read, while that read's batch waits
    for its mark to go with the next read, is published by :meth:`OutboxRelay.stop` (the
    shutdown's last window of quality reports is such a row). Nothing wakes the relay for
    the row but the stop itself."""
    (topic,) = await make_topics("stop", partitions=2)
    first, late = mission_event(1, 0), mission_event(2, 0)
    async with migrated_pool.acquire() as conn, conn.transaction():
        await enqueue(conn, first, topic=topic)
    relay = OutboxRelay(database_url, kafka_bootstrap, poll_interval=30, mark_delay=30)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: _true(relay.published_total == 1))
        quiet = await asyncpg.connect(database_url, server_settings={OUTBOX_NOTIFY_SETTING: "off"})
        try:
            async with quiet.transaction():
                await enqueue(quiet, late, topic=topic)
        finally:
            await quiet.close()
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 20)
    assert relay.published_total == 2
    assert await published(migrated_pool, 2) == 2
    assert await topic_size(kafka_bootstrap, topic, 2) == 2


async def test_stop_keeps_draining_through_an_outage_until_the_row_is_out(
    database_url: str, migrated_pool: asyncpg.Pool, make_topics, kafka_bootstrap: str
) -> None:
    """Proves: a relay stopped while its sessions fail (its database cut off) keeps trying
    until the outbox is drained, instead of giving up at the first failure after the stop;
    the caller bounds the drain by cancelling it."""
    (topic,) = await make_topics("drain", partitions=2)
    async with migrated_pool.acquire() as conn, conn.transaction():
        await enqueue(conn, mission_event(3, 0), topic=topic)
    port = urlsplit(database_url).port
    proxy = TcpProxy("127.0.0.1", port or 5432)
    await proxy.up()
    await proxy.down()  # the relay's database refuses every connection
    through_proxy = database_url.replace(f":{port}/", f":{proxy.port}/", 1)
    relay = OutboxRelay(through_proxy, kafka_bootstrap, poll_interval=0.2, retry_backoff=0.2)
    task = asyncio.create_task(relay.run())
    try:
        await relay.stop()
        await asyncio.sleep(1.5)  # several sessions fail meanwhile
        assert not task.done(), "gave up draining at the first failure"
        await proxy.up()
        await asyncio.wait_for(task, 30)
    finally:
        task.cancel()
        await proxy.down()
    assert await published(migrated_pool, 1) == 1
    assert await topic_size(kafka_bootstrap, topic, 2) == 1


async def test_unparseable_record_goes_to_dead_letter_and_the_partition_goes_on(
    migrated_pool: asyncpg.Pool,
    make_topics,
    kafka_bootstrap: str,
) -> None:
    from aiokafka import AIOKafkaProducer

    (topic,) = await make_topics("dlq", partitions=1)
    await migrated_pool.execute("CREATE TABLE effects (mission_id text, n int)")
    group = f"{topic_prefix()}g"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    good_before, good_after = mission_event(1, 0), mission_event(1, 1)
    invalid = mission_event(2, 0)
    bad_headers = [(k, v) for k, v in invalid.to_kafka_headers() if k != "ce_type"]
    bad_headers.append(("ce_type", b"nl.teamnl.nlib.mission.held.v1"))
    await producer.send_and_wait(
        topic, good_before.data_json(), key=b"m-1", headers=good_before.to_kafka_headers()
    )
    await producer.send_and_wait(topic, b"{not json", key=b"m-2", headers=bad_headers)
    await producer.send_and_wait(
        topic, b'{"mission_id": "m-3"}', key=b"m-3", headers=bad_headers
    )  # valid JSON, invalid data
    await producer.send_and_wait(
        topic, good_after.data_json(), key=b"m-1", headers=good_after.to_kafka_headers()
    )
    await producer.stop()

    consumer = InboxConsumer(migrated_pool, kafka_bootstrap, group, [topic], record_effect)
    from teamnl_shared.kafka import ensure_topics

    await ensure_topics(kafka_bootstrap, [consumer.deadletter_topic], partitions=1)
    task = asyncio.create_task(consumer.run())
    try:
        count = "SELECT count(*) FROM effects"
        await eventually(lambda: _at_least(migrated_pool.fetchval(count), 2))
        await eventually(lambda: _true(consumer.deadletter_total >= 2))
    finally:
        await consumer.stop()
        await task
    rows = await migrated_pool.fetch("SELECT n FROM effects ORDER BY n")
    assert [r["n"] for r in rows] == [0, 1], "the valid record after the poison ones was applied"

    dead = await read_all(kafka_bootstrap, consumer.deadletter_topic)
    assert len(dead) == 2
    errors = [dict(r.headers)["teamnl_error"].decode() for r in dead]
    assert "not a JSON object" in errors[0], errors[0]
    assert "data/" in errors[1], errors[1]
    assert {dict(r.headers)["teamnl_original_topic"].decode() for r in dead} == {topic}


async def read_all(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000)
        return [r for records in batch.values() for r in records]
    finally:
        await consumer.stop()


async def _true(value: bool) -> bool:
    return value


def as_record(event: Event, offset: int, topic: str = "t") -> ConsumerRecord:
    value = event.data_json()
    return ConsumerRecord(
        topic, 0, offset, 0, 0, b"k", value, None, 1, len(value), event.to_kafka_headers()
    )


async def test_a_poison_event_undoes_only_itself_and_each_event_applies_once_per_batch(
    migrated_pool: asyncpg.Pool,
) -> None:
    """A batch is applied together; a poison event in it makes the inbox apply the batch
    again one record at a time, so the poison record is dead-lettered and the others are
    applied once (a repeat within the batch is a duplicate); `before_commit` sees the applied
    events once, in the batch's transaction."""
    await migrated_pool.execute("CREATE TABLE effects (mission_id text, n int)")
    seen: list[list[str]] = []

    async def refuse_n2(conn: asyncpg.Connection, event: Event, record: ConsumerRecord) -> None:
        await record_effect(conn, event, record)
        if event.id == "1-2":
            raise PoisonEvent("n 2 is refused")

    async def before_commit(conn: asyncpg.Connection, applied: list) -> None:
        seen.append([event.id for event, _ in applied])
        assert conn.is_in_transaction()

    inbox = Inbox(migrated_pool, refuse_n2, "g", before_commit=before_commit)
    events = [mission_event(1, n) for n in (0, 1, 2, 1, 3)]
    outcome = await inbox.apply([as_record(e, i) for i, e in enumerate(events)])

    assert [e.id for e, _ in outcome.applied] == ["1-0", "1-1", "1-3"]
    refused = [(r.offset, reason) for r, reason in outcome.dead]
    assert refused == [(2, f"{MISSION_HELD}: n 2 is refused")]
    assert outcome.duplicates == 1 and seen == [["1-0", "1-1", "1-3"]]
    rows = await migrated_pool.fetch("SELECT n FROM effects ORDER BY n")
    assert [r["n"] for r in rows] == [0, 1, 3]
    again = await inbox.apply([as_record(e, i) for i, e in enumerate(events)])
    assert again.applied == [] and again.duplicates == 4 and len(again.dead) == 1


class DeferredEffects:
    """Buffers of a handler's deferred writes (``Inbox(deferred=effects.buffer)``), each
    flushed with one executemany; a flush refuses (as a database would) a buffer holding
    n == 2. ``flushes`` lists the n of each flush, ``projected`` those of each buffering."""

    def __init__(self) -> None:
        self.flushes: list[list[int]] = []
        self.projected: list[int] = []

    def buffer(self) -> EffectsBuffer:
        return EffectsBuffer(self)

    async def handle(self, writes: asyncpg.Connection, event: Event, _r: ConsumerRecord) -> None:
        data = event.data_dict()
        self.projected.append(data["leads"])
        cast(EffectsBuffer, writes).rows.append((data["mission_id"], data["leads"]))


class EffectsBuffer:
    def __init__(self, effects: DeferredEffects) -> None:
        self.effects = effects
        self.rows: list[tuple[str, int]] = []

    def as_connection(self) -> asyncpg.Connection:
        return cast(asyncpg.Connection, self)

    async def flush(self, conn: asyncpg.Connection) -> None:
        rows, self.rows = self.rows, []
        self.effects.flushes.append([n for _, n in rows])
        if any(n == 2 for _, n in rows):
            raise PoisonEvent("n 2 is refused at the flush")
        await conn.executemany("INSERT INTO effects (mission_id, n) VALUES ($1, $2)", rows)

    def discard(self) -> None:
        self.rows = []


async def effects_of(pool: asyncpg.Pool) -> list[tuple[str, int]]:
    rows = await pool.fetch("SELECT mission_id, n FROM effects ORDER BY mission_id, n")
    return [(r["mission_id"], r["n"]) for r in rows]


async def test_deferred_writes_flush_per_savepoint_and_a_refused_flush_undoes_only_its_event(
    migrated_pool: asyncpg.Pool,
) -> None:
    """Deferred writes go to the database at the end of their savepoint: the whole batch in
    one flush; when that flush is refused, the batch is applied one by one, each event's
    writes flushed in its own savepoint, so only the refused event is dead-lettered and
    nothing of the undone batch is written twice."""
    await migrated_pool.execute("CREATE TABLE effects (mission_id text, n int)")
    effects = DeferredEffects()
    inbox = Inbox(migrated_pool, effects.handle, "g", deferred=effects.buffer)
    clean = await inbox.apply([as_record(mission_event(2, n), n) for n in (0, 1)])
    assert [e.id for e, _ in clean.applied] == ["2-0", "2-1"] and effects.flushes == [[0, 1]]

    effects.flushes.clear()
    events = [mission_event(1, n) for n in (0, 1, 2, 3)]
    outcome = await inbox.apply([as_record(e, i) for i, e in enumerate(events)])

    assert effects.flushes == [[0, 1, 2, 3], [0], [1], [2], [3]]
    assert [e.id for e, _ in outcome.applied] == ["1-0", "1-1", "1-3"]
    assert [(r.offset, reason) for r, reason in outcome.dead] == [
        (2, f"{MISSION_HELD}: n 2 is refused at the flush")
    ]
    assert await effects_of(migrated_pool) == [
        ("m-1", 0),
        ("m-1", 1),
        ("m-1", 3),
        ("m-2", 0),
        ("m-2", 1),
    ]


async def test_a_fetch_projected_ahead_is_flushed_as_projected_when_every_event_is_new(
    migrated_pool: asyncpg.Pool,
) -> None:
    """Proves: `read_ahead` projects a fetch into a buffer of its own before its transaction
    (a repeat within the fetch is a duplicate, an invalid record a dead letter), and `apply`
    then flushes that buffer without calling the handler again, while another fetch's
    buffer stays apart; once the inbox has them, the same fetch read ahead again is
    projected again in the transaction (each event a duplicate now) and writes nothing."""
    await migrated_pool.execute("CREATE TABLE effects (mission_id text, n int)")
    effects = DeferredEffects()
    inbox = Inbox(migrated_pool, effects.handle, "g", deferred=effects.buffer)
    events = [mission_event(1, n) for n in (0, 1, 1, 3)]
    records = [as_record(e, i) for i, e in enumerate(events)]
    records.append(ConsumerRecord("t", 0, 4, 0, 0, b"k", b"{", None, 1, 1, []))
    other = [as_record(mission_event(2, 0), 5)]

    ahead = await inbox.read_ahead(records)
    other_ahead = await inbox.read_ahead(other)  # read while the first is not applied yet
    assert effects.projected == [0, 1, 3, 0] and effects.flushes == []

    outcome = await inbox.apply(records, ahead)
    assert effects.projected == [0, 1, 3, 0]  # not projected again
    assert effects.flushes == [[0, 1, 3]]
    assert [e.id for e, _ in outcome.applied] == ["1-0", "1-1", "1-3"]
    assert outcome.duplicates == 1 and [r.offset for r, _ in outcome.dead] == [4]
    await inbox.apply(other, other_ahead)
    assert effects.flushes == [[0, 1, 3], [0]]

    again = await inbox.apply(records, await inbox.read_ahead(records))
    assert again.applied == [] and again.duplicates == 4 and len(again.dead) == 1
    assert effects.flushes[-1] == []
    assert await effects_of(migrated_pool) == [("m-1", 0), ("m-1", 1), ("m-1", 3), ("m-2", 0)]


async def test_a_fetch_projected_ahead_with_events_applied_before_projects_the_new_ones_again(
    migrated_pool: asyncpg.Pool,
) -> None:
    """Proves: when the inbox finds some events of a fetch read ahead applied before (a
    redelivery after a crash or a rebalance), the buffer projected ahead is dropped and the
    transaction projects the new events alone, each once; and a handler refusing an event
    while reading ahead leaves the fetch to the usual path, which dead-letters it alone."""
    await migrated_pool.execute("CREATE TABLE effects (mission_id text, n int)")
    effects = DeferredEffects()
    inbox = Inbox(migrated_pool, effects.handle, "g", deferred=effects.buffer)
    events = [mission_event(1, n) for n in (0, 1, 3, 4)]
    records = [as_record(e, i) for i, e in enumerate(events)]
    await inbox.apply(records[1:3])  # 1-1 and 1-3 were applied before
    effects.projected.clear()

    outcome = await inbox.apply(records, await inbox.read_ahead(records))
    assert effects.projected == [0, 1, 3, 4, 0, 4]  # ahead, then the new ones again
    assert effects.flushes[-1] == [0, 4]
    assert [e.id for e, _ in outcome.applied] == ["1-0", "1-4"] and outcome.duplicates == 2
    assert await effects_of(migrated_pool) == [("m-1", 0), ("m-1", 1), ("m-1", 3), ("m-1", 4)]

    async def refuse_n6(writes: asyncpg.Connection, event: Event, record: ConsumerRecord) -> None:
        if event.data_dict()["leads"] == 6:
            raise PoisonEvent("n 6 is refused")
        await effects.handle(writes, event, record)

    refusing = Inbox(migrated_pool, refuse_n6, "g", deferred=effects.buffer)
    later = [as_record(mission_event(1, n), 10 + n) for n in (5, 6, 7)]
    ahead = await refusing.read_ahead(later)
    assert ahead.projected is None  # not projected: the transaction takes the usual path
    refused = await refusing.apply(later, ahead)
    assert [e.id for e, _ in refused.applied] == ["1-5", "1-7"]
    assert [(r.offset, reason) for r, reason in refused.dead] == [
        (16, f"{MISSION_HELD}: n 6 is refused")
    ]
    rows = await effects_of(migrated_pool)
    assert [n for _, n in rows] == [0, 1, 3, 4, 5, 7]


async def inbox_logging_pool(database_url: str, sent: list[tuple[str, str | None]]) -> asyncpg.Pool:
    """A pool of one connection that notes each ``INSERT`` into the inbox it sends in
    `sent`: ``("plain", None)`` or ``("ON CONFLICT", None)``, or the name of the error the
    server refused it with in place of None."""

    def log_inbox(logged: asyncpg.connection.LoggedQuery) -> None:
        if "INTO inbox" in logged.query:
            refused = type(logged.exception).__name__ if logged.exception else None
            sent.append(("ON CONFLICT" if "ON CONFLICT" in logged.query else "plain", refused))

    async def logging_queries(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(log_inbox)

    return await asyncpg.create_pool(database_url, min_size=1, max_size=1, init=logging_queries)


async def test_a_fetch_of_new_events_goes_into_the_inbox_by_one_plain_insert(
    database_url: str, migrated_pool: asyncpg.Pool
) -> None:
    """Proves: the inbox rows of a fetch whose events are all new go in one plain INSERT
    (no ON CONFLICT, no rows back); a fetch read ahead with an event applied before meets
    that event's row, and is applied again by the insert that skips the rows already there:
    the new events once, the one applied before not again, the buffer made ahead dropped."""
    await migrated_pool.execute("CREATE TABLE effects (mission_id text, n int)")
    sent: list[tuple[str, str | None]] = []
    pool = await inbox_logging_pool(database_url, sent)
    try:
        effects = DeferredEffects()
        inbox = Inbox(pool, effects.handle, "g", deferred=effects.buffer)
        new = [as_record(mission_event(1, n), n) for n in (0, 1, 3)]
        first = await inbox.apply(new, await inbox.read_ahead(new))
        assert [e.id for e, _ in first.applied] == ["1-0", "1-1", "1-3"]
        assert sent == [("plain", None)]

        sent.clear()
        again = [new[2], *(as_record(mission_event(1, n), n) for n in (4, 5))]
        second = await inbox.apply(again, await inbox.read_ahead(again))
        assert [e.id for e, _ in second.applied] == ["1-4", "1-5"]
        assert second.duplicates == 1
        assert sent == [("plain", "UniqueViolationError"), ("ON CONFLICT", None)]
        assert effects.flushes == [[0, 1, 3], [4, 5]]
    finally:
        await pool.close()
    assert [n for _, n in await effects_of(migrated_pool)] == [0, 1, 3, 4, 5]


async def test_a_long_fetch_of_new_events_goes_into_the_inbox_by_one_copy(
    database_url: str, migrated_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: a fetch of `COPY_FROM_ROWS` new events or more records its inbox rows with one
    ``COPY``; one with an event applied before meets that event's row (the copy refused),
    and is applied again by the insert that skips the rows already there: the new events
    once, the one applied before not again."""
    await migrated_pool.execute("CREATE TABLE effects (mission_id text, n int)")
    sent: list[tuple[str, str | None]] = []
    log_copies(monkeypatch, sent)
    pool = await inbox_logging_pool(database_url, sent)
    try:
        effects = DeferredEffects()
        inbox = Inbox(pool, effects.handle, "g", deferred=effects.buffer)
        first_ns = range(10, 10 + COPY_FROM_ROWS)  # from 10: the flush refuses n 2
        new = [as_record(mission_event(1, n), n) for n in first_ns]
        first = await inbox.apply(new, await inbox.read_ahead(new))
        assert len(first.applied) == COPY_FROM_ROWS
        assert sent == [("COPY inbox", None)]

        sent.clear()
        more = range(10 + COPY_FROM_ROWS, 10 + 2 * COPY_FROM_ROWS)
        again = [new[-1], *(as_record(mission_event(1, n), n) for n in more)]
        second = await inbox.apply(again, await inbox.read_ahead(again))
        assert [e.id for e, _ in second.applied] == [f"1-{n}" for n in more]
        assert second.duplicates == 1
        assert sent == [("COPY inbox", "UniqueViolationError"), ("ON CONFLICT", None)]

        sent.clear()
        short = [as_record(mission_event(1, n), n) for n in range(500, 500 + COPY_FROM_ROWS - 1)]
        await inbox.apply(short, await inbox.read_ahead(short))
        assert sent == [("plain", None)]  # shorter: one INSERT
    finally:
        await pool.close()
    applied = [n for _, n in await effects_of(migrated_pool)]
    assert applied == [*range(10, 10 + 2 * COPY_FROM_ROWS), *range(500, 500 + COPY_FROM_ROWS - 1)]


async def test_the_relay_vacuums_the_outbox_it_deletes_from_at_most_every_vacuum_seconds(
    database_url: str, migrated_pool: asyncpg.Pool, make_topics, kafka_bootstrap: str
) -> None:
    """Proves: a relay that deletes published rows vacuums the outbox (its reads no longer
    walk the rows deleted since autovacuum last came), at most once per `vacuum_seconds`
    and only after rows were published (idle, it does not); with `vacuum_seconds` 0 it
    never does."""
    (topic,) = await make_topics("vacuum", partitions=2)

    async def vacuums() -> int:
        return int(
            await migrated_pool.fetchval(
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'outbox'"
            )
        )

    async def relay_events(relay: OutboxRelay, first: int, batches: int) -> tuple[float, int]:
        """Write `batches` transactions of ten events a fifth of a second apart while
        `relay` runs, then leave it idle for a second: the seconds it published for, and
        the vacuums while idle."""
        started = asyncio.get_running_loop().time()
        task = asyncio.create_task(relay.run())
        try:
            for batch in range(batches):
                async with migrated_pool.acquire() as conn, conn.transaction():
                    for n in range(10):
                        await enqueue(conn, mission_event(first + batch * 10 + n, 0), topic=topic)
                await asyncio.sleep(0.2)
            await eventually(lambda: _true(relay.published_total == batches * 10))
            seconds = asyncio.get_running_loop().time() - started
            await asyncio.sleep(0.5)  # the last batch's mark goes alone
            before = await vacuums()
            await asyncio.sleep(1.0)
            return seconds, await vacuums() - before
        finally:
            await relay.stop()
            await asyncio.wait_for(task, 20)

    never = OutboxRelay(database_url, kafka_bootstrap, poll_interval=0.2, vacuum_seconds=0)
    await relay_events(never, 0, 5)
    assert await vacuums() == 0

    every = OutboxRelay(database_url, kafka_bootstrap, poll_interval=0.2, vacuum_seconds=0.5)
    seconds, while_idle = await relay_events(every, 1000, 15)
    assert 2 <= await vacuums() <= seconds / 0.5 + 1
    assert while_idle == 0
    assert await published(migrated_pool, 200) == 200
