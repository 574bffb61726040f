"""Kafka clients configured once: the idempotent producer, consumers, the admin client,
topic creation and the readiness ping. shared/, the services, the suite and the benchmarks
build their aiokafka clients here (tests build their own, as outside parties)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import RequestTimedOutError, TopicAlreadyExistsError, for_code
from aiokafka.partitioner import DefaultPartitioner

log = logging.getLogger(__name__)
_partitioner = DefaultPartitioner()


def header(headers: Iterable[tuple[str, bytes | None]] | None, name: str) -> str | None:
    """The text of a record's first header `name`; None when it has none, or one without a
    value (Kafka allows that)."""
    for key, value in headers or ():
        if key == name and value is not None:
            return bytes(value).decode(errors="replace")
    return None


def idempotent_producer(bootstrap: str, **overrides: object) -> AIOKafkaProducer:
    """acks=all, idempotent: a retried send never duplicates or reorders a record.

    It sends at once (``linger_ms`` 0): each of its users awaits what it sent before it
    sends more (the outbox relay a read's records, the inbox a fetch's dead letters), so nothing
    could join a batch while it lingered; the wait only held each send back. (aiokafka's
    ``send`` queues without giving the event loop a turn unless a batch is full: a read's
    records still share their batches. While one full batch waits to be drained, the other
    partitions' batches go with it, not yet full.) With the relay's producer at 0 instead
    of 5, at 300 ev/s open loop over the three services (two runs each on one machine),
    relay send -> readable p50 went from 10-11 ms to 4-5 and the end-to-end p50 from 60-65
    ms to 50-53; at 1,500 ev/s offered the services achieved 1,097-1,382 ev/s without it,
    1,135-1,278 with; the batch phase (500 events a request) accepted 5,557-5,916 ev/s
    without it, 5,634-5,975 with. A caller that sends many records without awaiting them
    (the bench's loader) asks for a linger."""
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 0,
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


def assigned_reader(bootstrap: str, **overrides: object) -> AIOKafkaConsumer:
    """A consumer without a group: the caller assigns partitions and seeks itself (replays,
    reconciliations); it commits nothing."""
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "group_id": None,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    return AIOKafkaConsumer(**options)


def partition_for(key: str, partitions: list[int]) -> int:
    """The partition Kafka's default (murmur2) partitioner gives ``key``."""
    ordered = sorted(partitions)
    return int(_partitioner(key.encode(), ordered, ordered))


def admin_client(bootstrap: str, **overrides: object) -> AIOKafkaAdminClient:
    options: dict[str, object] = {"bootstrap_servers": bootstrap}
    options.update(overrides)
    return AIOKafkaAdminClient(**options)


async def delete_topics_containing(bootstrap: str, part: str) -> list[str]:
    """Delete every topic whose name holds `part` (a run's own topics on a shared cluster:
    its prefix starts the event topics' names and follows ``teamnl.deadletter.`` in its
    dead-letter topics'); returns their names."""
    return await delete_topics_where(bootstrap, lambda topic: part in topic)


async def delete_topics_where(bootstrap: str, doomed_if: Callable[[str], bool]) -> list[str]:
    """Delete every topic whose name `doomed_if` accepts; returns their names."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        doomed = [topic for topic in await admin.list_topics() if doomed_if(topic)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


async def ping(bootstrap: str, timeout: float = 5.0, *, groups: bool = False) -> bool:
    """A real admin-client round trip: the broker answers a DescribeCluster request; with
    ``groups``, it also names a group coordinator. On a new broker the first such request
    creates the offsets topic, and consumer groups can join only once it is there."""
    admin = admin_client(bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
        if groups:
            await asyncio.wait_for(admin.find_coordinator("teamnl-readiness"), timeout)
        return bool(cluster.get("brokers"))
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    """Every partition of the topics, sorted."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return sorted(
        TopicPartition(topic["topic"], part["partition"])
        for topic in described
        for part in topic["partitions"]
    )


KEPT_FOR_EVER = {"retention.ms": "-1"}

# CreateTopics answers per topic: "already exists" means another instance was first, and "timed
# out" that the controller goes on creating it; both are then waited for like the others
_CREATED_ANYWAY = {0, TopicAlreadyExistsError.errno, RequestTimedOutError.errno}


def _raise_refused(topic_errors: Iterable[tuple[Any, ...]]) -> None:
    for topic, code, *message in topic_errors:
        if code not in _CREATED_ANYWAY:
            reason = message[0] if message and message[0] else for_code(code).description
            raise for_code(code)(f"topic {topic!r} not created: {reason}")


async def _until_led(admin: AIOKafkaAdminClient, topics: list[str], timeout: float) -> None:
    """Wait until the metadata shows each topic with a leader for every partition."""
    deadline = asyncio.get_running_loop().time() + timeout
    waiting = list(topics)
    while True:
        described = await admin.describe_topics(waiting)
        waiting = [
            topic["topic"]
            for topic in described
            if topic["error_code"] != 0
            or not topic["partitions"]
            or any(part["leader"] < 0 for part in topic["partitions"])
        ]
        if not waiting:
            return
        if asyncio.get_running_loop().time() >= deadline:
            raise TimeoutError(f"topics {waiting} not in the broker's metadata after {timeout} s")
        await asyncio.sleep(0.05)


async def ensure_topics(
    bootstrap: str,
    topics: list[str],
    *,
    partitions: int = 6,
    replication: int = 1,
    timeout: float = 30.0,
) -> None:
    """Create the topics that do not exist yet (idempotent), kept for ever: the topics are
    the network's record, which a rebuild of the dashboard replays from the first event.

    Returns once the broker's metadata shows every created topic with a leader for each
    partition: the controller answers CreateTopics before the broker's metadata has caught
    up, and a client that lists or produces at once may not see the topic yet (a clean-clone
    CI run listed none of three topics just created). A topic the broker refuses raises."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        t,
                        num_partitions=partitions,
                        replication_factor=replication,
                        topic_configs=KEPT_FOR_EVER,
                    )
                    for t in missing
                ]
            )
            _raise_refused(response.topic_errors)
            await _until_led(admin, missing, timeout)
            log.info("created topics %s", missing)
    finally:
        await admin.close()
