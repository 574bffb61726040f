"""Operations endpoints: ``/healthz`` (the process answers) and ``/readyz`` (the database
and Kafka reachable, the consumer and the rules worker not stalled, the live hub
listening). Like the initiative services' (``teamnl_shared.ingestion.ops``); no sign-in
needed, nothing secret shown."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from teamnl_shared import db, kafka

from .runtime import Runtime
from .schemas import Readiness

PROBE_TIMEOUT = 3.0

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Ready to serve and to consume",
    responses={503: {"model": Readiness, "description": "Not ready"}},
)
async def readyz(request: Request) -> JSONResponse:
    readiness = await check_readiness(getattr(request.app.state, "runtime", None))
    return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)


async def check_readiness(runtime: Runtime | None) -> Readiness:
    """`runtime` is the app's `Runtime`, or None while the lifespan is still starting."""
    if runtime is None:
        return Readiness(
            status="not ready", database=False, kafka=False, consumer=False, live=False
        )
    database_ok, kafka_ok = await asyncio.gather(
        db.ping(runtime.pool, PROBE_TIMEOUT),
        kafka.ping(runtime.settings.kafka_bootstrap_servers, PROBE_TIMEOUT),
    )
    consumer = runtime.consumer.running
    stalled = runtime.consumer.stalled(runtime.settings.consumer_stall_seconds)
    rules_stalled = runtime.rules.stalled(runtime.settings.rules_stall_seconds)
    live = runtime.hub.listening.is_set()
    ready = database_ok and kafka_ok and consumer and not stalled and not rules_stalled and live
    return Readiness(
        status="ready" if ready else "not ready",
        database=database_ok,
        kafka=kafka_ok,
        consumer=consumer,
        consumer_stalled=stalled,
        rules_stalled=rules_stalled,
        live=live,
    )
