"""The composition root: ``create_app(settings)`` builds the dashboard; its lifespan runs it.

On start-up: migrations and the live projection schema (see `database`), the topics, a
rebuild of the projections from the topics when an older ``PROJECTION_VERSION`` built them
(`rebuild.upgrade_projections`), then three background tasks - the consumer (supervised),
the rules scheduler and the live hub.

``app.state`` carries ``settings``, ``telemetry``, ``pool`` (search path ``proj, public``),
``engine`` (the rules), ``hub`` (live updates), ``clock`` and ``runtime``. Probes:
``/healthz`` (the process answers), ``/readyz`` (see `ops`), ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
from fastapi import FastAPI

from teamnl_shared.contract.topics import deadletter_topic
from teamnl_shared.inbox import InboxConsumer
from teamnl_shared.kafka import ensure_topics
from teamnl_shared.telemetry import RequestLogMiddleware, Telemetry, setup_telemetry

from . import api, ops, queries
from .auth import install_auth
from .consumer import DeadLetterCounter, LatencyHook, build_consumer, event_topics, supervise
from .database import create_dashboard_pool, prepare_database
from .live import LiveHub
from .rebuild import upgrade_projections
from .rules import Clock, RulesEngine, all_rules, system_clock
from .settings import DashboardSettings

__all__ = ["VERSION", "Runtime", "create_app", "open_runtime"]

log = logging.getLogger(__name__)
VERSION = "1.0.0"


@dataclass
class Runtime:
    settings: DashboardSettings
    pool: asyncpg.Pool
    engine: RulesEngine
    consumer: InboxConsumer
    hub: LiveHub
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
    """The dashboard's parts, connected; the pool is closed on exit."""
    await prepare_database(settings.database_url)
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [*event_topics(settings), deadletter_topic(settings.group)],
        partitions=settings.topic_partitions,
    )
    await upgrade_projections(settings, clock=clock or system_clock)
    pool = await create_dashboard_pool(settings.database_url)
    try:
        engine = RulesEngine(
            all_rules(settings),
            allocations_cents=settings.allocations_cents,
            duplication_window_days=settings.rules.overlap_window_days,
            clock=clock or system_clock,
        )
        consumer = build_consumer(
            settings,
            pool,
            engine,
            on_latency=on_latency,
            on_dead_letter=on_dead_letter,
            tracer=telemetry.tracer("teamnl.dashboard") if telemetry is not None else None,
        )
        yield Runtime(settings, pool, engine, consumer, LiveHub(settings.database_url))
    finally:
        await pool.close()


async def _after_tick(runtime: Runtime, telemetry: Telemetry) -> None:
    """Refresh the snapshots the metric probes read (probes never query the database)."""
    runtime.findings_open = await queries.open_findings_by_rule(runtime.pool)
    for tp, lag in runtime.consumer.lag().items():
        telemetry.metrics.set_consumer_lag(topic=tp.topic, partition=tp.partition, lag=lag)


async def _schedule(runtime: Runtime, telemetry: Telemetry) -> None:
    interval = runtime.settings.rules_interval_seconds
    while not runtime.stopping.is_set():
        try:
            await runtime.engine.tick(runtime.pool)
            await _after_tick(runtime, telemetry)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("scheduled rules failed (%r); next run in %ss", error, interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), interval)


def _latency_hook(telemetry: Telemetry, given: LatencyHook | None) -> LatencyHook:
    if given is not None:
        return given

    def record(seconds: float, topic: str, event_type: str) -> None:
        telemetry.metrics.record_end_to_end_latency(seconds, topic=topic, event_type=event_type)

    return record


def _dead_letter_counter(telemetry: Telemetry) -> DeadLetterCounter:
    def count(topic: str, reason: str) -> None:
        telemetry.metrics.deadlettered(topic=topic, reason=reason)

    return count


def create_app(
    settings: DashboardSettings,
    *,
    clock: Clock | None = None,
    telemetry: Telemetry | None = None,
    on_latency: LatencyHook | None = None,
) -> FastAPI:
    """The dashboard app. `clock` drives the rules (tests inject one); `telemetry` (by
    default set up here, as the initiative services do) gets the traces and metrics;
    `on_latency` receives each event's end-to-end latency (by default recorded in
    telemetry's ``teamnl.end_to_end.latency``)."""
    telemetry = telemetry or setup_telemetry(settings.service_name, VERSION, settings.environment)
    hook = _latency_hook(telemetry, on_latency)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(
            settings,
            clock=clock,
            on_latency=hook,
            on_dead_letter=_dead_letter_counter(telemetry),
            telemetry=telemetry,
        ) as runtime:
            _expose(app, runtime)
            telemetry.metrics.observe_findings(lambda: runtime.findings_open)
            tasks = _start(runtime, telemetry)
            try:
                yield
            finally:
                await _stop(runtime, tasks)

    app = FastAPI(
        title="ISO NL dashboard",
        version=VERSION,
        lifespan=lifespan,
        description="Projections of the Team NL network's events, the coherence "
        "rules' findings and the coherence score.",
    )
    app.state.settings = settings
    app.state.telemetry = telemetry
    app.state.clock = clock or system_clock
    install_auth(app, settings)
    app.include_router(api.router)
    app.include_router(ops.router)
    _include_web(app)
    app.add_middleware(RequestLogMiddleware)
    telemetry.instrument_fastapi(app)
    app.add_route("/metrics", telemetry.metrics_endpoint(), include_in_schema=False)
    return app


def _include_web(app: FastAPI) -> None:
    from .web import router as web_router
    from .web.initiative_pages import install as install_initiative_pages

    app.include_router(web_router)
    install_initiative_pages(app)


def _expose(app: FastAPI, runtime: Runtime) -> None:
    app.state.runtime = runtime
    app.state.pool = runtime.pool
    app.state.engine = runtime.engine
    app.state.hub = runtime.hub


def _start(runtime: Runtime, telemetry: Telemetry) -> list[asyncio.Task[None]]:
    return [
        asyncio.create_task(supervise(runtime.consumer, runtime.stopping), name="consumer"),
        asyncio.create_task(_schedule(runtime, telemetry), name="rules-scheduler"),
        asyncio.create_task(runtime.hub.run(), name="live-hub"),
    ]


async def _stop(runtime: Runtime, tasks: list[asyncio.Task[None]]) -> None:
    runtime.stopping.set()
    await runtime.consumer.stop()
    await runtime.hub.stop()
    _done, pending = await asyncio.wait(tasks, timeout=15)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
