"""A record aiokafka cannot decode does not stop the dashboard, live or in a rebuild.

aiokafka decodes each record's header names as UTF-8 while it unpacks a fetch. A record with
one that is not (written by another producer than the relays: kcat here) makes every fetch
of its partition raise ``UnicodeDecodeError``; nothing after it was ever returned, and the
records of the same fetch before it were dropped with the fetch. The consumer and the
rebuild now find it, apply every record before it, dead-letter it by its offset and go on.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from itertools import count

import asyncpg
import pytest
from aiokafka import TopicPartition
from test_outbox_inbox import mission_event
from test_outbox_parking import _send_as_a_crashed_relay, relay_until_nothing_left, write

from dashboard_harness import APPLIED, dashboard_settings, make_event, running_dashboard
from support import eventually
from teamnl_dashboard.notices import notice_topics
from teamnl_dashboard.rebuild import rebuild
from teamnl_shared.contract import nlib
from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.topics import deadletter_topic
from teamnl_shared.kafka import (
    assigned_reader,
    ensure_topics,
    idempotent_producer,
    manual_commit_consumer,
    partition_for,
)
from teamnl_shared.outbox import NOTICE_HEADER, OutboxRelay
from teamnl_shared.undecodable import PROBE_RECORDS, first_undecodable

pytestmark = pytest.mark.integration

POISONED = 1
"""The partition the undecodable record goes to (of the harness's 3)."""


def missions(partition: int, how_many: int, numbers: count[int]) -> list[Event]:
    """Missions whose key Kafka's partitioner sends to `partition`."""
    found: list[Event] = []
    while len(found) < how_many:
        event = make_event(nlib.MissionHeld.TYPE, mission_id=f"m-{next(numbers)}")
        if partition_for(event.key, [0, 1, 2]) == partition:
            found.append(event)
    return found


def write_undecodable(bootstrap: str, topic: str, event: Event, partition: int = POISONED) -> None:
    """`event` as kcat writes it, with one more header whose name is not UTF-8."""
    headers = [
        arg
        for name, value in event.to_kafka_headers()
        for arg in (b"-H", name.encode() + b"=" + value)
    ]
    subprocess.run(
        [
            b"kcat",
            b"-b",
            bootstrap.encode(),
            b"-P",
            b"-t",
            topic.encode(),
            b"-p",
            str(partition).encode(),
            b"-k",
            event.key.encode(),
            *headers,
            b"-H",
            b"\xff\xfe=not-utf-8",
        ],
        input=event.data_json(),
        timeout=60,
        check=True,
    )


async def end_offset(bootstrap: str, tp: TopicPartition) -> int:
    reader = assigned_reader(bootstrap)
    await reader.start()
    try:
        offset: int = (await reader.end_offsets([tp]))[tp]
        return offset
    finally:
        await reader.stop()


async def test_a_record_aiokafka_cannot_decode_is_dead_lettered_and_the_rest_projected(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap)
    numbers = count()
    first = missions(POISONED, 1, numbers)
    topic = settings.topic(first[0].topic)
    tp = TopicPartition(topic, POISONED)
    async with running_dashboard(settings) as dash:  # makes the topics, applies one event
        await dash.publish(*first)
        await dash.wait_applied(1)
        # While no consumer runs: good records before and after the undecodable one in its
        # partition, and in the others, so that one fetch holds them all.
        before = missions(POISONED, 3, numbers) + missions(0, 3, numbers)
        await dash.publish(*before)
    poison_offset = await end_offset(kafka_bootstrap, tp)
    poisoned = missions(POISONED, 1, numbers)[0]
    write_undecodable(kafka_bootstrap, topic, poisoned)
    after = missions(POISONED, 3, numbers) + missions(2, 3, numbers)
    async with running_dashboard(settings) as dash:
        await dash.publish(*after)
        good = [*first, *before, *after]
        await dash.wait_applied(len(good))
        applied = {
            row["event_id"] for row in await dash.pool.fetch("SELECT event_id FROM proj.events")
        }

        async def dead_lettered() -> bool:
            return bool(await dash.pool.fetchval("SELECT count(*) FROM proj.dead_letters"))

        await eventually(dead_lettered)
        dead = [tuple(row) for row in await dash.pool.fetch(DEAD_LETTERS)]
    assert applied == {event.id for event in good}
    assert dead == [(topic, POISONED, poison_offset, None)]
    assert await dead_letter_offsets(kafka_bootstrap, settings.group, topic) == [
        (POISONED, poison_offset)
    ]

    result = await rebuild(settings, progress=lambda _line: None)

    assert (result.applied, result.dead_letters) == (len(good), 1)
    async with running_dashboard(settings) as dash:
        assert await dash.pool.fetchval(APPLIED) == len(good)
        assert [tuple(row) for row in await dash.pool.fetch(DEAD_LETTERS)] == dead
        reasons = await dash.pool.fetch("SELECT reason FROM proj.dead_letters")
    assert all("cannot be decoded" in row["reason"] for row in reasons)


async def test_a_relay_reconciles_past_a_record_it_cannot_decode(
    database_url: str, migrated_pool: asyncpg.Pool, make_topics, kafka_bootstrap: str
) -> None:
    """A relay that crashed after sending finds its rows in Kafka on restart, reading past
    another producer's undecodable record between them: nothing is sent twice."""
    (topic,) = await make_topics("reconcile-undecodable", partitions=1)
    events = [mission_event(1, n) for n in range(10)]
    await write(migrated_pool, topic, events)
    await _send_as_a_crashed_relay(kafka_bootstrap, topic, events[:5])
    write_undecodable(kafka_bootstrap, topic, make_event(nlib.MissionHeld.TYPE), partition=0)
    await _send_as_a_crashed_relay(kafka_bootstrap, topic, events[5:])

    relay = OutboxRelay(database_url, kafka_bootstrap, poll_interval=0.2)
    await relay_until_nothing_left(relay, migrated_pool)

    assert relay.published_total == 0, "every row was in Kafka already: nothing resent"
    assert await migrated_pool.fetchval("SELECT next_offset FROM outbox_checkpoints") == 11


async def test_a_notice_after_a_record_the_dashboard_cannot_decode_is_recorded(
    database_url: str, kafka_bootstrap: str
) -> None:
    """The relays' notices of parked rows (their own consumer group): another producer's
    undecodable record on the topic is skipped, the notice after it recorded."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    (notices,) = notice_topics(settings)[:1]
    await ensure_topics(kafka_bootstrap, [notices], partitions=settings.topic_partitions)
    write_undecodable(kafka_bootstrap, notices, make_event(nlib.MissionHeld.TYPE), partition=0)
    notice = {"service": "nlib", "ce_id": "too-big-1", "reason": "MessageSizeTooLargeError"}
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            notices,
            json.dumps(notice).encode(),
            partition=0,
            headers=[(NOTICE_HEADER, b"outbox-parked")],
        )
    finally:
        await producer.stop()

    async with running_dashboard(settings) as dash:

        async def recorded() -> bool:
            return dash.app.state.runtime.notices.recorded_total == 1

        await eventually(recorded)
        dead = [tuple(row) for row in await dash.pool.fetch(DEAD_LETTERS)]
    assert dead == [(notices, 0, 1, "too-big-1")]


DEAD_LETTERS = "SELECT topic, kafka_partition, kafka_offset, event_id FROM proj.dead_letters"


async def dead_letter_offsets(bootstrap: str, group: str, topic: str) -> list[tuple[int, int]]:
    """Where each record of `group`'s dead-letter topic from `topic` came from (its
    teamnl_original_* headers): (partition, offset). The topic is the group's, shared by
    the tests; this test's topics are its own."""
    reader = manual_commit_consumer(bootstrap, f"dlq-{uuid.uuid4().hex}", deadletter_topic(group))
    await reader.start()
    found: list[tuple[int, int]] = []
    try:

        async def read() -> bool:
            for records in (await reader.getmany(timeout_ms=200)).values():
                for record in records:
                    headers = {name: value.decode() for name, value in record.headers}
                    if headers["teamnl_original_topic"] == topic:
                        found.append(
                            (
                                int(headers["teamnl_original_partition"]),
                                int(headers["teamnl_original_offset"]),
                            )
                        )
            return bool(found)

        await eventually(read)
        return found
    finally:
        await reader.stop()


@pytest.mark.parametrize("good_before", [0, 1, PROBE_RECORDS - 1, PROBE_RECORDS, 777])
async def test_the_probe_names_the_offset_of_the_first_undecodable_record(
    make_topics, kafka_bootstrap: str, good_before: int
) -> None:
    """Before it, good records in fetches of `PROBE_RECORDS` (the failing fetch is then
    read again one record at a time), after it more good records and a second bad one."""
    (topic,) = await make_topics("probe", partitions=1)
    tp = TopicPartition(topic, 0)
    event = make_event(nlib.MissionHeld.TYPE)
    producer = idempotent_producer(kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:

        async def good(how_many: int) -> None:
            sent = [
                await producer.send(topic, event.data_json(), headers=event.to_kafka_headers())
                for _ in range(how_many)
            ]
            await asyncio.gather(*sent)

        await good(good_before)
        write_undecodable(kafka_bootstrap, topic, event, partition=0)
        await good(3)
        write_undecodable(kafka_bootstrap, topic, event, partition=0)
    finally:
        await producer.stop()
    second = good_before + 4

    assert await first_undecodable(kafka_bootstrap, tp, 0) == good_before
    assert await first_undecodable(kafka_bootstrap, tp, 0, end=good_before) is None
    assert await first_undecodable(kafka_bootstrap, tp, good_before + 1) == second
    assert await first_undecodable(kafka_bootstrap, tp, second) == second
    assert await first_undecodable(kafka_bootstrap, tp, second + 1) is None
