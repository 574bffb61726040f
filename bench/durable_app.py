"""Baseline 1b: the floor of a durable accept. A FastAPI POST endpoint that parses the body
and stores it with one PostgreSQL INSERT (its own committed transaction, so one WAL flush)
per request, then answers 202.

Same server (uvicorn, one process), same pool size, same pool release (no reset query: the
services skip asyncpg's, so the baseline must too, or it pays a round trip they do not) and
the same database as the service it is compared with; what ingestion adds on top of it is
authentication, validation, idempotency, the state rows and the outbox row.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from teamnl_shared.collector import settle_collector
from teamnl_shared.db import keep_session

DATABASE_URL_ENV = "BENCH_DURABLE_DATABASE_URL"
POOL_SIZE = 10  # the services' db_pool_max_size default
_CREATE = (
    "CREATE TABLE IF NOT EXISTS bench_durable_events"
    " (source text NOT NULL, id text NOT NULL, body jsonb NOT NULL, PRIMARY KEY (source, id))"
)
_INSERT = "INSERT INTO bench_durable_events (source, id, body) VALUES ($1, $2, $3)"


def create_app(database_url: str) -> FastAPI:
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            database_url, min_size=POOL_SIZE, max_size=POOL_SIZE, reset=keep_session
        )
        assert pool is not None
        await pool.execute(_CREATE)
        pools.append(pool)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="bench durable-insert baseline", lifespan=lifespan)

    @app.post("/v1/events", status_code=202)
    async def accept(request: Request) -> JSONResponse:
        body = await request.body()
        event = json.loads(body)
        await pools[0].execute(_INSERT, event["source"], event["id"], body.decode())
        return JSONResponse(
            {"status": "accepted", "id": event["id"], "source": event["source"]},
            status_code=202,
        )

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def app() -> FastAPI:
    """``uvicorn --factory bench.durable_app:app``, the database named by the environment;
    the garbage collector settled as the services settle theirs."""
    served = create_app(os.environ[DATABASE_URL_ENV])
    settle_collector()
    return served
