"""`setup_telemetry`: the tracer and meter providers of one service (or one test app)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from functools import cached_property
from http import HTTPStatus
from typing import Any, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from fastapi.telemetry import TelemetryConfig
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.environment_variables import (
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS,
)
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, ExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import (
    DEPLOYMENT_ENVIRONMENT,
    SERVICE_NAME,
    SERVICE_VERSION,
    OTELResourceDetector,
    Resource,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Tracer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from starlette.requests import Request
from starlette.responses import Response

from teamnl_shared.problem import PROBLEM_JSON
from teamnl_shared.telemetry.metrics import Metrics

from .routing import ParentRoutedTracerProvider
from .scrape import refusal

log = logging.getLogger(__name__)

METER_NAME = "teamnl"
UNTRACED_PATHS = ("/healthz", "/readyz", "/metrics")

_ASYNCPG_PROVIDERS = ParentRoutedTracerProvider()


class _Quiet(WSGIRequestHandler):
    """The metrics server's requests are not logged (a scrape every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


_GLOBALS_LOCK = threading.Lock()
_globals_installed = False  # the OTel API refuses a second set_tracer_provider


class Telemetry:
    """The providers of one service; pass them explicitly rather than reading the globals.

    The first `setup_telemetry` in a process also installs its providers as the OTel
    globals (for instrumentations that only read those); later ones do not.
    """

    def __init__(
        self,
        resource: Resource,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        registry: CollectorRegistry,
        span_exporters: tuple[SpanExporter, ...],
        metric_readers: tuple[MetricReader, ...],
    ) -> None:
        self.resource = resource
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.registry = registry
        self.span_exporters = span_exporters
        self.metric_readers = metric_readers

    @property
    def service_name(self) -> str:
        return str(self.resource.attributes.get(SERVICE_NAME, ""))

    def tracer(self, name: str) -> Tracer:
        return self.tracer_provider.get_tracer(name)

    @cached_property
    def meter(self) -> Meter:
        return self.meter_provider.get_meter(METER_NAME)

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics(self.meter)

    def http_telemetry(self) -> TelemetryConfig:
        """FastAPI's own HTTP telemetry on this service's providers, for
        ``FastAPI(telemetry=...)``: a server span per request, named by its route
        (``POST /v1/events``) and continuing the caller's ``traceparent``, and the
        ``http.server.request.duration`` and ``http.server.active_requests`` metrics.

        Probes and scrapes are left out. So are the spans of each dependency, endpoint
        call and serialisation (``operation_spans``): they tell nothing the server span
        does not. Errors are logged by the services' own logging, not as OTel logs.

        FastAPI does this in the app itself, where the route is already known. The
        contrib instrumentation (``opentelemetry-instrumentation-fastapi``) did the same
        in one more middleware that matched every route again per request for the span's
        name, while FastAPI's own wrapper still ran beside it. In process, a POST through
        a 20-route app with the access log cost 545 us of CPU that way and 275 us this way.
        """
        return {
            "tracer_provider": self.tracer_provider,
            "meter_provider": self.meter_provider,
            "tracing": True,
            "metrics": True,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
            "exclude": _untraced,
        }

    def instrument_asyncpg(self) -> None:
        """Trace asyncpg queries. The instrumentation patches the asyncpg module once per
        process; each query span goes to the provider of its parent span's app.

        Not when ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` names ``asyncpg`` (or is ``*``),
        the variable the ``opentelemetry-instrument`` agent reads for the same choice. The
        spans then end at the work that owns each transaction (a request, a group commit).
        Statement spans cost CPU at low rates, where most transactions hold one event: on
        the bench machine, one client posting one event after another, NLIB used about 1 ms
        less per event (of 8 to 9) without them."""
        if _disabled_instrumentation("asyncpg"):
            return
        _ASYNCPG_PROVIDERS.register(self.tracer_provider)
        instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]  # untyped lib
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=_ASYNCPG_PROVIDERS)

    def metrics_endpoint(self, token: str | None) -> Callable[[Request], Awaitable[Response]]:
        """A handler serving this instance's metrics in the Prometheus text format to a
        scraper sending `token` (:mod:`.scrape`; None: to nobody).

        ``app.add_route("/metrics", telemetry.metrics_endpoint(token), include_in_schema=False)``
        """
        registry = self.registry

        async def metrics_handler(request: Request) -> Response:
            refused = refusal(request.headers.get("authorization"), token)
            if refused is not None:
                return Response(
                    refused.body(request.url.path),
                    refused.status,
                    refused.headers,
                    media_type=PROBLEM_JSON,
                )
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

        return metrics_handler

    def serve_metrics(self, host: str, port: int, token: str | None) -> None:
        """Serve this instance's metrics in the Prometheus text format, to a scraper sending
        `token` as :meth:`metrics_endpoint` does, on a server thread of their own: for a
        process without an HTTP app (a dashboard worker, a relay)."""
        served = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            refused = refusal(environ.get("HTTP_AUTHORIZATION"), token)
            if refused is None:
                return cast(Iterable[bytes], served(environ, start_response))
            headers = [("Content-Type", PROBLEM_JSON), *refused.headers.items()]
            start_response(f"{refused.status} {HTTPStatus(refused.status).phrase}", headers)
            return [refused.body(environ.get("PATH_INFO") or "/")]

        # As prometheus_client's own server: the address's family (AF_INET6 for "::").
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        server_class = type("_Server", (ThreadingWSGIServer,), {"address_family": family[0][0]})
        server: WSGIServer = make_server(host, port, app, server_class, handler_class=_Quiet)
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        log.info("metrics on %s:%d", host, port)

    def shutdown(self) -> None:
        """Flush and stop exporters; idempotent."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def setup_telemetry(
    service_name: str,
    service_version: str,
    environment: str,
    *,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
) -> Telemetry:
    """Build the providers for one service.

    OTLP over http/protobuf is added only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the
    ``_TRACES_``/``_METRICS_`` variant) is set; the exporters read their endpoint, headers
    and timeout from the usual OTEL_* variables. A Prometheus reader with its own registry
    is always present. `span_exporter` is exported to synchronously (for tests), and
    `metric_reader` is added as a further reader.
    """
    resource = _resource(service_name, service_version, environment)
    span_exporters = _span_exporters(span_exporter)
    tracer_provider = TracerProvider(resource=resource)
    for exporter in span_exporters:
        tracer_provider.add_span_processor(
            SimpleSpanProcessor(exporter)
            if exporter is span_exporter
            else BatchSpanProcessor(exporter)
        )
    registry = CollectorRegistry(auto_describe=True)
    readers = _metric_readers(registry, metric_reader)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=readers, exemplar_filter=_exemplar_filter()
    )
    _install_globals_once(tracer_provider, meter_provider)
    return Telemetry(resource, tracer_provider, meter_provider, registry, span_exporters, readers)


def _resource(service_name: str, service_version: str, environment: str) -> Resource:
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over the values given in code, so an
    # operator can rename or relabel a deployment without a release.
    given = {
        SERVICE_NAME: service_name,
        SERVICE_VERSION: service_version,
        DEPLOYMENT_ENVIRONMENT: environment,
    }
    return Resource.create(given).merge(OTELResourceDetector().detect())


def _otlp_enabled(signal: str) -> bool:
    if os.environ.get(f"OTEL_{signal}_EXPORTER", "").strip().lower() == "none":
        return False
    endpoint = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return bool(endpoint and endpoint.strip())


def _span_exporters(given: SpanExporter | None) -> tuple[SpanExporter, ...]:
    exporters: list[SpanExporter] = [given] if given is not None else []
    if _otlp_enabled("TRACES"):
        exporters.append(OTLPSpanExporter())
    return tuple(exporters)


def _metric_readers(
    registry: CollectorRegistry, given: MetricReader | None
) -> tuple[MetricReader, ...]:
    readers: list[MetricReader] = [PrometheusMetricReader(registry=registry)]
    if given is not None:
        readers.append(given)
    if _otlp_enabled("METRICS"):
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    return tuple(readers)


def _disabled_instrumentation(name: str) -> bool:
    """`name` is listed in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (comma-separated), or
    the list is ``*`` (all), read as the OpenTelemetry agent reads it."""
    listed = os.environ.get(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "").split(",")
    names = {entry.strip() for entry in listed}
    return name in names or "*" in names


def _exemplar_filter() -> ExemplarFilter | None:
    """Exemplars (a trace id kept with a measurement) only reach an OTLP backend; the
    Prometheus text format drops them. Sampling them for every request was measurable in
    the profile, so they are off unless OTLP metrics are on or OTEL_METRICS_EXEMPLAR_FILTER
    asks for them (None: the SDK reads that variable)."""
    if _otlp_enabled("METRICS") or os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER"):
        return None
    return AlwaysOffExemplarFilter()


def _install_globals_once(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
    global _globals_installed
    with _GLOBALS_LOCK:
        if _globals_installed:
            return
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        _globals_installed = True
