"""Run an outbox relay on its own: ``python -m teamnl_shared.relay_main``.

The services run their relay inside their own process; this entry point is for operators
who prefer a separate process, and for the crash tests that kill it with SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

import uvloop

from .collector import settle_collector
from .outbox import OutboxRelay, drained

FLUSH_SECONDS = 15.0
"""How long a stopped relay keeps draining the outbox (through outages) before it gives up;
what it leaves is published by the next leader."""


async def _main(database_url: str, bootstrap: str, batch_size: int) -> None:
    relay = OutboxRelay(database_url, bootstrap, batch_size=batch_size, poll_interval=0.5)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    relaying = asyncio.ensure_future(relay.run())
    signalled = asyncio.ensure_future(stopped.wait())
    await asyncio.wait([relaying, signalled], return_when=asyncio.FIRST_COMPLETED)
    signalled.cancel()
    await relay.stop()
    await drained(relaying, FLUSH_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settle_collector()
    uvloop.run(_main(args.database_url, args.bootstrap, args.batch_size))


if __name__ == "__main__":
    main()
