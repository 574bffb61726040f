"""A batch is one transaction, answered per event as if each had been sent alone, in order;
concurrent requests for the same event are serialised by its receipt claim."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ingestion_helpers import RunningService, example, running, structured, written

from teamnl_shared.ingestion.schemas import BatchResult

pytestmark = pytest.mark.integration
PLANNED = "nl.teamnl.nlib.mission.planned.v1"
LEAD = "nl.teamnl.nlib.lead.converted.v1"
SUPPORTED = "nl.teamnl.nlib.company.supported.v1"


def event(event_type: str, suffix: str, **changes: Any) -> dict[str, Any]:
    return structured(event_type, {**example(event_type, suffix), **changes})


async def statuses(svc: RunningService, events: list[dict[str, Any]], key: str) -> list[int]:
    response = await svc.post_batch(events, key)
    assert response.status_code == 200, response.text
    return [item["status"] for item in response.json()["results"]]


async def test_copies_of_an_event_in_one_batch_are_replays_or_conflicts(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: a second copy of an event accepted earlier in the same batch answers 200 with
    the same receipt, a copy with other content 409; one outbox row."""
    first = event(SUPPORTED, "-dup")
    other = {**first, "data": {**first["data"], "company": "Other BV"}}
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        response = await svc.post_batch([first, first, other], await svc.key())
        results = response.json()["results"]
        assert [r["status"] for r in results] == [202, 200, 409]
        assert results[1]["receipt"] == results[0]["receipt"]
        assert await written(svc) == 1
        replay = await svc.post(first, await svc.key(partner="acme-partner"))
        assert (replay.status_code, replay.json()) == (200, results[0]["receipt"])


async def test_a_refused_event_can_be_accepted_later_in_the_same_batch(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: an event refused by a domain rule leaves no receipt, so the same event,
    sent again after what it needed (here its mission), is accepted in the same batch; the
    refusal in between does not undo the events around it."""
    lead = event(LEAD, "-later")
    planned = event(PLANNED, "-later")
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        assert await statuses(svc, [lead, planned, lead], key) == [422, 202, 202]
        assert await written(svc) == 2
        assert await svc.count("ingestion_receipts") == 2
        assert await svc.count("leads") == 1


async def test_a_lone_refused_event_in_a_batch_leaves_nothing(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: a batch whose only appliable event is refused, next to replays and invalid
    events, stores nothing (the transaction is rolled back) and answers each event."""
    planned = event(PLANNED, "-lone")
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        assert await statuses(svc, [planned], key) == [202]
        orphan = event(LEAD, "-lone", mission_id="m-unknown")
        invalid = {**event(SUPPORTED, "-x"), "specversion": "0.3"}
        assert await statuses(svc, [planned, orphan, invalid], key) == [200, 422, 422]
        assert await svc.count("ingestion_receipts") == 1
        assert await written(svc) == 1


async def test_concurrent_requests_for_the_same_events_store_each_once(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: the same events sent at once, as single events and as batches in opposite
    orders, are each accepted once (every other answer is a 200 replay): no duplicate, no
    deadlock surfacing to the client."""
    events = [event(SUPPORTED, f"-c{i}") for i in range(20)]
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        answers = await asyncio.gather(
            svc.post_batch(events, key),
            svc.post_batch(events[::-1], key),
            *(svc.post(e, key) for e in events[:5]),
        )
        assert all(a.status_code in (200, 202) for a in answers), [a.text for a in answers]
        accepted = sum(a.json()["accepted"] for a in answers[:2])
        accepted += sum(a.status_code == 202 for a in answers[2:])
        assert accepted == len(events)
        assert await written(svc) == len(events)
        companies = await svc.pool.fetchval("SELECT sum(supports) FROM companies")
        assert companies == len(events)


async def test_a_batch_answer_is_exactly_its_documented_model(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: the batch answer, written as JSON directly (no model per event), is exactly
    what the documented BatchResult model gives for it: accepted, replayed, refused by a
    domain rule and invalid items alike, every field present."""
    planned = event(PLANNED, "-shape")
    invalid = {**event(PLANNED, "-shape-bad"), "specversion": "0.3"}
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        batch = [planned, planned, event(LEAD, "-no-mission"), invalid]
        response = await svc.post_batch(batch, await svc.key())
        body = response.json()
        assert [item["status"] for item in body["results"]] == [202, 200, 422, 422]
        assert (body["accepted"], body["replayed"], body["rejected"]) == (1, 1, 2)
        assert BatchResult.model_validate(body).model_dump(mode="json") == body
