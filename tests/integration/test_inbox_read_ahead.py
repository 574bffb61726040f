"""The consumer reads ahead: one fetch is read and parsed while the one before is in the
database. Against real Kafka and PostgreSQL.

What this proves: when the fetch before must be read again (an outage retried, a batch step
the database refuses isolated record by record), the fetch read ahead of it is dropped and
read again after it - every event is applied exactly once, and each partition's events in
their order. Without the drop, the records read ahead would be skipped.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiokafka import ConsumerRecord
from test_inbox_poison_and_identity import mission

from support import eventually, topic_prefix
from teamnl_shared.contract.envelope import Event
from teamnl_shared.inbox import InboxConsumer
from teamnl_shared.kafka import ensure_topics, idempotent_producer

pytestmark = pytest.mark.integration

EVENTS = 240
PARTITIONS = 3
PER_FETCH = 7  # many small fetches: every fetch has another read ahead of it


async def test_a_fetch_read_again_reads_the_fetch_read_ahead_of_it_again(
    migrated_pool: asyncpg.Pool, make_topics, kafka_bootstrap: str
) -> None:
    await migrated_pool.execute(
        "CREATE TABLE effects (seq bigserial, id text, kafka_partition int, kafka_offset bigint)"
    )
    await migrated_pool.execute(
        "CREATE TABLE total (v bigint NOT NULL CHECK (v < 500000)); INSERT INTO total VALUES (0)"
    )
    commits = 0

    async def store(conn: asyncpg.Connection, item: Event, record: ConsumerRecord) -> None:
        await conn.execute(
            "INSERT INTO effects (id, kafka_partition, kafka_offset) VALUES ($1, $2, $3)",
            item.id,
            record.partition,
            record.offset,
        )

    async def fold(conn: asyncpg.Connection, applied: list[tuple[Event, Any]]) -> None:
        nonlocal commits
        commits += 1
        if commits in (3, 9, 15):  # an outage: the whole fetch is retried
            raise asyncpg.exceptions.ConnectionFailureError("the database went away")
        added = sum(item.data.leads for item, _ in applied)
        await conn.execute("UPDATE total SET v = v + $1", added)  # one event breaks the CHECK

    [topic] = await make_topics("ahead", partitions=PARTITIONS)
    consumer = InboxConsumer(
        migrated_pool,
        kafka_bootstrap,
        f"{topic_prefix()}g",
        [topic],
        store,
        before_commit=fold,
        retry_backoff=0.05,
        consumer_options={"max_poll_records": PER_FETCH},
    )
    await ensure_topics(kafka_bootstrap, [consumer.deadletter_topic], partitions=1)
    poison = EVENTS // 2
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        for n in range(EVENTS):
            item = mission(n, 600_000 if n == poison else 1)
            await producer.send(
                topic,
                item.data_json(),
                key=f"k-{n % 11}".encode(),
                headers=item.to_kafka_headers(),
            )
        await producer.flush()
    finally:
        await producer.stop()
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(
            lambda: _true(consumer.applied_total + consumer.deadletter_total == EVENTS),
            timeout=120,
        )
    finally:
        await consumer.stop()
        await task

    rows = await migrated_pool.fetch(
        "SELECT id, kafka_partition, kafka_offset FROM effects ORDER BY seq"
    )
    ids = [r["id"] for r in rows]
    assert sorted(ids) == sorted(f"m-{n}" for n in range(EVENTS) if n != poison)
    assert consumer.deadletter_total == 1 and consumer.applied_total == EVENTS - 1
    for partition in range(PARTITIONS):
        offsets = [r["kafka_offset"] for r in rows if r["kafka_partition"] == partition]
        assert offsets == sorted(offsets), f"partition {partition} applied out of order"
    assert await migrated_pool.fetchval("SELECT v FROM total") == EVENTS - 1
    assert commits > EVENTS // PER_FETCH, "the events came in many fetches"


async def _true(value: object) -> bool:
    return bool(value)
