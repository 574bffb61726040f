"""OpenTelemetry bootstrap for every teamnl service: traces, metrics and JSON logs.

Usage in a composition root::

    telemetry = setup_telemetry("nlib", __version__, settings.environment)
    configure_logging("nlib", settings.log_level)
    app = FastAPI(..., telemetry=telemetry.http_telemetry())
    app.add_middleware(RequestLogMiddleware)
    telemetry.instrument_asyncpg()
    app.add_route("/metrics", telemetry.metrics_endpoint(settings.scrape_token))
    # lifespan exit: telemetry.shutdown()

Prometheus names produced by `Metrics` (verified against opentelemetry-exporter-prometheus
0.66b1; each series also carries ``otel_scope_name="teamnl"`` and the scope labels):

==================================================  ===========================================
OpenTelemetry instrument (unit)                     Prometheus series (labels)
==================================================  ===========================================
counter ``teamnl.events.accepted`` ({event})        ``teamnl_events_accepted_total``
                                                    (service, type, partner)
counter ``teamnl.events.rejected`` ({event})        ``teamnl_events_rejected_total``
                                                    (service, type, partner, reason)
observable gauge ``teamnl.outbox.backlog`` ({row})  ``teamnl_outbox_backlog``
observable gauge ``teamnl.outbox.oldest_age`` (s)   ``teamnl_outbox_oldest_age_seconds``
counter ``teamnl.outbox.parked`` ({row})            ``teamnl_outbox_parked_total``
                                                    (service, topic, reason)
gauge ``teamnl.consumer.lag`` ({message})           ``teamnl_consumer_lag`` (topic, partition)
histogram ``teamnl.end_to_end.latency`` (s)         ``teamnl_end_to_end_latency_seconds_bucket``
                                                    / ``_count`` / ``_sum`` (topic, type, le)
histogram ``teamnl.ingestion.group.size``           ``teamnl_ingestion_group_size_bucket``
({event})                                           / ``_count`` / ``_sum`` (service, le)
counter ``teamnl.deadletter`` ({message})           ``teamnl_deadletter_total`` (topic, reason)
observable gauge ``teamnl.findings.open``           ``teamnl_findings_open`` (rule, severity)
==================================================  ===========================================

Curly-brace units are annotations the exporter drops; ``s`` becomes ``_seconds``. The
exporter also serves ``target_info`` (the resource attributes) and, for an app made with
``telemetry.http_telemetry()``, ``http_server_request_duration_seconds``.
"""

from teamnl_shared.telemetry.access_log import RequestLogMiddleware
from teamnl_shared.telemetry.bootstrap import Telemetry, setup_telemetry
from teamnl_shared.telemetry.logs import RedactionFilter, configure_logging, redact_text
from teamnl_shared.telemetry.messaging import (
    consume_span,
    context_from_headers,
    current_traceparent,
    inject_traceparent,
    set_partition,
    span_trace_headers,
    start_publish_span,
    trace_headers,
)
from teamnl_shared.telemetry.metrics import LATENCY_BUCKETS_SECONDS, Metrics

__all__ = [
    "LATENCY_BUCKETS_SECONDS",
    "Metrics",
    "RedactionFilter",
    "RequestLogMiddleware",
    "Telemetry",
    "configure_logging",
    "consume_span",
    "context_from_headers",
    "current_traceparent",
    "inject_traceparent",
    "redact_text",
    "set_partition",
    "setup_telemetry",
    "span_trace_headers",
    "start_publish_span",
    "trace_headers",
]
