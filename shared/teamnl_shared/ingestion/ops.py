"""Operations endpoints: ``/healthz`` (the process answers), ``/readyz`` (database and Kafka
reachable, relay running, outbox backlog under the threshold, not draining), and the
AsyncAPI document of the service's topic(s)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from starlette.requests import Request

from teamnl_shared import outbox
from teamnl_shared.kafka import ping

from .openapi import service_asyncapi
from .runtime import Runtime, runtime_of
from .schemas import Readiness
from .service import ServiceDefinition
from .settings import IngestionSettings

PROBE_TIMEOUT = 3.0


def ops_router(service: ServiceDefinition, settings: IngestionSettings) -> APIRouter:
    router = APIRouter(tags=["operations"])
    asyncapi_text = service_asyncapi(service, settings)

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get(
        "/readyz",
        response_model=Readiness,
        summary="Ready to take events",
        responses={503: {"model": Readiness, "description": "Not ready"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        readiness = await check_readiness(runtime_of(request))
        status = 200 if readiness.status == "ready" else 503
        return JSONResponse(readiness.model_dump(), status_code=status)

    @router.get(
        "/v1/asyncapi.yaml",
        summary="AsyncAPI 3.0 document of the topics this service publishes",
        response_class=Response,
        responses={
            200: {
                "description": "AsyncAPI 3.0.0 (YAML)",
                "content": {"application/yaml": {"schema": {"type": "object"}}},
            }
        },
    )
    async def asyncapi() -> Response:
        return Response(asyncapi_text, media_type="application/yaml")

    return router


async def _database_backlog(runtime: Runtime) -> int | None:
    with contextlib.suppress(
        OSError, asyncpg.PostgresError, asyncpg.InterfaceError, RuntimeError, TimeoutError
    ):
        count, _age = await asyncio.wait_for(outbox.backlog(runtime.pool), PROBE_TIMEOUT)
        return count
    return None


async def check_readiness(runtime: Runtime) -> Readiness:
    backlog, kafka = await asyncio.gather(
        _database_backlog(runtime), ping(runtime.settings.kafka_bootstrap_servers, PROBE_TIMEOUT)
    )
    relay = runtime.relay_alive()
    ready = (
        backlog is not None
        and kafka
        and relay
        and not runtime.draining
        and backlog < runtime.settings.ready_max_outbox_backlog
    )
    return Readiness(
        status="ready" if ready else "not ready",
        database=backlog is not None,
        kafka=kafka,
        relay=relay,
        outbox_backlog=backlog,
        draining=runtime.draining,
    )
