"""Operations of an initiative service: probes, metrics, the CLI, graceful shutdown."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from ingestion_helpers import auth, example, read_records, running, structured

from support import SCRAPE, eventually
from teamnl_shared.db import create_pool

pytestmark = pytest.mark.integration
HELD = "nl.teamnl.nlib.mission.held.v1"


async def test_probes_report_alive_and_ready(database_url: str, kafka_bootstrap: str) -> None:
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        assert (await svc.client.get("/healthz")).json() == {"status": "alive"}
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["database"] and ready.json()["kafka"] and ready.json()["relay"]


async def test_readyz_fails_when_the_outbox_backlog_is_too_high(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: with a threshold of 1, one unpublished row makes /readyz answer 503. The relay
    is stopped first so the row stays unpublished."""
    async with running("nlib", database_url, kafka_bootstrap, ready_max_outbox_backlog=1) as svc:
        await svc.runtime.relay.stop()  # type: ignore[union-attr]
        await svc.runtime._tasks[0]
        assert (await svc.post(structured(HELD, example(HELD)), await svc.key())).status_code == 202
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["outbox_backlog"] == 1


async def test_shutdown_flushes_the_outbox(database_url: str, kafka_bootstrap: str) -> None:
    """Proves: events accepted right before shutdown are all published by the lifespan exit
    (the relay drains the outbox before the pool closes)."""
    events = [structured(HELD, example(HELD, f"-{i}")) for i in range(50)]
    async with running("nlib", database_url, kafka_bootstrap, relay_poll_interval=30) as svc:
        key = await svc.key()
        responses = [await svc.post(event, key) for event in events]
        assert {r.status_code for r in responses} == {202}
    pool = await create_pool(database_url)
    try:
        pending = await pool.fetchval("SELECT count(*) FROM outbox")
        assert pending == 0
    finally:
        await pool.close()


async def test_accepted_events_wake_the_relay_in_process(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: the service's own commits (which send no NOTIFY) wake its relay: with the
    relay's poll at 30 s, a single event and a batch are published within seconds."""
    async with running("nlib", database_url, kafka_bootstrap, relay_poll_interval=30) as svc:
        key = await svc.key()
        pool = await create_pool(database_url)
        try:

            async def leading() -> bool:
                return svc.app.state.runtime.relay.leader  # type: ignore[no-any-return]

            async def none_pending() -> bool:
                pending = "SELECT count(*) FROM outbox"
                return await pool.fetchval(pending) == 0  # type: ignore[no-any-return]

            await eventually(leading)
            single = structured(HELD, example(HELD, "-one"))
            assert (await svc.post(single, key)).status_code == 202
            await eventually(none_pending, timeout=5)
            batch = [structured(HELD, example(HELD, f"-b{i}")) for i in range(3)]
            assert (await svc.post_batch(batch, key)).status_code == 200
            await eventually(none_pending, timeout=5)
            records = await read_records(kafka_bootstrap, svc.topic("nlib"), 4, timeout=5)
            published = {dict(r.headers)["ce_id"].decode() for r in records}
            assert {e["id"] for e in [single, *batch]} <= published
        finally:
            await pool.close()


async def test_metrics_count_accepted_and_rejected(database_url: str, kafka_bootstrap: str) -> None:
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        await svc.post(structured(HELD, example(HELD)), key)
        await svc.post(structured(HELD, {**example(HELD), "leads": -1}), key)
        text = (await svc.client.get("/metrics", headers=SCRAPE)).text
        assert "teamnl_events_accepted_total" in text
        assert 'reason="invalid-event"' in text
        assert key not in text


async def test_keys_cli_creates_lists_and_revokes(database_url: str, kafka_bootstrap: str) -> None:
    # one key store for every service, as TEAMNL_KEYS_DATABASE_URL makes it
    env = {**os.environ, "TEAMNL_KEYS_DATABASE_URL": database_url}
    cli = [sys.executable, "-m", "teamnl_shared.ingestion.cli"]

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args], env=env, capture_output=True, text=True, check=check, timeout=60
        )

    created = run("create", "--service", "nlib", "--partner", "rvo-crm", "--types", HELD)
    key = created.stdout.strip()
    key_id = key.split("_")[1]
    assert key.startswith("tnl_") and key_id in created.stderr
    listing = run("list", "--service", "nlib").stdout
    assert key_id in listing and key.split("_", 2)[2] not in listing
    assert key_id not in run("list", "--service", "tinl").stdout
    # key_cache_seconds=0: the revocation counts at once (the cache bound has its own test)
    async with running("nlib", database_url, kafka_bootstrap, key_cache_seconds=0) as svc:
        event = structured(HELD, example(HELD), source="/partners/rvo-crm")
        assert (await svc.post(event, key)).status_code == 202
        # naming another service revokes nothing: the key is nlib's
        elsewhere = run("revoke", key_id, "--service", "tinl", check=False)
        assert elsewhere.returncode == 1 and f"no active key {key_id} on tinl" in elsewhere.stderr
        assert (await svc.client.get("/v1/missions", headers=auth(key))).status_code == 200
        run("revoke", key_id, "--service", "nlib")
        assert (await svc.client.get("/v1/missions", headers=auth(key))).status_code == 401
