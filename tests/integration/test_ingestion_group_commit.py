"""Group commit: concurrent single-event POSTs share one transaction, and each is still
answered as if it had been sent alone (real PostgreSQL, real Kafka).

The service runs with one writer and a long linger (0.3 s), so requests sent together land
in one group; that they did is checked in the database: rows written by one transaction
carry the same ``xmin``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from ingestion_helpers import (
    RunningService,
    backend_waiting_for_a_lock,
    example,
    headers_of,
    read_records,
    running,
    stored,
    structured,
)

from inprocess import metric_total
from support import SCRAPE
from teamnl_shared.contract.envelope import Event

pytestmark = pytest.mark.integration
PLANNED = "nl.teamnl.nlib.mission.planned.v1"
HELD = "nl.teamnl.nlib.mission.held.v1"
FOLLOWUP = "nl.teamnl.nlib.mission.followup.held.v1"
LINGER = 1.0  # long: requests sent together share a group even on a loaded machine


@pytest.fixture
async def svc(database_url: str, kafka_bootstrap: str) -> AsyncIterator[RunningService]:
    async with running(
        "nlib",
        database_url,
        kafka_bootstrap,
        group_commit_writers=1,
        group_commit_linger=LINGER,
    ) as service:
        yield service


def mission(event_type: str, suffix: str) -> dict[str, Any]:
    return structured(event_type, example(event_type, suffix))


async def post_together(svc: RunningService, key: str, *events: Any) -> list[httpx.Response]:
    return list(await asyncio.gather(*(svc.post(event, key) for event in events)))


async def transactions_of(svc: RunningService, *events: dict[str, Any]) -> set[str]:
    """The transactions (xmin) that wrote the receipts of ``events`` (their outbox rows are
    written by the same statement; the relay deletes those once Kafka has them)."""
    rows = await svc.pool.fetch(
        "SELECT xmin::text AS tx FROM ingestion_receipts WHERE event_id = ANY($1::text[])",
        [e["id"] for e in events],
    )
    assert len(rows) == len({e["id"] for e in events}), "an event has no receipt"
    return {row["tx"] for row in rows}


async def test_concurrent_requests_share_one_transaction_each_with_its_own_trace(
    svc: RunningService,
) -> None:
    """Proves: eight single POSTs sent together are committed by ONE transaction, each
    answered 202 with its own receipt and outbox sequence, and each outbox row carries the
    trace context of its own request (so each publish continues its own request's trace)."""
    key = await svc.key()
    events = [mission(PLANNED, f"-g{n}") for n in range(8)]
    responses = await post_together(svc, key, *events)
    assert [r.status_code for r in responses] == [202] * 8, [r.text for r in responses]
    receipts = [r.json() for r in responses]
    assert [r["id"] for r in receipts] == [e["id"] for e in events]
    assert len({r["sequence"] for r in receipts}) == 8
    assert len(await transactions_of(svc, *events)) == 1, "not one shared transaction"

    records = await read_records(svc.settings.kafka_bootstrap_servers, svc.topic("nlib"), 8)
    traces = {headers_of(r)["ce_id"]: headers_of(r)["traceparent"].split("-")[1] for r in records}
    assert set(traces) == {e["id"] for e in events}
    assert len(set(traces.values())) == 8, "the requests' outbox rows share a trace"


async def test_each_transaction_is_counted_with_the_requests_it_carried(
    svc: RunningService,
) -> None:
    """Proves: the group-size histogram gets one record per transaction, of the number of
    requests it carried: eight sent together, then one alone, make two records, of 8 and 1
    (in the buckets up to 8 and up to 1)."""
    key = await svc.key()
    together = [mission(PLANNED, f"-size{n}") for n in range(8)]
    assert [r.status_code for r in await post_together(svc, key, *together)] == [202] * 8
    assert len(await transactions_of(svc, *together)) == 1, "not one shared transaction"
    assert (await svc.post(mission(PLANNED, "-size-alone"), key)).status_code == 202

    page = (await svc.client.get("/metrics", headers=SCRAPE)).text
    name = "teamnl_ingestion_group_size"
    assert metric_total(page, f"{name}_count", service="nlib") == 2
    assert metric_total(page, f"{name}_sum", service="nlib") == 9
    assert metric_total(page, f"{name}_bucket", service="nlib", le="1.0") == 1
    assert metric_total(page, f"{name}_bucket", service="nlib", le="4.0") == 1
    assert metric_total(page, f"{name}_bucket", service="nlib", le="8.0") == 2


async def test_duplicates_within_one_group_answer_replay_and_conflict(
    svc: RunningService,
) -> None:
    """Proves: two copies of one event in the same group answer 202 and 200 with the
    identical receipt; a copy with other content answers 409; one row each is stored; and a
    replay in a later group answers 200 with that receipt too."""
    key = await svc.key()
    original = mission(PLANNED, "-dup")
    conflicting = {**original, "data": {**original["data"], "title": "another title"}}
    other = mission(PLANNED, "-dup-other")
    first, again, other_answer = await post_together(svc, key, original, dict(original), other)
    assert sorted([first.status_code, again.status_code]) == [200, 202]
    assert first.json() == again.json()
    replayed = first if first.status_code == 200 else again
    assert replayed.headers["idempotent-replay"] == "true"
    assert other_answer.status_code == 202
    assert len(await transactions_of(svc, original, other)) == 1, "not one group"

    a, b = await post_together(svc, key, mission(PLANNED, "-c1"), conflicting)
    assert a.status_code == 202
    assert b.status_code == 409, b.text
    assert b.json()["errors"][0]["field"] == "id"
    later = await svc.post(original, key)
    assert later.status_code == 200
    assert later.json() == first.json()
    assert await stored(svc, original) == (1, 1)


async def test_a_refused_event_and_a_crashing_handler_fail_alone(
    svc: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: in one group, an event the domain refuses answers 422 and one whose handler
    crashes answers 500, while every other event of the group is accepted and stored (and
    nothing of the two failed ones is)."""
    key = await svc.key()
    handlers = svc.runtime.service.handlers
    real = handlers[HELD]
    crashing = mission(HELD, "-crash")

    async def crash_on_one(conn: asyncpg.Connection, event: Event) -> None:
        if event.id == crashing["id"]:
            raise RuntimeError("a bug in one handler")
        await real(conn, event)

    monkeypatch.setitem(handlers, HELD, crash_on_one)  # type: ignore[index]
    # The 500 is answered by the app's handler; let it through instead of raising here.
    transport = httpx.ASGITransport(app=svc.app, raise_app_exceptions=False)
    monkeypatch.setattr(svc, "client", httpx.AsyncClient(transport=transport, base_url="http://t"))
    good = [mission(PLANNED, f"-ok{n}") for n in range(3)]
    refused = mission(FOLLOWUP, "-never-held")
    responses = await post_together(svc, key, good[0], refused, good[1], crashing, good[2])
    statuses = [r.status_code for r in responses]
    assert statuses == [202, 422, 202, 500, 202], [r.text for r in responses]
    assert responses[1].json()["errors"][0]["field"] == "data/mission_id"
    for event in good:
        assert await stored(svc, event) == (1, 1)
    assert await stored(svc, refused) == (0, 0)
    assert await stored(svc, crashing) == (0, 0)


async def test_a_connection_ended_mid_group_answers_503_to_all_and_stores_nothing(
    svc: RunningService, database_url: str
) -> None:
    """Proves: when PostgreSQL ends the writer's connection while a group is inside its
    transaction, every request of the group answers 503 with Retry-After, none of their rows
    are stored, and each retried request is accepted once."""
    key = await svc.key()
    planned = mission(PLANNED, "-out")
    assert (await svc.post(planned, key)).status_code == 202
    held = mission(HELD, "-out")
    others = [mission(PLANNED, f"-out{n}") for n in range(3)]
    admin = await asyncpg.connect(database_url)
    try:
        async with admin.transaction():
            await admin.execute(
                "SELECT 1 FROM missions WHERE mission_id = $1 FOR UPDATE",
                held["data"]["mission_id"],
            )
            requests = asyncio.gather(*(svc.post(e, key) for e in [*others, held]))
            pid = await backend_waiting_for_a_lock(admin)
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            responses = await requests
    finally:
        await admin.close()
    for response in responses:
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) >= 1
    for event in [*others, held]:
        assert await stored(svc, event) == (0, 0)
    retried = await post_together(svc, key, *others, held)
    assert [r.status_code for r in retried] == [202] * 4
    for event in [*others, held]:
        assert await stored(svc, event) == (1, 1)


async def test_without_group_commit_each_request_has_its_own_transaction(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves the knob the bench compares with: ``group_commit_writers=0`` commits each
    request alone (and the test above would fail without group commit)."""
    async with running("nlib", database_url, kafka_bootstrap, group_commit_writers=0) as svc:
        key = await svc.key()
        events = [mission(PLANNED, f"-alone{n}") for n in range(4)]
        responses = await post_together(svc, key, *events)
        assert [r.status_code for r in responses] == [202] * 4
        assert len(await transactions_of(svc, *events)) == 4
