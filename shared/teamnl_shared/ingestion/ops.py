"""Operations endpoints: ``/healthz`` (the process answers), ``/readyz`` (database reachable,
relay running and not stuck, outbox backlog under the threshold, not draining), and the
AsyncAPI document of the service's topic(s).

Readiness does not require Kafka: accepting events needs only PostgreSQL (the outbox holds
them during a broker outage), so a broker outage must not take every ingestion pod out of
the load balancer. ``kafka`` is reported as information. The relay counts as *stuck* when
it leads, Kafka answers, and still the oldest unpublished row is older than
``relay_stuck_seconds``."""

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
KAFKA_PROBE_TIMEOUT = 1.5
"""Kafka is information only: a blackholed broker must not make /readyz slower than the
orchestrator's probe timeout (2 s in deploy/k8s), which would fail the probe after all."""


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


async def _outbox_state(runtime: Runtime) -> tuple[int, float, int] | None:
    """(unpublished rows, age of the oldest, parked rows), or None: database unreachable."""

    async def read() -> tuple[int, float, int]:
        count, age = await outbox.backlog(runtime.pool)
        return count, age, await outbox.parked_count(runtime.pool)

    with contextlib.suppress(
        OSError, asyncpg.PostgresError, asyncpg.InterfaceError, RuntimeError, TimeoutError
    ):
        return await asyncio.wait_for(read(), PROBE_TIMEOUT)
    return None


async def _kafka_answers(runtime: Runtime) -> bool:
    bootstrap = runtime.settings.kafka_bootstrap_servers
    try:
        return await asyncio.wait_for(ping(bootstrap, KAFKA_PROBE_TIMEOUT), KAFKA_PROBE_TIMEOUT)
    except TimeoutError:
        return False


async def check_readiness(runtime: Runtime) -> Readiness:
    state, kafka = await asyncio.gather(_outbox_state(runtime), _kafka_answers(runtime))
    backlog, age, parked = state if state is not None else (None, None, None)
    relay = runtime.relay_alive()
    leader = runtime.relay is not None and runtime.relay.leader
    stuck = kafka and leader and age is not None and age > runtime.settings.relay_stuck_seconds
    ready = (
        backlog is not None
        and relay
        and not stuck
        and not runtime.draining
        and backlog < runtime.settings.ready_max_outbox_backlog
    )
    return Readiness(
        status="ready" if ready else "not ready",
        database=state is not None,
        kafka=kafka,
        relay=relay,
        relay_leader=leader,
        relay_stuck=stuck,
        outbox_backlog=backlog,
        outbox_oldest_age_seconds=age,
        outbox_parked=parked,
        draining=runtime.draining,
    )
