"""Run a service's outbox relay on its own: ``python -m teamnl_shared.relay_main --service nlib``.

The services run their relay inside their own process; this entry point is for operators
who prefer a separate process, and for the crash tests that kill it with SIGKILL. Whichever
holds the leader lock relays (the others wait), so it may run beside the service's own.

It reads the service's settings (``NLIB_DATABASE_URL``, ``KAFKA_BOOTSTRAP_SERVERS``,
``TEAMNL_TOPIC_PREFIX``, ``NLIB_RELAY_*``, ...; ``--database-url`` and ``--bootstrap`` win
over them) and relays as the service's own relay does (:func:`service_relay`): publish spans
as service ``<service_name>-relay`` (over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set),
JSON log lines, and each row it parks counted in ``teamnl.outbox.parked`` (metrics in the
Prometheus format on ``--metrics-port``) and announced on the service's dead-letter topic,
which it creates. Left to the service: a parked row in its partner's data-quality report
(the processes that take the events write those).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import uvloop
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsConfigDict

from .collector import settle_collector
from .contract.topics import INGESTION_SERVICES
from .ingestion.runtime import parked_topic, relay_once_topics_exist, service_relay
from .ingestion.settings import IngestionSettings
from .outbox import OutboxRelay, drained
from .telemetry import Telemetry, configure_logging, setup_telemetry

MAX_BATCH_SIZE = 2_000
"""The most outbox rows a batch may read: they are held in memory together, each up to the
service's largest event (the services' own relay reads 500)."""


async def _main(
    settings: IngestionSettings, service: str, batch_size: int, telemetry: Telemetry
) -> None:
    relay = service_relay(
        settings,
        service,
        tracer=telemetry.tracer("teamnl.outbox"),
        metrics=telemetry.metrics,
        batch_size=batch_size,
    )
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    relaying = asyncio.ensure_future(
        relay_once_topics_exist(relay, settings, [parked_topic(settings, service)], stopped.is_set)
    )
    signalled = asyncio.ensure_future(stopped.wait())
    await asyncio.wait([relaying, signalled], return_when=asyncio.FIRST_COMPLETED)
    signalled.cancel()
    await relay.stop()
    await drained(relaying, settings.relay_flush_timeout)


def service_settings(
    service: str, database_url: str | None = None, bootstrap: str | None = None
) -> IngestionSettings:
    """`service`'s settings, read as the service reads them (``<SERVICE>_`` variables);
    a database URL or Kafka bootstrap given wins over them."""

    class Settings(IngestionSettings):
        model_config = SettingsConfigDict(extra="ignore", env_prefix=f"{service.upper()}_")
        service_name: str = service

    given: dict[str, Any] = {}
    if database_url is not None:
        given["database_url"] = database_url
    if bootstrap is not None:
        given["kafka_bootstrap_servers"] = bootstrap
    return Settings(**given)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", required=True, choices=INGESTION_SERVICES, help="whose outbox")
    parser.add_argument("--database-url", help="default: <SERVICE>_DATABASE_URL")
    parser.add_argument("--bootstrap", help="default: KAFKA_BOOTSTRAP_SERVERS")
    parser.add_argument(
        "--batch-size",
        type=_within(1, MAX_BATCH_SIZE),
        default=OutboxRelay.batch_size,
        help=f"outbox rows read and published at a time (1 to {MAX_BATCH_SIZE:,})",
    )
    parser.add_argument(
        "--metrics-port",
        type=_within(0, 65_535),
        default=0,
        help="serve metrics here at <SERVICE>_HOST (0: none)",
    )
    args = parser.parse_args()
    try:
        settings = service_settings(args.service, args.database_url, args.bootstrap)
    except ValidationError as error:
        parser.error("; ".join(_problem(problem) for problem in error.errors()))
    name = f"{settings.service_name}-relay"
    configure_logging(name, settings.log_level)
    telemetry = setup_telemetry(name, version("teamnl-shared"), settings.environment)
    if args.metrics_port:
        telemetry.serve_metrics(settings.host, args.metrics_port, settings.scrape_token)
    settle_collector()
    try:
        uvloop.run(_main(settings, args.service, args.batch_size, telemetry))
    finally:
        telemetry.shutdown()  # what the OTLP exporters still hold


def _within(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, else a usage error saying so."""

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{number} is not from {low} to {high:,}")
        return number

    return parse


def _problem(problem: ErrorDetails) -> str:
    """One settings problem as a line: the setting (if it is one field's) and why."""
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}" if where else problem["msg"]


if __name__ == "__main__":
    main()
