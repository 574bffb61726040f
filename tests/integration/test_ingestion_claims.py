"""A transaction of new events claims their receipts in the statement that queues them; a
replay is found there and run again claiming first (real PostgreSQL, real Kafka).

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


@pytest.fixture
async def svc(database_url: str, kafka_bootstrap: str) -> AsyncIterator[RunningService]:
    async with running("nlib", database_url, kafka_bootstrap) as service:
        yield service


async def accepted_with_queries(
    svc: RunningService, conn: asyncpg.Connection, document: dict[str, object]
) -> tuple[Outcome, list[str]]:
    """The pipeline's outcome for `document`, sent alone, and the statements it ran."""
    partner = Partner("key", PARTNER, "nlib", frozenset({PLANNED}))
    submission = Submission(partner, parse_structured(document), {})
    queries: list[str] = []

    def log(query: asyncpg.connection.LoggedQuery) -> None:
        queries.append(query.query)

    conn.add_query_logger(log)
    try:
        [outcome] = await svc.runtime.pipeline.accept_group(conn, [submission])
        await asyncio.sleep(0)  # asyncpg calls its query loggers soon after, not at once
    finally:
        conn.remove_query_logger(log)
    return outcome, queries


async def test_a_new_event_is_claimed_in_the_statement_that_queues_it(
    svc: RunningService,
) -> None:
    """Proves: a new event takes four statements - BEGIN, its handler's, one that queues its
    Kafka record and stores its receipt, COMMIT - with no claim before the handler; the
    same event sent again once it is in Kafka (its receipt, not its outbox row, tells) is
    answered 200 with that receipt, and stored once. (Sent again while its outbox row is
    still there: `test_copies_of_an_event_in_one_batch_are_replays_or_conflicts`.)"""
    document = structured(PLANNED, example(PLANNED, "-claims"))
    async with svc.pool.acquire() as conn:
        # asyncpg reads the types of a statement's arguments the first time it prepares it
        warm_up = structured(PLANNED, example(PLANNED, "-claims-first"))
        assert (await accepted_with_queries(svc, conn, warm_up))[0].status == 202

        first, queries = await accepted_with_queries(svc, conn, document)

        assert first.status == 202, first.problem
        assert len(queries) == 4, [q[:60] for q in queries]
        assert queries[0].startswith("BEGIN") and queries[-1].startswith("COMMIT"), queries
        handler, record = queries[1:3]
        assert "ingestion_receipts" not in handler, handler
        assert "INSERT INTO outbox" in record and "INSERT INTO ingestion_receipts" in record

        async def published() -> bool:  # its outbox row gone: only its receipt says it
            query = "SELECT count(*) = 0 FROM outbox WHERE event_id = $1"
            return bool(await svc.pool.fetchval(query, document["id"]))

        await eventually(published)
        again, queries = await accepted_with_queries(svc, conn, document)

    assert again.status == 200, again.problem
    assert again.receipt == first.receipt
    assert dict(again.headers) == {"Idempotent-Replay": "true"}
    assert any(q.startswith("ROLLBACK") for q in queries), "the first run stood"
    assert await stored(svc, document) == (1, 1)
