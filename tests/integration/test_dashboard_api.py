"""The dashboard's JSON API over events applied from Kafka: counts, rates, percentages.

Events are published as CloudEvents (binary mode) onto the test's own topics; a real
dashboard (uvicorn, consumer group, PostgreSQL) projects them; the test reads the API.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

import pytest

from dashboard_harness import FakeClock, dashboard_settings, make_event, running_dashboard
from support import eventually
from teamnl_dashboard import queries

pytestmark = pytest.mark.integration

NOW = datetime(2019, 7, 1, 12, tzinfo=UTC)
LATER = "2099-12-31"  # the events' times are the wall clock's: read past them
EVERYTHING = {"period": "2017-2021", "as_of": LATER}
NLIB = "nl.teamnl.nlib."
TINL = "nl.teamnl.tinl."
GS = "nl.teamnl.globalstars."
WP = "nl.teamnl.werkplaats."


def network_events() -> list:
    def mission(mission_id: str, country: str, city: str, leads: int, **more: object):
        return make_event(
            NLIB + "mission.held.v1",
            mission_id=mission_id,
            country=country,
            city=city,
            city_of_opportunity=more.pop("coo", None),
            leads=leads,
            start_date="2019-04-08",
            end_date="2019-04-12",
            **more,
        )

    def activity(
        activity_id: str,
        market: str,
        partners: list[str],
        city: str = "Tilburg",
        country: str = "NL",
    ):
        return make_event(
            TINL + "activity.held.v1",
            activity_id=activity_id,
            market=market,
            partners=partners,
            city=city,
            country=country,
            start_date="2019-05-13",
            end_date="2019-05-17",
        )

    def spend(family: str, spend_id: str, cents: int, year: int = 2019):
        return make_event(
            f"nl.teamnl.{family}.budget.spent.v1", spend_id=spend_id, amount_cents=cents, year=year
        )

    def project(project_id: str, country: str, sdgs: list[int]):
        return make_event(
            WP + "project.onboarded.v1",
            project_id=project_id,
            country=country,
            sdgs=sdgs,
            onboarded_on="2019-02-01",
        )

    return [
        mission("m-vn", "VN", "Ho Chi Minh City", 12, coo="Ho Chi Minh City"),
        mission("m-cn", "CN", "Shanghai", 8),
        make_event(NLIB + "mission.followup.held.v1", mission_id="m-vn", followup_id="f1"),
        *[
            make_event(
                NLIB + "lead.converted.v1",
                lead_id=f"lead-{i}",
                mission_id="m-vn",
                contract_value_cents=1_000_00,
            )
            for i in range(5)
        ],
        make_event(NLIB + "city.programme.updated.v1"),  # Ho Chi Minh City, pilot
        spend("nlib", "n1", 100_000_000),
        spend("nlib", "n2", 50_000_000),
        spend("globalstars", "g1", 50_000_000),
        spend("tinl", "t1", 15_000_000, 2018),
        activity("a1", "CN", ["bom", "rvo"]),
        activity("a2", "CN", ["bom", "rvo", "oost-nl"], city="Shanghai", country="CN"),
        activity("a3", "DE", ["oost-nl"]),
        activity(
            "a4", "smart-cities", ["amsterdam-in-business", "rvo"], city="New York", country="US"
        ),
        make_event(TINL + "knowledge.shared.v1", partners=["bom", "rvo"]),
        make_event(GS + "call.opened.v1", call_id="gs-in", negotiation_started_on="2018-01-15"),
        *[
            make_event(
                GS + "proposal.submitted.v1", call_id="gs-in", proposal_id=f"p{i}", dutch=i < 2
            )
            for i in range(3)
        ],
        make_event(
            GS + "call.closed.v1", call_id="gs-in", closed_on="2018-06-15", dutch_proposals=2
        ),
        project("w1", "IN", [6, 14]),
        project("w2", "KE", [3]),
        project("w3", "CN", [2, 6]),
        make_event(WP + "project.graduated.v1", project_id="w1"),
    ]


async def test_every_view_reflects_the_applied_events(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap)
    events = network_events()
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        await dash.publish(*events)
        await dash.wait_applied(len(events))

        nlib = await dash.get("/api/v1/initiatives/nlib", **EVERYTHING)
        assert (nlib["missions_held"], nlib["missions_followed_up"]) == (2, 1)
        assert nlib["followup_rate"] == 0.5
        assert (nlib["leads"], nlib["leads_converted"], nlib["lead_conversion"]) == (20, 5, 0.25)
        assert nlib["contract_value_cents"] == 5 * 1_000_00

        budget = {
            (b["family"], b["year"]): b for b in await dash.get("/api/v1/budget", **EVERYTHING)
        }
        assert budget[("nlib", 2019)]["spent_cents"] == 150_000_000
        assert budget[("nlib", 2019)]["spent_pct"] == 25.0
        assert budget[("globalstars", 2019)]["spent_pct"] == 50.0
        assert budget[("tinl", 2018)]["spent_pct"] == 10.0
        assert budget[("werkplaats", 2019)]["spent_pct"] == 0.0

        tinl = await dash.get("/api/v1/initiatives/tinl", **EVERYTHING)
        focus = {f["market"]: f["activities"] for f in tinl["focus_markets"]}
        assert focus == {"CN": 2, "DE": 1, "US": 0, "smart-cities": 1}
        pairs = {tuple(p["partners"]): p for p in tinl["partner_pairs"]}
        assert (pairs[("bom", "rvo")]["activities"], pairs[("bom", "rvo")]["knowledge_shared"]) == (
            2,
            1,
        )
        assert pairs[("oost-nl", "rvo")]["activities"] == 1

        gs = await dash.get("/api/v1/initiatives/globalstars", **EVERYTHING)
        [call] = gs["calls"]
        assert (call["proposals"], call["dutch_proposals"], call["dutch_proposals_reported"]) == (
            3,
            2,
            2,
        )
        assert (call["lead_time_months"], call["within_target"]) == (5.0, True)

        wp = await dash.get("/api/v1/initiatives/werkplaats", **EVERYTHING)
        assert (wp["projects"], wp["active"], wp["graduated"]) == (3, 2, 1)
        portfolio_2019 = next(p for p in wp["portfolio"] if p["year"] == 2019)
        assert (
            portfolio_2019["portfolio"],
            portfolio_2019["target"],
            portfolio_2019["target_pct"],
        ) == (3, 20, 15.0)
        assert wp["sdgs_covered"] == 4
        assert {s["sdg"]: s["projects"] for s in wp["sdg_coverage"]}[6] == 2

        cities = await dash.get("/api/v1/cities", **EVERYTHING)
        assert (cities["total"], cities["covered"], cities["with_programme"]) == (38, 3, 1)
        covered = {c["slug"] for c in cities["cities"] if c["covered"]}
        assert covered == {"ho-chi-minh-city", "shanghai", "new-york-city"}

        markets = {m["market"]: m for m in await dash.get("/api/v1/markets", **EVERYTHING)}
        assert (markets["CN"]["nlib"], markets["CN"]["tinl"], markets["CN"]["werkplaats"]) == (
            1,
            2,
            1,
        )
        assert (await dash.get("/api/v1/markets/cn", **EVERYTHING))["projects"][0][
            "project_id"
        ] == "w3"

        overview = {
            i["family"]: i
            for i in (await dash.get("/api/v1/overview", period="2019", as_of=LATER))["initiatives"]
        }
        assert overview["nlib"]["budget"]["spent_pct"] == 25.0
        per_family = Counter(event.spec.family for event in events)
        this_year = str(datetime.now(UTC).year)  # the events' times: the wall clock's
        counted = await dash.get("/api/v1/overview", period=this_year, as_of=LATER)
        assert {i["family"]: i["events"] for i in counted["initiatives"]} == {
            f: per_family[f] for f in overview
        }
        activity = await dash.get("/api/v1/activity", family="tinl", **EVERYTHING)
        assert activity == [{"period": "2019-05", "family": "tinl", "count": 4}]

        # the overview page's figures come from running totals: they agree with the reports
        rates = await queries.nlib_rates(dash.pool)
        assert rates == {"followup_rate": 0.5, "lead_conversion": 0.25}
        summary = await queries.tinl_summary(dash.pool)
        assert summary == {
            "activities": 4,
            "partner_pairs": len(tinl["partner_pairs"]),
            "partners_taking_part": tinl["partners_taking_part"],
        }
        projects = await queries.werkplaats_summary(dash.pool)
        unbounded = await queries.werkplaats(dash.pool)  # the running totals read no period
        assert projects["portfolio"] == unbounded["portfolio"][-1]
        assert (projects["sdgs_covered"], projects["graduations"]) == (4, 1)


async def test_the_overview_lists_the_newest_open_findings_and_links_to_all_of_them(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        await dash.pool.execute(  # newer than any the rules raise (the clock says NOW)
            "INSERT INTO findings (rule, rule_version, finding_key, severity, summary,"
            " raised_at, updated_at) SELECT 'test-rule', 1, 'k' || n, 'warning',"
            " 'Finding ' || n, $1::timestamptz + n * interval '1 day', $1"
            " FROM generate_series(1, 14) n",
            NOW,
        )
        page = (await dash.member.get("/")).text
        everything = await dash.pool.fetchval("SELECT count(*) FROM findings WHERE state = 'open'")

    shown = re.findall(r'<strong data-field="summary">(Finding \d+)</strong>', page)
    assert shown == [f"Finding {n}" for n in range(14, 4, -1)]  # the newest 10
    assert 'data-live-list="finding" data-max="10"' in page  # and so does the live feed
    link = re.search(r'<a id="all-findings" href="/findings\?state=open">([^<]*)</a>', page)
    assert link is not None
    assert link.group(1) == f"All open findings ({everything})"
    assert everything >= 14


async def test_tables_export_as_csv_and_everything_needs_a_member(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = network_events()
        await dash.publish(*events)
        await dash.wait_applied(len(events))
        response = await dash.member.get("/api/v1/budget.csv")
        assert response.headers["content-type"].startswith("text/csv")
        lines = response.text.splitlines()
        assert lines[0] == "family,name,year,allocation_cents,spent_cents,spent_pct,remaining_cents"
        assert "nlib,NLinBusiness,2019,600000000,150000000,25.0,450000000" in lines
        for path in (
            "/api/v1/markets.csv",
            "/api/v1/cities.csv",
            "/api/v1/findings.csv",
            "/api/v1/activity.csv",
            "/api/v1/coherence/score.csv",
            "/api/v1/initiatives/nlib/missions.csv",
            "/api/v1/initiatives/tinl/partner-pairs.csv",
            "/api/v1/initiatives/globalstars/calls.csv",
            "/api/v1/initiatives/werkplaats/portfolio.csv",
        ):
            assert (await dash.member.get(path)).status_code == 200, path

        assert (await dash.anonymous.get("/api/v1/overview")).status_code == 401
        assert (await dash.anonymous.get("/api/v1/stream")).status_code == 401
        rules = await dash.get("/api/v1/rules")
        assert {r["name"] for r in rules} >= {"mission-followup-overdue", "market-duplication"}
        paths = (await dash.anonymous.get("/openapi.json")).json()["paths"]
        assert "/api/v1/findings/{finding_id}/acknowledge" in paths
        assert "text/csv" in paths["/api/v1/budget.csv"]["get"]["responses"]["200"]["content"]


async def test_the_latest_events_carry_a_title_newest_first(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: ``queries.recent_events`` (and the page's ``/live/events``) give the latest
    events by time with a title - the event's own, or a label built for its type."""
    from teamnl_dashboard import queries

    settings = dashboard_settings(database_url, kafka_bootstrap)
    older = make_event(
        NLIB + "mission.held.v1",
        title="Trade mission to Vietnam",
        time=datetime(2019, 4, 12, tzinfo=UTC),
    )
    newer = make_event(
        NLIB + "budget.spent.v1",
        spend_id="s1",
        category="missions",
        year=2019,
        time=datetime(2019, 4, 13, tzinfo=UTC),
    )
    newest = make_event(
        GS + "call.closed.v1",
        call_id="gs-in",
        dutch_proposals=2,
        time=datetime(2019, 6, 15, tzinfo=UTC),
    )
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        await dash.publish(older, newer, newest)
        await dash.wait_applied(3)

        latest = await queries.recent_events(dash.pool, limit=2)
        assert [e["event_id"] for e in latest] == [newest.id, newer.id]
        assert set(latest[0]) == {"event_id", "family", "type", "subject", "time", "title"}
        assert latest[0]["title"] == "Call gs-in closed with 2 Dutch proposals"
        assert latest[1]["title"] == "Budget spent: missions (2019)"
        page = (await dash.member.get("/live/events")).json()
        assert [e["title"] for e in page] == [
            "Call gs-in closed with 2 Dutch proposals",
            "Budget spent: missions (2019)",
            "Trade mission to Vietnam",
        ]
        assert page[2]["initiative"] == "nlib" and page[2]["id"] == older.id


async def test_probes_and_the_openapi_document(database_url: str, kafka_bootstrap: str) -> None:
    """Proves: /healthz answers, /readyz reports the database, Kafka, the consumer and the
    live hub as ready (without a sign-in), and the main JSON routes have response schemas."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        assert (await dash.anonymous.get("/healthz")).json() == {"status": "alive"}
        ready = await dash.anonymous.get("/readyz")

        async def is_ready() -> bool:  # the consumer joins its group after start-up
            nonlocal ready
            ready = await dash.anonymous.get("/readyz")
            assert ready.status_code in (200, 503), ready.text
            return ready.status_code == 200

        await eventually(is_ready)
        assert ready.json() == {
            "status": "ready",
            "database": True,
            "kafka": True,
            "consumer": True,
            "consumer_stalled": False,
            "rules_stalled": False,
            "live": True,
        }
        document = (await dash.anonymous.get("/openapi.json")).json()

    def schema(path: str, method: str = "get") -> dict:
        responses = document["paths"][path][method]["responses"]
        return responses["200"]["content"]["application/json"]["schema"]

    assert schema("/api/v1/overview") == {"$ref": "#/components/schemas/Overview"}
    assert schema("/api/v1/findings")["items"] == {"$ref": "#/components/schemas/Finding"}
    assert schema("/api/v1/findings/{finding_id}")["$ref"].endswith("/FindingWithHistory")
    assert schema("/api/v1/rules")["items"]["$ref"].endswith("/Rule")
    assert schema("/api/v1/cities")["$ref"].endswith("/Cities")
    assert schema("/api/v1/markets")["items"]["$ref"].endswith("/Market")
    assert schema("/readyz")["$ref"].endswith("/Readiness")
    finding = document["components"]["schemas"]["Finding"]["properties"]
    assert finding["state"]["enum"] == ["open", "acknowledged", "resolved"]


async def test_a_score_since_that_is_no_postgresql_time_is_a_422(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Found by the API fuzzing: an offset that takes `since` before year 1 in UTC was a 500
    (asyncpg could not encode it); the same date in range still answers."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        for since in ("0001-01-01T00:01:00+01:01", "9999-12-31T23:59:00-01:00"):
            response = await dash.member.get("/api/v1/coherence/score", params={"since": since})
            assert response.status_code == 422, response.text
            [error] = response.json()["errors"]
            assert error["field"] == "query/since" and "out of range" in error["reason"]
        for since in ("0001-01-01T02:00:00+01:01", "2019-06-01T00:00:00Z", "2019-06-01T00:00"):
            response = await dash.member.get("/api/v1/coherence/score", params={"since": since})
            assert response.status_code == 200, (since, response.text)
