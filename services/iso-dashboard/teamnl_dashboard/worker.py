"""``python -m teamnl_dashboard.worker``: only the dashboard's consumer, the rules worker
that works off what its events owe the rules and the folder of the running totals, no
HTTP - an extra worker beside the web app (Kafka spreads the partitions over all of them),
or the process the crash test kills with SIGKILL. It starts the same `runtime` as the web app."""

from __future__ import annotations

import asyncio
import signal

import uvloop

from teamnl_shared.collector import settle_collector
from teamnl_shared.telemetry import configure_logging

from .consumer import Consumers
from .runtime import consume, open_runtime
from .settings import DashboardSettings


async def run_worker(settings: DashboardSettings) -> None:
    async with open_runtime(settings) as runtime:
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


def main() -> None:
    settings = DashboardSettings()
    configure_logging(f"{settings.service_name}-consumer", settings.log_level)
    settle_collector()
    uvloop.run(run_worker(settings))


if __name__ == "__main__":
    main()
