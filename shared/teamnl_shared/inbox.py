"""Inbox / idempotent consumer.

Each record is parsed and validated against the contract. A valid event is applied at most
once: its ``(topic, source, id)`` is recorded in the same transaction as the handler's
effect (one partner may use one id at two services: two events), in the ``inbox`` table
or the consumer's own :class:`Ledger`. Offsets are committed only after that transaction,
so with Kafka's at-least-once delivery every event is applied exactly once in effect.

A record that cannot be parsed or validated, that the handler refuses with
:class:`PoisonEvent`, or that meets a database error it would meet on every retry
(:data:`DATA_ERRORS`: a value out of range, a violated check) goes to the dead-letter topic
with the reason in its headers; the partition goes on with the next record. When such an
error comes from the batch-wide ``before_commit``, the batch is applied again one record at
a time to find the record behind it. Infrastructure failures (database down) are retried
from the first unapplied record after a back-off; :meth:`InboxConsumer.stalled` tells how
long they have lasted (readiness reports it).

A batch is applied together first: one statement records the whole batch in the ledger,
then the handler runs per new event, all under one savepoint. That statement takes every
event as new; when one was applied before (a redelivery), the savepoint is rolled back and
the batch applied again with a statement that skips the rows already there. Only when the
handler refuses an event is that savepoint rolled back and the batch applied again one
record at a time, each under a savepoint of its own, so a poison event undoes only itself.
Either way ``before_commit`` then sees the applied events once, in the same transaction
(e.g. to evaluate rules once per batch instead of once per event).

A handler may defer its writes (``deferred``, a factory of :class:`Deferred` buffers, e.g.
to send them set-based): the handler is then called with a buffer in place of the
connection, flushed at the end of the savepoint the handler ran in, so a refused write
still undoes only its savepoint, and dropped when that savepoint is rolled back. Such a
handler only buffers, so a fetch read ahead is also projected ahead (:meth:`Inbox.read_ahead`),
as if each first copy of an event were new, while the fetch before is still in the
database; its transaction then flushes that buffer when the inbox found every one of
them new (the usual case), and projects the fetch again otherwise.

Two parts: :class:`Inbox` applies records (parse and validate, the inbox rows, the
handler, savepoints, which records to dead-letter: an :class:`Outcome`) and knows no Kafka
client, so a replay that reads the topics itself (the dashboard's rebuild) applies with the
very same code. :class:`InboxConsumer` is the Kafka loop around one: it polls, applies,
tells ``after_commit``, sends the dead letters, commits the offsets. ``on_deadletters`` is
told about a fetch's dead letters, all in one call, once they are all on the dead-letter
topic (sync or async; an infrastructure error it raises retries the batch like any other).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from opentelemetry import trace
from opentelemetry.trace import Span, Tracer

from .contract.envelope import Event, InvalidEvent, parse_kafka
from .contract.topics import deadletter_topic
from .db import transaction
from .kafka import header, idempotent_producer, manual_commit_consumer
from .telemetry.messaging import consume_span, start_consume_span
from .undecodable import (
    UNDECODABLE,
    Fetched,
    Undecodable,
    committed_offsets,
    past_undecodable,
)

log = logging.getLogger(__name__)


class PoisonEvent(Exception):
    """Raised by a handler for a valid-looking event it can never apply."""


# Database errors that the same record meets again on every retry (a value out of range, a
# check or not-null violation, a row too large): the record is poison, not the database down.
DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
)


# What makes the inbox dead-letter one event and apply the others.
REFUSALS: tuple[type[BaseException], ...] = (PoisonEvent, *DATA_ERRORS)


def refused(event_type: str, error: BaseException) -> str:
    """The dead-letter reason for a record its handler or the database refused."""
    if isinstance(error, asyncpg.PostgresError):
        return f"{event_type}: the database refused it ({error.sqlstate}: {error})"
    return f"{event_type}: {error}"


Handler = Callable[[asyncpg.Connection, Event, ConsumerRecord], Awaitable[None]]
Applied = list[tuple[Event, ConsumerRecord]]
BatchHook = Callable[[Applied], Awaitable[None]]
BeforeCommit = Callable[[asyncpg.Connection, Applied], Awaitable[None]]
DeadLetters = list[tuple[ConsumerRecord, str]]
"""Records to dead-letter, each with its reason."""
DeadLetterHook = Callable[[DeadLetters], Awaitable[None] | None]


class Deferred(Protocol):
    """A buffer of the writes a handler made through :meth:`as_connection`: flushed at the
    end of their savepoint (a refused write raises :class:`PoisonEvent`), discarded when
    it is rolled back."""

    def as_connection(self) -> asyncpg.Connection: ...

    async def flush(self, conn: asyncpg.Connection) -> None: ...

    def discard(self) -> None: ...


@dataclass
class Outcome:
    """What :meth:`Inbox.apply` did with a batch: the events applied (in order),
    the records to dead-letter with their reasons, and the duplicates skipped."""

    applied: Applied = field(default_factory=list)
    dead: DeadLetters = field(default_factory=list)
    duplicates: int = 0


_UNTRACED = contextlib.nullcontext(trace.INVALID_SPAN)
"""What a record is handled in when it gets no span of its own (reusable: it holds no state)."""

Identity = tuple[str, str, str]
"""What the inbox records an event by: (topic, source, id)."""


@dataclass
class Projected:
    """A fetch projected ahead of its transaction: the buffer and the outcome, taking each
    valid event's first copy as new (as :meth:`Ledger.record_new` does)."""

    writes: Deferred
    outcome: Outcome


@dataclass
class Ahead:
    """A fetch read ahead of its transaction (:meth:`Inbox.read_ahead`): its records read
    through the contract and, for a handler that defers its writes, projected as if each
    first copy of an event were new (None when not, or when a handler refused an event)."""

    parsed: list[Event | InvalidEvent]
    projected: Projected | None = None


@dataclass
class Inbox:
    """Applies records to the database with the inbox's semantics; no Kafka client.

    `name` labels the consume spans (the consumer group, for a consumer). With
    ``trace_records=False`` no record gets a span of its own (a replay of the whole log
    would add one to every past event's trace; it traces its transactions instead)."""

    pool: asyncpg.Pool
    handler: Handler
    name: str
    before_commit: BeforeCommit | None = None
    tracer: Tracer = field(default_factory=lambda: trace.get_tracer("teamnl.inbox"))
    deferred: Callable[[], Deferred] | None = None
    """Makes a buffer per savepoint (and per fetch projected ahead); the handler is called
    with it in place of the connection."""
    trace_records: bool = True
    ledger: Ledger = field(default_factory=lambda: INBOX_TABLE)
    """Where each applied event's identity is recorded."""

    async def apply(self, records: list[ConsumerRecord], ahead: Ahead | None = None) -> Outcome:
        """Apply `records` (of one or more partitions, each partition's in order) in one
        transaction: each valid, new event through the handler, then ``before_commit`` once;
        nothing is sent or committed to Kafka. `ahead`: the records already read by
        :meth:`read_ahead` (a caller that reads ahead does so for the next fetch while this
        one is in the database)."""
        if ahead is None:
            ahead = Ahead(parse_records(records))
        async with transaction(self.pool) as conn:
            try:
                try:
                    outcome = await self._apply_together(conn, records, ahead)
                except _Redelivered:  # some were applied before: the new ones alone
                    outcome = await self._apply_together(conn, records, ahead, redelivered=True)
            except REFUSALS:
                outcome = await self._apply_one_by_one(conn, records, ahead.parsed)
            if self.before_commit is not None and outcome.applied:
                await self.before_commit(conn, outcome.applied)
        return outcome

    async def read_ahead(self, records: list[ConsumerRecord]) -> Ahead:
        """`records` read through the contract (:func:`parse_ahead`) and, when the handler
        defers its writes, projected into a buffer of their own as if each first copy were
        new, giving the event loop a turn every `READ_AHEAD_STEP` records: the fetch before,
        in the database meanwhile, sends each next statement at once. A handler's refusal
        stops the projection (the transaction then takes the usual path)."""
        parsed = await parse_ahead(records)
        if self.deferred is None:
            return Ahead(parsed)
        writes = self.deferred()
        outcome, seen = Outcome(), set[Identity]()
        try:
            for start in range(0, len(records), READ_AHEAD_STEP):
                step = slice(start, start + READ_AHEAD_STEP)
                pairs = zip(records[step], parsed[step], strict=True)
                await self._project(
                    writes.as_connection(), pairs, None, seen, outcome, buffered=True
                )
                await asyncio.sleep(0)
        except REFUSALS:
            writes.discard()
            return Ahead(parsed)
        return Ahead(parsed, Projected(writes, outcome))

    def _record_span(
        self, record: ConsumerRecord, event: Event | InvalidEvent, *, current: bool = True
    ) -> contextlib.AbstractContextManager[Span]:
        """The record's consume span; made `current` for a handler that writes to the
        database (its statements' spans are the record's children), not for one that writes
        to a buffer (nothing it does is traced or logged)."""
        if not self.trace_records:
            return _UNTRACED
        event_type = event.type if isinstance(event, Event) else None
        if current:
            return consume_span(self.tracer, record, self.name, event_type)
        return start_consume_span(self.tracer, record, self.name, event_type)

    @contextlib.asynccontextmanager
    async def _savepoint(
        self, conn: asyncpg.Connection, writes: Deferred | None = None
    ) -> AsyncIterator[asyncpg.Connection]:
        """A savepoint; yields what the handler writes through: `conn`, or the buffer
        `writes` (by default a new one, with ``deferred``), flushed inside the savepoint or
        dropped with it."""
        if writes is None and self.deferred is not None:
            writes = self.deferred()
        try:
            async with conn.transaction():
                yield conn if writes is None else writes.as_connection()
                if writes is not None:
                    await writes.flush(conn)
        except BaseException:
            if writes is not None:
                writes.discard()
            raise

    async def _apply_together(
        self,
        conn: asyncpg.Connection,
        records: list[ConsumerRecord],
        ahead: Ahead,
        *,
        redelivered: bool = False,
    ) -> Outcome:
        """The fast path: the inbox rows in one statement; a poison event aborts it all
        (a refused flush too). First as if every event were new (:meth:`Ledger.record_new`): the
        projection made ahead then stands as it is. When an inbox row was there already
        (:class:`_Redelivered`, this savepoint rolled back, the buffer made ahead dropped
        with it), the caller applies the fetch again with `redelivered`: the inbox rows
        skip those already there, and the new events alone are projected."""
        projected = ahead.projected
        writes = None if projected is None or redelivered else projected.writes
        async with self._savepoint(conn, writes) as target:  # undoes the batch
            rows = _first_copies(records, ahead.parsed)
            if redelivered:
                fresh = await self.ledger.record_fresh(conn, list(rows.values()))
            else:
                try:
                    await self.ledger.record_new(conn, list(rows.values()))
                except asyncpg.UniqueViolationError:
                    raise _Redelivered from None
                if projected is not None:  # it took the same events as new
                    return projected.outcome
                fresh = set(rows)
            outcome = Outcome()
            pairs = zip(records, ahead.parsed, strict=True)
            # projected ahead, the records have their spans already
            await self._project(
                target,
                pairs,
                fresh,
                set(),
                outcome,
                traced=projected is not None,
                buffered=target is not conn,
            )
        return outcome

    async def _project(
        self,
        target: asyncpg.Connection,
        pairs: Iterable[tuple[ConsumerRecord, Event | InvalidEvent]],
        fresh: set[Identity] | None,
        seen: set[Identity],
        outcome: Outcome,
        *,
        traced: bool = False,
        buffered: bool = False,
    ) -> None:
        """Each valid record's event through the handler (writing to `target`) when it is
        new: in `fresh` (None: every first copy is), and not `seen` before (a later copy is
        a duplicate); `seen` and `outcome` are added to. ``traced``: the records' spans
        were made already; ``buffered``: `target` is a buffer (`Deferred`), not the
        database."""
        for record, event in pairs:
            span_of = (
                _UNTRACED if traced else self._record_span(record, event, current=not buffered)
            )
            with span_of as span:
                if isinstance(event, InvalidEvent):
                    _invalid(span, record, event, outcome)
                    continue
                identity = (record.topic, event.source, event.id)
                if identity in seen or (fresh is not None and identity not in fresh):
                    outcome.duplicates += 1
                    continue
                seen.add(identity)
                await self.handler(target, event, record)
                outcome.applied.append((event, record))

    async def _apply_one_by_one(
        self,
        conn: asyncpg.Connection,
        records: list[ConsumerRecord],
        parsed: list[Event | InvalidEvent],
    ) -> Outcome:
        outcome = Outcome()
        for record, event in zip(records, parsed, strict=True):
            with self._record_span(record, event) as span:
                if isinstance(event, InvalidEvent):
                    _invalid(span, record, event, outcome)
                else:
                    await self._apply_one(conn, event, record, outcome)
        return outcome

    async def _apply_one(
        self, conn: asyncpg.Connection, event: Event, record: ConsumerRecord, outcome: Outcome
    ) -> None:
        try:
            async with self._savepoint(conn) as target:  # a poison event undoes only itself
                if not await self.ledger.record_one(conn, event, record):
                    outcome.duplicates += 1
                    return
                await self.handler(target, event, record)
        except REFUSALS as error:
            outcome.dead.append((record, refused(event.type, error)))
            return
        outcome.applied.append((event, record))


@dataclass
class InboxConsumer:
    pool: asyncpg.Pool
    bootstrap: str
    group: str
    topics: list[str]
    handler: Handler
    after_commit: BatchHook | None = None
    retry_backoff: float = 1.0
    consumer_options: dict[str, Any] = field(default_factory=dict)
    tracer: Tracer = field(default_factory=lambda: trace.get_tracer("teamnl.inbox"))
    on_deadletters: DeadLetterHook | None = None
    before_commit: BeforeCommit | None = None
    deferred: Callable[[], Deferred] | None = None
    ledger: Ledger = field(default_factory=lambda: INBOX_TABLE)
    applied_total: int = 0
    duplicate_total: int = 0
    deadletter_total: int = 0
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _consumer: AIOKafkaConsumer | None = None
    _next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    _rewound: dict[TopicPartition, int] = field(default_factory=dict)  # by the last fetch
    failing_since: float | None = None  # monotonic time of the first failure in a row
    inbox: Inbox = field(init=False)

    def __post_init__(self) -> None:
        self.inbox = Inbox(
            self.pool,
            self.handler,
            self.group,
            self.before_commit,
            self.tracer,
            self.deferred,
            ledger=self.ledger,
        )

    @property
    def deadletter_topic(self) -> str:
        return deadletter_topic(self.group)

    async def run(self) -> None:
        consumer = manual_commit_consumer(
            self.bootstrap, self.group, *self.topics, **self.consumer_options
        )
        producer = idempotent_producer(self.bootstrap)
        await consumer.start()
        await producer.start()
        self._consumer = consumer
        self._next_offsets.clear()
        processing: asyncio.Task[bool] | None = None
        try:
            while not self._stopping.is_set():
                # Reads ahead: this fetch is read, parsed and (deferred) projected while the
                # one before is still in the database; they are applied one after the other.
                try:
                    batch = await consumer.getmany(timeout_ms=500)
                except UNDECODABLE as error:
                    if processing is not None:
                        await processing
                        processing = None
                    await self._past_undecodable(consumer, producer, error)
                    continue
                ahead = await self.inbox.read_ahead(records_of(batch))
                if processing is not None:
                    done, processing = await processing, None
                    if not done:  # the fetch before is read again: this one after it
                        self._read_again(consumer, batch)
                        continue
                for tp, records in batch.items():
                    self._next_offsets[tp] = records[-1].offset + 1
                if batch:
                    processing = asyncio.ensure_future(
                        self._process(consumer, producer, batch, ahead)
                    )
            if processing is not None:
                await processing
        finally:
            if processing is not None and not processing.done():
                processing.cancel()  # rolled back: read again from the committed offsets
                with contextlib.suppress(asyncio.CancelledError):
                    await processing
            self._consumer = None
            await consumer.stop()
            await producer.stop()

    async def _past_undecodable(
        self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, error: UnicodeDecodeError
    ) -> None:
        """A fetch met a record aiokafka cannot decode (:mod:`.undecodable`), somewhere: every
        partition is read again from its committed offset (the fetch before is in: committed,
        or to be read again from there), the records before each such record applied, fetched
        alone, and the record dead-lettered by its position. Found nowhere (not in the log
        any more, or the partitions reassigned meanwhile), the fetch is tried again after a
        back-off."""
        found = False
        starts = await committed_offsets(consumer)
        reading = past_undecodable(consumer, self.bootstrap, starts, error)
        async with contextlib.aclosing(reading) as items:
            async for item in items:
                if self._stopping.is_set():
                    return
                if isinstance(item, Fetched):
                    self._next_offsets[item.tp] = item.records[-1].offset + 1
                    await self._process(consumer, producer, {item.tp: item.records})
                elif await self._dead_letter_undecodable(consumer, producer, item):
                    found = True
                else:
                    return
        if not found:
            log.warning("a fetch failed (%r), but no record is undecodable now; retrying", error)
            await self._back_off()

    async def _dead_letter_undecodable(
        self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, undecodable: Undecodable
    ) -> bool:
        """Dead-letter a record that cannot be decoded - by its position alone: its key,
        value and headers cannot be read here (they are still in the log, for another
        client) - and commit past it. False when that failed: the next fetch meets the
        record again."""
        tp = undecodable.tp
        record = ConsumerRecord(  # an empty value: Kafka takes no record without key or value
            tp.topic, tp.partition, undecodable.offset, int(time.time() * 1000), 0, None, b"",
            None, -1, 0, [],
        )  # fmt: skip
        try:
            await self._dead_letter(producer, [(record, undecodable.reason)])
            await consumer.commit({tp: undecodable.past})
        except CommitFailedError:
            log.info("partitions were reassigned; their new owners meet the record")
            return False
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as failure:
            log.warning("dead-lettering an undecodable record failed (%r); retrying", failure)
            await self._back_off()
            return False
        self._next_offsets[tp] = undecodable.past
        self.deadletter_total += 1
        return True

    def _read_again(
        self, consumer: AIOKafkaConsumer, ahead: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        """After a fetch that must be read again (rewound, or its offsets not committed in
        a rebalance), drop the fetch read ahead of it: each of its partitions goes back to
        its first record there, and each rewound partition (again) to where it was rewound
        - the fetch read ahead may hold records read after that rewind."""
        assigned = consumer.assignment()
        for tp, records in ahead.items():
            if tp in assigned and tp not in self._rewound:
                consumer.seek(tp, records[0].offset)
        for tp, offset in self._rewound.items():
            if tp in assigned:
                consumer.seek(tp, offset)
        self._rewound.clear()

    async def stop(self) -> None:
        self._stopping.set()

    @property
    def running(self) -> bool:
        """True while connected to Kafka and consuming (between start-up and stop)."""
        return self._consumer is not None

    def assignment(self) -> set[TopicPartition]:
        """The partitions Kafka has assigned to this consumer; empty until its group is
        joined (and while stopped)."""
        consumer = self._consumer
        return set(consumer.assignment()) if consumer is not None else set()

    def stalled(self, after_seconds: float) -> bool:
        """True when every attempt to apply has failed for longer than ``after_seconds``
        (the database unreachable, say): nothing is being projected."""
        since = self.failing_since
        return since is not None and time.monotonic() - since > after_seconds

    def lag(self) -> dict[TopicPartition, int]:
        """Records behind the log end, per assigned partition this consumer has read from."""
        consumer = self._consumer
        if consumer is None:
            return {}
        lags = {}
        for tp in consumer.assignment():
            high, position = consumer.highwater(tp), self._next_offsets.get(tp)
            if high is not None and position is not None:
                lags[tp] = max(0, high - position)
        return lags

    async def _process(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        batch: dict[TopicPartition, list[ConsumerRecord]],
        ahead: Ahead | None = None,
    ) -> bool:
        """Apply one fetch - every partition's records, each partition's in order - in one
        transaction (one commit and one ``before_commit`` per fetch, not per partition);
        then ``after_commit``, its dead letters and the offsets. False when it must be read
        again from each partition's first record (after a back-off).

        ``after_commit`` comes once the transaction committed, not after Kafka too: what it
        tells (the dashboard's live push) waited for the group coordinator's round trip. The
        fetch read again after a failure there finds its events in the inbox, applies none,
        and tells nothing twice."""
        self._rewound.clear()
        records = records_of(batch)
        try:
            outcome = await self.inbox.apply(records, ahead)
        except DATA_ERRORS as error:
            # Only a batch-wide step (``before_commit``) gets here: each event's own refusal
            # is dead-lettered by `apply`. One record at a time finds the one it refuses.
            if len(records) > 1:
                return await self._isolate(consumer, producer, batch)
            outcome = Outcome(dead=[(records[0], refused(_type_of(records[0]), error))])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            return await self._retry_later(consumer, batch, error)
        if self.after_commit is not None and outcome.applied:
            await self.after_commit(outcome.applied)
        try:
            await self._dead_letter(producer, outcome.dead)
            await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batch.items()})
        except CommitFailedError:
            log.info("partitions were reassigned; their new owners re-read (inbox dedups)")
            return False
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as error:
            return await self._retry_later(consumer, batch, error)
        self.failing_since = None
        self.applied_total += len(outcome.applied)
        self.duplicate_total += outcome.duplicates
        self.deadletter_total += len(outcome.dead)
        return True

    async def _isolate(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        batch: dict[TopicPartition, list[ConsumerRecord]],
    ) -> bool:
        """The fetch one record at a time; after a failure every partition is read again
        from its first record not yet applied."""
        left = dict(batch)
        for tp, records in batch.items():
            for index, record in enumerate(records):
                if not await self._process(consumer, producer, {tp: [record]}):
                    left[tp] = records[index:]
                    self._rewind(consumer, left)
                    return False
            del left[tp]
        return True

    async def _retry_later(
        self,
        consumer: AIOKafkaConsumer,
        batch: dict[TopicPartition, list[ConsumerRecord]],
        error: BaseException,
    ) -> bool:
        log.warning("applying %d partitions' records failed (%r); retrying", len(batch), error)
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self._rewind(consumer, batch)
        await self._back_off()
        return False

    async def _back_off(self) -> None:
        """Wait `retry_backoff` seconds, or until stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.retry_backoff)

    def _rewind(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        """Read each partition of `batch` again from its first record there."""
        for tp, records in batch.items():
            consumer.seek(tp, records[0].offset)
            self._rewound[tp] = records[0].offset

    async def _dead_letter(self, producer: AIOKafkaProducer, dead: DeadLetters) -> None:
        """Put `dead` on the dead-letter topic, every one acknowledged before this returns
        (the offsets are committed after it), then tell ``on_deadletters`` of them all.

        All are queued before any is awaited: a flood of invalid records goes in a few
        requests per fetch, not a round trip each. Logged as one warning per fetch (how many,
        and the first); each record at debug only: the dead-letter topic keeps every one with
        its reason and original position (the dashboard its row and a metric too), and a
        warning each was 4.5% of the dashboard's CPU in a flood of 20,000."""
        if not dead:
            return
        await _send_dead_letters(producer, self.deadletter_topic, dead)
        first, reason = dead[0]
        log.warning(
            "dead-lettered %d record(s), the first %s[%d]@%d: %s",
            len(dead), first.topic, first.partition, first.offset, reason,
        )  # fmt: skip
        for record, why in dead:
            log.debug(
                "dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, why
            )
        if self.on_deadletters is not None:
            told = self.on_deadletters(dead)
            if inspect.isawaitable(told):
                await told


async def _send_dead_letters(producer: AIOKafkaProducer, topic: str, dead: DeadLetters) -> None:
    """Send each record of `dead` to `topic` with its reason and original position in its
    headers: all queued, then every acknowledgement awaited. Raises the first failure once
    every send is settled (none is left unawaited)."""
    queued: list[asyncio.Future[Any]] = []
    try:
        for record, reason in dead:
            headers = [
                *record.headers,
                ("teamnl_error", reason.encode()[:4000]),
                ("teamnl_original_topic", record.topic.encode()),
                ("teamnl_original_partition", str(record.partition).encode()),
                ("teamnl_original_offset", str(record.offset).encode()),
            ]
            queued.append(await producer.send(topic, record.value, key=record.key, headers=headers))
    finally:
        results = await asyncio.gather(*queued, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def parse_records(records: list[ConsumerRecord]) -> list[Event | InvalidEvent]:
    """Each record read through the contract: its event, or why it is not one."""
    return [_parse(record) for record in records]


READ_AHEAD_STEP = 25
"""Records parsed ahead (by a consumer or the rebuild) between two turns of the event loop,
a few milliseconds of Python: parsing a whole fetch of 2,000 in one go held the fetch in the
database at its next statement meanwhile, so the two hardly overlapped."""


async def parse_ahead(records: list[ConsumerRecord]) -> list[Event | InvalidEvent]:
    """:func:`parse_records` for a fetch read ahead, `READ_AHEAD_STEP` records at a time,
    giving the event loop a turn after each step: the fetch before, in the database, sends
    each next statement at once rather than after the whole fetch is parsed."""
    parsed: list[Event | InvalidEvent] = []
    for start in range(0, len(records), READ_AHEAD_STEP):
        parsed += parse_records(records[start : start + READ_AHEAD_STEP])
        await asyncio.sleep(0)
    return parsed


def _parse(record: ConsumerRecord) -> Event | InvalidEvent:
    try:
        return parse_kafka(record.headers, record.value)
    except InvalidEvent as error:
        return error


def records_of(batch: dict[TopicPartition, list[ConsumerRecord]]) -> list[ConsumerRecord]:
    """A fetch's records, each partition's in order."""
    return [record for records in batch.values() for record in records]


def _type_of(record: ConsumerRecord) -> str:
    """The record's ``ce_type`` header (for a reason), or "unknown type"."""
    return header(record.headers, "ce_type") or "unknown type"


def _invalid(span: Span, record: ConsumerRecord, error: InvalidEvent, outcome: Outcome) -> None:
    span.set_attribute("error.type", "invalid_event")
    outcome.dead.append((record, str(error)))


class _Redelivered(Exception):
    """A fetch's inbox rows met a row already there: an event applied before (a record
    read again after a crash or a rebalance). Its savepoint is rolled back and the fetch
    applied again, reading which events were new (:meth:`Ledger.record_fresh`)."""


Row = tuple[Event, ConsumerRecord]
"""An event to record and the record it came in."""


class Ledger(Protocol):
    """Where an :class:`Inbox` records each event it applies, in the transaction that
    applies it: by the event's identity (topic, source, id), on which a unique key makes a
    second copy's row fail. By default the ``inbox`` table (:data:`INBOX_TABLE`); a
    consumer that keeps a row per event anyway may record the identity in that row (the
    dashboard's ``events``), one row per event instead of two."""

    async def record_new(self, conn: asyncpg.Connection, rows: Sequence[Row]) -> None:
        """Record `rows` (distinct identities), taking every one as new (the usual case):
        raises :class:`asyncpg.UniqueViolationError` when one was there (the caller then
        rolls back and calls :meth:`record_fresh`)."""

    async def record_fresh(self, conn: asyncpg.Connection, rows: Sequence[Row]) -> set[Identity]:
        """Record those of `rows` not there yet; the identities of those recorded."""

    async def record_one(
        self, conn: asyncpg.Connection, event: Event, record: ConsumerRecord
    ) -> bool:
        """Record one event; False when it was there."""


COPY_FROM_ROWS = 64
"""A fetch with this many new rows or more records them with ``COPY`` rather than one
``INSERT ... SELECT FROM unnest(...)``. Each row then costs the client 0.6 us instead
of 2.1-2.8 (asyncpg encodes an array parameter element by element, asking of each
whether it is itself an array) and the server 2-22% less (three rounds of 5,000-row
batches into a copy of the table). Below it, the one statement: ``COPY`` takes a round
trip more."""


@dataclass(frozen=True)
class LedgerTable:
    """A table as a :class:`Ledger`: its `columns` (name and type) hold what `row` makes of
    an event, and `identity` names the columns of its topic, source and id (a unique key
    on them, or on columns that tell events apart as they do).

    :meth:`record_new` is a plain insert, not one that skips rows already there and returns
    the others: in PostgreSQL, ``ON CONFLICT DO NOTHING RETURNING`` costs each row a
    speculative insertion, and the client a row back; on the bench machine, 5.8-7.6 us of
    the server's CPU a row against 3.0-3.7. A redelivered fetch pays one refused statement
    more (and PostgreSQL logs the duplicate key)."""

    table: str
    columns: tuple[tuple[str, str], ...]
    row: Callable[[Event, ConsumerRecord], tuple[Any, ...]]
    identity: tuple[str, str, str]

    async def record_new(self, conn: asyncpg.Connection, rows: Sequence[Row]) -> None:
        if len(rows) >= COPY_FROM_ROWS:
            await conn.copy_records_to_table(
                self.table,
                records=[self.row(event, record) for event, record in rows],
                columns=self._names,
            )
        elif rows:
            await conn.execute(self._insert_all, *self._arrays(rows))

    async def record_fresh(self, conn: asyncpg.Connection, rows: Sequence[Row]) -> set[Identity]:
        if not rows:
            return set()
        inserted = await conn.fetch(
            f"{self._insert_all} ON CONFLICT DO NOTHING RETURNING {', '.join(self.identity)}",
            *self._arrays(rows),
        )
        return {(row[0], row[1], row[2]) for row in inserted}

    async def record_one(
        self, conn: asyncpg.Connection, event: Event, record: ConsumerRecord
    ) -> bool:
        values = ", ".join(f"${n}" for n in range(1, len(self.columns) + 1))
        insert = f"INSERT INTO {self.table} ({', '.join(self._names)})"  # noqa: S608 - constants
        fresh = await conn.fetchval(
            f"{insert} VALUES ({values}) ON CONFLICT DO NOTHING RETURNING true",
            *self.row(event, record),
        )
        return bool(fresh)

    @cached_property
    def _names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @cached_property
    def _insert_all(self) -> str:
        arrays = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(self.columns, 1))
        return (
            f"INSERT INTO {self.table} ({', '.join(self._names)})"  # noqa: S608 - constants only
            f" SELECT * FROM unnest({arrays})"
        )

    def _arrays(self, rows: Sequence[Row]) -> list[list[Any]]:
        """The parallel arrays of :attr:`_insert_all` (`rows` not empty)."""
        made = (self.row(event, record) for event, record in rows)
        return [list(column) for column in zip(*made, strict=True)]


def _inbox_row(event: Event, record: ConsumerRecord) -> tuple[str, str, str, str, int, int]:
    return (event.source, event.id, event.type, record.topic, record.partition, record.offset)


INBOX_TABLE: LedgerTable = LedgerTable(
    "inbox",
    (
        ("event_source", "text"),
        ("event_id", "text"),
        ("event_type", "text"),
        ("topic", "text"),
        ("kafka_partition", "int"),
        ("kafka_offset", "bigint"),
    ),
    _inbox_row,
    ("topic", "event_source", "event_id"),
)
"""The ``inbox`` table (migrations), the default :class:`Ledger`."""


def _first_copies(
    records: list[ConsumerRecord], parsed: list[Event | InvalidEvent]
) -> dict[Identity, Row]:
    """Each valid event's first copy in the fetch, by its identity (topic, source, id)."""
    rows: dict[Identity, Row] = {}
    for record, event in zip(records, parsed, strict=True):
        if isinstance(event, Event):
            rows.setdefault((record.topic, event.source, event.id), (event, record))
    return rows
