"""The ISO NL dashboard in a real Chromium, end to end over real services.

What it proves: a member signs in through the login form and sees the overview with its
charts; an event a partner POSTs to the NLIB service over HTTP (API key, CloudEvents) goes
through NLIB's outbox, Kafka, the dashboard's consumer and PostgreSQL NOTIFY, and appears on
the open page within 2 seconds without a reload; a title containing ``<script>`` is shown
as text and never runs.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, Page, async_playwright, expect

from support import eventually, topic_prefix
from teamnl_dashboard.app import create_app as create_dashboard
from teamnl_dashboard.auth import create_member
from teamnl_dashboard.settings import DashboardSettings
from teamnl_nlib.app import create_app as create_nlib
from teamnl_nlib.settings import NlibSettings
from teamnl_shared.contract.envelope import CLOUDEVENTS_JSON
from teamnl_shared.db import create_pool
from teamnl_shared.ingestion.keys import create_key
from teamnl_suite.infra import Infrastructure, with_database
from teamnl_suite.infra.postgres import create_databases, drop_databases

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EMAIL, PASSWORD = "secretariat@iso.example", "a long enough password"
LIVE_WITHIN_MS = 2_000


@pytest.fixture(scope="session")
def frontend_bundle() -> Path:
    """The real bundle, built by the project's own script (a no-op when up to date)."""
    subprocess.run([str(ROOT / "scripts" / "build-frontend.sh")], check=True)
    bundle = ROOT / "services/iso-dashboard/teamnl_dashboard/static/dist/dashboard.js"
    assert bundle.is_file(), "scripts/build-frontend.sh did not produce the bundle"
    return bundle


@pytest.fixture
async def nlib_database_url(infra: Infrastructure) -> AsyncIterator[str]:
    name = f"e2e_nlib_{uuid.uuid4().hex[:10]}"
    admin = infra.admin_database_url()
    await create_databases(admin, [name])
    yield with_database(admin, name)
    await drop_databases(admin, [name])


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is up (no polling)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self.up.set()


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run the app with uvicorn on a free 127.0.0.1 port, in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    up = asyncio.create_task(server.up.wait())
    await asyncio.wait({serving, up}, return_when=asyncio.FIRST_COMPLETED)
    if not server.up.is_set():
        up.cancel()
        await serving
        raise AssertionError("the server did not start (see its log above)")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        sock.close()


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def _mission_held(title: str) -> dict[str, Any]:
    mission_id = f"m-e2e-{uuid.uuid4().hex[:8]}"
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/partners/e2e-partner",
        "type": "nl.teamnl.nlib.mission.held.v1",
        "subject": mission_id,
        "time": datetime.now(UTC).isoformat(),
        "data": {
            "mission_id": mission_id,
            "title": title,
            "direction": "outgoing",
            "country": "VN",
            "city": "Ho Chi Minh City",
            "city_of_opportunity": "Ho Chi Minh City",
            "start_date": "2019-04-08",
            "end_date": "2019-04-12",
            "companies": 21,
            "business_mixers": 2,
            "leads": 9,
        },
    }


async def _post_event(nlib: httpx.AsyncClient, event: dict[str, Any]) -> None:
    response = await nlib.post("/v1/events", json=event, headers={"Content-Type": CLOUDEVENTS_JSON})
    assert response.status_code == 202, response.text


async def _sign_in(page: Page, base: str) -> None:
    await page.goto(f"{base}/")
    await expect(page).to_have_url(f"{base}/login?next=%2F")
    await page.get_by_label("E-mail address").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{base}/")


async def test_an_event_posted_to_nlib_appears_live_on_the_open_dashboard(
    frontend_bundle: Path, database_url: str, nlib_database_url: str, kafka_bootstrap: str
) -> None:
    prefix = topic_prefix()
    shared = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic_prefix": prefix,
        "environment": "test",
        "topic_partitions": 1,
    }
    dashboard = create_dashboard(
        DashboardSettings(database_url=database_url, session_secret="e2e-" + "s" * 40, **shared)
    )
    nlib = create_nlib(
        NlibSettings(database_url=nlib_database_url, relay_poll_interval=0.2, **shared)
    )
    async with serve(dashboard) as dashboard_url, serve(nlib) as nlib_url, chromium() as browser:
        pool = await create_pool(database_url, max_size=2)
        nlib_pool = await create_pool(nlib_database_url, max_size=2)
        try:
            await create_member(pool, EMAIL, PASSWORD, "secretariat")
            key = await create_key(nlib_pool, service="nlib", partner="e2e-partner")
        finally:
            await pool.close()
            await nlib_pool.close()

        page = await browser.new_page(locale="en-GB")
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await _sign_in(page, dashboard_url)
        body = page.locator("body")
        await expect(body).to_have_attribute("data-bundle", "loaded")  # not the fallback
        await expect(page.locator("#activity-chart")).to_have_attribute("data-rendered", "true")
        await expect(body).to_have_attribute("data-live", "connected")
        await page.evaluate("window.__sameDocument = true")  # gone if the page reloads

        async def consuming() -> bool:  # the 2 seconds count from a pipeline that is up
            return bool(dashboard.state.runtime.consumer.assignment())

        await eventually(consuming, timeout=60)

        async with httpx.AsyncClient(
            base_url=nlib_url, headers={"Authorization": f"Bearer {key.key}"}
        ) as nlib_client:
            title = f"Trade mission to Vietnam {uuid.uuid4().hex[:6]}"
            await _post_event(nlib_client, _mission_held(title))
            await expect(page.locator("#events li", has_text=title)).to_be_visible(
                timeout=LIVE_WITHIN_MS
            )

            hostile = f"<script>window.__pwned = true</script> Mixer {uuid.uuid4().hex[:6]}"
            await _post_event(nlib_client, _mission_held(hostile))
            row = page.locator("#events li", has_text=hostile)
            await expect(row).to_be_visible(timeout=LIVE_WITHIN_MS)

        await expect(row.locator("[data-field=title]")).to_have_text(hostile)
        assert await row.locator("script").count() == 0
        assert await page.evaluate("window.__pwned === undefined")
        assert await page.evaluate("window.__sameDocument === true"), "the page reloaded"
        assert errors == []


async def test_the_pages_render_and_protect_themselves(
    frontend_bundle: Path, database_url: str, kafka_bootstrap: str
) -> None:
    """Overview, markets, map and findings render for a member, in English and Dutch; the
    map has its offline outlines; without a session pages redirect and the API answers 401."""
    settings = DashboardSettings(
        database_url=database_url,
        session_secret="e2e-" + "s" * 40,
        kafka_bootstrap_servers=kafka_bootstrap,
        environment="test",
        topic_prefix=topic_prefix(),
        topic_partitions=1,
    )
    async with serve(create_dashboard(settings)) as base, chromium() as browser:
        pool = await create_pool(database_url, max_size=2)
        try:
            await create_member(pool, EMAIL, PASSWORD, "member")
        finally:
            await pool.close()
        async with httpx.AsyncClient(base_url=base) as anonymous:
            assert (await anonymous.get("/api/v1/stream")).status_code == 401
            assert (await anonymous.get("/map")).headers["location"] == "/login?next=%2Fmap"

        page = await browser.new_page(locale="en-GB")
        await _sign_in(page, base)
        await page.goto(f"{base}/map")
        await expect(page.locator("#world-map path.country").first).to_be_attached()
        assert await page.locator("#world-map path.country").count() > 150
        assert await page.locator("#world-map circle.city").count() == 38
        for path in ("/markets", "/findings"):
            response = await page.goto(f"{base}{path}")
            assert response is not None and response.status == 200
        await page.get_by_role("button", name="Nederlands").click()
        await expect(page.locator("html")).to_have_attribute("lang", "nl")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Bevindingen")
