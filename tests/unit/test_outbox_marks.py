"""The outbox relay sends a batch's mark with the next read when that read comes soon.

The database connection and the Kafka producer are the edges faked here; the relay's
crash and outage behaviour against real ones is in tests/integration/test_outbox_inbox.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from support import eventually
from teamnl_shared import kafka, outbox
from teamnl_shared.outbox import OutboxRelay


class _Conn:
    """Answers the relay's statements; each read returns the rows queued for it."""

    def __init__(self) -> None:
        self.reads: list[list[int]] = []  # the seqs each read marked on its way
        self.lone_marks: list[list[int]] = []  # marks sent as statements of their own
        self.queued: list[dict[str, Any]] = []

    async def fetchval(self, query: str, *args: Any) -> bool:
        return True  # the leader lock

    async def add_listener(self, channel: str, callback: Any) -> None:
        pass

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        if "DISTINCT topic" in query:  # reconcile: nothing unpublished from before
            return []
        assert "FROM outbox WHERE seq <> ALL" in query
        self.reads.append(list(args[3]))
        rows, self.queued = self.queued, []
        return rows

    async def execute(self, query: str, *args: Any) -> str:
        if query.startswith("VACUUM"):  # the relay's own vacuum of the outbox
            return "VACUUM"
        assert query.startswith("WITH marked AS (DELETE FROM outbox")
        self.lone_marks.append(list(args[3]))
        return "INSERT 0 1"

    async def close(self, timeout: float | None = None) -> None:
        pass


class _Producer:
    def __init__(self) -> None:
        self.offset = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    async def send(self, topic: str, value: bytes, **kwargs: Any) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(SimpleNamespace(topic=topic, partition=0, offset=self.offset))
        self.offset += 1
        return future


def _row(seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "topic": "t",
        "key": "k",
        "headers": json.dumps([["ce_id", str(seq)]]),
        "value": b"{}",
        "event_source": "s",
        "event_id": str(seq),
        "event_type": "x",
    }


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async def holds() -> bool:
        return check()

    await eventually(holds, timeout=timeout, interval=0.01)


@pytest.fixture
def edges(monkeypatch: pytest.MonkeyPatch) -> tuple[_Conn, _Producer]:
    """The relay's connection and producer, faked."""
    conn, producer = _Conn(), _Producer()

    async def connect(url: str) -> _Conn:
        return conn

    monkeypatch.setattr(outbox.asyncpg, "connect", connect)
    monkeypatch.setattr(outbox, "idempotent_producer", lambda *a, **k: producer)
    return conn, producer


async def test_a_mark_goes_with_the_next_read_when_it_comes_soon_and_alone_otherwise(
    edges: tuple[_Conn, _Producer],
) -> None:
    """Proves: a batch published while the next is already on its way is marked by the
    read of that next batch (no statement of its own); the last batch, with nothing after
    it, is marked alone once ``mark_delay`` has passed; nothing is marked twice."""
    conn, _ = edges
    relay = OutboxRelay("postgresql://edge", "kafka:9092", poll_interval=30, mark_delay=0.3)
    conn.queued = [_row(1)]
    task = asyncio.create_task(relay.run())
    try:
        await _until(lambda: relay.published_total == 1)
        conn.queued = [_row(2), _row(3)]
        relay.wake()  # within mark_delay: the read of 2 and 3 marks 1
        await _until(lambda: relay.published_total == 3)
        await _until(lambda: conn.lone_marks != [], timeout=2.0)
        assert conn.reads[:2] == [[], [1]]
        assert conn.lone_marks == [[2, 3]], "the last batch is marked alone, after the delay"
    finally:
        await relay.stop()
        await task
    marked = [seq for seqs in conn.reads + conn.lone_marks for seq in seqs]
    assert sorted(marked) == [1, 2, 3], "each row marked once"


async def test_stopping_marks_what_was_published(edges: tuple[_Conn, _Producer]) -> None:
    """Proves: a relay told to stop does not leave a published batch unmarked behind it
    (the mark would otherwise wait for the next session's reconcile)."""
    conn, _ = edges
    relay = OutboxRelay("postgresql://edge", "kafka:9092", poll_interval=30, mark_delay=30)
    conn.queued = [_row(7)]
    task = asyncio.create_task(relay.run())
    await _until(lambda: relay.published_total == 1)
    await relay.stop()
    await asyncio.wait_for(task, 5)
    assert [seq for seqs in conn.reads + conn.lone_marks for seq in seqs] == [7]


async def test_each_session_producer_sends_at_once_and_keeps_the_callers_options(
    edges: tuple[_Conn, _Producer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: the relay's producer (the shared idempotent one) does not linger: the relay
    awaits each read's records before it reads again, so nothing could join them; and the
    options a caller gives (the services' largest request) still reach it."""
    conn, producer = edges
    made: list[dict[str, Any]] = []

    def make(**options: Any) -> _Producer:
        made.append(options)
        return producer

    monkeypatch.setattr(kafka, "AIOKafkaProducer", make)
    monkeypatch.setattr(outbox, "idempotent_producer", kafka.idempotent_producer)
    relay = OutboxRelay(
        "postgresql://edge",
        "kafka:9092",
        poll_interval=30,
        producer_options={"max_request_size": 9},
    )
    conn.queued = [_row(1)]
    task = asyncio.create_task(relay.run())
    try:
        await _until(lambda: relay.published_total == 1)
    finally:
        await relay.stop()
        await task
    assert len(made) == 1
    assert made[0]["linger_ms"] == 0 and made[0]["max_request_size"] == 9
    assert made[0]["enable_idempotence"] is True and made[0]["acks"] == "all"
