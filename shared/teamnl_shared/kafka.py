"""Kafka clients configured once: the idempotent producer, consumers, topic creation."""

from __future__ import annotations

import contextlib
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

log = logging.getLogger(__name__)
_partitioner = DefaultPartitioner()


def idempotent_producer(bootstrap: str, **overrides: object) -> AIOKafkaProducer:
    """acks=all, idempotent: a retried send never duplicates or reorders a record."""
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "request_timeout_ms": 15000,
        "retry_backoff_ms": 200,
        "max_batch_size": 256 * 1024,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def manual_commit_consumer(
    bootstrap: str, group: str, *topics: str, **overrides: object
) -> AIOKafkaConsumer:
    """Offsets are committed by the caller, after the effects of a batch have committed."""
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": 500,
        "session_timeout_ms": 10000,
        "heartbeat_interval_ms": 1000,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


def partition_for(key: str, partitions: list[int]) -> int:
    """The partition Kafka's default (murmur2) partitioner gives ``key``."""
    ordered = sorted(partitions)
    return int(_partitioner(key.encode(), ordered, ordered))


async def ensure_topics(
    bootstrap: str, topics: list[str], *, partitions: int = 6, replication: int = 1
) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another instance was first
                await admin.create_topics(
                    [
                        NewTopic(t, num_partitions=partitions, replication_factor=replication)
                        for t in missing
                    ]
                )
            log.info("created topics %s", missing)
    finally:
        await admin.close()
