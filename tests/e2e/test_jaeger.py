"""Our traces in a real Jaeger (v2, built from source by scripts/build-jaeger.sh).

Two services' telemetry, set up as in production (`setup_telemetry` with only
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` pointing at Jaeger: OTLP over http/protobuf, batch
span processor), record the path of one event: NLIB's HTTP request, the outbox row carrying
its trace context, the relay's publish span, then the dashboard's consume span (naming the
event type it projected). What this proves: Jaeger receives them over OTLP and serves them
back through its query API as one trace of both services, parent to child, with the Kafka messaging
attributes intact. Skipped only where no Go toolchain exists to build Jaeger.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind

from support import eventually, free_port, terminated
from teamnl_shared.telemetry import (
    consume_span,
    inject_traceparent,
    setup_telemetry,
    span_trace_headers,
    start_publish_span,
)

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_SECONDS = 3600  # a cold build on 2 cores takes ~20 minutes

pytestmark = [
    pytest.mark.skipif(
        shutil.which("go") is None,
        reason="Jaeger is built from source with Go (scripts/build-jaeger.sh); no `go` on PATH",
    ),
    # The module fixture may build Jaeger cold (~20 minutes on 2 cores).
    pytest.mark.timeout(BUILD_TIMEOUT_SECONDS + 300),
]


JAEGER_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: info
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


@dataclass(frozen=True)
class Jaeger:
    query_url: str
    otlp_url: str


@pytest.fixture(scope="module")
def jaeger_binary() -> Path:
    """Built once into ~/.cache/teamnl/tools by the project's script (a no-op when there)."""
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-jaeger.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
    )
    binary = Path(built.stdout.strip().splitlines()[-1])
    assert binary.is_file(), f"scripts/build-jaeger.sh printed {binary}, which does not exist"
    return binary


@pytest.fixture
def jaeger(jaeger_binary: Path, tmp_path: Path) -> Iterator[Jaeger]:
    ports = {name: free_port() for name in ("health", "query", "query_grpc", "otlp")}
    config = tmp_path / "jaeger.yaml"
    config.write_text(JAEGER_CONFIG.format(**ports))
    log = (tmp_path / "jaeger.log").open("w")
    process = subprocess.Popen(
        [str(jaeger_binary), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield Jaeger(f"http://127.0.0.1:{ports['query']}", f"http://127.0.0.1:{ports['otlp']}")
    finally:
        terminated(process)
        log.close()


async def jaeger_ready(jaeger: Jaeger) -> None:
    async def answers() -> bool:
        try:
            async with httpx.AsyncClient(base_url=jaeger.query_url) as client:
                return (await client.get("/api/services")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(answers, timeout=60)


def record_one_event_path(otlp_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Record the spans of one event through NLIB and the dashboard; returns the trace id."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{otlp_url}/v1/traces")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    nlib = setup_telemetry("nlib", "test", "test")
    dashboard = setup_telemetry("iso-dashboard", "test", "test")
    topic = "teamnl.nlib.events"
    try:
        tracer = nlib.tracer("teamnl.ingestion")
        with tracer.start_as_current_span("POST /v1/events", kind=SpanKind.SERVER) as request:
            stored_with_outbox_row = inject_traceparent()
        with start_publish_span(
            nlib.tracer("teamnl.outbox"), topic, "m-1", 0, "event-1", stored_with_outbox_row
        ) as publish:
            headers = [("ce_id", b"event-1"), *span_trace_headers(publish)]
        record = _Record(topic, 0, 41, b"m-1", headers)
        with consume_span(dashboard.tracer("teamnl.inbox"), record, "iso-dashboard") as span:
            span.set_attribute("teamnl.event.type", "nl.teamnl.nlib.mission.held.v1")
        return f"{request.get_span_context().trace_id:032x}"
    finally:  # flushes the batch span processors: everything is sent to Jaeger
        nlib.shutdown()
        dashboard.shutdown()


@dataclass(frozen=True)
class _Record:
    """The fields of a Kafka consumer record that `consume_span` reads."""

    topic: str
    partition: int
    offset: int
    key: bytes
    headers: list[tuple[str, bytes]]


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


async def test_jaeger_serves_our_trace_back(
    jaeger: Jaeger, monkeypatch: pytest.MonkeyPatch
) -> None:
    await jaeger_ready(jaeger)
    trace_id = record_one_event_path(jaeger.otlp_url, monkeypatch)

    found: dict[str, Any] = {}

    async def stored() -> bool:
        async with httpx.AsyncClient(base_url=jaeger.query_url) as client:
            response = await client.get(f"/api/traces/{trace_id}")
        if response.status_code != 200:
            return False
        (trace,) = response.json()["data"]
        found.update(trace)
        return len(trace["spans"]) == 3

    await eventually(stored)

    assert found["traceID"] == trace_id
    services = {pid: process["serviceName"] for pid, process in found["processes"].items()}
    spans = {span["operationName"]: span for span in found["spans"]}
    assert set(spans) == {
        "POST /v1/events",
        "send teamnl.nlib.events",
        "process teamnl.nlib.events",
    }
    service_of = {name: services[span["processID"]] for name, span in spans.items()}
    assert service_of == {
        "POST /v1/events": "nlib",
        "send teamnl.nlib.events": "nlib",
        "process teamnl.nlib.events": "iso-dashboard",
    }

    def parent(name: str) -> str | None:
        refs = [r for r in spans[name].get("references", []) if r["refType"] == "CHILD_OF"]
        return refs[0]["spanID"] if refs else None

    assert parent("POST /v1/events") is None
    assert parent("send teamnl.nlib.events") == spans["POST /v1/events"]["spanID"]
    assert parent("process teamnl.nlib.events") == spans["send teamnl.nlib.events"]["spanID"]

    publish, consume = (
        _tags(spans["send teamnl.nlib.events"]),
        _tags(spans["process teamnl.nlib.events"]),
    )
    assert publish["span.kind"] == "producer" and consume["span.kind"] == "consumer"
    for tags, operation in ((publish, "send"), (consume, "process")):
        assert tags["messaging.system"] == "kafka"
        assert tags["messaging.destination.name"] == "teamnl.nlib.events"
        assert tags["messaging.operation.type"] == operation
    assert consume["messaging.message.id"] == "event-1"
    assert consume["teamnl.event.type"] == "nl.teamnl.nlib.mission.held.v1"
