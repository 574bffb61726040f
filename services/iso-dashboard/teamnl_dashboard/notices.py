"""Rows the initiative services' relays parked (``teamnl_shared.outbox``): a record Kafka
will never take is moved aside and announced, as a small JSON notice, on the service's
``teamnl.deadletter.<service>`` topic. The dashboard records each notice in
``dead_letters``, so the ``invalid-events`` rule raises a finding naming the event.

A consumer group of its own (``<group>.notices``); a notice is recorded once whatever the
redelivery (``dead_letters`` is keyed by topic, partition and offset), and offsets are
committed after the rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from teamnl_shared.contract.topics import INGESTION_SERVICES, deadletter_topic
from teamnl_shared.kafka import ensure_topics, header, manual_commit_consumer
from teamnl_shared.outbox import NOTICE_HEADER
from teamnl_shared.undecodable import UNDECODABLE, Fetched, committed_offsets, past_undecodable

from .consumer import owe_dead_letters
from .projections.network import DeadLetter
from .rules import RulesEngine
from .settings import DashboardSettings

log = logging.getLogger(__name__)


def notice_topics(settings: DashboardSettings) -> list[str]:
    return [settings.topic(deadletter_topic(service)) for service in INGESTION_SERVICES]


@dataclass
class NoticeConsumer:
    settings: DashboardSettings
    pool: asyncpg.Pool
    engine: RulesEngine
    wake_rules: Callable[[], None] | None = None
    """The rules worker's ``wake``: the dead letters recorded owe the ``invalid-events`` rule."""
    recorded_total: int = 0
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        topics = notice_topics(self.settings)
        await ensure_topics(
            self.settings.kafka_bootstrap_servers,
            topics,
            partitions=self.settings.topic_partitions,
        )
        consumer = manual_commit_consumer(
            self.settings.kafka_bootstrap_servers, f"{self.settings.group}.notices", *topics
        )
        await consumer.start()
        try:
            while not self._stopping.is_set():
                try:
                    batch = await consumer.getmany(timeout_ms=500)
                except UNDECODABLE as error:
                    await self._past_undecodable(consumer, error)
                    continue
                for tp, records in batch.items():
                    await self._record(records)
                    await consumer.commit({tp: records[-1].offset + 1})
        finally:
            await consumer.stop()

    async def _past_undecodable(
        self, consumer: AIOKafkaConsumer, error: UnicodeDecodeError
    ) -> None:
        """A record aiokafka cannot decode is no notice (the relays write none): the notices
        before it are recorded, it is skipped with a warning."""
        starts = await committed_offsets(consumer)
        reading = past_undecodable(consumer, self.settings.kafka_bootstrap_servers, starts, error)
        async with contextlib.aclosing(reading) as items:
            async for item in items:
                if isinstance(item, Fetched):
                    await self._record(item.records)
                    await consumer.commit({item.tp: item.records[-1].offset + 1})
                    continue
                log.warning("skipped %s[%d]@%d: %s", *item.tp, item.offset, item.reason)
                await consumer.commit({item.tp: item.past})

    async def stop(self) -> None:
        self._stopping.set()

    async def _record(self, records: list[ConsumerRecord]) -> None:
        notices = [(record, _notice(record)) for record in records]
        parked = [(record, notice) for record, notice in notices if notice is not None]
        if not parked:
            return
        letters = [
            DeadLetter(
                record.topic,
                record.partition,
                record.offset,
                f"{notice.service} parked an event for {notice.topic}: {notice.reason}",
                notice.ce_id,
                notice.type,
                self.engine.clock(),
            )
            for record, notice in parked
        ]
        await owe_dead_letters(self.pool, self.engine, letters, self.wake_rules)
        self.recorded_total += len(parked)
        log.warning("recorded %d parked outbox row(s) of the initiative services", len(parked))


class Notice(NamedTuple):
    """What a notice tells: its values where they are strings (None where not). Stored as a
    dead letter, which keeps texts without NUL and cut short (`record_dead_letters`)."""

    service: str | None
    topic: str | None
    reason: str | None
    ce_id: str | None
    type: str | None


def _notice(record: ConsumerRecord) -> Notice | None:
    """The notice a record carries, or None for anything else on the topic. The relays write
    such notices, but anything on the topic must not stop the notices after it: a value that
    is not a string is left out."""
    if header(record.headers, NOTICE_HEADER) != "outbox-parked":
        return None
    try:
        notice = json.loads(record.value)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(notice, dict):
        return None
    return Notice(*(_text(notice.get(name)) for name in Notice._fields))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
