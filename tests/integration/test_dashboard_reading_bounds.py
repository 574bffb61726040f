"""What one reading may list is bounded: a page, the report, the API's lists and the events
behind a figure read at most `queries.READING_ROWS` items of one kind, and a figure's page
lists at most `initiatives.FIGURE_EVENTS_SHOWN` events. Before, a reading listed every item
of its period: with a million events (the bench's), the NLIB page took 8 s and 55 MB, the
events behind the spending 21 s and 137 MB, and the dashboard's process grew to 1.9 GB,
its one event loop (the live projection's too) held for seconds. The bounds are set low
here; the defaults are in the modules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dashboard_harness import FakeClock, dashboard_settings, make_event, running_dashboard
from teamnl_dashboard import initiatives, queries
from teamnl_dashboard.rules import engine as engine_module

pytestmark = pytest.mark.integration
NOW = datetime(2019, 12, 1, 12, tzinfo=UTC)
HELD = "nl.teamnl.nlib.mission.held.v1"
SPENT = "nl.teamnl.nlib.budget.spent.v1"
LEAD = "nl.teamnl.nlib.lead.converted.v1"
ONBOARDED = "nl.teamnl.werkplaats.project.onboarded.v1"
GRADUATED = "nl.teamnl.werkplaats.project.graduated.v1"


def _mission(n: int, year: int) -> object:
    return make_event(
        HELD,
        time=datetime(year, 3, n, tzinfo=UTC),
        mission_id=f"m-{year}-{n}",
        start_date=f"{year}-03-0{n}",
        end_date=f"{year}-03-0{n}",
    )


def _spend(n: int) -> object:
    return make_event(
        SPENT, spend_id=f"s-{n}", year=2019, amount_cents=100 * n, spent_on=f"2019-04-0{n}"
    )


@pytest.mark.timeout(120)
async def test_a_reading_listing_more_than_its_bound_is_a_problem_naming_the_period(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: with the bound at 2, a year of 3 missions is refused (422 naming
    ``query/period``, saying what is listed) on the NLIB page, its API, the report and a
    figure's events, while a year of 2 missions reads; the spending's sums read any number
    of spendings, their events are bounded as the lists are; three calls are refused by the
    Global Stars API and its CSV, and counted by the overview's targets."""
    monkeypatch.setattr(queries, "READING_ROWS", 2)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = [_mission(n, 2019) for n in (1, 2, 3)] + [_mission(n, 2018) for n in (1, 2)]
        events += [_spend(n) for n in (1, 2, 3)]
        await dash.publish(*events)
        await dash.wait_applied(len(events))

        refused = {
            "/api/v1/initiatives/nlib": {},
            "/initiatives/nlib": {},
            "/report": {},
            "/api/v1/events": {"figure": "missions.held"},
            "/events": {"figure": "spending"},
        }
        for path, more in refused.items():
            answer = await dash.member.get(path, params={"period": "2019", **more})
            assert answer.status_code == 422, (path, answer.text[:300])
            problem = answer.json()
            assert [e["field"] for e in problem["errors"]] == ["query/period"], problem
            assert "more than 2 " in problem["errors"][0]["reason"], problem
        assert (
            "more than 2 missions"
            in (await dash.member.get("/initiatives/nlib", params={"period": "2019"})).json()[
                "detail"
            ]
        )

        calls = [  # three calls of 2019: listed, more than the bound; counted, not listed
            make_event(
                "nl.teamnl.globalstars.call.opened.v1",
                call_id=f"gs-{n}",
                negotiation_started_on="2019-01-10",
                opened_on=f"2019-02-0{n}",
            )
            for n in (1, 2, 3)
        ]
        await dash.publish(*calls)
        await dash.wait_applied(len(events) + len(calls))
        for path in ("globalstars", "globalstars/calls.csv"):
            answer = await dash.member.get(f"/api/v1/initiatives/{path}", params={"period": "2019"})
            assert answer.status_code == 422, (path, answer.text[:300])
        page = await dash.member.get("/", params={"period": "2019", "as_of": "2019-12-31"})
        assert page.status_code == 200, page.text[:300]  # its targets count the calls

        nlib = await dash.get("/api/v1/initiatives/nlib", period="2018")
        assert nlib["missions_held"] == 2
        for path in ("/initiatives/nlib", "/report"):
            answer = await dash.member.get(path, params={"period": "2018"})
            assert answer.status_code == 200, (path, answer.text[:300])
        budget = await dash.get("/api/v1/budget", period="2019")
        assert [r["spent_cents"] for r in budget if r["family"] == "nlib"] == [600]


def _lead(n: int, year: int) -> object:
    return make_event(
        LEAD, lead_id=f"l-{n}", mission_id=f"m-{year}-1", converted_on=f"{year}-04-0{n}"
    )


@pytest.mark.timeout(120)
async def test_an_items_own_events_count_as_items_of_the_reading(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: with the bound at 2, one mission with 3 conversions is refused as a reading
    of 3 conversions (the report and the figure's events), while 2 conversions read and
    their figure names them. A mission's follow-ups and conversions, and a call's
    proposals, were arrays within the item's row, bounded by nothing."""
    monkeypatch.setattr(queries, "READING_ROWS", 2)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        two = [_mission(1, 2018), _lead(1, 2018), _lead(2, 2018)]
        three = [_mission(1, 2019)] + [_lead(n, 2019) for n in (3, 4, 5)]
        await dash.publish(*two, *three)
        await dash.wait_applied(len(two) + len(three))

        for path, more in {"/report": {}, "/api/v1/events": {"figure": "leads.converted"}}.items():
            answer = await dash.member.get(path, params={"period": "2019", **more})
            assert answer.status_code == 422, (path, answer.text[:300])
            assert "more than 2 conversions" in answer.json()["errors"][0]["reason"]
        assert (await dash.member.get("/report", params={"period": "2018"})).status_code == 200
        behind = await dash.get("/api/v1/events", figure="leads.converted", period="2018")
        assert [e["event_id"] for e in behind["events"]] == [e.id for e in two[1:]]


@pytest.mark.timeout(120)
async def test_the_events_behind_a_figure_count_all_and_list_the_latest(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: with 2 events shown at most, the events behind a figure of 3 count 3 and
    list the latest 2, oldest first (API and page)."""
    monkeypatch.setattr(initiatives, "FIGURE_EVENTS_SHOWN", 2)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        missions = [_mission(n, 2019) for n in (1, 2, 3)]
        await dash.publish(*missions)
        await dash.wait_applied(len(missions))

        behind = await dash.get("/api/v1/events", figure="missions.held", period="2019")
        assert behind["count"] == 3
        assert [e["event_id"] for e in behind["events"]] == [m.id for m in missions[1:]]
        page = await dash.member.get(
            "/events", params={"figure": "missions.held", "period": "2019"}
        )
        assert page.status_code == 200
        assert '<strong id="event-count">3</strong>' in page.text
        assert missions[0].id not in page.text
        assert all(m.id in page.text for m in missions[1:])


@pytest.mark.timeout(120)
async def test_a_markets_preparation_lists_its_latest_activities_at_home(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: with 2 shown at most, a market prepared by 3 TINL activities at home lists
    the latest 2 (every one of a million events' was 12 MB of JSON); the market still
    counts its activities and is complementary."""
    monkeypatch.setattr(queries, "PREPARATION_SHOWN", 2)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        held = [
            make_event(
                "nl.teamnl.tinl.activity.held.v1",
                activity_id=f"cbw-{n}",
                city=city,
                start_date=f"2019-05-0{n}",
                end_date=f"2019-05-0{n}",
            )
            for n, city in ((1, "Tilburg"), (2, "Zaandam"), (3, "Arnhem"))
        ]
        mission = make_event(HELD, country="CN", city="Shanghai", mission_id="m-cn")
        await dash.publish(*held, mission)
        await dash.wait_applied(len(held) + 1)

        together = {c["market"]: c for c in await dash.get("/api/v1/complementarity")}
        china = together["CN"]
        assert [p["city"] for p in china["preparation"]] == ["Zaandam", "Arnhem"]
        assert {i["family"]: i["activities"] for i in china["initiatives"]} == {
            "nlib": 1,
            "tinl": 3,
        }
        assert china["complementary"]
        assert (await dash.member.get("/markets/CN")).status_code == 200


@pytest.mark.timeout(120)
async def test_the_findings_page_as_of_a_past_date_lists_at_most_its_bound(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: as of a past date (the rules evaluated then, nothing stored), the findings
    page lists at most `FINDINGS_SHOWN` findings, as the stored ones are (as of a past date
    of the bench's million events it listed 250,000: 8 s, 112 MB of HTML)."""
    monkeypatch.setattr(queries, "FINDINGS_SHOWN", 1)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        missions = [_mission(n, 2019) for n in (1, 2)]  # held, never followed up
        await dash.publish(*missions)
        await dash.wait_applied(len(missions))

        reading = {"period": "2019", "as_of": "2019-11-30"}
        seen = await dash.get("/api/v1/findings", **reading, rule="mission-followup-overdue")
        assert len(seen) == 2
        page = await dash.member.get("/findings", params=reading)
        assert page.status_code == 200
        assert page.text.count('<li class="finding" data-id="None"') == 1  # as of then: no id


@pytest.mark.timeout(120)
async def test_a_reading_as_of_a_past_date_keeps_its_first_hits_and_counts_them_all(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: as of a past date, the rules' reading keeps the first `AS_OF_HITS_KEPT` hits
    of each rule and severity (by key) and counts every one: the overview's open findings
    count all, the findings API lists the kept ones (every one of a million events' was a
    finding's row each: 420 MiB)."""
    monkeypatch.setattr(engine_module, "AS_OF_HITS_KEPT", 1)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        missions = [_mission(n, 2019) for n in (1, 2, 3)]  # held, never followed up
        await dash.publish(*missions)
        await dash.wait_applied(len(missions))

        reading = {"period": "2019", "as_of": "2019-11-30"}
        overdue = await dash.get("/api/v1/findings", **reading, rule="mission-followup-overdue")
        assert [f["finding_key"] for f in overdue] == ["m-2019-1"]
        overview = await dash.get("/api/v1/overview", **reading)
        listed = await dash.get("/api/v1/findings", **reading)
        assert sum(overview["findings_open"].values()) > len(listed)
        counted = {**overview["findings_open"]}
        monkeypatch.setattr(engine_module, "AS_OF_HITS_KEPT", 100)
        everything = await dash.get("/api/v1/findings", **reading)
        assert len(everything) == sum(counted.values())
        assert sum(f["rule"] == "mission-followup-overdue" for f in everything) == 3


@pytest.mark.timeout(120)
async def test_a_reading_as_of_a_past_date_judges_the_projects_in_parts(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: as of a past date, the scoped rule (isolated projects) judges the projects a
    part at a time (`PART_SIZE`, 1 here) and finds what it finds reading them whole, kept
    and counted as before. (Read whole, the projects of a million events and their hits
    took the dashboard to 298 MiB.)"""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        projects = [make_event(ONBOARDED, project_id=f"p-{n}") for n in (1, 2, 3)]
        await dash.publish(*projects)
        await dash.wait_applied(len(projects))
        reading = {"period": "2019", "as_of": "2019-11-30", "rule": "isolated-project"}

        async def isolated() -> list[str]:
            return [f["finding_key"] for f in await dash.get("/api/v1/findings", **reading)]

        whole = await isolated()
        assert sorted(whole) == ["p-1", "p-2", "p-3"]
        monkeypatch.setattr(engine_module, "PART_SIZE", 1)
        loaded: list[int] = []
        load_facts = engine_module.load_facts

        async def counting(*args: Any) -> Any:  # the projects each load of facts holds
            facts = await load_facts(*args)
            loaded.append(len(facts.projects))
            return facts

        monkeypatch.setattr(engine_module, "load_facts", counting)
        assert await isolated() == whole
        assert max(loaded) == 1 and sum(loaded) == 3, loaded
        monkeypatch.setattr(engine_module, "AS_OF_HITS_KEPT", 1)
        assert await isolated() == ["p-1"]
        overview = await dash.get("/api/v1/overview", period="2019", as_of="2019-11-30")
        monkeypatch.setattr(engine_module, "PART_SIZE", 1000)
        assert overview == await dash.get("/api/v1/overview", period="2019", as_of="2019-11-30")


@pytest.mark.timeout(120)
async def test_the_werkplaats_reading_counts_its_projects_and_lists_its_graduations(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves: with the bound at 2, the Werkplaats reading of 3 graduated projects is
    refused as a list of 3 graduations, while the overview of that past reading counts them
    (its targets read only counts); 2 graduations are listed. It read every project of the
    reading to count them: 250,000 in 4 s and 114 MiB for a past reading's overview."""
    monkeypatch.setattr(queries, "READING_ROWS", 2)
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = []
        for n, year in ((1, 2018), (2, 2018), (3, 2019), (4, 2019), (5, 2019)):
            events += [
                make_event(ONBOARDED, project_id=f"p-{n}", onboarded_on=f"{year}-02-0{n}"),
                make_event(GRADUATED, project_id=f"p-{n}", graduated_on=f"{year}-10-0{n}"),
            ]
        await dash.publish(*events)
        await dash.wait_applied(len(events))

        refused = await dash.member.get("/api/v1/initiatives/werkplaats", params={"period": "2019"})
        assert refused.status_code == 422, refused.text
        assert "more than 2 graduations" in refused.json()["errors"][0]["reason"]
        earlier = await dash.get("/api/v1/initiatives/werkplaats", period="2018")
        assert [g["project_id"] for g in earlier["graduations"]] == ["p-1", "p-2"]
        assert (earlier["projects"], earlier["graduated"], earlier["active"]) == (2, 2, 0)
        past = await dash.member.get("/", params={"period": "2019", "as_of": "2019-12-31"})
        assert past.status_code == 200, past.text[:300]
