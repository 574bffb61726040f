"""Where an event's end-to-end time goes, hop by hop (figure 3's breakdown).

Besides the loadgen's 202 and the dashboard's inbox commit (`harness.CommitObserver`), two
more observers run while a latency step loads the pipeline:

- :class:`KafkaObserver` reads the event topics from their end, without a group: per event
  the record's producer timestamp (the relay's send), the time the record was readable by a
  consumer, and the ``teamnl_accepted_at`` header (the request handler accepted it);
- :class:`PushObserver` holds the dashboard's live stream (``/api/v1/stream``) open: per
  announced event id, the time its announcement reached the browser's side of the stream.

:func:`breakdown` joins them per event id into the hops: accept (request -> 202, from the
loadgen), handler accepted -> 202 (outbox commit, group commit included), 202 -> relay send
(outbox wake-up, relay read), relay send -> readable (broker append with acks=all, consumer
fetch), readable -> projection committed (the dashboard's fetch, inbox, projections, rules,
commit), committed -> pushed (NOTIFY, hub, SSE). All clocks are this machine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from bench.harness import ThreadObserver
from bench.stats import summarise
from teamnl_shared.kafka import partitions_of

ACCEPTED_AT_HEADER = "teamnl_accepted_at"


class KafkaObserver(ThreadObserver):
    """``seen[event id] = (relay send, readable, accepted at)``, epoch seconds."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        super().__init__()
        self.bootstrap = bootstrap
        self.topics = topics

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = await partitions_of(self.bootstrap, self.topics)
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                await consumer.position(tp)
            self._ready.set()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                readable = time.time()
                for records in batch.values():
                    for record in records:
                        self._note(record, readable)
        finally:
            await consumer.stop()

    def _note(self, record: Any, readable: float) -> None:
        headers = {key: bytes(value or b"").decode() for key, value in record.headers or ()}
        event_id = headers.get("ce_id")
        if event_id is None:
            return
        accepted = headers.get(ACCEPTED_AT_HEADER)
        self.seen[event_id] = (
            record.timestamp / 1000,
            readable,
            datetime.fromisoformat(accepted).timestamp() if accepted else None,
        )


class PushObserver(ThreadObserver):
    """``seen[event id] = pushed at`` for every id the live stream announced."""

    def __init__(self, url: str, cookie: str) -> None:
        super().__init__()
        self.url = url
        self.cookie = cookie

    async def _run(self) -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client,
            client.stream(
                "GET", f"{self.url}/api/v1/stream", headers={"cookie": self.cookie}
            ) as response,
        ):
            response.raise_for_status()
            self._ready.set()
            # read in a task of its own: a time-out around one line would close the stream
            reader = asyncio.create_task(self._read(response))
            while not self._stop.is_set():
                done, _ = await asyncio.wait({reader}, timeout=0.1)
                if done:
                    break
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, response: httpx.Response) -> None:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                self._note(line[5:], time.time())

    def _note(self, data: str, pushed: float) -> None:
        with contextlib.suppress(ValueError):
            message = json.loads(data)
            if isinstance(message, dict) and message.get("kind") == "event":
                for event_id in message.get("ids", ()):
                    self.seen.setdefault(event_id, pushed)


HOPS = (
    ("outbox commit (handler accepted -> 202)", "accepted", "acked"),
    ("202 -> relay publish", "acked", "sent"),
    ("broker append + consumer fetch (relay send -> readable)", "sent", "readable"),
    ("projection commit (readable -> committed)", "readable", "committed"),
    ("push (committed -> in the browser's stream)", "committed", "pushed"),
)


def breakdown(
    acks: list[tuple[str, str, int, float]],
    kafka: dict[str, tuple[float, float, float | None]],
    committed: dict[str, float],
    pushed: dict[str, float],
) -> dict[str, dict[str, float]]:
    """Per hop, the summary (ms) over the events seen at both of its ends."""
    times: dict[str, dict[str, float]] = {}
    for _source, event_id, _status, acked in acks:
        at: dict[str, float] = {"acked": acked}
        if event_id in kafka:
            sent, readable, accepted = kafka[event_id]
            at.update(sent=sent, readable=readable)
            if accepted is not None:
                at["accepted"] = accepted
        if event_id in committed:
            at["committed"] = committed[event_id]
        if event_id in pushed:
            at["pushed"] = pushed[event_id]
        times[event_id] = at
    return {
        name: summarise(
            [(at[end] - at[start]) * 1000 for at in times.values() if start in at and end in at]
        )
        for name, start, end in HOPS
    }
