"""Kafka holds the dashboard's fetch up to ``fetch_wait_ms`` while less than a full fetch has
arrived (issue 11: the fixed cost of a batch at a low rate).

Proves, on a real dashboard, broker and PostgreSQL: two events published 20 ms apart share
one batch (one transaction, one NOTIFY, one offset commit) when the fetch may wait 500 ms,
and two events 300 ms apart are two batches when it answers at once. A batch is told by the
live hub's announcements: one per committed batch, naming its events.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from dashboard_harness import Dashboard, dashboard_settings, make_event, running_dashboard
from teamnl_shared.contract.envelope import Event

pytestmark = pytest.mark.integration

CLOSE, FAR = 0.02, 0.3  # seconds between the two events
LONG_WAIT_MS = 500  # a fetch's wait ends between two close events about once in 25 tries
TRIES = 4
_ids = itertools.count()


def spend() -> Event:
    return make_event(
        "nl.teamnl.nlib.budget.spent.v1",
        spend_id=f"fetch-wait-{next(_ids)}",
        amount_cents=100,
        year=2024,
    )


async def batches_of_two_events_apart(dash: Dashboard, seconds: float) -> list[set[str]]:
    """The batches that carried two events published `seconds` apart."""
    first, second = spend(), spend()
    wanted = {first.id, second.id}
    batches = []
    async with dash.app.state.hub.subscribe() as announced:
        await dash.publish(first)
        await asyncio.sleep(seconds)
        await dash.publish(second)
        while wanted:
            message = await asyncio.wait_for(announced.get(), 30)
            if message.get("kind") == "event" and (named := wanted & set(message["ids"])):
                batches.append(named)
                wanted -= named
    return batches


async def test_events_close_together_share_one_batch_when_the_fetch_may_wait(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap, fetch_wait_ms=LONG_WAIT_MS)
    async with running_dashboard(settings) as dash:
        await dash.publish(spend())
        await dash.wait_applied(1)  # the consumer has its partitions
        tried = []
        while len(tried) < TRIES and not any(len(batches) == 1 for batches in tried):
            tried.append(await batches_of_two_events_apart(dash, CLOSE))
    assert any(len(batches) == 1 for batches in tried), tried


async def test_each_event_is_its_own_batch_when_the_fetch_answers_at_once(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap, fetch_wait_ms=0)
    async with running_dashboard(settings) as dash:
        await dash.publish(spend())
        await dash.wait_applied(1)
        assert len(await batches_of_two_events_apart(dash, FAR)) == 2
