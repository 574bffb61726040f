"""PostgreSQL unavailable on the request path: 503 with Retry-After, never 500, nothing stored.

The shared test PostgreSQL is never restarted (other tests use it): one test puts a TCP
proxy between the service and its database and takes it down (connections cut, new ones
refused: what a restart looks like from the service); the other ends the service's own
backend with ``pg_terminate_backend`` while a request is inside its transaction.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from ingestion_helpers import (
    auth,
    backend_waiting_for_a_lock,
    example,
    running,
    stored,
    structured,
)
from tcp_proxy import TcpProxy

from teamnl_shared.ingestion import PROBLEM_JSON

pytestmark = pytest.mark.integration
PLANNED = "nl.teamnl.nlib.mission.planned.v1"
HELD = "nl.teamnl.nlib.mission.held.v1"


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["type"] == "urn:teamnl:problem:unavailable"


def mission(event_type: str, suffix: str) -> dict[str, Any]:
    return structured(event_type, example(event_type, suffix))


async def test_an_unreachable_database_answers_503_and_the_retry_is_accepted(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: while the database is unreachable, a single event, a batch, a read and an
    uncached key all answer RFC 9457 503 with Retry-After (not 500); once it is back, the
    same event sent again is accepted, once."""
    target = urlsplit(database_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.up()
    async with running("nlib", through(proxy, database_url), kafka_bootstrap) as svc:
        key, unused_key = await svc.key(), await svc.key(partner="other-partner")
        assert (await svc.post(mission(PLANNED, "-a"), key)).status_code == 202
        event = mission(PLANNED, "-b")
        await proxy.down()
        assert_unavailable(await svc.post(event, key))
        assert_unavailable(await svc.post_batch([event, mission(PLANNED, "-c")], key))
        assert_unavailable(await svc.client.get("/v1/missions", headers=auth(key)))
        assert_unavailable(await svc.client.get("/v1/missions", headers=auth(unused_key)))
        await proxy.up()
        assert (await svc.post(event, key)).status_code == 202
        assert await stored(svc, event) == (1, 1)
    await proxy.down()


async def test_a_connection_ended_mid_transaction_answers_503_and_stores_nothing(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: when PostgreSQL ends the service's connection while a request is inside its
    transaction (as a restart or failover does), the request answers 503 with Retry-After,
    none of its rows are stored, and the retry is accepted."""
    planned = mission(PLANNED, "-x")
    held = mission(HELD, "-x")
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        assert (await svc.post(planned, key)).status_code == 202
        admin = await asyncpg.connect(database_url)
        try:
            async with admin.transaction():
                await admin.execute(
                    "SELECT 1 FROM missions WHERE mission_id = $1 FOR UPDATE",
                    held["data"]["mission_id"],
                )
                request = asyncio.create_task(svc.post(held, key))
                pid = await backend_waiting_for_a_lock(admin)
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
                assert_unavailable(await request)
        finally:
            await admin.close()
        assert await stored(svc, held) == (0, 0)
        assert (await svc.post(held, key)).status_code == 202
        assert await stored(svc, held) == (1, 1)
