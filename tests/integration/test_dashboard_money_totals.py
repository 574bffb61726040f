"""Sums of money past a bigint: the contract bounds one event (`MAX_CENTS`, EUR 100 bn), not
how many a partner may send, so an initiative's yearly spending (or a mission's contract
value) may pass 2^63 - 1 cents after about 922,000 maximal events. Every running total and
every reading of such a sum must carry it exactly: one that overflowed failed the totals'
fold (beside the live consumer and inside a rebuild's switch) and answered a 500 on every
member's overview."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboard_harness import FakeClock, dashboard_settings, make_event, running_dashboard
from teamnl_dashboard.projections import fold_totals
from teamnl_shared.contract.types import MAX_CENTS

pytestmark = pytest.mark.integration
BIGINT_MAX = 2**63 - 1
YEAR = 2019
NOW = datetime(YEAR, 12, 1, 12, tzinfo=UTC)
MAXIMAL_SPENDS = BIGINT_MAX // MAX_CENTS + 1  # 922,338: their sum passes a bigint
WERKPLAATS = "nl.teamnl.werkplaats."
NLIB = "nl.teamnl.nlib."


@pytest.mark.timeout(300)
async def test_spending_and_contract_values_past_a_bigint_are_summed_and_read_exactly(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: with a year's spending of 922,338 maximal events (one sent through Kafka, the
    rest written as the projection writes them, one row and one delta each) and a
    mission's two maximal conversions beside leads worth more than a bigint, the totals
    fold, and the overview, the budget and the mission read the exact sums (as of today
    from the running totals, as of a past day from the totals of the days up to it); the
    pages answer 200."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        spend = make_event(
            WERKPLAATS + "budget.spent.v1",
            spend_id="sent",
            year=YEAR,
            amount_cents=MAX_CENTS,
            spent_on=f"{YEAR}-03-01",
        )
        mission = make_event(
            NLIB + "mission.held.v1",
            mission_id="m-big",
            start_date=f"{YEAR}-02-01",
            end_date=f"{YEAR}-02-03",
        )
        await dash.publish(spend, mission)
        await dash.wait_applied(2)
        async with dash.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO proj.budget_spent"
                " (family, spend_id, year, amount_cents, category, spent_on, event_id)"
                " SELECT 'werkplaats', 's' || n, $1, $2, 'events', $3, 'e' || n"
                " FROM generate_series(2, $4) n",
                YEAR,
                MAX_CENTS,
                datetime(YEAR, 3, 2).date(),
                MAXIMAL_SPENDS,
            )
            await conn.execute(
                "INSERT INTO proj.nlib_leads_converted"
                " (lead_id, mission_id, company, contract_value_cents, converted_on, event_id)"
                " SELECT 'l' || n, 'm-big', 'c', $1, $2, 'e' || n FROM generate_series(1, 3) n",
                BIGINT_MAX // 2,
                datetime(YEAR, 3, 1).date(),
            )
            await conn.execute("SET search_path = proj")
            await fold_totals(conn)
            await conn.execute("RESET search_path")
        spent = MAXIMAL_SPENDS * MAX_CENTS
        assert spent > BIGINT_MAX
        contract_value = 3 * (BIGINT_MAX // 2)

        period = {"period": str(YEAR)}
        overview = await dash.get("/api/v1/overview", **period)
        werkplaats = [i for i in overview["initiatives"] if i["family"] == "werkplaats"]
        assert [i["budget"]["spent_cents"] for i in werkplaats] == [spent]
        assert _werkplaats(await dash.get("/api/v1/budget", **period)) == [spent]
        past = await dash.get("/api/v1/budget", **period, as_of=f"{YEAR}-03-01")
        assert _werkplaats(past) == [MAX_CENTS]
        nlib = await dash.get("/api/v1/initiatives/nlib", **period)
        assert nlib["contract_value_cents"] == contract_value
        assert [m["contract_value_cents"] for m in nlib["missions"]] == [contract_value]
        for path in ("/", "/initiatives/werkplaats", "/initiatives/nlib", "/report"):
            for as_of in (f"{YEAR}-03-01", f"{YEAR}-06-30"):
                answer = await dash.member.get(path, params={**period, "as_of": as_of})
                assert answer.status_code == 200, (path, as_of, answer.text[:300])


def _werkplaats(budget: list[dict[str, object]]) -> list[object]:
    return [row["spent_cents"] for row in budget if row["family"] == "werkplaats"]
