"""Two dashboard consumers share the group; one is killed with SIGKILL mid-stream.

The survivor takes over the dead member's partitions after its session times out and
re-reads from the last committed offsets; the inbox makes re-delivered records no-ops.
The end state: every event applied exactly once, and the sums prove no double effect.

A worker process measures the events it projects, as the web app does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from dashboard_harness import APPLIED, SECRET, dashboard_settings, make_event, serve
from inprocess import metric_total
from support import SCRAPE, dies_with_parent, eventually, free_port, terminated
from teamnl_dashboard.app import create_app
from teamnl_dashboard.auth import create_member
from teamnl_dashboard.auth import sessions as auth_sessions
from teamnl_dashboard.consumer import event_topics
from teamnl_dashboard.reference import FAMILIES
from teamnl_dashboard.runtime import consume, open_runtime
from teamnl_dashboard.settings import DashboardSettings
from teamnl_shared.kafka import idempotent_producer

pytestmark = pytest.mark.integration

HALF = 1500


def spends(start: int, count: int) -> list:
    return [
        make_event(
            f"nl.teamnl.{FAMILIES[i % 4]}.budget.spent.v1",
            spend_id=f"s{i}",
            amount_cents=i,
            year=2019,
        )
        for i in range(start, start + count)
    ]


async def publish(settings: DashboardSettings, producer: AIOKafkaProducer, events: list) -> None:
    for event in events:
        await producer.send(
            settings.topic(event.topic),
            event.data_json(),
            key=event.key.encode(),
            headers=event.to_kafka_headers(),
        )
    await producer.flush()


def start_worker(
    settings: DashboardSettings, log: Path, **extra_env: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DASHBOARD_DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "TEAMNL_TOPIC_PREFIX": settings.topic_prefix,
        "TEAMNL_ENVIRONMENT": "test",
        "TEAMNL_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "DASHBOARD_CONSUMER_SESSION_TIMEOUT_MS": "6000",
        "DASHBOARD_RULES_INTERVAL_SECONDS": "3600",
        **extra_env,
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "teamnl_dashboard.worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=dies_with_parent,
        )


async def test_a_killed_consumer_loses_and_duplicates_nothing(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap, rules_interval_seconds=3600)
    async with open_runtime(settings) as runtime:  # topics and schema exist before the worker
        worker = start_worker(settings, tmp_path / "worker.log")
        survivor = runtime.consumer
        task = asyncio.create_task(consume(runtime))
        producer = idempotent_producer(kafka_bootstrap)
        await producer.start()
        try:

            async def group_shared() -> bool:
                assigned = len(survivor.assignment())
                return 0 < assigned < 4 * settings.topic_partitions

            await eventually(group_shared, timeout=60)

            async def applied() -> int:
                return int(await runtime.pool.fetchval(APPLIED))

            await publish(settings, producer, spends(0, HALF))

            async def worker_busy() -> bool:
                # Rows of the partitions the survivor does not own: the worker applied them.
                # (Not the inbox's count less the survivor's: that counts a batch only once
                # its offsets are committed, so its fetch in flight looked like the worker's.)
                owned = survivor.assignment()
                rows = await runtime.pool.fetch(
                    "SELECT topic, kafka_partition, count(*) AS n FROM proj.events GROUP BY 1, 2"
                )
                theirs = (r for r in rows if TopicPartition(r[0], r[1]) not in owned)
                return sum(r["n"] for r in theirs) >= 100

            await eventually(worker_busy, timeout=60)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            await publish(settings, producer, spends(HALF, HALF))

            async def all_applied() -> bool:
                return await applied() >= 2 * HALF

            await eventually(all_applied, timeout=120)
        finally:
            await producer.stop()
            await survivor.stop()
            runtime.stopping.set()
            await task
            if worker.poll() is None:
                worker.kill()

        pool = runtime.pool
        assert await pool.fetchval("SELECT count(*) FROM proj.events") == 2 * HALF
        assert await pool.fetchval("SELECT count(*) FROM proj.inbox") == 0  # ops events' only
        assert await pool.fetchval("SELECT count(*) FROM proj.budget_spent") == 2 * HALF
        total = await pool.fetchval("SELECT sum(amount_cents) FROM proj.budget_spent")
        assert total == sum(range(2 * HALF))
        assert 0 < survivor.applied_total < 2 * HALF  # both consumers did part of the work


async def test_one_dashboard_process_runs_its_consumers_as_members_of_one_group(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: with ``DASHBOARD_CONSUMERS`` = 3 one process runs three consumers of the
    group; Kafka gives each a share of the partitions (no partition twice, none left out),
    each projects the events of its own, and every event is applied once."""
    settings = dashboard_settings(
        database_url, kafka_bootstrap, rules_interval_seconds=3600, consumers=3
    )
    async with open_runtime(settings) as runtime:
        members = runtime.consumer.members
        assert len(members) == 3
        task = asyncio.create_task(consume(runtime))
        try:

            def assignments() -> list[set[object]]:
                return [member.assignment() for member in members]

            async def split() -> bool:
                shares = assignments()
                every = set().union(*shares)
                topics = len(event_topics(settings))
                return all(shares) and sum(map(len, shares)) == len(every) == topics * (
                    settings.topic_partitions
                )

            await eventually(split, timeout=60)
            producer = idempotent_producer(kafka_bootstrap)
            await producer.start()
            try:
                await publish(settings, producer, spends(0, 600))
            finally:
                await producer.stop()

            async def all_applied() -> bool:
                return runtime.consumer.applied_total >= 600

            await eventually(all_applied, timeout=120)
        finally:
            await runtime.consumer.stop()
            runtime.stopping.set()
            await task
        assert await runtime.pool.fetchval("SELECT count(*) FROM proj.budget_spent") == 600
        assert runtime.consumer.applied_total == 600
        assert all(member.applied_total > 0 for member in members), "each projected its share"


async def test_the_dashboard_starts_and_serves_while_kafka_is_away(database_url: str) -> None:
    """A broker outage never keeps the dashboard down: it starts, serves what it has
    projected and says it is not ready (Kafka unreachable, nothing consumed) until the
    consumer, retried under `supervise`, can reach the broker."""
    settings = dashboard_settings(database_url, "127.0.0.1:1")  # nothing listens there
    app = create_app(settings)
    async with serve(app) as base_url:
        member = await create_member(app.state.pool, "m@iso.example.org", "a long password 123")
        token, _ = await auth_sessions.start(app.state.pool, SECRET, member)
        async with httpx.AsyncClient(
            base_url=base_url, cookies={"teamnl_session": token}, timeout=30
        ) as client:
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["kafka"] is False and ready.json()["database"] is True
            assert (await client.get("/api/v1/overview")).status_code == 200
            assert (await client.get("/")).status_code == 200


async def test_a_worker_measures_the_events_it_projects(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The worker alone in the group projects every event; its own metrics (served on
    ``DASHBOARD_WORKER_METRICS_PORT``) hold each event's end-to-end latency. (It once ran
    without telemetry: the events it projected had no consume span and no latency.)"""
    settings = dashboard_settings(database_url, kafka_bootstrap, rules_interval_seconds=3600)
    count = 40
    port = free_port()
    async with open_runtime(settings) as runtime:  # topics and schema; nothing consumed here
        worker = start_worker(
            settings, tmp_path / "worker.log", DASHBOARD_WORKER_METRICS_PORT=str(port)
        )
        producer = idempotent_producer(kafka_bootstrap)
        await producer.start()
        try:
            await publish(settings, producer, spends(0, count))
            scraped = ""

            async def all_measured() -> bool:
                nonlocal scraped
                async with httpx.AsyncClient() as client:
                    try:
                        scraped = (
                            await client.get(f"http://127.0.0.1:{port}/metrics", headers=SCRAPE)
                        ).text
                    except httpx.TransportError:
                        return False  # not serving yet
                return metric_total(scraped, "teamnl_end_to_end_latency_seconds_count") >= count

            await eventually(all_measured, timeout=90)
            projected = await runtime.pool.fetchval(APPLIED)
        finally:
            await producer.stop()
            terminated(worker)
    assert projected == count
    assert metric_total(scraped, "teamnl_end_to_end_latency_seconds_count") == count
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()[-2000:]
