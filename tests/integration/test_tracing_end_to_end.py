"""One event's trace, from the partner's HTTP request to the dashboard's projection.

NLIB and the dashboard run in this process as in production (their own composition roots,
real uvicorn, real PostgreSQL, real Kafka), each with its own telemetry whose spans go to
an in-memory exporter of its own.

What this proves: one POST to NLIB gives ONE trace, linked parent to child across the
outbox table and Kafka: the HTTP server span -> the outbox INSERT (asyncpg) inside it (its
transaction's BEGIN and COMMIT without spans of their own) ->
the relay's PRODUCER span (Kafka messaging attributes) -> the dashboard's CONSUMER span,
which names the event type it projected; and each service's spans reach only that
service's exporter.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from inprocess import metric_total, mission_held, nlib_and_dashboard, post_event, scrape
from support import eventually
from teamnl_shared.telemetry import setup_telemetry
from teamnl_suite.infra import Infrastructure

pytestmark = pytest.mark.integration


@pytest.fixture
def asyncpg_uninstrumented() -> Iterator[None]:
    """asyncpg's instrumentation patches the module for the whole process, bound to the
    provider of whoever instrumented it first: start from none, so that NLIB's own
    `instrument_asyncpg` call (NLIB is built first) is the one that counts here, and leave
    none behind. (In production each service is a process of its own.)"""
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]  # a singleton
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    yield
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


def hex_id(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def is_descendant(span: ReadableSpan, ancestor: ReadableSpan, spans: list[ReadableSpan]) -> bool:
    by_id = {s.context.span_id: s for s in spans}
    current: ReadableSpan | None = span
    while current is not None and current.parent is not None:
        if current.parent.span_id == ancestor.context.span_id:
            return True
        current = by_id.get(current.parent.span_id)
    return False


def statement(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    return str(attributes.get("db.statement") or attributes.get("db.query.text") or "")


def one(spans: list[ReadableSpan], what: str) -> ReadableSpan:
    assert len(spans) == 1, f"expected one {what}, found {[s.name for s in spans]}"
    return spans[0]


@pytest.mark.usefixtures("asyncpg_uninstrumented")
def hex_id_of(context: object) -> str:
    return format(context.trace_id, "032x")  # type: ignore[attr-defined]


async def test_one_event_is_one_trace_from_http_to_projection(infra: Infrastructure) -> None:
    nlib_spans, dashboard_spans = InMemorySpanExporter(), InMemorySpanExporter()
    nlib_telemetry = setup_telemetry("nlib", "test", "test", span_exporter=nlib_spans)
    dashboard_telemetry = setup_telemetry(
        "iso-dashboard", "test", "test", span_exporter=dashboard_spans
    )
    event = mission_held("m-traced")
    try:
        async with nlib_and_dashboard(
            infra, nlib_telemetry=nlib_telemetry, dashboard_telemetry=dashboard_telemetry
        ) as pipeline:
            async with httpx.AsyncClient(base_url=pipeline.nlib_url) as client:
                response = await post_event(client, pipeline.key, event)
            assert response.status_code == 202, response.text

            def consumer_spans() -> list[ReadableSpan]:
                return [
                    s
                    for s in dashboard_spans.get_finished_spans()
                    if s.kind is SpanKind.CONSUMER
                    and (s.attributes or {}).get("messaging.message.id") == event["id"]
                ]

            def pushed() -> bool:  # the push ends after the commit and its latency
                sent = {
                    s.context.span_id
                    for s in nlib_spans.get_finished_spans()
                    if (s.attributes or {}).get("messaging.message.id") == event["id"]
                }
                return any(
                    link.context.span_id in sent
                    for s in dashboard_spans.get_finished_spans()
                    if s.name == "live push"
                    for link in s.links
                )

            async def projected() -> bool:  # the dashboard records latency after commit
                latency = "teamnl_end_to_end_latency_seconds_count"
                return metric_total(scrape(dashboard_telemetry), latency) >= 1 and pushed()

            await eventually(projected)
            nlib = list(nlib_spans.get_finished_spans())
            dashboard = list(dashboard_spans.get_finished_spans())
    finally:
        nlib_telemetry.shutdown()
        dashboard_telemetry.shutdown()

    server = one(
        [s for s in nlib if s.kind is SpanKind.SERVER and s.name == "POST /v1/events"],
        "NLIB server span",
    )
    trace_id = hex_id(server)
    in_trace = [s for s in nlib + dashboard if hex_id(s) == trace_id]

    outbox_write = one(
        [s for s in nlib if "INSERT INTO outbox (" in statement(s)], "outbox INSERT span"
    )
    assert outbox_write.kind is SpanKind.CLIENT
    assert (outbox_write.attributes or {}).get("db.system") == "postgresql"
    assert is_descendant(outbox_write, server, nlib), "the outbox INSERT is not in the request"
    # Its transaction's BEGIN and COMMIT are timed by the group commit span, not spans of
    # their own.
    statements = [statement(s).rstrip(";") for s in in_trace if s.kind is SpanKind.CLIENT]
    assert "INSERT INTO outbox (" in " ".join(statements)
    assert not {"BEGIN", "COMMIT"} & set(statements), statements

    publish = one([s for s in nlib if s.kind is SpanKind.PRODUCER], "relay PRODUCER span")
    assert publish.name == f"send {pipeline.nlib_topic}"
    assert dict(publish.attributes or {}) | {
        "messaging.system": "kafka",
        "messaging.destination.name": pipeline.nlib_topic,
        "messaging.operation.type": "send",
        "messaging.message.id": event["id"],
    } == dict(publish.attributes or {})
    assert parent_of(publish) == server.context.span_id, "publish does not continue the request"

    consume = one(consumer_spans(), "dashboard CONSUMER span")
    assert consume.name == f"process {pipeline.nlib_topic}"
    assert (consume.attributes or {}).get("messaging.system") == "kafka"
    assert (consume.attributes or {}).get("messaging.operation.type") == "process"
    assert parent_of(consume) == publish.context.span_id, "consume is not a child of publish"

    # The projection's writes run set-based for the whole batch: the consume span names
    # the event type it projected, and no span of the event's is left without a parent.
    assert (consume.attributes or {}).get("teamnl.event.type") == event["type"]

    # The push to browsers serves a whole batch: linked to the trace of each of its events.
    push = one(
        [
            s
            for s in dashboard
            if s.name == "live push"
            and any(link.context.span_id == publish.context.span_id for link in s.links)
        ],
        "live push span linked to the publish span",
    )
    assert any(hex_id_of(link.context) == trace_id for link in push.links)

    chain = [server, outbox_write, publish, consume]
    assert all(span in in_trace for span in chain), "the chain is not one trace"
    # Each app's spans went to its own exporter only.
    assert {s.resource.attributes["service.name"] for s in nlib} == {"nlib"}
    assert {s.resource.attributes["service.name"] for s in dashboard} == {"iso-dashboard"}
