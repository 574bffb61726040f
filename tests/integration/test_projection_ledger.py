"""The dashboard's inbox rows: a network event's is its ``events`` row (with where it came
from), an ops event's is in ``inbox`` (`teamnl_dashboard.projections.ledger`)."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka import ConsumerRecord

from dashboard_harness import make_event
from teamnl_dashboard.projections.ledger import LEDGER
from teamnl_dashboard.projections.schema import create_schema
from teamnl_shared.contract.envelope import Event
from teamnl_shared.inbox import COPY_FROM_ROWS

pytestmark = pytest.mark.integration

MISSION = "nl.teamnl.nlib.mission.held.v1"
QUALITY = "nl.teamnl.ops.partner.quality.reported.v1"


def _row(event: Event, topic: str, offset: int) -> tuple[Event, ConsumerRecord]:
    return event, ConsumerRecord(topic, 2, offset, 0, 0, b"k", b"{}", None, 1, 2, [])


async def _recorded(conn: asyncpg.Connection) -> tuple[set[tuple[object, ...]], set[str]]:
    events = await conn.fetch(
        "SELECT event_id, title, topic, kafka_partition, kafka_offset FROM events"
    )
    inbox = await conn.fetch("SELECT event_id FROM inbox")
    return {tuple(r) for r in events}, {r["event_id"] for r in inbox}


@pytest.mark.parametrize("missions", [2, COPY_FROM_ROWS])  # one insert, or a COPY
async def test_a_fetch_is_recorded_once_in_events_and_in_inbox(
    database_url: str, missions: int
) -> None:
    """Proves: a fetch's network events are recorded in ``events`` (their titles, topic,
    partition and offset), its ops events in ``inbox``; a fetch holding one already there
    is refused as a whole (the inbox then reads which are new), and that reading records
    only the new ones; one event at a time, likewise."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await create_schema(conn, "proj")
        await conn.execute("SET search_path = proj, public")
        held = [make_event(MISSION, title=f"mission {n}") for n in range(missions + 1)]
        report = make_event(QUALITY)
        fetch = [*(_row(e, "nlib", n) for n, e in enumerate(held[:-1])), _row(report, "ops", 0)]

        await LEDGER.record_new(conn, fetch)
        events, inbox = await _recorded(conn)
        assert events == {(e.id, f"mission {n}", "nlib", 2, n) for n, e in enumerate(held[:-1])}
        assert inbox == {report.id}

        again = [fetch[0], _row(held[-1], "nlib", missions)]
        with pytest.raises(asyncpg.UniqueViolationError):
            async with conn.transaction():
                await LEDGER.record_new(conn, again)
        assert await LEDGER.record_fresh(conn, [*again, fetch[-1]]) == {
            ("nlib", held[-1].source, held[-1].id)
        }
        assert len((await _recorded(conn))[0]) == missions + 1

        assert not await LEDGER.record_one(conn, *fetch[1])
        assert not await LEDGER.record_one(conn, *fetch[-1])
        later = make_event(QUALITY)
        assert await LEDGER.record_one(conn, *_row(later, "ops", 1))
        assert (await _recorded(conn))[1] == {report.id, later.id}
    finally:
        await conn.close()
