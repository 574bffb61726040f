"""Records another producer than the relays wrote to the event topics (only the relays are
meant to, but nothing in Kafka stops one with write access) are dead-lettered and the
partition goes on; nothing in them may stop the projection for everyone."""

from __future__ import annotations

import pytest

from dashboard_harness import dashboard_settings, make_event, running_dashboard
from support import eventually
from teamnl_shared.contract import nlib

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("name", "value", "stored"),
    [
        ("ce_id", b"a\x00b", "ab"),
        ("ce_type", b"nl.teamnl.nlib.mission.held.v1\x00", "nl.teamnl.nlib.mission.held.v1"),
        ("ce_id", b"i" * 100_000, "i" * 1000),
    ],
    ids=["nul-in-id", "nul-in-type", "long-id"],
)
async def test_a_record_whose_headers_postgresql_cannot_store_is_dead_lettered(
    database_url: str, kafka_bootstrap: str, name: str, value: bytes, stored: str
) -> None:
    """The dead letter keeps the header without NUL, cut short. Before, PostgreSQL refused
    the dead letter of a NUL, and the fetch was retried every second for ever: its offsets
    never committed, a copy sent to the dead-letter topic each time."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    foreign = make_event(nlib.MissionHeld.TYPE)
    after = make_event(nlib.MissionHeld.TYPE)  # the same key: the same partition, after it
    headers = [(n, v) for n, v in foreign.to_kafka_headers() if n != name] + [(name, value)]
    async with running_dashboard(settings) as dash:
        await dash.publish_raw(foreign.topic, foreign.data_json(), foreign.key.encode(), headers)
        await dash.publish(after)
        consumer = dash.app.state.runtime.consumer

        async def both_done() -> bool:  # counted once its offsets are committed
            return (consumer.deadletter_total, consumer.applied_total) == (1, 1)

        await eventually(both_done)
        dead = await dash.pool.fetchrow("SELECT event_id, event_type FROM proj.dead_letters")
    assert stored in (dead["event_id"], dead["event_type"])
