"""A fetch read ahead is parsed a few records at a time: the fetch before it, in the
database, gets a turn of the event loop after each step to send its next statement, instead
of waiting until the whole fetch is parsed (Python and PostgreSQL then work at once)."""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord

from support import structured
from teamnl_shared.contract.envelope import InvalidEvent, parse_structured
from teamnl_shared.inbox import READ_AHEAD_STEP, parse_ahead, parse_records


def record(offset: int, value: bytes | None = None) -> ConsumerRecord:
    event = parse_structured(structured(id=f"e-{offset}"))
    body = event.data_json() if value is None else value
    headers = event.to_kafka_headers()
    return ConsumerRecord("t", 0, offset, 0, 0, b"k", body, None, 1, len(body), headers)


async def test_a_fetch_parsed_ahead_gives_the_event_loop_a_turn_every_few_records() -> None:
    records = [record(n) for n in range(4 * READ_AHEAD_STEP)] + [record(999, b"not json")]
    turns = 0

    async def fetch_in_the_database() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(fetch_in_the_database())
    await asyncio.sleep(0)
    before = turns
    parsed = await parse_ahead(records)
    during = turns - before
    other.cancel()

    assert during >= len(records) // READ_AHEAD_STEP
    expected = parse_records(records)
    assert [getattr(p, "id", None) for p in parsed] == [getattr(p, "id", None) for p in expected]
    assert isinstance(parsed[-1], InvalidEvent) and len(parsed) == len(records)
