"""Live updates: PostgreSQL NOTIFY in, Server-Sent Events out.

Writers call :func:`notify` inside their transaction (findings) or right after their
commit (consumer batches); PostgreSQL delivers the notification at commit to every
listening connection. Each dashboard instance runs one :class:`LiveHub` that LISTENs on a
dedicated connection and fans the payloads out to its subscribers, so every open
dashboard sees every change whichever instance made it. Its watchers (the overview's
`read_cache`) hear of every change too, and of each start and end of listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "teamnl_dashboard_live"
KEEPALIVE_SECONDS = 15.0
_QUEUE_SIZE = 256


async def notify(conn: asyncpg.Connection, payload: dict[str, Any]) -> None:
    """Announce a change; inside a transaction it is delivered when that commits."""
    await notify_each(conn, [payload])


async def notify_each(conn: asyncpg.Connection, payloads: list[dict[str, Any]]) -> None:
    """Announce each of `payloads`, in order, in one statement (as :func:`notify` does one)."""
    if payloads:
        await conn.execute(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
            CHANNEL,
            [json.dumps(payload, separators=(",", ":"), default=str) for payload in payloads],
        )


class LiveHub:
    """LISTENs on its own connection and hands every payload to every subscriber queue."""

    def __init__(self, database_url: str, *, reconnect_seconds: float = 1.0) -> None:
        self._url = database_url
        self._reconnect = reconnect_seconds
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._watchers: list[Callable[[], None]] = []
        self._stopping = asyncio.Event()
        self.listening = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._listen_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("live hub lost its connection (%r); reconnecting", error)
            self.listening.clear()
            self._changed()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._reconnect)

    async def _listen_once(self) -> None:
        conn = await asyncpg.connect(self._url)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(CHANNEL, self._on_notification)
            self.listening.set()
            self._changed()  # what changed while no one listened was not announced
            stop = asyncio.ensure_future(self._stopping.wait())
            gone = asyncio.ensure_future(lost.wait())
            await asyncio.wait({stop, gone}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            gone.cancel()
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def stop(self) -> None:
        self._stopping.set()

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._changed()  # first: a subscriber that reads the message reads after the watchers
        try:
            message = json.loads(payload)
        except ValueError:
            return
        self.publish(message)

    def watch(self, on_change: Callable[[], None]) -> None:
        """Call `on_change` on every notification, and whenever the hub starts or stops
        listening (what was read before may since have changed unannounced)."""
        self._watchers.append(on_change)

    def _changed(self) -> None:
        for on_change in self._watchers:
            on_change()

    def publish(self, message: dict[str, Any]) -> None:
        """Hand a message to every subscriber; a slow one loses its oldest message."""
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE_SIZE)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


def sse_message(message: dict[str, Any]) -> str:
    kind = str(message.get("kind", "message"))
    return f"event: {kind}\ndata: {json.dumps(message, separators=(',', ':'))}\n\n"


async def sse_stream(hub: LiveHub, keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[str]:
    """The text/event-stream body of one subscriber, until the client goes away."""
    async with hub.subscribe() as queue:
        yield "retry: 3000\n: connected\n\n"
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), keepalive)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            yield sse_message(message)
