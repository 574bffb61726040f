"""The dashboard's runtime: its parts connected (pool, rules engine, consumer, live hub) and
their lifecycle. The web app (`app`) and the consumer-only worker (`worker`) both run one.

Start-up (:func:`open_runtime`): migrations and the live projection schema (see
`database`), the topics (when Kafka answers within ``TOPICS_AT_START_SECONDS``), a rebuild
of the projections from the topics when an older ``PROJECTION_VERSION`` built them
(`rebuild.upgrade_projections`). :func:`start` then runs the background tasks - the
consumer (supervised; it creates its topics at each start, so the dashboard starts and
serves what it has projected while Kafka is away), the rules worker (what the consumed
events owe the rules), the totals folder (`projections.totals`), the rules scheduler and
the live hub (which also empties the overview's `read_cache` at every change);
:func:`stop` ends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from aiokafka.errors import KafkaError

from teamnl_shared.contract.topics import deadletter_topic
from teamnl_shared.inbox import InboxConsumer
from teamnl_shared.kafka import ensure_topics
from teamnl_shared.telemetry import Telemetry

from . import queries
from .consumer import (
    Consumers,
    DeadLetterCounter,
    LatencyHook,
    build_consumers,
    event_topics,
    supervise,
)
from .database import create_dashboard_pool, prepare_database
from .live import LiveHub
from .notices import NoticeConsumer
from .projections.totals import TotalsFolder
from .read_cache import ReadCache
from .rebuild import upgrade_projections
from .rules import Clock, RulesEngine, build_engine, system_clock
from .rules.pending import RulesWorker
from .settings import DashboardSettings

__all__ = ["Runtime", "open_runtime", "start", "stop"]

log = logging.getLogger(__name__)
TOPICS_AT_START_SECONDS = 10.0


@dataclass
class Runtime:
    settings: DashboardSettings
    pool: asyncpg.Pool
    engine: RulesEngine
    consumer: Consumers
    hub: LiveHub
    notices: NoticeConsumer
    rules: RulesWorker
    totals: TotalsFolder
    overview_cache: ReadCache
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    findings_open: dict[tuple[str, str], int] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def open_runtime(
    settings: DashboardSettings,
    *,
    clock: Clock | None = None,
    on_latency: LatencyHook | None = None,
    on_dead_letter: DeadLetterCounter | None = None,
    telemetry: Telemetry | None = None,
) -> AsyncIterator[Runtime]:
    """The dashboard's parts, connected; the pool is closed on exit. With `telemetry`, the
    consumers trace each event into it and record each event's end-to-end latency and
    each dead letter in its metrics (unless `on_latency` / `on_dead_letter` are given):
    the web app and the worker alike."""
    if telemetry is not None:
        on_latency = on_latency or _latency_recorder(telemetry)
        on_dead_letter = on_dead_letter or _dead_letter_counter(telemetry)
    engine = build_engine(settings, clock or system_clock)
    await prepare_database(settings.database_url)
    try:  # now, so that producers find them; else the consumer creates them as it starts
        await asyncio.wait_for(ensure_event_topics(settings), TOPICS_AT_START_SECONDS)
    except (TimeoutError, KafkaError, OSError) as error:
        log.warning("Kafka unreachable at start-up (%r): serving without consuming", error)
    await upgrade_projections(settings, engine)
    pool = await create_dashboard_pool(settings.database_url)
    try:
        rules = RulesWorker(
            engine,
            pool,
            settle_seconds=settings.rules_settle_seconds,
            poll_seconds=settings.rules_poll_seconds,
        )
        totals = TotalsFolder(
            pool,
            interval=settings.totals_fold_seconds,
            vacuum_seconds=settings.totals_vacuum_seconds,
        )
        consumer = build_consumers(
            settings,
            pool,
            engine,
            on_latency=on_latency,
            on_dead_letter=on_dead_letter,
            tracer=telemetry.tracer("teamnl.dashboard") if telemetry is not None else None,
            wake_rules=rules.wake,
            wake_totals=totals.wake,
        )
        notices = NoticeConsumer(settings, pool, engine, wake_rules=rules.wake)
        hub = LiveHub(settings.database_url)
        overview_cache = ReadCache(settings.overview_cache_seconds, hub.listening.is_set)
        hub.watch(overview_cache.clear)
        yield Runtime(settings, pool, engine, consumer, hub, notices, rules, totals, overview_cache)
    finally:
        await pool.close()


def _latency_recorder(telemetry: Telemetry) -> LatencyHook:
    def record(seconds: float, topic: str, event_type: str) -> None:
        telemetry.metrics.record_end_to_end_latency(seconds, topic=topic, event_type=event_type)

    return record


def _dead_letter_counter(telemetry: Telemetry) -> DeadLetterCounter:
    def count(topic: str, reason: str) -> None:
        telemetry.metrics.deadlettered(topic=topic, reason=reason)

    return count


async def _after_tick(runtime: Runtime, telemetry: Telemetry) -> None:
    """Refresh the snapshots the metric probes read (probes never query the database)."""
    runtime.findings_open = await queries.open_findings_by_rule(runtime.pool)
    for tp, lag in runtime.consumer.lag().items():
        telemetry.metrics.set_consumer_lag(topic=tp.topic, partition=tp.partition, lag=lag)


async def _schedule(runtime: Runtime, telemetry: Telemetry) -> None:
    interval = runtime.settings.rules_interval_seconds
    judged_at: datetime | None = None  # the start of the last run that succeeded
    while not runtime.stopping.is_set():
        try:
            started = runtime.engine.clock()
            await runtime.engine.tick(runtime.pool, since=judged_at)
            judged_at = started
            await _after_tick(runtime, telemetry)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("scheduled rules failed (%r); next run in %ss", error, interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), interval)


@dataclass
class Consuming:
    """One consumer, once its topics exist: both at each (re)start, under `supervise`."""

    settings: DashboardSettings
    consumer: InboxConsumer

    async def run(self) -> None:
        await ensure_event_topics(self.settings)
        await self.consumer.run()


async def consume(runtime: Runtime) -> None:
    """Run every consumer of the runtime, each supervised (restarted after a failure), until
    the runtime stops."""
    await asyncio.gather(
        *(
            supervise(Consuming(runtime.settings, member), runtime.stopping)
            for member in runtime.consumer.members
        )
    )


async def ensure_event_topics(settings: DashboardSettings) -> None:
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [*event_topics(settings), deadletter_topic(settings.group)],
        partitions=settings.topic_partitions,
    )


def start(runtime: Runtime, telemetry: Telemetry) -> list[asyncio.Task[None]]:
    return [
        asyncio.create_task(consume(runtime), name="consumers"),
        asyncio.create_task(supervise(runtime.notices, runtime.stopping), name="parked-notices"),
        asyncio.create_task(runtime.rules.run(runtime.stopping), name="rules-worker"),
        asyncio.create_task(runtime.totals.run(runtime.stopping), name="totals-folder"),
        asyncio.create_task(_schedule(runtime, telemetry), name="rules-scheduler"),
        asyncio.create_task(runtime.hub.run(), name="live-hub"),
    ]


async def stop(runtime: Runtime, tasks: list[asyncio.Task[None]]) -> None:
    runtime.stopping.set()
    await runtime.consumer.stop()
    await runtime.notices.stop()
    await runtime.hub.stop()
    _done, pending = await asyncio.wait(tasks, timeout=15)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
