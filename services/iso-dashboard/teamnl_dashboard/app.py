"""The composition root: ``create_app(settings)`` builds the dashboard; its lifespan runs
the dashboard's `runtime` (start-up, the consumer, the rules scheduler, the live hub).

``app.state`` carries ``settings``, ``telemetry``, ``pool`` (search path ``proj, public``),
``engine`` (the rules), ``hub`` (live updates), ``overview_cache`` (see `read_cache`),
``clock`` and ``runtime``. Probes: ``/healthz`` (the process answers), ``/readyz`` (see
`ops`), ``/metrics``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from teamnl_shared.telemetry import RequestLogMiddleware, Telemetry, setup_telemetry

from . import VERSION, api, ops, web
from .auth import install_auth
from .consumer import LatencyHook
from .period import InvalidReading
from .problems import install_api_problems
from .reading import reading_problem
from .rules import Clock, system_clock
from .runtime import Runtime, open_runtime, start, stop
from .settings import DashboardSettings
from .web.initiative_pages import install as install_initiative_pages
from .web.quality_pages import install as install_quality_pages

__all__ = ["VERSION", "create_app"]


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

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(
            settings,
            clock=clock,
            on_latency=on_latency,
            telemetry=telemetry,
        ) as runtime:
            _expose(app, runtime)
            telemetry.metrics.observe_findings(lambda: runtime.findings_open)
            tasks = start(runtime, telemetry)
            try:
                yield
            finally:
                await stop(runtime, tasks)

    app = FastAPI(
        title="ISO NL dashboard",
        version=VERSION,
        lifespan=lifespan,
        description="Projections of the Team NL network's events, the coherence "
        "rules' findings and the coherence score.",
        telemetry=telemetry.http_telemetry(),
    )
    app.state.settings = settings
    app.state.telemetry = telemetry
    app.state.clock = clock or system_clock
    install_auth(app, settings)
    app.include_router(api.router)
    app.include_router(ops.router)
    app.include_router(web.router)
    install_initiative_pages(app)
    install_quality_pages(app)
    app.add_exception_handler(InvalidReading, reading_problem)
    install_api_problems(app)
    app.add_middleware(RequestLogMiddleware)
    app.add_route(
        "/metrics", telemetry.metrics_endpoint(settings.scrape_token), include_in_schema=False
    )
    return app


def _expose(app: FastAPI, runtime: Runtime) -> None:
    app.state.runtime = runtime
    app.state.pool = runtime.pool
    app.state.engine = runtime.engine
    app.state.hub = runtime.hub
    app.state.overview_cache = runtime.overview_cache
