"""The running totals' upkeep beside the consumers: fold their delta rows, vacuum them.

Every projecting transaction adds delta rows to the running totals (schema.sql); readers sum
a key's rows, and :func:`~teamnl_dashboard.projections.fold_totals` folds them into one row
per key. Folding rewrites each key it touches, so these few small tables turn over all
their rows at every fold: between two autovacuums (a minute apart at most, per database)
their dead rows piled up to thousands of pages, which every fold then read again. A fold
that took 12 ms on vacuumed tables took 50-280 ms on a dashboard projecting a backlog,
inside the consumer's transaction, and so a quarter of the projection's time.

So the :class:`TotalsFolder` folds in a transaction of its own, off the consumers' path, at
most once per ``interval`` after a commit woke it, and vacuums the totals every
``vacuum_seconds`` after a fold. One instance of a deployment folds at a time (an advisory
lock taken with ``try``: a folder that finds it taken leaves the fold to the other).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import asyncpg

from teamnl_shared.db import transaction

from . import fold_totals
from .schema import LIVE_SCHEMA

log = logging.getLogger(__name__)
RUNNING_TOTALS = (
    "family_totals",
    "activity_months",
    "budget_totals",
    "tinl_partner_sets",
    "wp_portfolio",
    "wp_sdgs",
    "gs_call_totals",
)
FOLD_LOCK = 7_310_104
"""pg_try_advisory_xact_lock key: one folder of the live totals at a time."""
VACUUM = "VACUUM " + ", ".join(f"{LIVE_SCHEMA}.{table}" for table in RUNNING_TOTALS)


class TotalsFolder:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval: float,
        vacuum_seconds: float,
        backoff_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.interval = interval
        self.vacuum_seconds = vacuum_seconds
        self.backoff_seconds = backoff_seconds
        self.clock = clock
        self.folds = 0
        self.vacuums = 0
        self._wake = asyncio.Event()
        self._vacuumed_at: float | None = None

    def wake(self) -> None:
        """A commit added delta rows: fold them (within ``interval``)."""
        self._wake.set()

    async def fold(self) -> bool:
        """Fold now, unless another folder is folding; then vacuum when it is due. True
        when this folder folded."""
        async with transaction(self.pool) as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", FOLD_LOCK):
                return False
            await fold_totals(conn)
        self.folds += 1
        now = self.clock()
        if self._vacuumed_at is None or now - self._vacuumed_at >= self.vacuum_seconds:
            async with self.pool.acquire() as conn:  # VACUUM runs outside a transaction
                await conn.execute(VACUUM)
            self._vacuumed_at = now
            self.vacuums += 1
        return True

    async def run(self, stopping: asyncio.Event) -> None:
        """Fold after each wake, at most once per ``interval``, until `stopping`."""
        while not stopping.is_set():
            woken = asyncio.ensure_future(self._wake.wait())
            halted = asyncio.ensure_future(stopping.wait())
            await asyncio.wait({woken, halted}, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            halted.cancel()
            if stopping.is_set():
                return
            self._wake.clear()
            wait = self.interval
            try:
                await self.fold()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the rows stay; readers sum them meanwhile
                log.exception("folding the running totals failed; again in %ss", wait)
                wait = max(wait, self.backoff_seconds)
                self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), wait)
