"""Group commit with several writers (``group_commit_writers`` > 1; one is the default):
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

from support import BUDGET
from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.registry import spec_for
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
