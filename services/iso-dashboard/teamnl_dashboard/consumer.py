"""The dashboard's consumer of every initiative topic, through the shared inbox.

One consumer group (``settings.group``) over the four family topics: Kafka spreads the
partitions over however many dashboard instances run. Per fetch (up to ``LIVE_BATCH``
records of any partitions, each partition's in order), in one transaction: each event's
inbox row (a network event's ``events`` row, `projections.ledger`), the projections'
writes set-based (`projections.writes`), then what the batch's events owe the rules (a
``rules_pending`` row, worked off by `rules.pending` beside the consumer, which it wakes
after the commit, as it wakes `projections.totals` to fold the running totals); the
offsets are committed after that transaction. Invalid
records go to the group's dead-letter topic (by the inbox) and are also recorded here, a
fetch's in one transaction, so the ``invalid-events`` rule can raise a finding.

``python -m teamnl_dashboard.worker`` runs only a consumer (no HTTP), see `worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from aiokafka import ConsumerRecord, TopicPartition
from opentelemetry import trace
from opentelemetry.trace import SpanContext, SpanKind, Tracer

from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.topics import ALL_EVENT_TOPICS
from teamnl_shared.db import transaction
from teamnl_shared.inbox import DeadLetters, InboxConsumer
from teamnl_shared.kafka import header
from teamnl_shared.outbox import ACCEPTED_AT_HEADER
from teamnl_shared.telemetry.messaging import context_from_headers

from . import projections
from .live import notify
from .projections.network import DeadLetter, record_dead_letters
from .rules import RulesEngine
from .settings import DashboardSettings

log = logging.getLogger(__name__)

LatencyHook = Callable[[float, str, str], None]
"""Called once per applied event after its commit: (seconds since the event's ``time``,
topic, event type) - the end-to-end latency from ingestion to projection."""
ANNOUNCED_IDS = 20
"""An event announcement names the batch's last events (as many as the page's feed shows),
so that two announcements are never the same message (pages drop repeated messages)."""
LIVE_BATCH = 2000
"""Records per fetch at most for a process, applied in one transaction: a backlog is worked
off in few commits and rule evaluations; at a low rate a fetch holds what just arrived. A
process's consumers (``DASHBOARD_CONSUMERS``) share it, as they share
`PARTITION_FETCH_BYTES`: each holds two fetches (one in the database, one read ahead), and
the process must stay within its memory budget however many there are."""
PARTITION_FETCH_BYTES = 1024 * 1024
"""What a process's consumers buffer per partition ahead of their fetches (Kafka's default
for one consumer)."""
FETCH_MIN_BYTES = 64 * 1024
"""A fetch with less than this waits up to ``DASHBOARD_FETCH_WAIT_MS`` for more (about 100
events): under a backlog fetches are full at once; at a low rate events share a batch."""
DeadLetterCounter = Callable[[str, str], None]
"""Called once per dead letter: (original topic, reason kind ``invalid-event``/``poison``)."""
Wake = Callable[[], None]
"""Called after a commit that applied events: the rules worker's ``wake`` (they queued rule
evaluations) and the totals folder's (they added delta rows to the running totals)."""


def event_topics(settings: DashboardSettings) -> list[str]:
    return [settings.topic(topic) for topic in ALL_EVENT_TOPICS]


MAX_LINKS = 128


def _accepted_at(record: ConsumerRecord) -> datetime | None:
    """When teamnl accepted the event (the outbox's header); None for records without it."""
    raw = header(record.headers, ACCEPTED_AT_HEADER)
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _producer_contexts(applied: list[tuple[Event, ConsumerRecord]]) -> list[SpanContext]:
    """The publish span contexts of the batch's first `MAX_LINKS` events (those traced):
    a bounded look, however many of a large batch carry no trace context."""
    contexts = (
        trace.get_current_span(context_from_headers(record.headers)).get_span_context()
        for _, record in applied[:MAX_LINKS]
    )
    return [context for context in contexts if context.is_valid]


class DashboardHandlers:
    """What the consumer does with records: plain functions over injected dependencies."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        engine: RulesEngine,
        on_latency: LatencyHook | None = None,
        on_dead_letter: DeadLetterCounter | None = None,
        tracer: Tracer | None = None,
        wake_rules: Wake | None = None,
        wake_totals: Wake | None = None,
    ) -> None:
        self.pool = pool
        self.engine = engine
        self.on_latency = on_latency
        self.on_dead_letter = on_dead_letter
        self.tracer = tracer or trace.get_tracer("teamnl.dashboard")
        self.wake_rules = wake_rules
        self.wake_totals = wake_totals

    async def before_commit(
        self, conn: asyncpg.Connection, applied: list[tuple[Event, ConsumerRecord]]
    ) -> None:
        """What the batch owes the rules, in its transaction."""
        await self.engine.queue(conn, (event for event, _ in applied))

    async def after_commit(self, applied: list[tuple[Event, ConsumerRecord]]) -> None:
        committed_at = datetime.now(UTC)
        if self.wake_rules is not None:  # every event owes the rules (service-silent at least)
            self.wake_rules()
        if self.wake_totals is not None:  # and adds to the running totals
            self.wake_totals()
        if self.on_latency is not None:
            for event, record in applied:
                accepted_at = _accepted_at(record) or event.time
                self.on_latency(
                    (committed_at - accepted_at).total_seconds(), record.topic, event.type
                )
        families = Counter(event.spec.family for event, _ in applied)
        # The push to browsers belongs to every event of the batch: a span linked to each
        # event's trace (a batch has many parents, so links rather than one parent).
        links = [trace.Link(span_context) for span_context in _producer_contexts(applied)]
        with self.tracer.start_as_current_span(
            "live push", kind=SpanKind.PRODUCER, links=links
        ) as span:
            span.set_attribute("teamnl.live.events", len(applied))
            async with self.pool.acquire() as conn:
                await notify(
                    conn,
                    {
                        "kind": "event",
                        "count": len(applied),
                        "families": dict(families),
                        "ids": [event.id for event, _ in applied[-ANNOUNCED_IDS:]],
                    },
                )

    async def dead_lettered(self, dead: DeadLetters) -> None:
        """Record a fetch's dead letters and owe the ``invalid-events`` rule one evaluation
        for them all (`owe_dead_letters`); each is counted in the metrics."""
        recorded_at = self.engine.clock()
        letters = [
            DeadLetter(
                record.topic,
                record.partition,
                record.offset,
                reason,
                header(record.headers, "ce_id"),
                header(record.headers, "ce_type"),
                recorded_at,
            )
            for record, reason in dead
        ]
        await owe_dead_letters(self.pool, self.engine, letters, self.wake_rules)
        if self.on_dead_letter is not None:
            for letter in letters:  # a refusal's reason starts with the event's type
                refused = letter.reason.startswith(f"{letter.event_type}: ")
                self.on_dead_letter(letter.topic, "poison" if refused else "invalid-event")


async def owe_dead_letters(
    pool: asyncpg.Pool, engine: RulesEngine, letters: list[DeadLetter], wake_rules: Wake | None
) -> None:
    """Record `letters` and owe the ``invalid-events`` rule their evaluation, in one
    transaction (one ``rules_pending`` row however many), then wake the rules worker.
    Evaluated here, the consumer waited for the rules' lock behind any evaluation (minutes,
    once, behind the mission facts), and a flood of invalid records was judged once per
    record: 25 records a second at 10,000. Recorded a transaction and a ``rules_pending`` row
    each, 80-450 a second (PostgreSQL 4.4 ms of CPU a record, the dashboard 1.9); a fetch's
    together, 2,300-3,500 (0.1 and 0.2 ms)."""
    async with transaction(pool) as conn:
        await record_dead_letters(conn, letters)
        await engine.queue_rule(conn, "invalid-events")
    if wake_rules is not None:
        wake_rules()


class Consumers:
    """The dashboard's consumers of its group in this process (``DASHBOARD_CONSUMERS``):
    Kafka splits the partitions between them as between instances, and while one waits
    for PostgreSQL to apply its fetch, another parses and projects its own. Each runs (and
    is restarted) on its own; this is what readiness and the metrics read."""

    def __init__(self, members: list[InboxConsumer]) -> None:
        self.members = members

    @property
    def running(self) -> bool:
        return all(member.running for member in self.members)

    def assignment(self) -> set[TopicPartition]:
        return set().union(*(member.assignment() for member in self.members))

    def stalled(self, after_seconds: float) -> bool:
        return any(member.stalled(after_seconds) for member in self.members)

    def lag(self) -> dict[TopicPartition, int]:
        return {tp: lag for member in self.members for tp, lag in member.lag().items()}

    @property
    def applied_total(self) -> int:
        return sum(member.applied_total for member in self.members)

    @property
    def deadletter_total(self) -> int:
        return sum(member.deadletter_total for member in self.members)

    async def stop(self) -> None:
        for member in self.members:
            await member.stop()


def build_consumers(
    settings: DashboardSettings, pool: asyncpg.Pool, engine: RulesEngine, **hooks: Any
) -> Consumers:
    """``settings.consumers`` consumers of the group (`build_consumer`, the same hooks),
    each with its own handlers."""
    return Consumers(
        [build_consumer(settings, pool, engine, **hooks) for _ in range(settings.consumers)]
    )


def build_consumer(
    settings: DashboardSettings,
    pool: asyncpg.Pool,
    engine: RulesEngine,
    *,
    on_latency: LatencyHook | None = None,
    on_dead_letter: DeadLetterCounter | None = None,
    tracer: Tracer | None = None,
    wake_rules: Wake | None = None,
    wake_totals: Wake | None = None,
) -> InboxConsumer:
    tracer = tracer or trace.get_tracer("teamnl.dashboard")
    handlers = DashboardHandlers(
        pool, engine, on_latency, on_dead_letter, tracer, wake_rules, wake_totals
    )
    return InboxConsumer(
        pool=pool,
        bootstrap=settings.kafka_bootstrap_servers,
        group=settings.group,
        topics=event_topics(settings),
        handler=projections.handle,
        before_commit=handlers.before_commit,
        after_commit=handlers.after_commit,
        on_deadletters=handlers.dead_lettered,
        deferred=projections.DeferredProjections,
        ledger=projections.LEDGER,
        consumer_options={
            "max_poll_records": max(1, LIVE_BATCH // settings.consumers),
            "max_partition_fetch_bytes": PARTITION_FETCH_BYTES // settings.consumers,
            **_fetch_wait(settings.fetch_wait_ms),
            "session_timeout_ms": settings.consumer_session_timeout_ms,
            "heartbeat_interval_ms": settings.consumer_session_timeout_ms // 5,
        },
        tracer=tracer,
    )


def _fetch_wait(milliseconds: int) -> dict[str, int]:
    """Kafka answers a fetch once it has `FETCH_MIN_BYTES` or after `milliseconds`; with 0,
    as soon as it has any record (Kafka's default, which waits up to 500 ms for one)."""
    if milliseconds == 0:
        return {"fetch_min_bytes": 1, "fetch_max_wait_ms": 500}
    return {"fetch_min_bytes": FETCH_MIN_BYTES, "fetch_max_wait_ms": milliseconds}


class Runnable(Protocol):
    async def run(self) -> None: ...


async def supervise(consumer: Runnable, stopping: asyncio.Event, backoff: float = 2.0) -> None:
    """Run the consumer until `stopping`; restart it after an unexpected failure."""
    while not stopping.is_set():
        try:
            await consumer.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a crashed consumer is restarted, never lost
            log.exception("dashboard consumer failed; restarting in %ss", backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), backoff)
