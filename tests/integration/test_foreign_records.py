"""Records another producer than the relays wrote to the event topics (only the relays are
meant to, but nothing in Kafka stops one with write access) are dead-lettered and the
partition goes on; nothing in them may stop the projection for everyone."""

from __future__ import annotations

import json
import uuid
from typing import Any

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


def _foreign_records() -> dict[str, tuple[bytes | None, bytes | None, list[tuple[str, Any]]]]:
    """(key, value, headers) of records no relay writes, each refused or applied."""
    event = make_event(nlib.MissionHeld.TYPE)
    headers = event.to_kafka_headers()
    value = event.data_json()
    data = json.loads(value)

    def but(**changes: bytes | None) -> list[tuple[str, Any]]:
        return [(n, v) for n, v in headers if n not in changes] + [
            (n, v) for n, v in changes.items() if v != b"-"
        ]

    key = event.key.encode()
    return {
        "empty value": (key, b"", headers),
        "no value": (key, None, headers),
        "no key": (None, value, but(ce_id=uuid.uuid4().hex.encode())),
        "not JSON": (key, b"{not json", headers),
        "not UTF-8": (key, b'{"title": "\xff\xfe"}', headers),
        "a JSON list": (key, b"[1, 2, 3]", headers),
        "deeply nested": (key, b"[" * 100_000 + b"]" * 100_000, headers),
        "NUL in a text": (key, json.dumps({**data, "title": "a\u0000b"}).encode(), headers),
        "a huge number": (key, json.dumps({**data, "leads": 10**400}).encode(), headers),
        "a float for a count": (key, json.dumps({**data, "leads": 1e308}).encode(), headers),
        "900 KB of text": (key, json.dumps({**data, "title": "t" * 900_000}).encode(), headers),
        "no headers": (key, value, []),
        "no ce_id": (key, value, but(ce_id=b"-")),
        "a header without value": (key, value, but(ce_id=None)),
        "ce_id twice": (key, value, [*headers, ("ce_id", b"other")]),
        "ce_time not a time": (key, value, but(ce_time=b"yesterday")),
        "ce_time year 10000": (key, value, but(ce_time=b"9999-12-31T23:59:59-12:00")),
        "specversion 0.3": (key, value, but(ce_specversion=b"0.3")),
        "an unknown type": (key, value, but(ce_type=b"nl.teamnl.nlib.unknown.v1")),
        "content-type XML": (key, value, [*headers, ("content-type", b"application/xml")]),
        "structured mode": (
            key,
            json.dumps(
                {**event.attributes(), "time": "2019-06-01T00:00:00Z", "data": data}
            ).encode(),
            [("content-type", b"application/cloudevents+json")],
        ),
        "1,000 headers": (key, value, [*headers, *((f"x-{i}", b"v") for i in range(1000))]),
    }


async def test_every_record_another_producer_may_write_is_applied_or_dead_lettered(
    database_url: str, kafka_bootstrap: str
) -> None:
    """All in one partition, then a good event: each record is settled (applied or
    dead-lettered, its offset committed) and the good event after them all is applied."""
    records = _foreign_records()
    settings = dashboard_settings(database_url, kafka_bootstrap)
    after = make_event(nlib.MissionHeld.TYPE)
    async with running_dashboard(settings) as dash:
        topic = settings.topic(after.topic)
        for key, value, headers in records.values():
            await dash.producer.send_and_wait(topic, value, key=key, headers=headers, partition=0)
        await dash.producer.send_and_wait(
            topic, after.data_json(), key=after.key.encode(), headers=after.to_kafka_headers(),
            partition=0,
        )  # fmt: skip
        consumer = dash.app.state.runtime.consumer

        async def settled() -> bool:
            return consumer.applied_total + consumer.deadletter_total == len(records) + 1

        await eventually(settled, timeout=60)
        applied = {
            row["event_id"] for row in await dash.pool.fetch("SELECT event_id FROM proj.events")
        }
        stalled = consumer.stalled(0)
    assert after.id in applied
    assert not stalled
