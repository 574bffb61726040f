"""The live parts of one ingestion app: pools, relay, limiter, metrics. Built by the factory,
started and stopped by its lifespan; routes reach it through ``request.app.state.runtime``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import asyncpg
from aiokafka.errors import KafkaError
from opentelemetry import trace
from opentelemetry.trace import Tracer
from starlette.requests import Request

from teamnl_shared import outbox
from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.registry import OPS_FAMILY
from teamnl_shared.contract.topics import TOPICS, deadletter_topic
from teamnl_shared.db import keep_session, migrate
from teamnl_shared.kafka import ensure_topics
from teamnl_shared.outbox import OUTBOX_NOTIFY_SETTING, OutboxRelay
from teamnl_shared.telemetry import Metrics

from .admission import BodyBudget
from .groupcommit import GroupCommit
from .keycache import KeyCache
from .keys import ensure_key_store
from .pipeline import Pipeline
from .quality import QualityCounters
from .ratelimit import RateLimiter
from .service import ServiceDefinition
from .settings import IngestionSettings

log = logging.getLogger(__name__)
KIT_MIGRATIONS = "teamnl_shared.ingestion.migrations"
BACKLOG_REFRESH_SECONDS = 5.0
UNSENT_QUALITY_REPORTS = 10_000
"""Quality reports kept while the database cannot take them (the oldest go first)."""


def parked_topic(settings: IngestionSettings, service: str) -> str:
    """Where `service`'s relay announces the outbox rows it parks (no payload, who/why)."""
    return settings.topic(deadletter_topic(service))


def service_relay(
    settings: IngestionSettings,
    service: str,
    *,
    tracer: Tracer,
    metrics: Metrics | None,
    quality: QualityCounters | None = None,
    batch_size: int = OutboxRelay.batch_size,
) -> OutboxRelay:
    """The outbox relay of `service` as its processes run it, in the service or alone
    (``python -m teamnl_shared.relay_main``): records bounded by ``kafka_max_request_bytes``,
    each row it parks counted (in ``metrics`` and in the partner's data ``quality``, when
    given) and announced on :func:`parked_topic`."""

    def count(topic: str, reason: str, source: str) -> None:
        if quality is not None:
            quality.parked(source)
        if metrics is not None:
            metrics.outbox_row_parked(service=service, topic=topic, reason=reason)

    return OutboxRelay(
        settings.database_url,
        settings.kafka_bootstrap_servers,
        batch_size=batch_size,
        poll_interval=settings.relay_poll_interval,
        vacuum_seconds=settings.relay_vacuum_seconds,
        tracer=tracer,
        producer_options={"max_request_size": settings.kafka_max_request_bytes},
        parked_topic=parked_topic(settings, service),
        service=service,
        on_parked=count,
    )


async def relay_once_topics_exist(
    relay: OutboxRelay,
    settings: IngestionSettings,
    topics: list[str],
    stopped: Callable[[], bool],
) -> None:
    """Create the topics, then run the relay. Kafka may be down when it starts: the
    service takes events into the outbox all the same, and they are published once it is
    back. Returns without relaying if `stopped` before the topics exist."""
    backoff = 1.0
    while not stopped():
        try:
            await ensure_topics(
                settings.kafka_bootstrap_servers, topics, partitions=settings.topic_partitions
            )
            break
        except (KafkaError, OSError) as error:
            log.warning("Kafka unreachable (%r); the outbox keeps the events meanwhile", error)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
    if not stopped():
        await relay.run()


@dataclass
class Runtime:
    settings: IngestionSettings
    service: ServiceDefinition
    metrics: Metrics | None = None
    # The relay's publish spans and the pipeline's; the app passes its own telemetry's (never
    # the global one).
    tracer: Tracer = field(default_factory=lambda: trace.get_tracer("teamnl.outbox"))
    pipeline: Pipeline = field(init=False)
    limiter: RateLimiter = field(init=False)
    batch_budget: BodyBudget = field(init=False)
    keys: KeyCache = field(init=False)
    quality: QualityCounters = field(init=False)
    _unsent_quality: list[Event] = field(default_factory=list)
    draining: bool = False
    backlog: tuple[int, float] = (0, 0.0)
    _pool: asyncpg.Pool | None = None
    _keys_pool: asyncpg.Pool | None = None
    relay: OutboxRelay | None = None
    _committer: GroupCommit | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _announcing: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.pipeline = Pipeline(
            self.service, self.settings, on_committed=self.outbox_written, tracer=self.tracer
        )
        self.limiter = RateLimiter(
            self.settings.rate_limit_per_second, self.settings.rate_limit_burst
        )
        self.batch_budget = BodyBudget(self.settings.batch_bytes_at_once)
        self.keys = KeyCache(self.settings.key_cache_seconds)
        self.quality = QualityCounters(self.service.name)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the ingestion app is not started (lifespan not running)")
        return self._pool

    @property
    def committer(self) -> GroupCommit:
        """Where single-event requests queue for a shared transaction (group commit)."""
        if self._committer is None:
            raise RuntimeError("the ingestion app is not started (lifespan not running)")
        return self._committer

    @property
    def keys_pool(self) -> asyncpg.Pool:
        return self._keys_pool or self.pool

    def connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A pooled connection for one request; waiting longer than ``db_acquire_timeout``
        raises ``TimeoutError`` (answered 503)."""
        acquired: AbstractAsyncContextManager[asyncpg.Connection] = self.pool.acquire(
            timeout=self.settings.db_acquire_timeout
        )
        return acquired

    @property
    def topics(self) -> list[str]:
        return [self.settings.topic(TOPICS[family]) for family in self.service.families]

    @property
    def quality_topic(self) -> str:
        return self.settings.topic(TOPICS[OPS_FAMILY])

    @property
    def parked_topic(self) -> str:
        """Where the relay announces the outbox rows it parks (no payload, just who/why)."""
        return parked_topic(self.settings, self.service.name)

    def outbox_written(self) -> None:
        """Rows were committed to the outbox (the request pool's commits send no NOTIFY,
        see :func:`_request_pool`): wake this process's relay when it leads, else tell the
        leader, another instance's, with a NOTIFY of its own after the commit. A wake lost
        (leadership changing meanwhile) costs at most ``relay_poll_interval``."""
        if self.relay is not None and self.relay.leader:
            self.relay.wake()
        elif self._announcing is None or self._announcing.done():
            self._announcing = asyncio.create_task(self._announce(), name="outbox-notify")

    async def _announce(self) -> None:
        try:
            await outbox.notify_relay(self.pool)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.info("could not notify the outbox relay (%r); it polls", error)

    def relay_alive(self) -> bool:
        return bool(self._tasks) and not self._tasks[0].done()

    async def start(self) -> None:
        settings = self.settings
        self._pool = await _request_pool(
            settings.database_url, settings.db_pool_max_size, settings.db_command_timeout
        )
        await migrate(self._pool, KIT_MIGRATIONS, self.service.migrations_package)
        if settings.keys_database_url:
            self._keys_pool = await _request_pool(
                settings.keys_database_url, 4, settings.db_command_timeout
            )
        await ensure_key_store(self.keys_pool)
        self.relay = service_relay(
            settings,
            self.service.name,
            tracer=self.tracer,
            metrics=self.metrics,
            quality=self.quality,
        )
        self._committer = GroupCommit(
            self.pipeline,
            self.connection,
            max_events=settings.group_commit_max_events,
            linger=settings.group_commit_linger,
            writers=settings.group_commit_writers,
            tracer=self.tracer,
            metrics=self.metrics,
            service=self.service.name,
        )
        self._committer.start()
        self._tasks.append(asyncio.create_task(self._relay_when_topics(), name="outbox-relay"))
        self._tasks.append(asyncio.create_task(self._refresh_backlog(), name="outbox-backlog"))
        self._tasks.append(asyncio.create_task(self._report_quality(), name="quality-report"))
        if self.metrics is not None:
            self.metrics.observe_outbox(lambda: self.backlog)

    async def _relay_when_topics(self) -> None:
        assert self.relay is not None
        await relay_once_topics_exist(
            self.relay,
            self.settings,
            [*self.topics, self.quality_topic, self.parked_topic],
            lambda: self.draining,
        )

    async def stop(self) -> None:
        """Called once the server stopped taking requests: flush the outbox, then close."""
        self.draining = True
        if self._committer is not None:
            await self._committer.stop()  # the server answered every request before this
        if self._pool is not None:
            await self.report_quality()  # the last window, flushed by the relay below
        if self.relay is not None:
            await self.relay.stop()
        relay_task, others = (self._tasks[0], self._tasks[1:]) if self._tasks else (None, [])
        for task in others:
            task.cancel()
        if relay_task is not None:
            await outbox.drained(relay_task, self.settings.relay_flush_timeout)
        for task in others:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._announcing is not None:
            await self._announcing  # a NOTIFY under way (it logs its own failure)
        for pool in (self._keys_pool, self._pool):
            if pool is not None:
                await pool.close()
        self._pool = self._keys_pool = None

    async def _refresh_backlog(self) -> None:
        while True:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self.backlog = await outbox.backlog(self.pool)
            await asyncio.sleep(BACKLOG_REFRESH_SECONDS)

    async def _report_quality(self) -> None:
        while True:
            await asyncio.sleep(self.settings.quality_report_seconds)
            await self.report_quality()

    async def report_quality(self) -> int:
        """Write the window's partner-quality reports to the outbox (one transaction);
        kept for the next try while the database cannot take them. How many were written."""
        self._unsent_quality += self.quality.take()
        del self._unsent_quality[:-UNSENT_QUALITY_REPORTS]
        if not self._unsent_quality:
            return 0
        records = [outbox.record_of(e, {}, self.quality_topic) for e in self._unsent_quality]
        try:
            async with self.connection() as conn:
                await conn.execute(outbox.INSERT_MANY, *outbox.insert_many_args(records))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("quality reports kept for the next window (%r)", error)
            return 0
        self._unsent_quality = []
        self.outbox_written()
        return len(records)

    def count_all(self, partner: str, answers: Iterable[Answer]) -> None:
        """The answers to one request (a single POST's one, a batch's each): each in the
        partner's data quality, and in the metrics one addition per type, status and
        reason. A metric's addition costs about 7 us (its attributes are looked up per
        call): per event, it was a twentieth of nlib's CPU under batch load."""
        now = datetime.now(UTC)
        tally: Counter[tuple[str, int, str]] = Counter()
        for answer in answers:
            self.quality.count(
                partner,
                status=answer.status,
                reason=answer.reason,
                event_time=answer.event_time,
                now=now,
            )
            tally[answer.event_type, answer.status, answer.reason] += 1
        for (event_type, status, reason), events in tally.items():
            self._count_in_metrics(partner, event_type, status, reason, events)

    def _count_in_metrics(
        self, partner: str, event_type: str, status: int, reason: str, events: int
    ) -> None:
        if self.metrics is None:
            return
        if status == 200:
            return  # a replay: nothing new was accepted
        if status == 202:
            self.metrics.event_accepted(
                service=self.service.name, event_type=event_type, partner=partner, events=events
            )
        else:
            self.metrics.event_rejected(
                service=self.service.name,
                event_type=event_type,
                partner=partner,
                reason=reason or str(status),
                events=events,
            )


class Answer(NamedTuple):
    """One event's answer, as counted (:meth:`Runtime.count_all`)."""

    event_type: str
    status: int
    reason: str
    event_time: datetime | None


async def _request_pool(url: str, max_size: int, command_timeout: float) -> asyncpg.Pool:
    """``command_timeout``: a statement that gets no answer (a network cut) raises
    ``TimeoutError``, answered 503, instead of holding the request until the client leaves.
    Its commits send no outbox NOTIFY (``Runtime.outbox_written`` wakes the relay instead):
    on a kept full-size bench stack at 150 ev/s, PostgreSQL used 17% less CPU, the services
    about 8% less, and the POSTs' p99 fell from 73-82 to 43-49 ms."""
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=max_size,
        reset=keep_session,
        command_timeout=command_timeout,
        server_settings={OUTBOX_NOTIFY_SETTING: "off"},
    )
    assert pool is not None
    return pool


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime
