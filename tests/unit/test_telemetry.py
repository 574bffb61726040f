"""The telemetry bootstrap, proved with in-memory exporters (no collector, no broker)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI, Request
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer
from prometheus_client import generate_latest

from teamnl_shared.telemetry import (
    RequestLogMiddleware,
    Telemetry,
    configure_logging,
    consume_span,
    context_from_headers,
    current_traceparent,
    inject_traceparent,
    messaging,
    setup_telemetry,
    span_trace_headers,
    trace_headers,
)
from teamnl_shared.telemetry.messaging import KafkaRecord, start_consume_span, start_publish_span

OTEL_ENV = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)
API_KEY = "tnl_abcdefgh_secretsecret"


@dataclass
class FakeRecord:
    """The fields of aiokafka's ConsumerRecord that consume_span reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(spans: InMemorySpanExporter) -> Iterator[Telemetry]:
    telemetry = setup_telemetry(
        "nlib", "1.2.3", "test", span_exporter=spans, metric_reader=InMemoryMetricReader()
    )
    yield telemetry
    telemetry.shutdown()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("nlib", "INFO", stream=stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


def log_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_spans_and_metrics_carry_the_service_resource(
    telemetry: Telemetry, spans: InMemorySpanExporter
) -> None:
    with telemetry.tracer("test").start_as_current_span("work"):
        pass

    attributes = spans.get_finished_spans()[0].resource.attributes
    assert attributes["service.name"] == "nlib"
    assert attributes["service.version"] == "1.2.3"
    assert attributes["deployment.environment"] == "test"
    assert telemetry.meter_provider._sdk_config.resource.attributes["service.name"] == "nlib"


def test_otel_env_overrides_the_resource_given_in_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "nlib-canary")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=nlib-0,service.version=9")

    telemetry = setup_telemetry("nlib", "1.2.3", "test")

    attributes = telemetry.resource.attributes
    assert attributes["service.name"] == "nlib-canary"
    assert attributes["service.version"] == "9"
    assert attributes["k8s.pod.name"] == "nlib-0"
    assert attributes["deployment.environment"] == "test"
    telemetry.shutdown()


def test_no_otlp_exporter_without_an_endpoint(spans: InMemorySpanExporter) -> None:
    telemetry = setup_telemetry("nlib", "1", "test", span_exporter=spans)

    assert telemetry.span_exporters == (spans,)
    assert not any(isinstance(r, PeriodicExportingMetricReader) for r in telemetry.metric_readers)
    telemetry.shutdown()


def test_otlp_exporters_when_the_endpoint_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")

    telemetry = setup_telemetry("nlib", "1", "test")

    assert [type(e) for e in telemetry.span_exporters] == [OTLPSpanExporter]
    (periodic,) = [
        r for r in telemetry.metric_readers if isinstance(r, PeriodicExportingMetricReader)
    ]
    assert isinstance(periodic._exporter, OTLPMetricExporter)
    telemetry.shutdown()


def test_only_traces_are_exported_with_a_traces_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")

    telemetry = setup_telemetry("nlib", "1", "test")

    assert [type(e) for e in telemetry.span_exporters] == [OTLPSpanExporter]
    assert not any(isinstance(r, PeriodicExportingMetricReader) for r in telemetry.metric_readers)
    telemetry.shutdown()


def test_traceparent_round_trip_keeps_the_trace(telemetry: Telemetry) -> None:
    with telemetry.tracer("test").start_as_current_span("request") as span:
        stored = inject_traceparent()
        header_value = current_traceparent()

    extracted = context_from_headers(stored)
    remote = trace.get_current_span(extracted).get_span_context()
    assert remote.trace_id == span.get_span_context().trace_id
    assert remote.span_id == span.get_span_context().span_id
    assert remote.is_remote
    assert stored["traceparent"] == header_value
    assert inject_traceparent() == {}  # outside any span there is nothing to carry


def test_the_consumer_span_is_a_child_of_the_publish_span(
    telemetry: Telemetry, spans: InMemorySpanExporter
) -> None:
    tracer = telemetry.tracer("test")
    with tracer.start_as_current_span("POST /events") as request_span:
        outbox_row_trace = inject_traceparent()

    with start_publish_span(
        tracer, "teamnl.nlib.events", "mission-1", 3, "evt-1", outbox_row_trace
    ) as publish:
        headers = [("ce_id", b"evt-1"), *span_trace_headers(publish)]
    record = FakeRecord("teamnl.nlib.events", 3, 42, b"mission-1", headers)
    with consume_span(tracer, record, "dashboard"):
        pass

    producer = _finished(spans, "send teamnl.nlib.events")
    consumer = _finished(spans, "process teamnl.nlib.events")
    request_context = request_span.get_span_context()
    assert producer.context is not None and producer.parent is not None
    assert producer.context.trace_id == request_context.trace_id
    assert producer.parent.span_id == request_context.span_id
    assert consumer.context is not None and consumer.parent is not None
    assert consumer.context.trace_id == request_context.trace_id
    assert consumer.parent.span_id == producer.context.span_id
    assert producer.kind is SpanKind.PRODUCER
    assert dict(producer.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.destination.name": "teamnl.nlib.events",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.message.id": "evt-1",
        "messaging.kafka.message.key": "mission-1",
        "messaging.destination.partition.id": "3",
    }
    assert consumer.kind is SpanKind.CONSUMER
    assert dict(consumer.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.destination.name": "teamnl.nlib.events",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.consumer.group.name": "dashboard",
        "messaging.destination.partition.id": "3",
        "messaging.kafka.offset": 42,
        "messaging.kafka.message.key": "mission-1",
        "messaging.message.id": "evt-1",
    }


def test_a_consume_span_not_made_current_ends_on_exit_and_records_what_the_block_raised(
    telemetry: Telemetry, spans: InMemorySpanExporter
) -> None:
    """`start_consume_span` (for a handler that writes to a buffer): the same span as
    `consume_span`'s, parent and attributes, without becoming the current span."""
    tracer = telemetry.tracer("test")
    with tracer.start_as_current_span("send") as producer:
        headers = [("ce_id", b"evt-1"), *trace_headers()]
    record = FakeRecord("teamnl.nlib.events", 3, 42, b"mission-1", headers)
    with consume_span(tracer, record, "dashboard", "nl.example.v1") as current:
        assert trace.get_current_span() is current
    with start_consume_span(tracer, record, "dashboard", "nl.example.v1") as span:
        assert span.is_recording() and trace.get_current_span() is not span
    with (
        pytest.raises(ValueError, match="refused"),
        start_consume_span(tracer, record, "dashboard") as failed,
    ):
        raise ValueError("refused")

    _send, made_current, not_current, refused = spans.get_finished_spans()
    assert not_current.name == made_current.name == "process teamnl.nlib.events"
    assert not_current.parent is not None
    assert not_current.parent.span_id == producer.get_span_context().span_id
    assert not_current.attributes == made_current.attributes
    assert not_current.status.is_ok and not not_current.events
    assert refused.context is not None
    assert refused.context.span_id == failed.get_span_context().span_id
    assert refused.status.status_code is trace.StatusCode.ERROR
    assert [event.name for event in refused.events] == ["exception"]


def test_a_publish_span_not_made_current_gives_the_record_its_own_context(
    telemetry: Telemetry, spans: InMemorySpanExporter
) -> None:
    """`start_publish_span` (the relay's) is not made current; `span_trace_headers` puts
    its own context on the record all the same, not the request's."""
    tracer = telemetry.tracer("test")
    with tracer.start_as_current_span("POST /events") as request:
        stored = inject_traceparent()
    with start_publish_span(tracer, "teamnl.nlib.events", "m", 3, "evt-1", stored) as span:
        assert trace.get_current_span() is not span
        headers = span_trace_headers(span)
    assert trace_headers() == []  # outside any span, nothing leaked into the context

    [publish] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    assert publish.parent is not None
    assert publish.parent.span_id == request.get_span_context().span_id
    assert publish.context is not None
    traceparent = dict(headers)["traceparent"].decode()
    ids = f"{publish.context.trace_id:032x}-{publish.context.span_id:016x}"
    assert traceparent == f"00-{ids}-{int(publish.context.trace_flags):02x}"
    assert stored["traceparent"] != dict(headers)["traceparent"]


def test_the_publish_spans_of_one_stored_context_read_it_once(
    telemetry: Telemetry, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records of a batch request all carry that request's trace context: the relay's
    publish spans read it once, and each span still gets the parent of its own row."""
    tracer = telemetry.tracer("test")
    with tracer.start_as_current_span("POST /events:batch") as batch_request:
        batch_trace = inject_traceparent()
    with tracer.start_as_current_span("POST /events") as single_request:
        single_trace = inject_traceparent()
    reads: list[object] = []
    read = messaging._PROPAGATOR.extract

    def counted(carrier: object, *args: object, **kwargs: object) -> object:
        reads.append(carrier)
        return read(carrier, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(messaging._PROPAGATOR, "extract", counted)

    rows = [(f"evt-{n}", batch_trace) for n in range(3)] + [("evt-3", single_trace)]
    rows.append(("evt-4", batch_trace))
    for message_id, stored in rows:
        with start_publish_span(tracer, "teamnl.nlib.events", "m", 0, message_id, stored):
            pass

    assert reads == [batch_trace, single_trace]
    published = [s for s in spans.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    parents = [span.parent.span_id if span.parent else None for span in published]
    batch_id = batch_request.get_span_context().span_id
    single_id = single_request.get_span_context().span_id
    assert parents == [batch_id, batch_id, batch_id, single_id, batch_id]
    assert len({span.context.span_id for span in published if span.context}) == 5


def test_trace_sampling_is_the_operators_choice_and_follows_the_request(
    monkeypatch: pytest.MonkeyPatch, spans: InMemorySpanExporter
) -> None:
    """Proves what the README promises: ``OTEL_TRACES_SAMPLER`` chooses (setup does not
    override it). With a ratio of 0 a request records no span, yet its trace context still
    travels on the outbox row and the record, and the consume span follows the request's
    choice (parent-based): only the record whose traceparent says sampled is recorded."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    telemetry = setup_telemetry("nlib", "1", "test", span_exporter=spans)
    tracer = telemetry.tracer("test")
    with tracer.start_as_current_span("POST /events"):
        outbox_row_trace = inject_traceparent()
    flags = int(outbox_row_trace["traceparent"].rsplit("-", 1)[1], 16)
    assert flags & 1 == 0, "carried, marked not sampled"
    with start_publish_span(tracer, "t", "k", 0, "e-1", outbox_row_trace) as publish:
        headers = [("ce_id", b"e-1"), *span_trace_headers(publish)]
    with consume_span(tracer, FakeRecord("t", 0, 1, b"k", headers), "g"):
        pass
    sampled = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    with consume_span(tracer, FakeRecord("t", 0, 2, b"k", sampled), "g"):
        pass
    assert [span.name for span in spans.get_finished_spans()] == ["process t"]
    telemetry.shutdown()


def test_a_record_without_traceparent_starts_a_new_trace(
    telemetry: Telemetry, spans: InMemorySpanExporter
) -> None:
    tracer = telemetry.tracer("test")
    record: KafkaRecord = FakeRecord("teamnl.nlib.events", 0, 1, None)
    with tracer.start_as_current_span("poll loop"), consume_span(tracer, record, "g"):
        pass

    assert _finished(spans, "process teamnl.nlib.events").parent is None


async def test_metrics_are_served_with_their_prometheus_names(telemetry: Telemetry) -> None:
    metrics = telemetry.metrics
    metrics.event_accepted(
        service="nlib", event_type="nl.teamnl.nlib.mission.held.v1", partner="rvo"
    )
    metrics.event_rejected(service="nlib", event_type="x", partner="rvo", reason="schema")
    metrics.observe_outbox(lambda: (7, 2.5))
    metrics.set_consumer_lag(topic="teamnl.nlib.events", partition=0, lag=12)
    metrics.record_end_to_end_latency(0.040, topic="teamnl.nlib.events", event_type="x")
    metrics.deadlettered(topic="teamnl.nlib.events", reason="poison")
    metrics.observe_findings(lambda: {("missing-country", "high"): 4})
    metrics.group_committed(service="nlib", events=8)
    app = FastAPI()
    token = "t" * 40
    app.add_route("/metrics", telemetry.metrics_endpoint(token), include_in_schema=False)

    async with _client(app) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})

    assert response.headers["content-type"].startswith("text/plain")
    samples = {line.split("{")[0].split(" ")[0]: line for line in response.text.splitlines()}
    assert 'partner="rvo"' in samples["teamnl_events_accepted_total"]
    assert 'reason="schema"' in samples["teamnl_events_rejected_total"]
    assert samples["teamnl_outbox_backlog"].endswith(" 7.0")
    assert samples["teamnl_outbox_oldest_age_seconds"].endswith(" 2.5")
    assert samples["teamnl_consumer_lag"].endswith(" 12.0")
    assert 'le="0.001"' in response.text and 'le="30.0"' in response.text
    assert "teamnl_end_to_end_latency_seconds_bucket" in samples
    assert samples["teamnl_end_to_end_latency_seconds_count"].endswith(" 1.0")
    assert samples["teamnl_end_to_end_latency_seconds_sum"].endswith(" 0.04")
    assert 'reason="poison"' in samples["teamnl_deadletter_total"]
    assert 'severity="high"' in samples["teamnl_findings_open"]
    assert 'service="nlib"' in samples["teamnl_ingestion_group_size_count"]
    assert samples["teamnl_ingestion_group_size_sum"].endswith(" 8.0")
    assert 'le="1000.0"' in response.text


def test_two_setups_in_one_process_are_independent() -> None:
    first_spans, second_spans = InMemorySpanExporter(), InMemorySpanExporter()
    first = setup_telemetry("nlib", "1", "test", span_exporter=first_spans)
    second = setup_telemetry("tinl", "1", "test", span_exporter=second_spans)

    first.metrics.deadlettered(topic="a", reason="r")
    second.metrics.deadlettered(topic="b", reason="r")
    with second.tracer("t").start_as_current_span("only-in-second"):
        pass

    assert first.registry is not second.registry
    assert 'topic="a"' in _scrape(first) and 'topic="b"' not in _scrape(first)
    assert 'topic="b"' in _scrape(second)
    assert first_spans.get_finished_spans() == ()
    assert [s.name for s in second_spans.get_finished_spans()] == ["only-in-second"]
    assert second_spans.get_finished_spans()[0].resource.attributes["service.name"] == "tinl"
    first.shutdown()
    second.shutdown()


def test_a_json_log_line_carries_the_current_trace(
    telemetry: Telemetry, log_stream: io.StringIO
) -> None:
    logger = logging.getLogger("teamnl.test")
    with telemetry.tracer("test").start_as_current_span("work") as span:
        logger.info("accepted %s", "evt-1", extra={"event_id": "evt-1"})
    logger.warning("outside")

    inside, outside = log_lines(log_stream)
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert inside["message"] == "accepted evt-1"
    assert inside["level"] == "INFO"
    assert inside["logger"] == "teamnl.test"
    assert inside["service"] == "nlib"
    assert inside["event_id"] == "evt-1"
    assert str(inside["timestamp"]).endswith("+00:00")
    assert (outside["trace_id"], outside["span_id"]) == ("", "")


def test_secrets_are_redacted_from_messages_and_extras(log_stream: io.StringIO) -> None:
    logger = logging.getLogger("teamnl.test")
    logger.info(
        "key %s refused",
        API_KEY,
        extra={
            "authorization": f"Bearer {API_KEY}",
            "X-Api-Key": "anything",
            "request": {"cookie": "session=1", "note": f"sent {API_KEY}"},
            "partner": "rvo",
        },
    )
    try:
        raise ValueError(f"bad key {API_KEY}")
    except ValueError:
        logger.exception("failed")

    output = log_stream.getvalue()
    assert API_KEY not in output
    assert "anything" not in output and "session=1" not in output
    line, failure = log_lines(log_stream)
    assert line["message"] == "key [REDACTED] refused"
    assert line["authorization"] == "[REDACTED]"
    assert line["X-Api-Key"] == "[REDACTED]"
    assert line["request"] == {"cookie": "[REDACTED]", "note": "sent [REDACTED]"}
    assert line["partner"] == "rvo"
    assert "bad key [REDACTED]" in str(failure["exc_info"])


async def test_fastapi_requests_are_traced_and_access_logged_without_headers(
    telemetry: Telemetry, spans: InMemorySpanExporter, log_stream: io.StringIO
) -> None:
    app = FastAPI(telemetry=telemetry.http_telemetry())

    @app.get("/events/{event_id}")
    async def read_event(event_id: str, request: Request) -> dict[str, str]:
        request.state.partner = SimpleNamespace(slug="rvo")
        return {"id": event_id}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(RequestLogMiddleware)

    async with _client(app) as client:
        event = await client.get("/events/e1?sig=x", headers={"Authorization": API_KEY})
        health = await client.get("/healthz")

    assert (event.status_code, health.status_code) == (200, 200)

    server_spans = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in server_spans] == ["GET /events/{event_id}"]
    # one span per request: none per ASGI message (``http send`` / ``http receive``)
    assert [s.name for s in spans.get_finished_spans()] == ["GET /events/{event_id}"]
    access = [line for line in log_lines(log_stream) if line["logger"] == "teamnl.access"]
    assert [line["path"] for line in access] == ["/events/e1", "/healthz"]
    first = access[0]
    assert (first["method"], first["status"], first["partner"]) == ("GET", 200, "rvo")
    assert isinstance(first["duration_ms"], float)
    assert first["trace_id"] == format(server_spans[0].context.trace_id, "032x")
    assert API_KEY not in json.dumps(access) and "sig=x" not in json.dumps(access)
    durations = [
        line
        for line in _scrape(telemetry).splitlines()
        if line.startswith("http_server_request_duration_seconds_count")
    ]
    assert len(durations) == 1, durations  # the probe is not measured
    assert 'http_route="/events/{event_id}"' in durations[0]
    assert 'http_response_status_code="200"' in durations[0]


def test_asyncpg_is_instrumented_once_per_process(telemetry: Telemetry) -> None:
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]  # a singleton
    was_instrumented = instrumentor.is_instrumented_by_opentelemetry

    telemetry.instrument_asyncpg()
    telemetry.instrument_asyncpg()

    assert instrumentor.is_instrumented_by_opentelemetry
    if not was_instrumented:
        instrumentor.uninstrument()


def test_asyncpg_is_not_instrumented_when_the_agents_variable_disables_it(
    telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, read as the OpenTelemetry agent reads
    it (a comma-separated list, or *), turns the statement spans off; another name does not."""
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]  # a singleton
    was_instrumented = instrumentor.is_instrumented_by_opentelemetry
    if was_instrumented:
        instrumentor.uninstrument()
    try:
        for listed in ("asyncpg", "requests , asyncpg", "*"):
            monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", listed)
            telemetry.instrument_asyncpg()
            assert not instrumentor.is_instrumented_by_opentelemetry, listed
        monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "requests")
        telemetry.instrument_asyncpg()
        assert instrumentor.is_instrumented_by_opentelemetry
    finally:
        if not was_instrumented and instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def _scrape(telemetry: Telemetry) -> str:
    return generate_latest(telemetry.registry).decode()


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _finished(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in spans.get_finished_spans() if s.name == name]
    return span


def test_process_wide_instrumentation_spans_go_to_the_app_of_their_parent() -> None:
    """Proves: with two apps in one process, a span made by a once-per-process
    instrumentation (asyncpg's) lands in the exporter of the app whose span is its parent."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from teamnl_shared.telemetry.routing import ParentRoutedTracerProvider

    exporters = [InMemorySpanExporter(), InMemorySpanExporter()]
    providers = [TracerProvider(), TracerProvider()]
    for provider, exporter in zip(providers, exporters, strict=True):
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    router = ParentRoutedTracerProvider()
    for provider in providers:
        router.register(provider)
    library_tracer = router.get_tracer("a-library")

    for app, provider in enumerate(providers):
        request = provider.get_tracer("app").start_as_current_span(f"request {app}")
        with request, library_tracer.start_as_current_span(f"query {app}"):
            pass
    names = [sorted(s.name for s in e.get_finished_spans()) for e in exporters]
    assert names == [["query 0", "request 0"], ["query 1", "request 1"]]


def _routed_once() -> tuple[InMemorySpanExporter, TracerProvider, Tracer]:
    """One app's provider (spans to the exporter) and a library's tracer routed to it."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from teamnl_shared.telemetry.routing import ParentRoutedTracerProvider

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    router = ParentRoutedTracerProvider()
    router.register(provider)
    return exporter, provider, router.get_tracer("a-library")


def test_process_wide_instrumentation_makes_no_span_outside_a_trace() -> None:
    """Proves: a query with no parent span (the outbox relay's read and mark, a poll loop)
    records no span of its own, while the same query inside a request is recorded."""
    exporter, provider, library_tracer = _routed_once()

    with library_tracer.start_as_current_span("relay poll") as lone:
        assert not lone.is_recording()
    library_tracer.start_span("relay mark").end()
    request = provider.get_tracer("app").start_as_current_span("request")
    with request, library_tracer.start_as_current_span("query") as inside:
        assert inside.is_recording()
    assert sorted(s.name for s in exporter.get_finished_spans()) == ["query", "request"]


def test_process_wide_instrumentation_makes_no_span_for_transaction_control() -> None:
    """Proves: inside a trace, BEGIN, COMMIT, SAVEPOINT and RELEASE (named as asyncpg's
    instrumentation names them: the statement's first word) record no span, while the
    statements between them and a ROLLBACK do."""
    exporter, provider, library_tracer = _routed_once()

    statements = ["BEGIN;", "INSERT", "SAVEPOINT", "UPDATE", "RELEASE", "ROLLBACK;", "COMMIT;"]
    with provider.get_tracer("app").start_as_current_span("group commit"):
        for name in statements:
            with library_tracer.start_as_current_span(name):
                pass
        library_tracer.start_span("commit").end()
    recorded = [s.name for s in exporter.get_finished_spans()]
    assert recorded == ["INSERT", "UPDATE", "ROLLBACK;", "group commit"]


def test_process_wide_instrumentation_asks_each_provider_for_its_tracer_once() -> None:
    """Proves: the routed tracer keeps each app's tracer (the SDK's get_tracer, which also
    resets the warnings filters, is not paid per query)."""
    from unittest import mock

    from opentelemetry.sdk.trace import TracerProvider

    from teamnl_shared.telemetry.routing import ParentRoutedTracerProvider

    providers = [TracerProvider(), TracerProvider()]
    router = ParentRoutedTracerProvider()
    for provider in providers:
        router.register(provider)
    library_tracer = router.get_tracer("a-library")
    spies = [mock.patch.object(p, "get_tracer", wraps=p.get_tracer) for p in providers]
    with spies[0] as first, spies[1] as second:
        for _ in range(5):
            for provider in providers:
                with provider.get_tracer("app").start_as_current_span("request"):
                    library_tracer.start_span("query").end()
    # the app's own get_tracer("app") calls are 5 each; the library's add one each
    assert [c.args[0] for c in first.call_args_list].count("a-library") == 1
    assert [c.args[0] for c in second.call_args_list].count("a-library") == 1
