"""A real dashboard for integration tests: its own database, topics, clock and members.

``async with running_dashboard(settings, clock) as dash`` starts ``create_app`` under
uvicorn on a free port (lifespan, consumer, scheduler, live hub all running) and gives
signed-in HTTP clients for a member and for the secretariat, plus a Kafka producer that
publishes CloudEvents in binary mode onto the test's prefixed topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import uvicorn

from support import eventually, topic_prefix
from teamnl_dashboard.app import create_app
from teamnl_dashboard.auth import MemberError, create_member
from teamnl_dashboard.auth import sessions as auth_sessions
from teamnl_dashboard.auth.members import authenticate
from teamnl_dashboard.settings import DashboardSettings
from teamnl_shared.contract.envelope import Event, parse_event
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.kafka import idempotent_producer

PASSWORD = "a long enough password 123"
SECRET = "test-session-secret-of-at-least-32-characters"


class FakeClock:
    """The rules' clock, moved by the test instead of waited for."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def dashboard_settings(
    database_url: str, kafka_bootstrap: str, **overrides: Any
) -> DashboardSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "environment": "test",
        "topic_prefix": topic_prefix(),
        "topic_partitions": 3,
        "rules_interval_seconds": 0.2,
        "session_secret": SECRET,
        "consumer_session_timeout_ms": 6000,
    }
    return DashboardSettings(**{**values, **overrides})


APPLIED = "SELECT (SELECT count(*) FROM proj.events) + (SELECT count(*) FROM proj.inbox)"
"""Events the live projections applied: each has its inbox row in one of the two (a network
event's is its ``events`` row, an ops event's in ``inbox``: `projections.ledger`)."""


def make_event(
    event_type: str, *, time: datetime | None = None, source: str = "/partners/test", **data: Any
) -> Event:
    """A valid event: the catalogue's example data with `data` changes."""
    attributes = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": source,
        "type": event_type,
        "time": time or datetime.now(UTC),
    }
    return parse_event(attributes, {**spec_for(event_type).example, **data})


@dataclass
class Dashboard:
    settings: DashboardSettings
    app: Any
    member: httpx.AsyncClient
    secretariat: httpx.AsyncClient
    anonymous: httpx.AsyncClient
    producer: Any
    base_url: str

    @property
    def pool(self) -> asyncpg.Pool:
        pool: asyncpg.Pool = self.app.state.pool
        return pool

    async def publish(self, *events: Event) -> None:
        for event in events:
            await self.producer.send_and_wait(
                self.settings.topic(event.topic),
                event.data_json(),
                key=event.key.encode(),
                headers=event.to_kafka_headers(),
            )

    async def publish_raw(
        self, family_topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        await self.producer.send_and_wait(
            self.settings.topic(family_topic), value, key=key, headers=headers
        )

    async def applied(self) -> int:
        return int(await self.pool.fetchval(APPLIED))

    async def wait_applied(self, count: int) -> None:
        async def enough() -> bool:
            return await self.applied() >= count

        await eventually(enough)

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.member.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def findings(self, rule: str, state: str | None = None) -> list[dict[str, Any]]:
        """The live (stored) findings of `rule`: read as of the dashboard's today, since
        by default a data set of a past year is read as of its own latest date."""
        today = self.app.state.clock().date().isoformat()
        params = {"rule": rule, "as_of": today, **({"state": state} if state else {})}
        return await self.get("/api/v1/findings", **params)  # type: ignore[no-any-return]

    async def wait_findings(self, rule: str, state: str, count: int = 1) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        async def seen() -> bool:
            found[:] = await self.findings(rule, state)
            return len(found) >= count

        seen.__qualname__ = f"{count} {state} finding(s) of {rule}"
        await eventually(seen)
        return found


async def announcement(
    queue: asyncio.Queue[dict[str, Any]], kind: str, timeout: float = 30.0
) -> dict[str, Any]:
    """The next message of `kind` the live hub hands a subscriber's `queue` (others skipped)."""
    async with asyncio.timeout(timeout):
        while (message := await queue.get()).get("kind") != kind:
            pass
    return message


async def signed_in(pool: asyncpg.Pool, base_url: str, email: str, role: str) -> httpx.AsyncClient:
    """A client signed in as `email`: made a member, or (a dashboard started again on the
    same database) signed in as the member made before."""
    try:
        member = await create_member(pool, email, PASSWORD, role)
    except MemberError:
        found = await authenticate(pool, email, PASSWORD)
        assert found is not None and found.role == role, found
        member = found
    token, session = await auth_sessions.start(pool, SECRET, member)
    return httpx.AsyncClient(
        base_url=base_url,
        cookies={"teamnl_session": token},
        headers={"X-CSRF-Token": session.csrf_token},
        timeout=30,
    )


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run `app` under uvicorn on a free port; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
        return server.started

    await eventually(started, timeout=60)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def running_dashboard(
    settings: DashboardSettings, clock: FakeClock | None = None, **app_options: Any
) -> AsyncIterator[Dashboard]:
    app = create_app(settings, clock=clock, **app_options)
    producer = idempotent_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        async with serve(app) as base_url:
            pool = app.state.pool
            clients = (
                await signed_in(pool, base_url, "member@iso.example.org", "member"),
                await signed_in(pool, base_url, "secretariat@iso.example.org", "secretariat"),
                httpx.AsyncClient(base_url=base_url, timeout=30),
            )
            try:
                yield Dashboard(settings, app, *clients, producer, base_url)
            finally:
                for client in clients:
                    await client.aclose()
    finally:
        await producer.stop()
