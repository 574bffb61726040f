"""Baseline 1: a no-op FastAPI POST endpoint that parses the same body and answers 202.

Served by the same server (uvicorn, one process) the services use, so the ratio isolates
what ingestion adds: authentication, validation, the transaction and the outbox row.

`traced` serves the same endpoint with the services' own HTTP telemetry (a server span per
request and the HTTP metrics, on `setup_telemetry`'s providers, exported nowhere as the
bench's services' are): every request a service answers is traced and measured, so this is
the floor of an accepted event's request.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig

from teamnl_shared.collector import settle_collector
from teamnl_shared.telemetry import setup_telemetry


def create_app(telemetry: TelemetryConfig | None = None) -> FastAPI:
    app = FastAPI(title="bench no-op baseline", telemetry=telemetry)

    @app.post("/v1/events", status_code=202)
    async def accept(request: Request) -> JSONResponse:
        event = json.loads(await request.body())
        return JSONResponse(
            {"status": "accepted", "id": event.get("id"), "source": event.get("source")},
            status_code=202,
        )

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def served() -> FastAPI:
    """``uvicorn --factory bench.noop_app:served``: the garbage collector settled as the
    services settle theirs."""
    app = create_app()
    settle_collector()
    return app


def traced() -> FastAPI:
    """``uvicorn --factory bench.noop_app:traced``: the same, traced and measured as the
    services' requests are."""
    telemetry = setup_telemetry("bench-noop", "0", "bench")
    app = create_app(telemetry.http_telemetry())
    settle_collector()
    return app
