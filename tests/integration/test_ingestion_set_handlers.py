"""Set handlers: the events of a one-statement type are applied many at a time (one round
trip per run of a type), with the outcome and the state of applying them one by one."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg
import httpx
import pytest
from ingestion_helpers import (
    FACTORIES,
    RunningService,
    example,
    running,
    service_settings,
    structured,
    written,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from teamnl_shared.ingestion import receipts
from teamnl_shared.telemetry import setup_telemetry

pytestmark = pytest.mark.integration
PLANNED = "nl.teamnl.nlib.mission.planned.v1"
HELD = "nl.teamnl.nlib.mission.held.v1"
LEAD = "nl.teamnl.nlib.lead.converted.v1"
SUPPORTED = "nl.teamnl.nlib.company.supported.v1"
BUDGET = "nl.teamnl.nlib.budget.spent.v1"


def event(event_type: str, suffix: str, **changes: Any) -> dict[str, Any]:
    return structured(event_type, {**example(event_type, suffix), **changes})


@pytest.fixture
def fetchmany_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The number of argument sets of every ``fetchmany`` round trip, in call order (a spy
    on the real asyncpg connection; the statements still run)."""
    calls: list[int] = []
    real = asyncpg.Connection.fetchmany

    async def counted(self: asyncpg.Connection, query: str, args: Sequence[Any], **kw: Any) -> Any:
        calls.append(len(args))
        return await real(self, query, args, **kw)

    monkeypatch.setattr(asyncpg.Connection, "fetchmany", counted)
    yield calls


async def statuses(svc: RunningService, events: list[dict[str, Any]], key: str) -> list[int]:
    response = await svc.post_batch(events, key)
    assert response.status_code == 200, response.text
    return [item["status"] for item in response.json()["results"]]


async def test_a_batch_applies_each_type_in_one_round_trip_and_keeps_request_order(
    database_url: str, kafka_bootstrap: str, fetchmany_calls: list[int]
) -> None:
    """Proves: 30 interleaved events of three set types on three tables cost three
    statements (10 events each), every row is written, and the outbox holds the events in
    the order of the request."""
    batch = [
        event(event_type, f"-set{n}")
        for n in range(10)
        for event_type in (PLANNED, SUPPORTED, BUDGET)
    ]
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        assert await statuses(svc, batch, await svc.key()) == [202] * 30
        assert sorted(fetchmany_calls) == [10, 10, 10]
        assert await svc.count("missions") == 10
        assert await svc.count("companies") == 10
        assert await svc.count("budget_spendings") == 10
        rows = await svc.pool.fetch(  # the outbox sequence each receipt names
            "SELECT event_id FROM ingestion_receipts ORDER BY (receipt->>'sequence')::bigint"
        )
        assert [row["event_id"] for row in rows] == [e["id"] for e in batch]


async def test_events_on_one_table_or_before_a_plain_handler_apply_in_request_order(
    database_url: str, kafka_bootstrap: str, fetchmany_calls: list[int]
) -> None:
    """Proves: a mission planned then held in one batch ends held (two types on one table
    are not reordered); a lead after its mission's planning finds the mission (a plain
    handler runs after what waits); two supports of one company count twice."""
    planned, held = event(PLANNED, "-order"), event(HELD, "-order")
    lead = event(LEAD, "-order")
    support = event(SUPPORTED, "-order")
    again = event(SUPPORTED, "-order")  # another event id, the same company
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        batch = [planned, held, support, lead, again]
        assert await statuses(svc, batch, await svc.key()) == [202] * 5
        assert fetchmany_calls == [1, 1, 1, 1]  # planned | held + support | lead | again
        mission = await svc.pool.fetchrow(
            "SELECT status, leads_converted FROM missions WHERE mission_id = $1",
            planned["data"]["mission_id"],
        )
        assert (mission["status"], mission["leads_converted"]) == ("held", 1)
        supports = await svc.pool.fetchval(
            "SELECT supports FROM companies WHERE company_id = $1", support["data"]["company_id"]
        )
        assert supports == 2


async def test_a_set_statement_that_writes_no_row_refuses_that_event_alone(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: a mission planned after it was held (409), and a second spending with the
    same spend id (409), are refused by their set statement, each alone; the rest of the
    batch is stored."""
    held = event(HELD, "-refuse")
    late_plan = event(PLANNED, "-refuse")
    spend = event(BUDGET, "-refuse")
    same_spend = event(BUDGET, "-refuse", amount_cents=1)  # another event id
    support = event(SUPPORTED, "-refuse")
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        batch = [held, late_plan, spend, same_spend, support]
        results = (await svc.post_batch(batch, await svc.key())).json()["results"]
        assert [r["status"] for r in results] == [202, 409, 202, 409, 202]
        fields = [r["problem"]["errors"][0]["field"] for r in results if r["problem"]]
        assert fields == ["data/mission_id", "data/spend_id"]
        assert await written(svc) == 3
        status = await svc.pool.fetchval("SELECT status FROM missions")
        assert status == "held"
        assert await svc.pool.fetchval("SELECT amount_cents FROM budget_spendings") == 1250000


async def test_concurrent_single_posts_share_a_set_statement(
    database_url: str,
    kafka_bootstrap: str,
    fetchmany_calls: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Proves: single-event requests grouped by the group commit are applied by one set
    statement per type (fewer round trips than events), each answered 202. A request the
    writer took before the others began is a group of one, applied by the lone statement
    (its own, with its outbox row and receipt): counted beside the set statements' events."""
    lone: list[str] = []
    real = receipts.apply_claim_and_record

    async def counted(conn: asyncpg.Connection, statement: str, *args: Any, **kw: Any) -> Any:
        lone.append(statement)
        return await real(conn, statement, *args, **kw)

    monkeypatch.setattr(receipts, "apply_claim_and_record", counted)
    events = [event(SUPPORTED, f"-group{n}") for n in range(40)]
    async with running("nlib", database_url, kafka_bootstrap, group_commit_linger=0.05) as svc:
        key = await svc.key()
        responses = await asyncio.gather(*(svc.post(e, key) for e in events))
        assert Counter(r.status_code for r in responses) == {202: 40}
        assert sum(fetchmany_calls) + len(lone) == 40
        assert len(fetchmany_calls) + len(lone) < 40
        assert await svc.count("companies") == 40


async def test_the_apply_spans_of_a_batch_reach_its_own_service(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: the span of a run of set-handler events (``apply <table>``) reaches the
    exporter of the service that applied them, inside its request's trace, also when
    another app's telemetry holds the process's global tracer provider (the first one set up
    in a process does; here a throwaway one is set up first)."""
    elsewhere = setup_telemetry("elsewhere", "test", "test", span_exporter=InMemorySpanExporter())
    spans = InMemorySpanExporter()
    telemetry = setup_telemetry("nlib", "test", "test", span_exporter=spans)
    try:
        settings = service_settings("nlib", database_url, kafka_bootstrap)
        app = FACTORIES["nlib"][1](settings, telemetry=telemetry)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                svc = RunningService("nlib", app, client, settings)
                batch = [event(PLANNED, f"-spans{n}") for n in range(2)]
                assert await statuses(svc, batch, await svc.key()) == [202, 202]
        finished = spans.get_finished_spans()
    finally:
        telemetry.shutdown()
        elsewhere.shutdown()

    [applied] = [s for s in finished if s.name == "apply missions"]
    assert (applied.attributes or {}).get("teamnl.events") == 2
    [request] = [s for s in finished if s.name == "POST /v1/events:batch"]
    assert applied.context.trace_id == request.context.trace_id
