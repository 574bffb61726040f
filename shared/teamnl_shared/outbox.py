"""Transactional outbox: write events with the domain rows, publish them from a relay.

Writing: :func:`enqueue` inserts the Kafka record of an event into ``outbox`` using the
caller's connection, inside the caller's transaction (:data:`INSERT_MANY` inserts many at
once, in order).

Publishing: one :class:`OutboxRelay` per database is the leader (a PostgreSQL advisory
lock held on its own connection; other instances wait). It sends unpublished rows in
``seq`` order with an idempotent producer (``acks=all``), to the partition Kafka's default
partitioner gives the key, and marks them published with the offsets Kafka returned.
``LISTEN/NOTIFY`` wakes it; a short poll is the fallback.

Crashes and broker outages: whenever the relay (re)starts a session it first reconciles
with Kafka: it reads every record written after the last offset it recorded per
partition and marks the rows behind them (``ce_source``/``ce_id``) as published. Rows are
thus never lost, never sent twice, and never reordered within a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from opentelemetry import trace
from opentelemetry.trace import Tracer

from .contract.envelope import Event
from .kafka import assigned_reader, idempotent_producer, partition_for
from .telemetry.messaging import inject_traceparent, publish_span, trace_headers

log = logging.getLogger(__name__)

RELAY_LOCK = 7_310_002
CHANNEL = "teamnl_outbox"


@dataclass(frozen=True)
class OutboxRecord:
    """One outbox row: the event's Kafka record, headers as ``[[name, value], ...]`` JSON."""

    event_id: str
    event_source: str
    event_type: str
    topic: str
    key: str
    headers: str
    value: bytes


ACCEPTED_AT_HEADER = "teamnl_accepted_at"


def record_of(event: Event, extra_headers: Mapping[str, str], topic: str) -> OutboxRecord:
    """The outbox row of ``event``: binary-mode ``ce_*`` headers plus ``extra_headers``
    (the trace context), the data as canonical JSON.

    ``teamnl_accepted_at`` records when teamnl accepted the event: consumers measure the
    end-to-end latency from it, not from the partner-supplied ``time`` (which may be old).
    """
    headers = [[name, value.decode()] for name, value in event.to_kafka_headers()]
    extra = {ACCEPTED_AT_HEADER: datetime.now(UTC).isoformat(), **extra_headers}
    headers += [[name, value] for name, value in extra.items()]
    return OutboxRecord(
        event.id, event.source, event.type, topic, event.key, json.dumps(headers), event.data_json()
    )


# Rows in the order given ($1..$7 are parallel arrays, see insert_many_args); ``seq`` follows
# that order. Also used as a CTE by the ingestion kit (receipts written in the same statement).
INSERT_MANY = (
    "INSERT INTO outbox (event_id, event_source, event_type, topic, key, headers, value)"
    " SELECT o.id, o.source, o.type, o.topic, o.key, o.headers::jsonb, o.value"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
    " $7::bytea[]) WITH ORDINALITY AS o(id, source, type, topic, key, headers, value, ord)"
    " ORDER BY o.ord RETURNING seq, event_id, event_source, event_type, topic, key"
)


_COLUMNS = ("event_id", "event_source", "event_type", "topic", "key", "headers", "value")


def insert_many_args(records: Sequence[OutboxRecord]) -> list[list[Any]]:
    """The parallel arrays $1..$7 of :data:`INSERT_MANY`."""
    return [[getattr(r, name) for r in records] for name in _COLUMNS]


async def enqueue(
    conn: asyncpg.Connection,
    event: Event,
    extra_headers: Mapping[str, str] | None = None,
    *,
    topic: str | None = None,
) -> int:
    """Add the event's Kafka record to the outbox in the caller's transaction.

    The current trace context is stored with the row, so the relay's publish span (and the
    consumers after it) continue the trace of the request that accepted the event.

    ``topic`` defaults to the event family's topic; tests and deployments with a topic
    prefix pass their own.
    """
    extra = {**inject_traceparent(), **(extra_headers or {})}
    record = record_of(event, extra, topic or event.topic)
    seq: int = await conn.fetchval(INSERT_MANY, *insert_many_args([record]))
    return seq


async def backlog(pool: asyncpg.Pool) -> tuple[int, float]:
    """(unpublished rows, age in seconds of the oldest one)."""
    row = await pool.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age"
        " FROM outbox WHERE published_at IS NULL"
    )
    return int(row["n"]), float(row["age"])


@dataclass
class _Row:
    seq: int
    topic: str
    key: str
    headers: list[tuple[str, bytes]]
    value: bytes
    identity: tuple[str, str]


@dataclass
class OutboxRelay:
    pool_url: str
    bootstrap: str
    batch_size: int = 500
    poll_interval: float = 1.0
    retry_backoff: float = 1.0
    producer_options: dict[str, Any] = field(default_factory=dict)
    tracer: Tracer = field(default_factory=lambda: trace.get_tracer("teamnl.outbox"))
    published_total: int = 0
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _partitions: dict[str, list[int]] = field(default_factory=dict)

    # -- lifecycle ----------------------------------------------------------------------
    async def run(self) -> None:
        """Relay until :meth:`stop`; survives database and broker outages."""
        while not self._stopping.is_set():
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - keep relaying after any failure
                log.warning("outbox relay session ended: %r; retrying", error)
                await self._sleep(self.retry_backoff)

    async def stop(self) -> None:
        """Publish what is pending (the caller stopped taking new events), then stop."""
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # -- one leadership session -----------------------------------------------------------
    async def _lead(self) -> None:
        conn = await asyncpg.connect(self.pool_url)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                if self._stopping.is_set():
                    return
                await self._sleep(self.poll_interval)
            await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
            producer = idempotent_producer(self.bootstrap, **self.producer_options)
            await producer.start()
            try:
                await self._reconcile(conn, producer)
                await self._relay(conn, producer)
            finally:
                await producer.stop()
        finally:
            await conn.close(timeout=5)

    async def _relay(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> None:
        while True:
            sent = await self._publish_batch(conn, producer)
            if sent:
                continue
            if self._stopping.is_set():
                return
            self._wake.clear()
            await self._sleep(self.poll_interval, self._wake)

    async def _publish_batch(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        rows = await _pending(conn, self.batch_size)
        if not rows:
            return 0
        futures = [await self._send(producer, row) for row in rows]
        metadata = await asyncio.gather(*futures)
        offsets: dict[tuple[str, int], int] = {}
        for meta in metadata:
            offsets[(meta.topic, meta.partition)] = meta.offset + 1
        await _mark_published(conn, [r.seq for r in rows], offsets)
        self.published_total += len(rows)
        return len(rows)

    async def _send(self, producer: AIOKafkaProducer, row: _Row) -> asyncio.Future[Any]:
        """Queue one record; its publish span continues the trace stored with the row."""
        partition = await self._partition(producer, row)
        with publish_span(self.tracer, row.topic, row.key, partition, row.identity[1], row.headers):
            headers = [(k, v) for k, v in row.headers if k not in ("traceparent", "tracestate")]
            headers += trace_headers()
            future: asyncio.Future[Any] = await producer.send(
                row.topic, row.value, key=row.key.encode(), partition=partition, headers=headers
            )
        return future

    async def _partition(self, producer: AIOKafkaProducer, row: _Row) -> int:
        partitions = self._partitions.get(row.topic)
        if partitions is None:
            found = await producer.partitions_for(row.topic)
            partitions = self._partitions[row.topic] = sorted(found)
        return partition_for(row.key, partitions)

    # -- reconciliation -------------------------------------------------------------------
    async def _reconcile(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> None:
        """Mark rows that reached Kafka in an earlier session (crash or outage) as published."""
        topics = [
            r["topic"]
            for r in await conn.fetch(
                "SELECT DISTINCT topic FROM outbox WHERE published_at IS NULL"
            )
        ]
        if not topics:
            return
        for topic in topics:
            await self._partition(producer, _Row(0, topic, "", [], b"", ("", "")))
        checkpoints = await _checkpoints(conn)
        found, ends = await _read_since(
            self.bootstrap,
            {
                TopicPartition(t, p): checkpoints.get((t, p), 0)
                for t in topics
                for p in self._partitions[t]
            },
        )
        async with conn.transaction():
            if found:
                await conn.execute(
                    "UPDATE outbox SET published_at = now() FROM unnest($1::text[], $2::text[])"
                    " AS f(src, id) WHERE event_source = f.src AND event_id = f.id"
                    " AND published_at IS NULL",
                    [s for s, _ in found],
                    [i for _, i in found],
                )
            await _save_checkpoints(conn, {(tp.topic, tp.partition): o for tp, o in ends.items()})
        if found:
            log.info("outbox reconcile: %d rows were already in Kafka", len(found))

    async def _sleep(self, seconds: float, event: asyncio.Event | None = None) -> None:
        waiter = event or self._stopping
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), seconds)


async def _pending(conn: asyncpg.Connection, limit: int) -> list[_Row]:
    records = await conn.fetch(
        "SELECT seq, topic, key, headers, value, event_source, event_id FROM outbox"
        " WHERE published_at IS NULL ORDER BY seq LIMIT $1",
        limit,
    )
    return [
        _Row(
            r["seq"],
            r["topic"],
            r["key"],
            [(name, value.encode()) for name, value in json.loads(r["headers"])],
            bytes(r["value"]),
            (r["event_source"], r["event_id"]),
        )
        for r in records
    ]


async def _mark_published(
    conn: asyncpg.Connection, seqs: list[int], offsets: dict[tuple[str, int], int]
) -> None:
    """Mark the rows and advance the checkpoints in one statement (atomic on its own: one
    round trip instead of a four-statement transaction)."""
    keys = list(offsets)
    await conn.execute(
        f"WITH marked AS ({_MARK}) {_SAVE_CHECKPOINTS}",  # noqa: S608 - constants only
        [t for t, _ in keys],
        [p for _, p in keys],
        [offsets[k] for k in keys],
        seqs,
    )


_MARK = "UPDATE outbox SET published_at = now() WHERE seq = ANY($4::bigint[]) RETURNING 1"
_SAVE_CHECKPOINTS = (
    "INSERT INTO outbox_checkpoints (topic, kafka_partition, next_offset)"
    " SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])"
    " ON CONFLICT (topic, kafka_partition) DO UPDATE"
    " SET next_offset = greatest(outbox_checkpoints.next_offset, excluded.next_offset)"
)


async def _checkpoints(conn: asyncpg.Connection) -> dict[tuple[str, int], int]:
    rows = await conn.fetch("SELECT topic, kafka_partition, next_offset FROM outbox_checkpoints")
    return {(r["topic"], r["kafka_partition"]): r["next_offset"] for r in rows}


async def _save_checkpoints(conn: asyncpg.Connection, offsets: dict[tuple[str, int], int]) -> None:
    if not offsets:
        return
    keys = list(offsets)
    await conn.execute(
        _SAVE_CHECKPOINTS, [t for t, _ in keys], [p for _, p in keys], [offsets[k] for k in keys]
    )


async def _read_since(
    bootstrap: str, starts: dict[TopicPartition, int]
) -> tuple[set[tuple[str, str]], dict[TopicPartition, int]]:
    """Every (ce_source, ce_id) written at or after the given offsets, and the end offsets."""
    consumer = assigned_reader(bootstrap, isolation_level="read_uncommitted")
    await consumer.start()
    try:
        consumer.assign(list(starts))
        ends = await consumer.end_offsets(list(starts))
        found: set[tuple[str, str]] = set()
        remaining = defaultdict(int)
        for tp, start in starts.items():
            if ends[tp] > start:
                consumer.seek(tp, start)
                remaining[tp] = ends[tp]
            else:
                consumer.pause(tp)
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            for tp, records in batch.items():
                for record in records:
                    headers = dict(record.headers)
                    found.add(
                        (headers.get("ce_source", b"").decode(), headers.get("ce_id", b"").decode())
                    )
                    if record.offset + 1 >= remaining.get(tp, 0):
                        remaining.pop(tp, None)
                        consumer.pause(tp)
        if remaining:
            raise RuntimeError(f"outbox reconcile could not read to the end of {list(remaining)}")
        return found, ends
    finally:
        await consumer.stop()
