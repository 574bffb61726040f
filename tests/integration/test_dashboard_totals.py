"""The running totals' upkeep in a running dashboard (`projections.totals`): what the
consumers add is folded beside them, and the totals' tables are vacuumed."""

from __future__ import annotations

from datetime import datetime

import pytest
from test_dashboard_api import NOW, network_events

from dashboard_harness import FakeClock, dashboard_settings, running_dashboard
from support import eventually
from teamnl_dashboard.projections.totals import RUNNING_TOTALS

pytestmark = pytest.mark.integration


async def test_projected_events_are_folded_and_the_totals_vacuumed_beside_the_consumer(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: after the consumer projected the network's events (each batch adding delta
    rows), the folder leaves no delta row and has vacuumed every running-totals table
    (VACUUM, not autovacuum); the totals still count every event."""
    settings = dashboard_settings(database_url, kafka_bootstrap, totals_fold_seconds=0.2)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = network_events()
        await dash.publish(*events)
        await dash.wait_applied(len(events))

        async def folded() -> bool:
            deltas = await dash.pool.fetchval(
                "SELECT (SELECT count(*) FROM proj.family_totals WHERE delta)"
                " + (SELECT count(*) FROM proj.activity_months WHERE delta)"
            )
            return deltas == 0

        async def vacuumed() -> bool:
            rows = await dash.pool.fetch(
                "SELECT relname FROM pg_stat_user_tables"
                " WHERE schemaname = 'proj' AND vacuum_count > 0"
            )
            return {r["relname"] for r in rows} >= set(RUNNING_TOTALS)

        await eventually(folded, timeout=30)
        await eventually(vacuumed, timeout=30)
        counted = await dash.pool.fetchval("SELECT sum(events) FROM proj.family_totals")
        assert counted == await dash.pool.fetchval("SELECT count(*) FROM proj.events") > 0


async def test_the_status_reads_the_running_totals_as_the_events_say(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: /api/v1/status, read from the running totals (not by counting `events`),
    reports every event applied and each family's latest event as the events themselves
    say, before and after the totals are folded."""
    settings = dashboard_settings(database_url, kafka_bootstrap, totals_fold_seconds=0.2)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = network_events()
        await dash.publish(*events)
        await dash.wait_applied(len(events))
        truth = await dash.pool.fetchval(
            "SELECT (SELECT count(*) FROM proj.events) + (SELECT count(*) FROM proj.inbox)"
        )
        latest = {
            r["family"]: r["at"]
            for r in await dash.pool.fetch(
                "SELECT family, max(time) AS at FROM proj.events GROUP BY family"
            )
        }
        status = await dash.get("/api/v1/status")
        assert status["events_applied"] == truth >= len(events)
        assert {
            f: datetime.fromisoformat(at) for f, at in status["last_event_at"].items()
        } == latest

        async def folded() -> bool:
            return not await dash.pool.fetchval(
                "SELECT count(*) FROM proj.family_totals WHERE delta"
            )

        await eventually(folded, timeout=30)
        assert (await dash.get("/api/v1/status"))["events_applied"] == truth
