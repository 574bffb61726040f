"""The rules worker: works off the rule evaluations that projected events owe.

The consumer queues what each fetch owes in the transaction that projects it
(:meth:`RulesEngine.queue`) and wakes this worker after the commit; the worker evaluates
everything queued since its last run once (:meth:`RulesEngine.work_off`), deleting what it
worked off in the same transaction. A crash on either side loses and repeats nothing: an
owed evaluation is committed with the projections that owe it and ends with the findings it
gives. Fetches that arrive faster than the rules run coalesce into one evaluation, so the
consumer projects at its own pace and findings follow the projections by one evaluation.

Another dashboard instance's fetches are picked up by the poll (``poll_seconds``) when no
local consumer wakes the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg

from .engine import RulesEngine

log = logging.getLogger(__name__)


class RulesWorker:
    def __init__(
        self,
        engine: RulesEngine,
        pool: asyncpg.Pool,
        *,
        settle_seconds: float = 0.5,
        poll_seconds: float = 1.0,
        backoff_seconds: float = 2.0,
    ) -> None:
        self.engine = engine
        self.pool = pool
        self.settle_seconds = settle_seconds
        self.poll_seconds = poll_seconds
        self.backoff_seconds = backoff_seconds
        self.evaluations = 0
        self._wake = asyncio.Event()
        self._failing_since: float | None = None

    def wake(self) -> None:
        """Something was queued: evaluate soon (after ``settle_seconds``, so that fetches
        committed close together share one evaluation)."""
        self._wake.set()

    def stalled(self, seconds: float) -> bool:
        """Whether every attempt to work off the queue has failed for over `seconds`."""
        return self._failing_since is not None and time.monotonic() - self._failing_since > seconds

    async def work_off(self) -> int:
        """Evaluate until nothing is queued; returns how many queued fetches it took."""
        taken = 0
        while found := await self.engine.work_off(self.pool):
            taken += found
            self.evaluations += 1
        return taken

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            wait = self.poll_seconds
            try:
                await self.work_off()
                self._failing_since = None
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - retried; the queue keeps what is owed
                self._failing_since = self._failing_since or time.monotonic()
                log.exception("evaluating the queued rules failed; retrying in %ss", wait)
                wait = self.backoff_seconds
            if await _first_of(self._wake, stopping, wait) is self._wake:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.settle_seconds)


async def _first_of(a: asyncio.Event, b: asyncio.Event, timeout: float) -> asyncio.Event | None:
    """Wait until `a` or `b` is set (or `timeout`); returns the one set first, or None."""
    waits = {asyncio.ensure_future(a.wait()): a, asyncio.ensure_future(b.wait()): b}
    done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return next((waits[task] for task in done), None)
