"""Baseline 1: a no-op FastAPI POST endpoint that parses the same body and answers 202.

Served by the same server (uvicorn, one process) the services use, so the ratio isolates
what ingestion adds: authentication, validation, the transaction and the outbox row.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from teamnl_shared.collector import settle_collector


def create_app() -> FastAPI:
    app = FastAPI(title="bench no-op baseline")

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
