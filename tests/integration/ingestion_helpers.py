"""Helpers for the ingestion tests: run a service app with its lifespan, build events of the
catalogue, read the service's topics back from Kafka.

Imported by the ``test_ingestion_*`` modules (this folder is on ``sys.path`` under pytest).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from fastapi import FastAPI

from support import eventually, topic_prefix
from teamnl_nlib.app import create_app as create_nlib
from teamnl_nlib.settings import NlibSettings
from teamnl_shared.contract.envelope import CLOUDEVENTS_BATCH_JSON, CLOUDEVENTS_JSON
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.contract.topics import TOPICS, topic_for
from teamnl_shared.ingestion import IngestionSettings, create_key
from teamnl_shared.ingestion.keys import service_event_types
from teamnl_shared.ingestion.runtime import Runtime
from teamnl_tinl.app import create_app as create_tinl
from teamnl_tinl.settings import TinlSettings
from teamnl_werkplaats.app import create_app as create_werkplaats
from teamnl_werkplaats.settings import WerkplaatsSettings

PARTNER = "acme-partner"
SOURCE = f"/partners/{PARTNER}"

FACTORIES: dict[str, tuple[type[IngestionSettings], Callable[..., FastAPI]]] = {
    "nlib": (NlibSettings, create_nlib),
    "tinl": (TinlSettings, create_tinl),
    "werkplaats": (WerkplaatsSettings, create_werkplaats),
}

# The catalogue's types in an order the domain rules accept (a follow-up after its mission).
SCENARIOS: dict[str, list[str]] = {
    "nlib": [
        "nl.teamnl.nlib.mission.planned.v1",
        "nl.teamnl.nlib.mission.held.v1",
        "nl.teamnl.nlib.mission.followup.held.v1",
        "nl.teamnl.nlib.lead.converted.v1",
        "nl.teamnl.nlib.city.programme.updated.v1",
        "nl.teamnl.nlib.company.supported.v1",
        "nl.teamnl.nlib.budget.spent.v1",
    ],
    "tinl": [
        "nl.teamnl.tinl.activity.held.v1",
        "nl.teamnl.tinl.knowledge.shared.v1",
        "nl.teamnl.tinl.budget.spent.v1",
        "nl.teamnl.globalstars.call.opened.v1",
        "nl.teamnl.globalstars.proposal.submitted.v1",
        "nl.teamnl.globalstars.call.closed.v1",
        "nl.teamnl.globalstars.budget.spent.v1",
    ],
    "werkplaats": [
        "nl.teamnl.werkplaats.project.onboarded.v1",
        "nl.teamnl.werkplaats.consortium.member.joined.v1",
        "nl.teamnl.werkplaats.milestone.reached.v1",
        "nl.teamnl.werkplaats.project.graduated.v1",
        "nl.teamnl.werkplaats.budget.spent.v1",
    ],
}
STOPPED = "nl.teamnl.werkplaats.project.stopped.v1"
ONBOARDED = "nl.teamnl.werkplaats.project.onboarded.v1"


def example(event_type: str, suffix: str = "") -> dict[str, Any]:
    """The catalogue's example data, every ``*_id`` field made unique with ``suffix``."""
    data = deepcopy(spec_for(event_type).example)
    return {k: (f"{v}{suffix}" if k.endswith("_id") else v) for k, v in data.items()}


def scenario(service: str, suffix: str) -> list[tuple[str, dict[str, Any]]]:
    events = [(t, example(t, suffix)) for t in SCENARIOS[service]]
    if service == "werkplaats":  # a second project, to be stopped rather than graduated
        events += [
            (ONBOARDED, example(ONBOARDED, suffix + "-2")),
            (STOPPED, example(STOPPED, suffix + "-2")),
        ]
    return events


def new_id() -> str:
    return uuid.uuid4().hex


def structured(
    event_type: str,
    data: dict[str, Any],
    *,
    source: str = SOURCE,
    event_id: str | None = None,
    **attributes: Any,
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or new_id(),
        "source": source,
        "type": event_type,
        "time": "2019-06-01T09:30:00Z",
        "data": data,
        **attributes,
    }


def binary_headers(
    key: str, event_type: str, event_id: str, source: str = SOURCE
) -> dict[str, str]:
    return {
        **auth(key),
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": source,
        "ce-type": event_type,
    }


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def structured_headers(key: str) -> dict[str, str]:
    return {**auth(key), "content-type": CLOUDEVENTS_JSON}


def batch_headers(key: str) -> dict[str, str]:
    return {**auth(key), "content-type": CLOUDEVENTS_BATCH_JSON}


@dataclass
class RunningService:
    name: str
    app: FastAPI
    client: httpx.AsyncClient
    settings: IngestionSettings

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    def topic(self, family: str) -> str:
        return self.settings.topic(TOPICS[family])

    async def key(
        self, partner: str = PARTNER, types: list[str] | None = None, service: str | None = None
    ) -> str:
        issued = await create_key(
            self.runtime.keys_pool, service=service or self.name, partner=partner, event_types=types
        )
        return issued.key

    async def post(self, body: Any, key: str) -> httpx.Response:
        return await self.client.post(
            "/v1/events", content=json.dumps(body), headers=structured_headers(key)
        )

    async def post_batch(self, events: list[Any], key: str) -> httpx.Response:
        return await self.client.post(
            "/v1/events:batch", content=json.dumps(events), headers=batch_headers(key)
        )

    async def count(self, table: str) -> int:
        value: int = await self.pool.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
        return value


def service_settings(
    name: str, database_url: str, kafka_bootstrap: str, **overrides: Any
) -> IngestionSettings:
    settings_class, _ = FACTORIES[name]
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic_prefix": topic_prefix(),
        "topic_partitions": 3,
        "relay_poll_interval": 0.2,
        "environment": "test",
        **overrides,
    }
    return settings_class(**values)


@asynccontextmanager
async def running(
    name: str, database_url: str, kafka_bootstrap: str, **overrides: Any
) -> AsyncIterator[RunningService]:
    """The service's app with its lifespan running, and an HTTP client on it."""
    settings = service_settings(name, database_url, kafka_bootstrap, **overrides)
    app = FACTORIES[name][1](settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield RunningService(name, app, client, settings)


@asynccontextmanager
async def _from_the_beginning(
    bootstrap: str, topic: str, partitions: int
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        yield consumer, assigned
    finally:
        await consumer.stop()


async def read_records(
    bootstrap: str, topic: str, expected: int, *, partitions: int = 3, timeout: float = 30.0
) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the beginning, once at least ``expected`` are there."""
    async with _from_the_beginning(bootstrap, topic, partitions) as (consumer, _):
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            records += [record for part in batch.values() for record in part]
        return records


async def topic_size(bootstrap: str, topic: str, *, partitions: int = 3) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(assigned)
        starts = await consumer.beginning_offsets(assigned)
        return sum(ends[tp] - starts[tp] for tp in assigned)
    finally:
        await consumer.stop()


def headers_of(record: ConsumerRecord) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


async def stored(svc: RunningService, event: dict[str, Any]) -> tuple[int, int]:
    """(copies of ``event`` queued for Kafka or in it, its receipts). The relay deletes an
    outbox row once Kafka has the record: the outbox is read first, Kafka after it, so a row
    published in between is in both (the larger count is taken)."""
    queued = await svc.pool.fetchval("SELECT count(*) FROM outbox WHERE event_id = $1", event["id"])
    published = await published_copies(
        svc.settings.kafka_bootstrap_servers,
        svc.topic(svc.name),
        event["id"],
        partitions=svc.settings.topic_partitions,
    )
    receipts = await svc.pool.fetchval(
        "SELECT count(*) FROM ingestion_receipts WHERE event_id = $1", event["id"]
    )
    return max(queued, published), receipts


async def written(svc: RunningService) -> int:
    """Events the service has written for Kafka: its outbox rows, or their records once the
    relay has published them (it deletes a row once Kafka has the record, at its next read,
    which a test cannot time: counting the outbox alone raced it). The outbox is read first,
    Kafka after it, so a row published in between is in both: each (source, id) counts the
    larger of its copies in the two."""
    rows = await svc.pool.fetch("SELECT event_source, event_id FROM outbox")
    queued = Counter((row["event_source"], row["event_id"]) for row in rows)
    published: Counter[tuple[str, str]] = Counter()
    for topic in {svc.settings.topic(topic_for(t)) for t in service_event_types(svc.name)}:
        published += await published_identities(
            svc.settings.kafka_bootstrap_servers, topic, partitions=svc.settings.topic_partitions
        )
    return sum(max(queued[key], published[key]) for key in queued.keys() | published.keys())


async def published_copies(
    bootstrap: str, topic: str, event_id: str, *, partitions: int = 3
) -> int:
    """The records of ``topic`` with ``ce_id`` = ``event_id``, up to the end offsets of now."""
    published = await published_identities(bootstrap, topic, partitions=partitions)
    return sum(copies for (_, id_), copies in published.items() if id_ == event_id)


async def published_identities(
    bootstrap: str, topic: str, *, partitions: int = 3
) -> Counter[tuple[str, str]]:
    """The records of ``topic`` up to the end offsets of now, by (``ce_source``, ``ce_id``)."""
    found: Counter[tuple[str, str]] = Counter()
    async with _from_the_beginning(bootstrap, topic, partitions) as (consumer, assigned):
        ends = await consumer.end_offsets(assigned)
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                found.update(
                    (headers.get("ce_source", ""), headers.get("ce_id", ""))
                    for headers in map(headers_of, records)
                )
    return found


async def backend_waiting_for_a_lock(admin: asyncpg.Connection) -> int:
    """The pid of the service backend blocked on the row lock the admin holds."""
    found: list[int] = []

    async def waiting() -> bool:
        found[:] = [
            r["pid"]
            for r in await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        ]
        return len(found) == 1

    await eventually(waiting, timeout=30)
    return found[0]
