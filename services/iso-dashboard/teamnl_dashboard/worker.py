"""``python -m teamnl_dashboard.worker``: only the dashboard's consumer, the rules worker
that works off what its events owe the rules and the folder of the running totals, no
HTTP - an extra worker beside the web app (Kafka spreads the partitions over all of them),
or the process the crash test kills with SIGKILL. It starts the same `runtime` as the web app.

It traces and measures the events it projects as the web app does (each event's consume
span in its trace, ``teamnl.end_to_end.latency``, dead letters), as service
``<DASHBOARD_SERVICE_NAME>-consumer``, the name its log lines carry: over OTLP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and its metrics in the Prometheus format on
``DASHBOARD_WORKER_METRICS_PORT`` when that is set (it has no HTTP server of its own)."""

from __future__ import annotations

import asyncio
import signal

import uvloop

from teamnl_shared.collector import settle_collector
from teamnl_shared.telemetry import Telemetry, configure_logging, setup_telemetry

from . import VERSION
from .consumer import Consumers
from .runtime import consume, open_runtime
from .settings import DashboardSettings


async def run_worker(settings: DashboardSettings, telemetry: Telemetry) -> None:
    async with open_runtime(settings, telemetry=telemetry) as runtime:
        consumer = runtime.consumer
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.stopping.set)
        stop = asyncio.ensure_future(_stop_on(runtime.stopping, consumer))
        rules = asyncio.ensure_future(runtime.rules.run(runtime.stopping))
        totals = asyncio.ensure_future(runtime.totals.run(runtime.stopping))
        await consume(runtime)
        stop.cancel()
        await rules
        await totals


async def _stop_on(stopping: asyncio.Event, consumer: Consumers) -> None:
    await stopping.wait()
    await consumer.stop()


def worker_telemetry(settings: DashboardSettings) -> Telemetry:
    """The worker's telemetry, its metrics served on ``worker_metrics_port`` if set."""
    telemetry = setup_telemetry(f"{settings.service_name}-consumer", VERSION, settings.environment)
    if settings.worker_metrics_port:
        telemetry.serve_metrics(settings.host, settings.worker_metrics_port, settings.scrape_token)
    return telemetry


def main() -> None:
    settings = DashboardSettings()
    configure_logging(f"{settings.service_name}-consumer", settings.log_level)
    telemetry = worker_telemetry(settings)
    settle_collector()
    try:
        uvloop.run(run_worker(settings, telemetry))
    finally:
        telemetry.shutdown()  # what the OTLP exporters still hold


if __name__ == "__main__":
    main()
