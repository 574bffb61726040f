"""Pages per initiative and the progress report to parliament, over events applied from Kafka.

The events (2017-2019, so that a period leaves some out) are posted as CloudEvents to the
three initiative services (for the report) or published onto the test's own topics (for the
pages), and projected by a real dashboard. The report is downloaded as a PDF
printed by headless Chromium, its text extracted with ``pdftotext`` (poppler-utils), and
its figures checked against the JSON API for the same period: spending against
``/api/v1/budget``, counts against ``/api/v1/initiatives/*`` and ``/api/v1/events``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from ingestion_helpers import running

from dashboard_harness import (
    Dashboard,
    FakeClock,
    dashboard_settings,
    make_event,
    running_dashboard,
)
from inprocess import fresh_database
from teamnl_shared.contract.envelope import Event
from teamnl_suite.infra import Infrastructure

pytestmark = pytest.mark.integration

NOW = datetime(2019, 7, 1, 12, tzinfo=UTC)
NLIB, TINL, GS, WP = (f"nl.teamnl.{f}." for f in ("nlib", "tinl", "globalstars", "werkplaats"))
HOSTILE = "<script>alert(1)</script>"


def spend(family: str, spend_id: str, cents: int, year: int, on: str) -> Any:
    return make_event(
        f"nl.teamnl.{family}.budget.spent.v1",
        spend_id=spend_id,
        amount_cents=cents,
        year=year,
        spent_on=on,
    )


def mission(mission_id: str, country: str, city: str, start: str, leads: int, **more: Any) -> Any:
    return make_event(
        NLIB + "mission.held.v1",
        mission_id=mission_id,
        title=more.pop("title", f"Mission {mission_id}"),
        country=country,
        city=city,
        city_of_opportunity=more.pop("coo", None),
        start_date=start,
        end_date=start,
        leads=leads,
        **more,
    )


def activity(
    activity_id: str, market: str, country: str, city: str, on: str, partners: list[str]
) -> Any:
    return make_event(
        TINL + "activity.held.v1",
        activity_id=activity_id,
        market=market,
        country=country,
        city=city,
        start_date=on,
        end_date=on,
        partners=partners,
    )


def call(
    call_id: str, country: str, negotiation: str, opened: str, closed: str, dutch: int
) -> list[Any]:
    proposals = [
        make_event(
            GS + "proposal.submitted.v1",
            call_id=call_id,
            proposal_id=f"{call_id}-p{i}",
            dutch=i < dutch,
            submitted_on=opened,
        )
        for i in range(dutch + 1)  # one foreign proposal per call
    ]
    return [
        make_event(
            GS + "call.opened.v1",
            call_id=call_id,
            country=country,
            negotiation_started_on=negotiation,
            opened_on=opened,
        ),
        *proposals,
        make_event(GS + "call.closed.v1", call_id=call_id, closed_on=closed, dutch_proposals=dutch),
    ]


def project(project_id: str, country: str, on: str) -> Any:
    return make_event(
        WP + "project.onboarded.v1", project_id=project_id, country=country, onboarded_on=on
    )


def network_events() -> list[Any]:
    return [
        spend("nlib", "n1", 150_000_000, 2018, "2018-03-01"),
        spend("nlib", "n2", 25_000_000, 2018, "2018-09-01"),
        spend("nlib", "n3", 10_000_000, 2019, "2019-02-01"),
        spend("nlib", "n0", 7_000_000, 2017, "2017-11-01"),
        spend("tinl", "t1", 12_345_600, 2018, "2018-04-01"),
        spend("globalstars", "g1", 40_000_000, 2018, "2018-05-01"),
        spend("werkplaats", "w1", 33_000_000, 2018, "2018-06-01"),
        mission("m-vn", "VN", "Ho Chi Minh City", "2018-03-05", 10, title=HOSTILE),
        mission("m-pl", "PL", "Warsaw", "2018-06-04", 6),
        mission("m-by", "DE", "Munich", "2018-10-01", 0, direction="incoming"),
        mission("m-in", "IN", "Mumbai", "2019-01-14", 5),
        make_event(
            NLIB + "mission.followup.held.v1",
            mission_id="m-vn",
            followup_id="f1",
            held_on="2018-04-01",
        ),
        make_event(
            NLIB + "mission.followup.held.v1",
            mission_id="m-pl",
            followup_id="f2",
            held_on="2018-10-01",
        ),
        *[
            make_event(
                NLIB + "lead.converted.v1",
                lead_id=f"l{i}",
                mission_id="m-vn",
                converted_on="2018-06-01",
            )
            for i in range(3)
        ],
        make_event(
            NLIB + "lead.converted.v1", lead_id="l9", mission_id="m-in", converted_on="2019-03-01"
        ),
        make_event(
            NLIB + "city.programme.updated.v1",
            city_id="warsaw",
            city="Warsaw",
            country="PL",
            tier="pilot",
            updated_on="2018-02-01",
        ),
        activity("cbw-tilburg", "CN", "NL", "Tilburg", "2018-05-14", ["bom", "rvo"]),
        activity(
            "sc-nyc",
            "smart-cities",
            "US",
            "New York",
            "2018-06-11",
            ["amsterdam-in-business", "brainport-eindhoven", "rotterdam-partners"],
        ),
        activity("de-berlin", "DE", "DE", "Berlin", "2019-04-01", ["oost-nl"]),
        *call("gs-in", "IN", "2017-11-01", "2018-01-15", "2018-03-20", 3),
        *call("gs-tw", "TW", "2018-01-10", "2018-03-01", "2018-09-15", 2),
        *call("gs-br", "BR", "2019-01-10", "2019-02-01", "2019-05-01", 4),
        project("p1", "IN", "2018-02-01"),
        project("p2", "KE", "2018-05-01"),
        make_event(WP + "project.graduated.v1", project_id="p2", graduated_on="2018-12-01"),
        project("p3", "CN", "2019-03-01"),
    ]


SERVICE_OF = {"nlib": "nlib", "tinl": "tinl", "globalstars": "tinl", "werkplaats": "werkplaats"}


@contextlib.asynccontextmanager
async def initiative_services(
    infra: Infrastructure, kafka_bootstrap: str, topic_prefix: str
) -> AsyncIterator[Callable[[Event], Awaitable[None]]]:
    """NLIB, TINL (with Global Stars) and De Werkplaats, each on a database of its own and
    publishing onto the dashboard's topics; yields ``post(event)``, which POSTs the event
    to its service with a partner key and checks that it was accepted."""
    async with contextlib.AsyncExitStack() as stack:
        services, keys = {}, {}
        for name in ("nlib", "tinl", "werkplaats"):
            database = await stack.enter_async_context(fresh_database(infra, f"rep_{name}"))
            services[name] = await stack.enter_async_context(
                running(name, database, kafka_bootstrap, topic_prefix=topic_prefix)
            )
            keys[name] = await services[name].key(partner="test")  # make_event's source

        async def post(event: Event) -> None:
            name = SERVICE_OF[event.spec.family]
            response = await services[name].post(event.to_structured(), keys[name])
            assert response.status_code == 202, response.text

        yield post


def euro_nl(cents: int) -> str:
    return "€ " + f"{cents / 100:,.0f}".replace(",", ".")


def pdf_text(pdf: bytes, tmp_path: Any) -> str:
    assert shutil.which("pdftotext"), "poppler-utils (pdftotext) is installed by bootstrap.sh"
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout.replace("\u00a0", " ")


def figure(text: str, label: str) -> int:
    """The number printed after `label` (a figure of the report: label, then its value)."""
    found = re.search(re.escape(label) + r"\s+(\d+)\b", text)
    assert found, f"{label!r} not in the report:\n{text}"
    return int(found.group(1))


def row(text: str, name: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(name) and "€" in line]
    assert lines, f"no row {name!r} in the report:\n{text}"
    return lines[0]


async def evidence_count(dash: Dashboard, figure_name: str, period: str) -> int:
    body = await dash.get("/api/v1/events", figure=figure_name, period=period)
    assert body["count"] == len(body["events"])
    return int(body["count"])


async def download_report(dash: Dashboard, period: str, lang: str = "nl") -> bytes:
    response = await dash.member.get(
        "/report", params={"period": period, "lang": lang, "format": "pdf"}, timeout=120
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    return response.content


@pytest.mark.timeout(400)
async def test_report_pdf_figures_equal_the_api_for_the_period(
    infra: Infrastructure, database_url: str, kafka_bootstrap: str, tmp_path: Any
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap)
    events = network_events()
    async with (
        running_dashboard(settings, FakeClock(NOW)) as dash,
        initiative_services(infra, kafka_bootstrap, settings.topic_prefix) as post,
    ):
        for event in events:
            await post(event)
        await dash.wait_applied(len(events))

        pdf = await download_report(dash, "2018")
        # every figure is a link to the events behind it (a PDF link annotation)
        for name in ("spending.nlib", "missions.held", "calls.proposals", "cities.active"):
            assert f"{dash.base_url}/events?period=2018&figure={name}".encode() in pdf, name
        text = pdf_text(pdf, tmp_path)
        (tmp_path / "report-2018.txt").write_text(text)
        assert "Voortgangsrapportage aan de Tweede" in text
        # spending per initiative: the 2018 cell of each row is /api/v1/budget?year=2018's
        for spent in await dash.get("/api/v1/budget", year=2018):
            assert euro_nl(spent["spent_cents"]) in row(text, spent["name"]), spent
        assert euro_nl(175_000_000) in row(text, "NLinBusiness")  # 2017 and 2019 left out
        # counts: as fed for 2018, and the API lists the events behind each one
        for label, name, printed, behind in [
            ("Missies gehouden", "missions.held", 3, 3),
            ("Opgevolgd binnen 60 dagen", "missions.followed_up_in_time", 1, 1),
            ("Leads omgezet in contracten", "leads.converted", 3, 3),
            ("Steden met een programma", "cities.programmes", 1, 1),
            ("Steden met activiteit in de periode", "cities.active", 3, 3),  # not Munich
            ("Deelnemende partners (van 8)", "tinl.partners", 5, 2),  # 5 partners, 2 activities
            ("Calls gesloten", "calls.closed", 2, 4),  # each call: opened and closed
            ("Nederlandse projectvoorstellen", "calls.proposals", 5, 5),
            ("Zelfstandig verder", "werkplaats.graduated", 1, 2),  # onboarded, graduated
        ]:
            assert figure(text, label) == printed, label
            assert await evidence_count(dash, name, "2018") == behind, name

        # the whole programme period against the API's all-time figures
        text = pdf_text(await download_report(dash, "2017-2021", lang="en"), tmp_path)
        (tmp_path / "report-programme.txt").write_text(text)
        assert "Progress report to parliament" in text
        nlib = await dash.get("/api/v1/initiatives/nlib")
        stars = await dash.get("/api/v1/initiatives/globalstars")
        werkplaats = await dash.get("/api/v1/initiatives/werkplaats")
        assert figure(text, "Missions held") == nlib["missions_held"] == 4
        assert figure(text, "Leads converted to contracts") == nlib["leads_converted"] == 4
        assert figure(text, "Calls closed") == stars["calls_closed"] == 3
        assert figure(text, "Dutch proposals") == stars["dutch_proposals"] == 9
        assert figure(text, "Portfolio") == werkplaats["projects"] == 3
        budget = await dash.get("/api/v1/budget")
        nlib_total = sum(b["spent_cents"] for b in budget if b["family"] == "nlib")
        assert f"{nlib_total / 100:,.0f}" in row(text, "NLinBusiness")


async def page(dash: Dashboard, path: str, lang: str = "en", **params: str) -> str:
    response = await dash.member.get(path, params=params, headers={"Accept-Language": lang})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


async def test_initiative_pages_read_a_period_and_an_as_of_date(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap)
    events = network_events()
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        await dash.publish(*events)
        await dash.wait_applied(len(events))

        nlib = await page(dash, "/initiatives/nlib", period="2018")
        assert all(f'data-mission="{m}"' in nlib for m in ("m-vn", "m-pl", "m-by"))
        assert 'data-mission="m-in"' not in nlib  # 2019
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in nlib and HOSTILE not in nlib
        assert "Missions held" in nlib
        assert "Missies gehouden" in await page(dash, "/initiatives/nlib", "nl", period="2018")
        early = await page(dash, "/initiatives/nlib", period="2018", as_of="2018-05-01")
        assert 'data-mission="m-vn"' in early and 'data-mission="m-pl"' not in early

        tinl = await page(dash, "/initiatives/tinl", period="2018")
        assert 'data-partner="bom" data-acts="True"' in tinl
        assert 'data-partner="oost-nl" data-acts="False"' in tinl  # acted only in 2019
        assert all(f'data-market="{m}"' in tinl for m in ("CN", "DE", "US", "smart-cities"))

        stars = await page(dash, "/initiatives/globalstars", period="2018")
        assert 'data-call="gs-in" data-within-target="True"' in stars
        assert 'data-call="gs-tw" data-within-target="False"' in stars  # 8 months
        assert 'data-call="gs-br"' not in stars

        wp_2018 = await page(dash, "/initiatives/werkplaats", period="2018")
        assert 'data-project="p2" data-status="graduated"' in wp_2018
        assert 'data-project="p3"' not in wp_2018
        assert 'data-year="2018" data-portfolio="2" data-target="None"' in wp_2018
        wp_2019 = await page(dash, "/initiatives/werkplaats", period="2019")
        assert 'data-project="p3"' in wp_2019 and 'data-project="p2"' not in wp_2019
        assert 'data-year="2019" data-portfolio="2" data-target="20"' in wp_2019  # p1, p3

        assert "Period 2019" in await page(dash, "/initiatives/tinl")  # latest year with data
        for figure_name, behind in (("spending.nlib", 1), ("missions.held", 1)):
            as_of = await dash.get(
                "/api/v1/events", figure=figure_name, period="2018", as_of="2018-05-01"
            )
            assert as_of["count"] == behind, figure_name  # n1, m-vn: the rest came later
        evidence = await page(dash, "/events", figure="missions.held", period="2018")
        assert evidence.count("<tr data-id=") == 3
        report = await page(dash, "/report", period="2018", lang="nl")
        assert "/events?period=2018&amp;figure=spending.nlib" in report
        assert "format=pdf" in report and "Voortgangsrapportage" in report
        assert 'id="illustrative"' not in report

        # events of the seed (ids "seed-...") carry illustrative figures: the report says so
        seeded = make_event(NLIB + "company.supported.v1")
        await dash.publish(replace(seeded, id="seed-nlib-company-1"))
        await dash.wait_applied(len(events) + 1)
        assert 'id="illustrative"' in await page(dash, "/report", period="2018")


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/initiatives/nlib", {"period": "2018-17"}, "query/period"),
        ("/report", {"period": "twenty"}, "query/period"),
        ("/initiatives/tinl", {"as_of": "2018-13-01"}, "query/as_of"),
        ("/api/v1/events", {"figure": "missions.lost"}, "query/figure"),
    ],
)
async def test_an_unreadable_period_is_a_problem_naming_the_parameter(
    database_url: str, kafka_bootstrap: str, path: str, params: dict[str, str], field: str
) -> None:
    async with running_dashboard(dashboard_settings(database_url, kafka_bootstrap)) as dash:
        response = await dash.member.get(path, params=params)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]
        for anonymous in ("/initiatives/nlib", "/report?format=pdf"):
            assert (await dash.anonymous.get(anonymous)).status_code == 303  # to the login
        assert (await dash.anonymous.get("/api/v1/events?figure=spending")).status_code == 401
