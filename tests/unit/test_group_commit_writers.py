"""Group commit with several writers (``group_commit_writers`` > 1; one is the default), and
when a writer lingers for more requests:
each key's events go to one writer, so they are committed in the order they came, while
the writers' transactions run side by side. The pipeline and the database are faked: what
is checked is the routing and the grouping, not what a transaction writes (the integration
tests in tests/integration/test_ingestion_group_commit.py run it on PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from support import BUDGET
from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.ingestion import groupcommit
from teamnl_shared.ingestion.groupcommit import GroupCommit
from teamnl_shared.ingestion.keys import Partner
from teamnl_shared.ingestion.pipeline import Outcome, Submission

PARTNER = Partner("k1", "acme", "nlib", frozenset({BUDGET}))
KEYS = [f"mission-{n}" for n in range(5)]


class RecordingPipeline:
    """Commits a group after a pause (the transaction's time in PostgreSQL), and records
    which writer committed which events, in commit order."""

    def __init__(self) -> None:
        self.groups: list[tuple[str, list[Event]]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.begun = asyncio.Event()

    async def accept_group(self, _conn: Any, submissions: Sequence[Submission]) -> list[Outcome]:
        self.in_flight += 1
        self.begun.set()
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.002 * (1 + len(self.groups) % 3))  # uneven transactions
        finally:
            self.in_flight -= 1
        writer = asyncio.current_task().get_name()  # type: ignore[union-attr]
        events = [s.item for s in submissions]
        assert all(isinstance(event, Event) for event in events)
        self.groups.append((writer, events))  # type: ignore[arg-type]
        return [Outcome(202, receipt={"id": event.id}) for event in events]  # type: ignore[union-attr]


@asynccontextmanager
async def no_connection() -> AsyncIterator[None]:
    yield None


@asynccontextmanager
async def writing(
    pipeline: RecordingPipeline, *, writers: int, max_events: int, linger: float
) -> AsyncIterator[GroupCommit]:
    committer = GroupCommit(
        pipeline,  # type: ignore[arg-type]
        no_connection,  # type: ignore[arg-type]
        max_events=max_events,
        linger=linger,
        writers=writers,
    )
    committer.start()
    try:
        yield committer
    finally:
        await committer.stop()


def event(number: int) -> Event:
    spec = spec_for(BUDGET)
    return Event(
        id=f"e-{number}",
        source="/partners/acme",
        type=BUDGET,
        subject=KEYS[number % len(KEYS)],
        time=datetime.now(UTC),
        data=spec.model.model_validate(spec.example),
    )


async def test_several_writers_keep_each_keys_events_in_order() -> None:
    pipeline = RecordingPipeline()
    sent = [event(n) for n in range(90)]
    async with writing(pipeline, writers=3, max_events=4, linger=0.001) as committer:
        outcomes = await asyncio.gather(*(committer.submit(PARTNER, e, {}) for e in sent))

    assert [o.receipt for o in outcomes] == [{"id": e.id} for e in sent]
    writers_of = {
        key: {w for w, events in pipeline.groups for e in events if e.key == key} for key in KEYS
    }
    assert all(len(writers) == 1 for writers in writers_of.values()), writers_of
    assert len(set().union(*writers_of.values())) > 1  # the keys are spread over the writers
    assert pipeline.most_in_flight > 1  # and their transactions overlap
    committed = [e for _, events in pipeline.groups for e in events]
    for key in KEYS:
        assert [e.id for e in committed if e.key == key] == [e.id for e in sent if e.key == key]


async def test_one_writer_commits_one_group_at_a_time() -> None:
    pipeline = RecordingPipeline()
    sent = [event(n) for n in range(40)]
    async with writing(pipeline, writers=1, max_events=256, linger=0) as committer:
        first = asyncio.ensure_future(committer.submit(PARTNER, sent[0], {}))
        await pipeline.begun.wait()  # the first group is in its transaction
        rest = await asyncio.gather(*(committer.submit(PARTNER, e, {}) for e in sent[1:]))
        outcomes = [await first, *rest]

    assert [o.status for o in outcomes] == [202] * len(sent)
    assert pipeline.most_in_flight == 1
    # the requests that came while the first transaction ran share the next one
    assert [len(events) for _, events in pipeline.groups] == [1, len(sent) - 1]


async def test_a_writer_does_not_linger_for_one_client_sending_one_event_at_a_time() -> None:
    """Its next request comes only once this one is answered: nothing could join the group.
    With an hour's linger, each answer still comes at once (else `wait_for` gives up)."""
    pipeline = RecordingPipeline()
    sent = [event(n) for n in range(3)]
    async with writing(pipeline, writers=1, max_events=256, linger=3600) as committer:
        for e in sent:
            with committer.request():
                outcome = await asyncio.wait_for(committer.submit(PARTNER, e, {}), 10)
            assert outcome.status == 202

    assert [len(events) for _, events in pipeline.groups] == [1, 1, 1]


async def test_a_writer_lingers_while_requests_overlap() -> None:
    """Requests in flight together: the writer waits for the ones still on their way (here
    until the group is full, `max_events`), so they share one transaction."""
    pipeline = RecordingPipeline()
    sent = [event(n) for n in range(3)]
    async with writing(pipeline, writers=1, max_events=3, linger=3600) as committer:

        async def post(e: Event, after: float) -> Outcome:
            with committer.request():
                await asyncio.sleep(after)  # reading and parsing its body
                return await committer.submit(PARTNER, e, {})

        outcomes = await asyncio.wait_for(
            asyncio.gather(*(post(e, 0.02 * n) for n, e in enumerate(sent))), 10
        )

    assert [o.status for o in outcomes] == [202] * 3
    assert [len(events) for _, events in pipeline.groups] == [3]


async def test_a_writer_stops_lingering_once_requests_no_longer_overlap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(groupcommit, "OVERLAP_MEMORY", 0.05)
    pipeline = RecordingPipeline()
    first, second, lone = event(0), event(1), event(2)
    async with writing(pipeline, writers=1, max_events=2, linger=3600) as committer:
        with committer.request(), committer.request():  # two requests overlap
            await asyncio.gather(
                committer.submit(PARTNER, first, {}), committer.submit(PARTNER, second, {})
            )
        await asyncio.sleep(0.1)  # longer than the memory of that overlap
        with committer.request():
            outcome = await asyncio.wait_for(committer.submit(PARTNER, lone, {}), 10)

    assert outcome.status == 202
    assert [len(events) for _, events in pipeline.groups] == [2, 1]
