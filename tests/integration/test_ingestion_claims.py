"""New events claim their receipts in the statement that queues them (a lone event also in
its handler's, with no transaction of its own); a replay or a refusal is found there and
run again claiming first (real PostgreSQL, real Kafka).

The statements a transaction runs are read with asyncpg's own query logger on the
connection the pipeline is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from ingestion_helpers import PARTNER, RunningService, example, running, stored, structured

from support import eventually
from teamnl_shared.contract.envelope import parse_structured
from teamnl_shared.ingestion.keys import Partner
from teamnl_shared.ingestion.pipeline import Outcome, Submission

pytestmark = pytest.mark.integration
PLANNED = "nl.teamnl.nlib.mission.planned.v1"
HELD = "nl.teamnl.nlib.mission.held.v1"


@pytest.fixture
async def svc(database_url: str, kafka_bootstrap: str) -> AsyncIterator[RunningService]:
    async with running("nlib", database_url, kafka_bootstrap) as service:
        yield service


async def accepted_with_queries(
    svc: RunningService, conn: asyncpg.Connection, *documents: dict[str, object]
) -> tuple[list[Outcome], list[str]]:
    """The pipeline's outcomes for `documents`, sent together, and the statements it ran."""
    partner = Partner("key", PARTNER, "nlib", frozenset({PLANNED, HELD}))
    submissions = [Submission(partner, parse_structured(d), {}) for d in documents]
    queries: list[str] = []

    def log(query: asyncpg.connection.LoggedQuery) -> None:
        queries.append(query.query)

    conn.add_query_logger(log)
    try:
        outcomes = await svc.runtime.pipeline.accept_group(conn, submissions)
        await asyncio.sleep(0)  # asyncpg calls its query loggers soon after, not at once
    finally:
        conn.remove_query_logger(log)
    return outcomes, queries


async def published(svc: RunningService, document: dict[str, object]) -> None:
    """Until the relay sent `document` to Kafka (its outbox row gone: only its receipt says
    it was accepted)."""

    async def gone() -> bool:
        query = "SELECT count(*) = 0 FROM outbox WHERE event_id = $1"
        return bool(await svc.pool.fetchval(query, document["id"]))

    await eventually(gone)


def lone(query: str) -> bool:
    """The statement that applies a lone event, queues its record and stores its receipt."""
    return query.startswith("WITH applied AS (INSERT INTO missions") and all(
        table in query for table in ("INSERT INTO outbox", "INSERT INTO ingestion_receipts")
    )


async def test_a_lone_new_event_is_applied_queued_and_claimed_in_one_statement(
    svc: RunningService,
) -> None:
    """Proves: a new event sent alone, of a type whose handler is one statement, takes one
    statement and no transaction of its own - its handler's, its Kafka record queued and its
    receipt stored together; the same event sent again once it is in Kafka (its receipt,
    not its outbox row, is in the way) is answered 200 with that receipt, and stored once:
    the lone statement failed as a whole and the event was run again, claimed first."""
    document = structured(PLANNED, example(PLANNED, "-lone"))
    async with svc.pool.acquire() as conn:
        # asyncpg reads the types of a statement's arguments the first time it prepares it
        warm_up = structured(PLANNED, example(PLANNED, "-lone-first"))
        assert (await accepted_with_queries(svc, conn, warm_up))[0][0].status == 202

        [first], queries = await accepted_with_queries(svc, conn, document)

        assert first.status == 202, first.problem
        assert len(queries) == 1 and lone(queries[0]), [q[:60] for q in queries]
        assert await stored(svc, document) == (1, 1)
        row = await svc.pool.fetchrow(
            "SELECT status, title FROM missions WHERE mission_id = $1",
            document["data"]["mission_id"],
        )  # type: ignore[index]
        assert dict(row) == {"status": "planned", "title": document["data"]["title"]}  # type: ignore[index]

        await published(svc, document)
        [again], queries = await accepted_with_queries(svc, conn, document)

    assert again.status == 200, again.problem
    assert again.receipt == first.receipt
    assert dict(again.headers) == {"Idempotent-Replay": "true"}
    assert lone(queries[0]) and queries[1].startswith("BEGIN"), [q[:60] for q in queries]
    assert any(q.startswith("INSERT INTO ingestion_receipts") for q in queries[2:]), "no claim"
    assert await stored(svc, document) == (1, 1)


async def test_new_events_together_are_claimed_in_the_statement_that_queues_them(
    svc: RunningService,
) -> None:
    """Proves: two new events of one type sent together take four statements - BEGIN, their
    handler's (both at once), one that queues their Kafka records and stores their receipts,
    COMMIT - with no claim before the handler."""
    documents = [structured(PLANNED, example(PLANNED, f"-together-{n}")) for n in range(2)]
    async with svc.pool.acquire() as conn:
        warm_up = [structured(PLANNED, example(PLANNED, f"-together-first-{n}")) for n in range(2)]
        await accepted_with_queries(svc, conn, *warm_up)

        outcomes, queries = await accepted_with_queries(svc, conn, *documents)

    assert [o.status for o in outcomes] == [202, 202]
    assert len(queries) == 4, [q[:60] for q in queries]
    assert queries[0].startswith("BEGIN") and queries[-1].startswith("COMMIT"), queries
    handler, record = queries[1:3]
    assert "ingestion_receipts" not in handler, handler
    assert "INSERT INTO outbox" in record and "INSERT INTO ingestion_receipts" in record
    for document in documents:
        assert await stored(svc, document) == (1, 1)


async def test_a_lone_event_its_statement_refuses_leaves_nothing(svc: RunningService) -> None:
    """Proves: a mission planned after it was held, sent alone, is answered 409 naming the
    field; its lone statement wrote nothing (no outbox row, no receipt), the mission stays
    held, and a later event with the same id is new."""
    held = structured(HELD, example(HELD, "-lone-refused"))
    late = structured(PLANNED, example(PLANNED, "-lone-refused"))
    async with svc.pool.acquire() as conn:
        [accepted], _ = await accepted_with_queries(svc, conn, held)
        [refused], queries = await accepted_with_queries(svc, conn, late)

    assert accepted.status == 202, accepted.problem
    assert refused.status == 409 and refused.problem is not None
    assert refused.problem.errors[0].field == "data/mission_id"
    assert lone(queries[0]) and queries[-1].startswith("ROLLBACK"), [q[:60] for q in queries]
    assert await stored(svc, late) == (0, 0)
    mission_id = late["data"]["mission_id"]  # type: ignore[index]
    status = await svc.pool.fetchval(
        "SELECT status FROM missions WHERE mission_id = $1", mission_id
    )
    assert status == "held"


async def test_copies_of_a_lone_event_sent_at_once_are_stored_once(svc: RunningService) -> None:
    """Proves: the same event sent alone on two connections at the same moment is answered
    202 and 200 with the same receipt and stored once (the second lone statement waits for
    the first, finds its record or receipt in the way and fails as a whole)."""
    document = structured(PLANNED, example(PLANNED, "-lone-copies"))
    async with svc.pool.acquire() as one, svc.pool.acquire() as other:
        results = await asyncio.gather(
            accepted_with_queries(svc, one, document), accepted_with_queries(svc, other, document)
        )
    outcomes = sorted((outcome for [outcome], _ in results), key=lambda o: o.status)
    assert [o.status for o in outcomes] == [200, 202], [o.problem for o in outcomes]
    assert outcomes[0].receipt == outcomes[1].receipt
    assert await stored(svc, document) == (1, 1)


async def test_a_lone_event_in_the_callers_transaction_is_undone_with_it(
    svc: RunningService,
) -> None:
    """Proves: given a connection already in a transaction, a lone event is not committed
    by a statement of its own: rolling the caller's transaction back undoes it."""
    document = structured(PLANNED, example(PLANNED, "-lone-nested"))
    async with svc.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        [outcome], queries = await accepted_with_queries(svc, conn, document)
        await transaction.rollback()

    assert outcome.status == 202, outcome.problem
    assert not any(lone(q) for q in queries), [q[:60] for q in queries]
    assert await stored(svc, document) == (0, 0)
