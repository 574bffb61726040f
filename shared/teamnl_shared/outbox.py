"""Transactional outbox: write events with the domain rows, publish them from a relay.

Writing: :func:`enqueue` inserts the Kafka record of an event into ``outbox`` using the
caller's connection, inside the caller's transaction (:data:`INSERT_MANY` inserts many at
once, in order).

Publishing: one :class:`OutboxRelay` per database is the leader (a PostgreSQL advisory
lock held on its own connection; other instances wait). It sends the rows in ``seq``
order with an idempotent producer (``acks=all``), to the partition Kafka's default
partitioner gives the key, and deletes them once Kafka acknowledged them, saving the offsets
Kafka returned: the outbox holds only what Kafka does not have yet. (It used to mark them
published and keep them: a second copy of every event beside Kafka's, growing for ever, and
an UPDATE that wrote each row anew.) This "mark" of a batch goes with the read of the next
one when that comes within ``mark_delay`` (one statement per batch instead of two when
batches hold a few events); the read leaves out the rows it deletes. ``LISTEN/NOTIFY``
wakes it (an outbox insert notifies, unless its connection sets
:data:`OUTBOX_NOTIFY_SETTING` off because its writer wakes the relay in process, as the
ingestion services do); a short poll is the fallback.

Crashes and broker outages: whenever the relay (re)starts a session it first reconciles
with Kafka: it reads every record written after the last offset it recorded per
partition and deletes the rows behind them (``ce_source``/``ce_id``) (so a mark still
waiting for the next read when the relay died is lost to no one). Rows are
thus never lost, never sent twice, and never reordered within a key. Reconciling saves
its progress as it reads (rows deleted and checkpoints advanced per chunk), so a long
backlog is never read twice and an interrupted reconcile resumes where it stopped.

Vacuuming: the outbox is a queue, every row deleted soon after it is written, and the
relay's read walks it from its first ``seq``. Between two autovacuums (a minute apart at
most per database) the deleted rows pile up in its pages and its index, tens of thousands
at a few hundred events a second, and every read walked them again (up to 2,000 pages a
read, 0.5-1 ms). So the relay itself vacuums the outbox every ``vacuum_seconds`` while it
deletes rows, on a connection of its own (about a millisecond each time: the table stays a
few hundred rows long).

A stopped relay drains the outbox before it returns, through outages too (its caller bounds
that time by cancelling it); stopped in the middle of a reconcile, it sends nothing.

Records that can never be published (larger than Kafka accepts, refused by the broker for
that record alone, or not serialisable) are *parked*: moved to ``outbox_parked`` with the
reason, counted, and announced on ``parked_topic`` (a small notice, no payload). The relay
goes on with the rows behind them, so one bad record never stops a key, a topic or the
service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    CorruptRecordException,
    InvalidMessageError,
    InvalidTimestampError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)
from opentelemetry import trace
from opentelemetry.trace import Tracer

from .contract.envelope import Event, canonical_json
from .kafka import assigned_reader, header, idempotent_producer, partition_for
from .telemetry.messaging import inject_traceparent, span_trace_headers, start_publish_span
from .undecodable import UNDECODABLE, Fetched, past_undecodable

log = logging.getLogger(__name__)

RELAY_LOCK = 7_310_002
CHANNEL = "teamnl_outbox"
RECONCILE_STALL_SECONDS = 60.0
"""Reconcile gives up a session (its progress kept) when Kafka returns nothing this long."""

UNPUBLISHABLE: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidMessageError,
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    PolicyViolationError,
    UnsupportedForMessageFormatError,
    TypeError,
    ValueError,
    UnicodeError,
)
"""Errors about one record that no retry can cure. Other non-retriable Kafka errors
(timeouts, authentication, a closed producer) concern the session, not the row: the relay
restarts its session for them and the row is tried again."""


class ReconcileInterrupted(RuntimeError):
    """A stop ended the reconcile before it read to the end: the session must send nothing
    (a row it had not found in Kafka yet might be there), and its progress is kept."""


NOTICE_HEADER = "teamnl_notice"
"""Marks a parked-row notice on a dead-letter topic (JSON, not a CloudEvent: no ``ce_*``)."""

ParkedHook = Callable[[str, str, str], None]
"""Told (topic, reason, event source) for each parked row: the service counts it in a
metric and in its partner's data quality."""


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


def insert_many(condition: str = "TRUE") -> str:
    """Rows in the order given ($1..$7 are parallel arrays, see :func:`insert_many_args`),
    inserted only when ``condition`` holds; ``seq`` follows that order. Also used as a CTE by
    the ingestion kit (receipts written in the same statement; the condition there says that
    the event's own state was written by the same statement)."""
    return (
        "INSERT INTO outbox"  # noqa: S608 - the condition is the kit's constant, values are $n
        " (event_id, event_source, event_type, topic, key, headers, value)"
        " SELECT o.id, o.source, o.type, o.topic, o.key, o.headers::jsonb, o.value"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        " $7::bytea[]) WITH ORDINALITY AS o(id, source, type, topic, key, headers, value, ord)"
        f" WHERE {condition} ORDER BY o.ord"
        " RETURNING seq, event_id, event_source, event_type, topic, key"
    )


INSERT_MANY = insert_many()


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


OUTBOX_NOTIFY_SETTING = "teamnl.outbox_notify"
"""'off' on a connection: its outbox inserts send no NOTIFY (its writer wakes the relay)."""


async def drained(relaying: asyncio.Future[None], seconds: float) -> None:
    """Wait up to `seconds` for a stopped relay's :meth:`OutboxRelay.run` to drain the
    outbox, then give up (it is cancelled): the next leader publishes what is left."""
    try:
        await asyncio.wait_for(relaying, seconds)
    except TimeoutError:
        log.warning("outbox relay did not flush within %.0f s; rows stay in the outbox", seconds)


async def notify_relay(pool: asyncpg.Pool) -> None:
    """Wake the leading relay, whichever process it runs in."""
    await pool.execute("SELECT pg_notify($1, '')", CHANNEL)


async def backlog(pool: asyncpg.Pool) -> tuple[int, float]:
    """(unpublished rows, age in seconds of the oldest one)."""
    row = await pool.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age"
        " FROM outbox"
    )
    return int(row["n"]), float(row["age"])


async def parked_count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM outbox_parked")
    return count


@dataclass(frozen=True)
class ParkedRow:
    seq: int
    event_source: str
    event_id: str
    event_type: str
    topic: str
    key: str
    size: int
    created_at: datetime
    parked_at: datetime
    reason: str


async def parked_rows(pool: asyncpg.Pool, limit: int = 100) -> list[ParkedRow]:
    """The most recently parked rows (newest first), for operators."""
    records = await pool.fetch(
        "SELECT seq, event_source, event_id, event_type, topic, key, octet_length(value) AS size,"
        " created_at, parked_at, reason FROM outbox_parked ORDER BY parked_at DESC, seq DESC"
        " LIMIT $1",
        limit,
    )
    return [ParkedRow(**dict(r.items())) for r in records]


@dataclass
class _Row:
    seq: int
    topic: str
    key: str
    headers: list[tuple[str, bytes]]
    value: bytes
    identity: tuple[str, str]
    event_type: str = ""
    broken: str | None = None
    """Why the stored row cannot be turned into a Kafka record, if it cannot."""


@dataclass
class OutboxRelay:
    pool_url: str
    bootstrap: str
    batch_size: int = 500
    poll_interval: float = 1.0
    retry_backoff: float = 1.0
    producer_options: dict[str, Any] = field(default_factory=dict)
    tracer: Tracer = field(default_factory=lambda: trace.get_tracer("teamnl.outbox"))
    parked_topic: str | None = None
    """Where a notice of each parked row goes (e.g. ``teamnl.deadletter.nlib``)."""
    mark_delay: float = 0.1
    """Seconds a published batch's mark waits to go with the next read before it is sent
    alone."""
    vacuum_seconds: float = 5.0
    """The outbox is vacuumed at most this often, after rows were deleted since (0: never,
    autovacuum alone)."""
    service: str = ""
    on_parked: ParkedHook | None = None
    published_total: int = 0
    parked_total: int = 0
    leader: bool = False
    """True while this relay holds the leader lock and its producer runs."""
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _partitions: dict[str, list[int]] = field(default_factory=dict)
    _marks: _Marks = field(default_factory=lambda: _Marks())
    """Rows Kafka acknowledged that are not deleted yet (this session's)."""

    # -- lifecycle ----------------------------------------------------------------------
    async def run(self) -> None:
        """Relay until :meth:`stop` and the drain after it; survives database and broker
        outages, during the drain too (the caller bounds the drain: cancel to give up)."""
        while True:
            try:
                await self._lead()
                return  # a session ends only once stopped: drained, or another leads
            except asyncio.CancelledError:
                raise
            except ReconcileInterrupted:
                return  # nothing may be sent before the reconcile ends: the next leader's
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
            self.leader = True
            self._marks = _Marks()  # an earlier session's: its reconcile finds them in Kafka
            vacuuming = (
                asyncio.create_task(self._vacuum_while_leading()) if self.vacuum_seconds else None
            )
            try:
                await self._reconcile(conn, producer)
                await self._relay(conn, producer)
            finally:
                self.leader = False
                if vacuuming is not None:
                    vacuuming.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await vacuuming
                await producer.stop()
        finally:
            await conn.close(timeout=5)

    async def _relay(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> None:
        while True:
            # Cleared before the read: a row committed after the read began wakes it again,
            # and so does stop (it sets both events).
            self._wake.clear()
            stopping = self._stopping.is_set()
            sent = await self._publish_batch(conn, producer)
            if stopping and not sent:
                return  # an empty read begun after stop: every row committed before is out
            if sent == self.batch_size or stopping:
                continue  # more may be pending
            if self._marks:  # goes with the next read if woken soon, else alone
                await self._sleep(self.mark_delay, self._wake)
                if self._wake.is_set():
                    continue
                await self._flush_marks(conn)
            # A short batch read every row committed before it: nothing is pending unless
            # woken since (then this returns at once), so no empty read follows each batch.
            await self._sleep(self.poll_interval, self._wake)

    async def _publish_batch(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        rows = await _pending(conn, self.batch_size, self._marks)
        self._marks = _Marks()  # deleted by that read
        if not rows:
            return 0
        sent: list[tuple[_Row, asyncio.Future[Any]]] = []
        unpublishable: list[tuple[_Row, str]] = []
        for row in rows:
            try:
                if row.broken is not None:
                    raise ValueError(row.broken)
                sent.append((row, await self._send(producer, row)))
            except UNPUBLISHABLE as error:
                unpublishable.append((row, _reason(error)))
        results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        published, offsets, retry = _sort_out(sent, results, unpublishable)
        self._marks.add(published, offsets)
        self.published_total += len(published)
        if unpublishable:
            await self._park(conn, producer, unpublishable)
        if retry is not None:
            await self._flush_marks(conn)
            raise retry  # a session-wide failure: restart the session, resend the rest
        return len(rows)

    async def _vacuum_while_leading(self) -> None:
        """Every ``vacuum_seconds`` while this relay leads, vacuum the outbox if rows were
        published (so deleted, or about to be) since the last time. On a connection of its
        own: the relay never waits for a vacuum (one in its loop held a batch back by up to
        a vacuum's length on a machine at its limit)."""
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(self.pool_url)
            published = self.published_total
            while True:
                await asyncio.sleep(self.vacuum_seconds)
                if self.published_total != published:
                    published = self.published_total
                    # SKIP_LOCKED: never waits behind an autovacuum or a migration
                    await conn.execute("VACUUM (SKIP_LOCKED) outbox")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.info("vacuuming the outbox stopped (%r) until the next session", error)
        finally:
            if conn is not None:
                await conn.close(timeout=5)

    async def _flush_marks(self, conn: asyncpg.Connection) -> None:
        if self._marks:
            await _delete_published(conn, self._marks.seqs, self._marks.offsets)
            self._marks = _Marks()

    async def _park(
        self, conn: asyncpg.Connection, producer: AIOKafkaProducer, rows: list[tuple[_Row, str]]
    ) -> None:
        """Move rows that can never be published out of the way, then tell the world."""
        await conn.execute(_PARK, [row.seq for row, _ in rows], [reason for _, reason in rows])
        self.parked_total += len(rows)
        for row, reason in rows:
            log.error(
                "outbox row %d (%s %s on %s) parked: %s",
                row.seq,
                row.identity[0],
                row.identity[1],
                row.topic,
                reason,
            )
            if self.on_parked is not None:
                self.on_parked(row.topic, reason.split(":", 1)[0], row.identity[0])
        if self.parked_topic is not None:
            await self._announce(producer, rows)

    async def _announce(self, producer: AIOKafkaProducer, rows: list[tuple[_Row, str]]) -> None:
        """A notice per parked row on the dead-letter topic; the rows are parked already, so
        a notice that cannot be sent is logged, not retried."""
        assert self.parked_topic is not None
        try:
            for row, reason in rows:
                notice = _notice(self.service, row, reason)
                await producer.send_and_wait(
                    self.parked_topic,
                    canonical_json(notice),
                    key=row.identity[0].encode(),
                    headers=[(NOTICE_HEADER, b"outbox-parked")],
                )
        except Exception as error:  # noqa: BLE001 - the parking itself is already durable
            log.warning("could not announce parked outbox rows on %s: %r", self.parked_topic, error)

    async def _send(self, producer: AIOKafkaProducer, row: _Row) -> asyncio.Future[Any]:
        """Queue one record; its publish span continues the trace stored with the row."""
        partition = await self._partition(producer, row)
        span = start_publish_span(
            self.tracer, row.topic, row.key, partition, row.identity[1], row.headers
        )
        with span:
            headers = [(k, v) for k, v in row.headers if k not in ("traceparent", "tracestate")]
            headers += span_trace_headers(span)
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
        """Delete the rows that reached Kafka in an earlier session (crash or outage).

        Reads from the checkpoints to the end offsets found at the start; each chunk read
        is deleted and checkpointed at once, so no work is lost when the session ends early.
        """
        topics = [r["topic"] for r in await conn.fetch("SELECT DISTINCT topic FROM outbox")]
        if not topics:
            return
        for topic in topics:
            await self._partition(producer, _Row(0, topic, "", [], b"", ("", "")))
        checkpoints = await _checkpoints(conn)
        starts = {
            TopicPartition(t, p): checkpoints.get((t, p), 0)
            for t in topics
            for p in self._partitions[t]
        }
        deleted = 0
        async for found, positions in _read_since(self.bootstrap, starts, self._stopping):
            deleted += await _delete_found(conn, found, positions)
        if deleted:
            log.info("outbox reconcile: %d rows were already in Kafka", deleted)

    async def _sleep(self, seconds: float, event: asyncio.Event | None = None) -> None:
        """`seconds`, cut short by `event` (default: stop). Once stopped, a wait for stop
        lasts its `seconds`: a relay draining after stop must not retry in a loop."""
        waiter = event or self._stopping
        if event is None and waiter.is_set():
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), seconds)


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


def _sort_out(
    sent: list[tuple[_Row, asyncio.Future[Any]]],
    results: list[Any],
    unpublishable: list[tuple[_Row, str]],
) -> tuple[list[int], dict[tuple[str, int], int], BaseException | None]:
    """(seqs Kafka acknowledged, next offset per partition, the first session-wide error);
    rows Kafka refused for good join ``unpublishable``."""
    published: list[int] = []
    offsets: dict[tuple[str, int], int] = {}
    retry: BaseException | None = None
    for (row, _future), result in zip(sent, results, strict=True):
        if isinstance(result, UNPUBLISHABLE):
            unpublishable.append((row, _reason(result)))
        elif isinstance(result, BaseException):
            retry = retry or result
        else:
            published.append(row.seq)
            partition = (result.topic, result.partition)
            offsets[partition] = max(offsets.get(partition, 0), result.offset + 1)
    return published, offsets, retry


def _notice(service: str, row: _Row, reason: str) -> dict[str, str]:
    """What the dead-letter topic learns about a parked row: who, what, why; no payload."""
    return {
        "service": service,
        "ce_source": row.identity[0],
        "ce_id": row.identity[1],
        "type": row.event_type,
        "topic": row.topic,
        "reason": reason,
        "parked_at": datetime.now(UTC).isoformat(),
    }


_PARK = (
    "WITH parked AS (DELETE FROM outbox o USING unnest($1::bigint[], $2::text[]) AS p(seq, why)"
    " WHERE o.seq = p.seq RETURNING o.*, p.why)"
    " INSERT INTO outbox_parked (seq, event_id, event_source, event_type, topic, key, headers,"
    " value, created_at, reason)"
    " SELECT seq, event_id, event_source, event_type, topic, key, headers, value, created_at, why"
    " FROM parked ON CONFLICT (seq) DO NOTHING"
)


@dataclass
class _Marks:
    """Rows Kafka acknowledged (their ``seq``) and the next offset per partition after them."""

    seqs: list[int] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.seqs)

    def add(self, seqs: list[int], offsets: dict[tuple[str, int], int]) -> None:
        self.seqs += seqs
        for partition, offset in offsets.items():
            self.offsets[partition] = max(self.offsets.get(partition, 0), offset)


async def _pending(conn: asyncpg.Connection, limit: int, marks: _Marks) -> list[_Row]:
    """The next rows, in one statement with the deletion of the rows published since the
    last read (the read's snapshot does not see that deletion, so it leaves them out
    itself)."""
    keys = list(marks.offsets)
    records = await conn.fetch(
        f"WITH marked AS ({_MARK}), saved AS ({_SAVE_CHECKPOINTS})"  # noqa: S608 - constants
        " SELECT seq, topic, key, headers, value, event_source, event_id, event_type FROM outbox"
        " WHERE seq <> ALL($4::bigint[]) ORDER BY seq LIMIT $5",
        [t for t, _ in keys],
        [p for _, p in keys],
        [marks.offsets[k] for k in keys],
        marks.seqs,
        limit,
    )
    return [_row(r) for r in records]


def _row(record: asyncpg.Record) -> _Row:
    row = _Row(
        record["seq"],
        record["topic"],
        record["key"],
        [],
        bytes(record["value"]),
        (record["event_source"], record["event_id"]),
        record["event_type"],
    )
    try:
        row.headers = [(name, value.encode()) for name, value in json.loads(record["headers"])]
    except (TypeError, ValueError, AttributeError) as error:
        row.broken = f"headers are not [[name, value], ...]: {error!r}"
    return row


async def _delete_published(
    conn: asyncpg.Connection, seqs: list[int], offsets: dict[tuple[str, int], int]
) -> None:
    """Delete the rows and advance the checkpoints in one statement (atomic on its own: one
    round trip instead of a four-statement transaction)."""
    keys = list(offsets)
    await conn.execute(
        f"WITH marked AS ({_MARK}) {_SAVE_CHECKPOINTS}",  # noqa: S608 - constants only
        [t for t, _ in keys],
        [p for _, p in keys],
        [offsets[k] for k in keys],
        seqs,
    )


_MARK = "DELETE FROM outbox WHERE seq = ANY($4::bigint[]) RETURNING 1"
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


async def _delete_found(
    conn: asyncpg.Connection,
    found: set[tuple[str, str]],
    positions: dict[tuple[str, int], int],
) -> int:
    """Delete the rows behind records found in Kafka and advance the checkpoints past them,
    in one transaction: the progress of a reconcile is saved chunk by chunk."""
    async with conn.transaction():
        status: str = await conn.execute(
            "DELETE FROM outbox USING unnest($1::text[], $2::text[])"
            " AS f(src, id) WHERE event_source = f.src AND event_id = f.id",
            [s for s, _ in found],
            [i for _, i in found],
        )
        await _save_checkpoints(conn, positions)
    return int(status.rsplit(" ", 1)[-1])


async def _read_since(
    bootstrap: str, starts: dict[TopicPartition, int], stopping: asyncio.Event
) -> AsyncIterator[tuple[set[tuple[str, str]], dict[tuple[str, int], int]]]:
    """Chunks of (every (ce_source, ce_id) read, the next offset per partition read), from
    the given offsets to the end offsets found at the start.

    ``auto_offset_reset="earliest"``: a checkpoint older than the log start (retention)
    reads from the oldest record kept, never skips to the end. No overall deadline: a long
    backlog takes the time it takes; only a broker that returns nothing for
    ``RECONCILE_STALL_SECONDS`` ends the attempt (the chunks read so far stay saved).
    """
    consumer = assigned_reader(
        bootstrap, isolation_level="read_uncommitted", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(list(starts))
        ends = await consumer.end_offsets(list(starts))
        remaining: dict[TopicPartition, int] = {}
        for tp, start in starts.items():
            if ends[tp] > start:
                consumer.seek(tp, start)
                remaining[tp] = ends[tp]
            else:
                consumer.pause(tp)
        last_progress = time.monotonic()
        read_to = {(tp.topic, tp.partition): at for tp, at in starts.items()}  # chunks yielded
        while remaining and not stopping.is_set():
            try:
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            except UNDECODABLE as error:
                since = {tp: read_to[(tp.topic, tp.partition)] for tp in remaining}
                chunks = _chunks_past_undecodable(consumer, bootstrap, since, remaining, error)
                async with contextlib.aclosing(chunks) as past:
                    async for found, positions in past:
                        read_to.update(positions)
                        yield found, positions
                last_progress = time.monotonic()
                continue
            if batch:
                last_progress = time.monotonic()
                found, positions = _chunk(consumer, batch, remaining)
                read_to.update(positions)
                yield found, positions
            elif time.monotonic() - last_progress > RECONCILE_STALL_SECONDS:
                raise RuntimeError(f"outbox reconcile stalled reading {sorted(remaining)}")
        if stopping.is_set() and remaining:
            raise ReconcileInterrupted("outbox reconcile interrupted by stop")
    finally:
        await consumer.stop()


async def _chunks_past_undecodable(
    consumer: AIOKafkaConsumer,
    bootstrap: str,
    since: dict[TopicPartition, int],
    remaining: dict[TopicPartition, int],
    error: UnicodeDecodeError,
) -> AsyncGenerator[tuple[set[tuple[str, str]], dict[tuple[str, int], int]], None]:
    """:func:`_read_since`'s chunks after a fetch met a record aiokafka cannot decode
    (:mod:`.undecodable`): another producer's, no outbox row is behind it. The chunks before
    it, then one that moves the checkpoint past it."""
    reading = past_undecodable(consumer, bootstrap, since, error, ends=remaining)
    async with contextlib.aclosing(reading) as items:
        async for item in items:
            if isinstance(item, Fetched):
                yield _chunk(consumer, {item.tp: item.records}, remaining)
                continue
            log.warning(
                "outbox reconcile skipped %s[%d]@%d: %s", *item.tp, item.offset, item.reason
            )
            yield set(), {(item.tp.topic, item.tp.partition): item.past}
            if item.past >= remaining[item.tp]:
                del remaining[item.tp]
                consumer.pause(item.tp)


def _chunk(
    consumer: AIOKafkaConsumer,
    batch: dict[TopicPartition, list[Any]],
    remaining: dict[TopicPartition, int],
) -> tuple[set[tuple[str, str]], dict[tuple[str, int], int]]:
    found: set[tuple[str, str]] = set()
    positions: dict[tuple[str, int], int] = {}
    for tp, records in batch.items():
        for record in records:
            found.add(
                (header(record.headers, "ce_source") or "", header(record.headers, "ce_id") or "")
            )
        positions[(tp.topic, tp.partition)] = records[-1].offset + 1
        if records[-1].offset + 1 >= remaining.get(tp, 0):
            remaining.pop(tp, None)
            consumer.pause(tp)
    return found, positions
