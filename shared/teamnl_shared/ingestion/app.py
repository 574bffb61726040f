"""The ingestion app factory: one FastAPI app per initiative service, composed from the
service's definition (families, handlers, migrations, read resources) and its settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from teamnl_shared.problem import KIND_BY_STATUS
from teamnl_shared.telemetry import RequestLogMiddleware, Telemetry, setup_telemetry

from .openapi import install_openapi
from .ops import ops_router
from .problems import ApiProblem, from_validation_errors, unavailable
from .readapi import read_router
from .routes import events_router
from .runtime import Runtime
from .service import ServiceDefinition
from .settings import IngestionSettings
from .unavailable import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)


def create_ingestion_app(
    settings: IngestionSettings, service: ServiceDefinition, *, telemetry: Telemetry | None = None
) -> FastAPI:
    """The app of one initiative service. Its lifespan opens the pool, migrates, ensures the
    topics and runs the outbox relay; on shutdown it flushes the relay and closes the pool."""
    telemetry = telemetry or setup_telemetry(service.name, service.version, settings.environment)
    runtime = Runtime(
        settings, service, metrics=telemetry.metrics, tracer=telemetry.tracer("teamnl.outbox")
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=service.title,
        version=service.version,
        description=service.description,
        lifespan=lifespan,
        telemetry=telemetry.http_telemetry(),
    )
    app.state.runtime = runtime
    app.state.telemetry = telemetry
    app.include_router(events_router(service, settings))
    app.include_router(read_router(service.resources))
    app.include_router(ops_router(service, settings))
    _install_problem_handlers(app)
    install_openapi(app, service)
    app.add_middleware(RequestLogMiddleware)
    telemetry.instrument_asyncpg()
    app.add_route(
        "/metrics", telemetry.metrics_endpoint(settings.scrape_token), include_in_schema=False
    )
    return app


def _install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiProblem)
        return error.response(instance=request.url.path)

    async def on_validation(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return from_validation_errors(error.errors()).response(instance=request.url.path)

    async def on_http(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        kind = KIND_BY_STATUS.get(error.status_code, "invalid-request")
        problem = ApiProblem(
            error.status_code, kind, str(error.detail), headers=dict(error.headers or {})
        )
        return problem.response(instance=request.url.path)

    async def on_unavailable(request: Request, error: Exception) -> Response:
        log.warning("database unavailable on %s %s: %r", request.method, request.url.path, error)
        return unavailable("the database is unavailable; retry shortly").response(request.url.path)

    async def on_disconnect(request: Request, error: Exception) -> Response:
        # The client gave up (its own timeout) before sending the whole body: nothing was
        # read, nothing stored, and nobody is left to read an answer.
        log.info("client left during %s %s", request.method, request.url.path)
        return ApiProblem(400, "invalid-request", "the client disconnected").response(
            request.url.path
        )

    async def on_crash(request: Request, error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return ApiProblem(500, "internal-error", "internal error").response(request.url.path)

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for error_class in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_class, on_unavailable)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(Exception, on_crash)
