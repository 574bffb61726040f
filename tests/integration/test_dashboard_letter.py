"""The letter's facts (the seed of ``teamnl up``), read through the API as ISO NL reads them.

The seeded events run up to December 2018; the dashboard's clock says 2026. Without a
period or as-of date the dashboard reads 2018 as of the seed's latest date, and shows the
letter's numbers without a false finding: spending against the allocations, 38 of the
forty cities with the ones that had activity, the eight TINL partners, eight Werkplaats
programmes against the 2019 target of 20, three Global Stars calls with 32 proposals.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from dashboard_harness import FakeClock, dashboard_settings, running_dashboard
from teamnl_shared.contract.envelope import Event, parse_event
from teamnl_suite import seed

pytestmark = pytest.mark.integration

TODAY = datetime(2026, 12, 1, 9, tzinfo=UTC)
LATEST_SEEDED = date(2018, 12, 21)  # the India mission's follow-up work session
COVERED = {"Warsaw", "Ho Chi Minh City", "Guangzhou/Pearl River Delta", "Mumbai", "Bogotá"}
COVERED |= {"New York City", "Chicago"}  # TINL: Smart City New York, the USA promotion


def letter_events() -> list[Event]:
    return [
        parse_event({k: v for k, v in raw.items() if k != "data"}, raw["data"])
        for events in seed.seed_events().values()
        for raw in events
    ]


async def test_the_seeded_letter_opens_in_2018_as_of_its_date_without_a_false_finding(
    database_url: str, kafka_bootstrap: str
) -> None:
    events = letter_events()
    async with running_dashboard(
        dashboard_settings(database_url, kafka_bootstrap), FakeClock(TODAY)
    ) as dash:
        await dash.publish(*events)
        await dash.wait_applied(len(events))

        overview = await dash.get("/api/v1/overview")
        assert (overview["period"], overview["as_of"]) == ("2018", LATEST_SEEDED.isoformat())
        assert overview["illustrative"] is True
        spent = {i["family"]: i["budget"] for i in overview["initiatives"]}
        assert spent["nlib"]["allocation_cents"] == 600_000_000  # EUR 6 M a year
        assert spent["globalstars"]["allocation_cents"] == 100_000_000  # EUR 1 M of the 4 M
        public = sum(spent[f]["allocation_cents"] for f in ("tinl", "globalstars", "werkplaats"))
        assert public == 400_000_000
        assert all(b["spent_cents"] > 0 for b in spent.values())  # no "EUR 0 of ..."
        assert overview["findings_open"] == {}, await dash.get("/api/v1/findings")
        assert await dash.get("/api/v1/findings") == []
        assert overview["score"]["joint_actions"] > 0 and overview["score"]["score"] > 0

        cities = await dash.get("/api/v1/cities")
        assert (cities["stated"], cities["total"], cities["with_programme"]) == (40, 38, 38)
        assert set(cities["covered_cities"]) == COVERED  # not Munich: Bavaria came to us
        assert cities["covered"] == len(COVERED)

        tinl = await dash.get("/api/v1/initiatives/tinl")
        assert (tinl["partners_taking_part"], tinl["partners_never"]) == (8, [])
        werkplaats = await dash.get("/api/v1/initiatives/werkplaats")
        [year_2018] = werkplaats["portfolio"]
        assert (year_2018["year"], year_2018["portfolio"], year_2018["target"]) == (2018, 8, None)
        assert werkplaats["next_target"] == {"year": 2019, "target": 20}
        stars = await dash.get("/api/v1/initiatives/globalstars")
        assert (stars["calls_closed"], stars["dutch_proposals"]) == (3, 32)
        assert all(call["outside_eureka"] for call in stars["calls"])

        await the_letters_showcases_complement_each_other(dash)
        await a_period_and_an_as_of_date_change_the_reading(dash)


async def the_letters_showcases_complement_each_other(dash: Any) -> None:
    together = {c["market"]: c for c in await dash.get("/api/v1/complementarity")}
    india = together["IN"]
    assert [i["family"] for i in india["initiatives"]] == ["nlib", "globalstars", "werkplaats"]
    assert len(india["links"]) == 3
    china = together["CN"]
    assert {p["city"] for p in china["preparation"]} == {
        "Tilburg",
        "Zaandam",
        "Arnhem",
        "Rotterdam",
    }
    assert "tinl" in [i["family"] for i in china["initiatives"]] and china["complementary"]
    smart = await dash.get("/api/v1/markets/smart-cities")  # no 404
    assert smart["tinl"] == 1
    assert (await dash.member.get("/markets/smart-cities")).status_code == 200
    assert (await dash.member.get("/api/v1/markets/XX")).status_code == 404


async def a_period_and_an_as_of_date_change_the_reading(dash: Any) -> None:
    mid_year = await dash.get("/api/v1/cities", period="2018", as_of="2018-04-30")
    assert set(mid_year["covered_cities"]) == {"Warsaw", "Ho Chi Minh City"}
    programme = await dash.get("/api/v1/budget", period="2017-2021")
    assert sorted({row["year"] for row in programme}) == [2017, 2018, 2019, 2020, 2021]
    live = await dash.get("/api/v1/findings", as_of=TODAY.date().isoformat())
    assert isinstance(live, list)  # today: the stored findings
    for params, name in (({"period": "2018-2017"}, "period"), ({"as_of": "31-12-2018"}, "as_of")):
        response = await dash.member.get("/api/v1/overview", params=params)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["field"] == f"query/{name}"
    page = await dash.member.get("/")
    assert 'name="period" value="2018"' in page.text and 'value="2018-12-21"' in page.text
