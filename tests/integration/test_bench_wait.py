"""The bench waits for a projection through the consumer group's offsets in Kafka (a count
over the dashboard's inbox, polled, cost the machine more than the projection did), and
times the projection over the backlog those offsets show when a load ends."""

from __future__ import annotations

from aiokafka import TopicPartition

from bench.harness import group_backlog, group_caught_up
from bench.kafka_io import read_to_end
from support import topic_prefix
from teamnl_shared.kafka import ensure_topics, idempotent_producer, manual_commit_consumer


async def test_the_wait_ends_when_the_group_has_committed_what_the_topics_held(
    kafka_bootstrap: str,
) -> None:
    prefix = topic_prefix()
    topics, group = [f"{prefix}a", f"{prefix}b"], f"{prefix}g"
    await ensure_topics(kafka_bootstrap, topics, partitions=2)
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        for index in range(6):  # partitions a/0 (3 records), b/1 (3), a/1 and b/0 empty
            topic = topics[index % 2]
            await producer.send_and_wait(topic, b"x", partition=index % 2)
    finally:
        await producer.stop()
    consumer = manual_commit_consumer(kafka_bootstrap, group)  # commits as the group's
    await consumer.start()
    consumer.assign([TopicPartition(t, p) for t in topics for p in (0, 1)])
    try:
        assert not await group_caught_up(kafka_bootstrap, group, topics, timeout=0.3)
        assert await group_backlog(kafka_bootstrap, group, topics) == 6
        await consumer.commit({TopicPartition(topics[0], 0): 3})
        assert not await group_caught_up(kafka_bootstrap, group, topics, timeout=0.3)
        assert await group_backlog(kafka_bootstrap, group, topics) == 3
        await consumer.commit({TopicPartition(topics[1], 1): 2})  # one record short
        assert not await group_caught_up(kafka_bootstrap, group, topics, timeout=0.3)
        assert await group_backlog(kafka_bootstrap, group, topics) == 1
        await consumer.commit({TopicPartition(topics[1], 1): 3})
        assert await group_caught_up(kafka_bootstrap, group, topics, timeout=5)
        assert await group_backlog(kafka_bootstrap, group, topics) == 0
    finally:
        await consumer.stop()


async def test_a_sample_read_stops_after_its_limit_and_a_whole_read_reads_all(
    kafka_bootstrap: str,
) -> None:
    """The validating baseline reads a sample (``--count``): its rate, not the whole log;
    without a limit every record is read."""
    topic = f"{topic_prefix()}sample"
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(25_000):  # more than one fetch (10,000 records at most)
            await producer.send(topic, b"x")
        await producer.flush()
    finally:
        await producer.stop()
    whole = await read_to_end(kafka_bootstrap, [topic], identities=False)
    sample = await read_to_end(kafka_bootstrap, [topic], identities=False, limit=10)
    assert whole["records"] == 25_000
    assert 10 <= sample["records"] <= 10_000, sample["records"]
