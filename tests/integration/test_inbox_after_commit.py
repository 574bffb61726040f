"""The consumer tells ``after_commit`` once a fetch's transaction committed, before it
commits the fetch's offsets to Kafka. Against real Kafka and PostgreSQL.

What this proves: the hook (the dashboard's live push) sees the fetch's effects committed
(another connection reads them) and runs before the offset commit, so it does not wait for
the group coordinator's round trip; every event is told once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from test_inbox_poison_and_identity import mission

from support import eventually, topic_prefix
from teamnl_shared.contract.envelope import Event
from teamnl_shared.inbox import InboxConsumer
from teamnl_shared.kafka import ensure_topics, idempotent_producer

pytestmark = pytest.mark.integration

EVENTS = 60
PER_FETCH = 7


async def test_after_commit_comes_once_the_fetch_committed_and_before_its_offsets(
    migrated_pool: asyncpg.Pool,
    make_topics,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await migrated_pool.execute("CREATE TABLE effects (id text PRIMARY KEY)")
    steps: list[tuple[str, int, int]] = []  # ("told", committed, events), ("offsets", 0, 0)
    told: list[str] = []

    async def store(conn: asyncpg.Connection, item: Event, record: ConsumerRecord) -> None:
        await conn.execute("INSERT INTO effects (id) VALUES ($1)", item.id)

    async def tell(applied: list[tuple[Event, Any]]) -> None:
        ids = [item.id for item, _ in applied]
        committed = await migrated_pool.fetchval(
            "SELECT count(*) FROM effects WHERE id = ANY($1::text[])", ids
        )
        steps.append(("told", committed, len(ids)))
        told.extend(ids)

    real_commit = AIOKafkaConsumer.commit

    async def commit(self: AIOKafkaConsumer, offsets: Any = None) -> None:
        steps.append(("offsets", 0, 0))
        await real_commit(self, offsets)

    monkeypatch.setattr(AIOKafkaConsumer, "commit", commit)
    [topic] = await make_topics("told", partitions=2)
    consumer = InboxConsumer(
        migrated_pool,
        kafka_bootstrap,
        f"{topic_prefix()}told",
        [topic],
        store,
        after_commit=tell,
        consumer_options={"max_poll_records": PER_FETCH},
    )
    await ensure_topics(kafka_bootstrap, [consumer.deadletter_topic], partitions=1)
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        for n in range(EVENTS):
            item = mission(n, 1)
            await producer.send(
                topic, item.data_json(), key=f"k-{n % 5}".encode(), headers=item.to_kafka_headers()
            )
        await producer.flush()
    finally:
        await producer.stop()
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: _true(consumer.applied_total == EVENTS), timeout=60)
    finally:
        await consumer.stop()
        await task

    assert sorted(told) == sorted(f"m-{n}" for n in range(EVENTS)), "each event told once"
    fetches = [i for i, (step, _, _) in enumerate(steps) if step == "told"]
    assert len(fetches) > 1, "the events came in several fetches"
    for i in fetches:
        _, committed, events = steps[i]
        assert committed == events, f"told before its effects were committed: {steps[i]}"
        assert steps[i + 1 : i + 2] == [("offsets", 0, 0)], f"told, then its offsets: {steps}"
    assert steps[0][0] == "told", f"the first fetch was told before its offsets: {steps}"


async def _true(value: object) -> bool:
    return bool(value)
