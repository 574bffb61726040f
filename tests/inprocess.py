"""Running our FastAPI apps in the test process, behind a real uvicorn on a free port.

The apps are the production composition roots (``create_app(settings, telemetry=...)``), so
the lifespan (pool, migrations, topics, outbox relay, consumer) runs as in production; the
test only chooses the settings and the telemetry (for an in-memory span exporter).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from support import eventually, topic_prefix
from teamnl_dashboard.app import create_app as create_dashboard
from teamnl_dashboard.settings import DashboardSettings
from teamnl_nlib.app import create_app as create_nlib
from teamnl_nlib.settings import NlibSettings
from teamnl_shared.contract.envelope import CLOUDEVENTS_JSON
from teamnl_shared.contract.topics import TOPICS, deadletter_topic
from teamnl_shared.db import create_pool
from teamnl_shared.ingestion import create_key
from teamnl_shared.telemetry import Telemetry
from teamnl_suite.infra import Infrastructure, with_database
from teamnl_suite.infra.postgres import create_databases, drop_databases

PARTNER = "obs-partner"
MISSION_HELD = "nl.teamnl.nlib.mission.held.v1"


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) until the block ends; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn:{port}")

    async def started() -> bool:
        if task.done():
            task.result()  # raises the start-up error, if any
            raise AssertionError("uvicorn stopped during start-up")
        return server.started

    try:
        await eventually(started, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def spans_named(
    spans: tuple[ReadableSpan, ...], name: str, kind: SpanKind | None = None
) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name and (kind is None or s.kind == kind)]


@contextlib.asynccontextmanager
async def fresh_database(infra: Infrastructure, prefix: str) -> AsyncIterator[str]:
    """An empty database of its own, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = infra.admin_database_url()
    await create_databases(admin, [name])
    try:
        yield with_database(admin, name)
    finally:
        await drop_databases(admin, [name])


@dataclass
class Pipeline:
    """NLIB and the dashboard, both running, on topics of their own."""

    nlib_url: str
    dashboard_url: str
    key: str  # an NLIB partner key of PARTNER, for every NLIB event type
    nlib_topic: str
    deadletter_topic: str


@contextlib.asynccontextmanager
async def nlib_and_dashboard(
    infra: Infrastructure, *, nlib_telemetry: Telemetry, dashboard_telemetry: Telemetry
) -> AsyncIterator[Pipeline]:
    """The production apps of NLIB and the dashboard, each with the telemetry given."""
    prefix = topic_prefix()
    async with (
        fresh_database(infra, "obs_nlib") as nlib_db,
        fresh_database(infra, "obs_dash") as dashboard_db,
    ):
        common = {
            "kafka_bootstrap_servers": infra.kafka_bootstrap,
            "topic_prefix": prefix,
            "topic_partitions": 1,
            "environment": "test",
        }
        nlib_settings = NlibSettings(database_url=nlib_db, relay_poll_interval=0.1, **common)
        dashboard_settings = DashboardSettings(
            database_url=dashboard_db, rules_interval_seconds=0.5, **common
        )
        # NLIB first: asyncpg's instrumentation is process-wide and bound by the first app
        # that asks for it, so NLIB's queries (the outbox write) are traced by NLIB's provider.
        nlib = create_nlib(nlib_settings, telemetry=nlib_telemetry)
        dashboard = create_dashboard(dashboard_settings, telemetry=dashboard_telemetry)
        async with serving(dashboard) as dashboard_url, serving(nlib) as nlib_url:
            pool = await create_pool(nlib_db, max_size=1)
            try:
                issued = await create_key(pool, service="nlib", partner=PARTNER)
            finally:
                await pool.close()
            yield Pipeline(
                nlib_url,
                dashboard_url,
                issued.key,
                nlib_settings.topic(TOPICS["nlib"]),
                deadletter_topic(dashboard_settings.group),
            )


def mission_held(mission_id: str, *, partner: str = PARTNER, **data: Any) -> dict[str, Any]:
    """A valid ``mission.held`` CloudEvent (structured mode), timestamped now."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/partners/{partner}",
        "type": MISSION_HELD,
        "subject": mission_id,
        "time": datetime.now(UTC).isoformat(),
        "data": {
            "mission_id": mission_id,
            "title": "Mission to Hanoi",
            "direction": "outgoing",
            "country": "VN",
            "city": "Hanoi",
            "start_date": "2019-04-08",
            "end_date": "2019-04-09",
            "companies": 3,
            "business_mixers": 1,
            "leads": 2,
            **data,
        },
    }


async def post_event(
    client: httpx.AsyncClient,
    key: str,
    event: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        "/v1/events",
        content=json.dumps(event),
        headers={
            "content-type": CLOUDEVENTS_JSON,
            "authorization": f"Bearer {key}",
            **(headers or {}),
        },
    )


def metric_total(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` (with these labels) in a Prometheus text page."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def scrape(telemetry: Telemetry) -> str:
    """What ``/metrics`` would serve for this telemetry right now."""
    return generate_latest(telemetry.registry).decode()
