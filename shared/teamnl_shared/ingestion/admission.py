"""How many bytes of batch bodies a service reads and handles at once (``batch_bytes_at_once``).

A batch's events become Python objects several times its body's size: one batch of 1,000
events with their 15 extensions (15.6 MB) took nlib from 75 MiB to 171 MiB at its peak. The
rate limit counts requests, not bytes, and its burst (100 a key) let that many in at once:
one partner sending 8 such batches together took nlib to 562 MiB (507 MiB stayed), enough of
them and the service is gone for every partner. Now a batch waits, first come first served,
until its body's declared size (the largest batch where it declares none) fits beside those
being handled; past ``batch_wait_seconds`` it is answered 503 with ``Retry-After``. Small
batches (the bench's 500 events are 0.3 MB) go side by side; a full-size one goes alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class NotAdmitted(Exception):
    """The bytes asked for were not granted in time."""


class BodyBudget:
    """A weighted semaphore of bytes, granted in the order asked (a large body is not passed
    by a stream of small ones)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @contextlib.asynccontextmanager
    async def admitted(self, size: int, wait_seconds: float) -> AsyncIterator[None]:
        """Hold `size` bytes (at most the limit) while the block runs; :class:`NotAdmitted`
        when they are not granted within `wait_seconds`."""
        size = min(size, self.limit)
        await self._acquire(size, wait_seconds)
        try:
            yield
        finally:
            self._release(size)

    async def _acquire(self, size: int, wait_seconds: float) -> None:
        if not self._waiting and self.used + size <= self.limit:
            self.used += size
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((size, granted))
        try:
            async with asyncio.timeout(wait_seconds):
                await granted
        except BaseException as error:
            if granted.done() and not granted.cancelled():
                self._release(size)  # granted as the wait ended: give it back
            else:
                with contextlib.suppress(ValueError):  # taken out by _grant already
                    self._waiting.remove((size, granted))
                self._grant()  # the first in line may have been this one
            if isinstance(error, TimeoutError):
                raise NotAdmitted(f"{size} bytes not granted in {wait_seconds:g} s") from None
            raise

    def _release(self, size: int) -> None:
        self.used -= size
        self._grant()

    def _grant(self) -> None:
        while self._waiting:
            size, granted = self._waiting[0]
            if granted.done():  # its wait ended (cancelled) before it was granted
                self._waiting.popleft()
                continue
            if self.used + size > self.limit:
                return
            self._waiting.popleft()
            self.used += size
            granted.set_result(None)
