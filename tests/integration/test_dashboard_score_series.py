"""A past period's coherence score series (`reading.score_as_of_series`): the score at each
of its points is what a reading of the rules as of that day gives, but the rules are judged
for every point in one pass (`RulesEngine.scores_as_of`): a scoped rule reads its projects
once, a part at a time, and counts its hits without making them. Read as of each month end
in turn, a year's series took 27-33 s at the bench's 1.5 M events."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from dashboard_harness import FakeClock, dashboard_settings, make_event, running_dashboard
from teamnl_dashboard.rules import engine as engine_module

pytestmark = pytest.mark.integration
NOW = datetime(2019, 12, 1, 12, tzinfo=UTC)
ONBOARDED = "nl.teamnl.werkplaats.project.onboarded.v1"
GRADUATED = "nl.teamnl.werkplaats.project.graduated.v1"
STOPPED = "nl.teamnl.werkplaats.project.stopped.v1"
HELD = "nl.teamnl.nlib.mission.held.v1"


def _year_of_changes() -> list[Any]:
    """Projects whose isolation changes over 2019: judged once onboarded a year, ended,
    joined by an NLIB mission in their country; and missions never followed up."""
    onboarded = [
        ("p-ke-1", "KE", "2018-01-02"),  # isolated all year
        ("p-gh-1", "GH", "2018-06-15"),  # judged from 15 June, until NLIB comes in September
        ("p-ke-2", "KE", "2018-02-01"),  # graduates in May
        ("p-ke-3", "KE", "2018-03-01"),  # stopped in August
        ("p-ke-4", "KE", "2019-03-01"),  # not judged in 2019
    ]
    return [
        *(
            make_event(ONBOARDED, project_id=p, country=c, onboarded_on=on)
            for p, c, on in onboarded
        ),
        make_event(GRADUATED, project_id="p-ke-2", graduated_on="2019-05-10"),
        make_event(STOPPED, project_id="p-ke-3", stopped_on="2019-08-20"),
        make_event(
            HELD,
            mission_id="m-gh",
            country="GH",
            city="Accra",
            city_of_opportunity=None,
            start_date="2019-09-02",
            end_date="2019-09-05",
        ),
        *(
            make_event(
                HELD, mission_id=f"m-vn-{m}", start_date=f"2019-0{m}-01", end_date=f"2019-0{m}-02"
            )
            for m in (2, 4, 6)
        ),
    ]


@pytest.mark.timeout(120)
async def test_each_point_of_a_past_series_is_the_score_of_its_day(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap, rules_interval_seconds=3600)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = _year_of_changes()
        await dash.publish(*events)
        await dash.wait_applied(len(events))
        engine = dash.app.state.engine
        monkeypatch.setattr(engine_module, "PART_SIZE", 2)
        scoped: list[int] = []  # the projects each load of a part's facts holds
        load_facts = engine_module.load_facts

        async def counting(conn: Any, needs: Any, ctx: Any) -> Any:
            facts = await load_facts(conn, needs, ctx)
            if ctx.scope is not None:
                scoped.append(len(ctx.scope.keys))
            return facts

        monkeypatch.setattr(engine_module, "load_facts", counting)
        answer = await dash.get("/api/v1/coherence/score", period="2019", as_of="2019-11-30")
        series = answer["series"]
        days = [date.fromisoformat(point["at"][:10]) for point in series]
        assert days == [date(2019, m + 1, 1) - date.resolution for m in range(1, 11)] + [
            date(2019, 11, 30)
        ]
        assert scoped == [2, 2, 1]  # the five projects read once for the eleven days

        async with dash.pool.acquire() as conn:
            one_by_one = [await engine.read_as_of(conn, day) for day in days]
        expected = [
            {
                "score": then.score.score,
                "joint_actions": then.score.joint_actions,
                "duplications": then.score.duplications,
                "weighted_findings": then.score.weighted_findings,
            }
            for then in one_by_one
        ]
        got = [{k: point[k] for k in expected[0]} for point in series]
        assert got == expected
        async with dash.pool.acquire() as conn:  # the past overview's: one pass for both
            then, scores = await engine.read_with_series(conn, days)
        assert scores == [reading.score for reading in one_by_one]
        assert then.hits == one_by_one[-1].hits and then.by_severity == one_by_one[-1].by_severity
        isolated = [then.by_severity.get("info", 0) for then in one_by_one]
        assert len(set(isolated)) > 2, isolated  # the year changes what the rules see
        assert answer["current"] == series[-1]


@pytest.mark.timeout(120)
async def test_a_series_of_years_has_at_most_its_points_and_is_kept_until_a_change(
    database_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of years is read at `SCORE_POINTS` points at most (2000-2019: 240 month ends,
    each a reading of the rules); the series the overview's page computed with its findings
    serves the score's JSON until the projections change."""
    settings = dashboard_settings(  # kept until a change, however long the test takes
        database_url, kafka_bootstrap, rules_interval_seconds=3600, overview_cache_seconds=600
    )
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = _year_of_changes()
        await dash.publish(*events)
        await dash.wait_applied(len(events))
        engine = dash.app.state.engine
        computed: list[int] = []  # the days of each series computed, by either way
        scores_as_of, read_with_series = engine.scores_as_of, engine.read_with_series

        async def counting(conn: Any, days: Any) -> Any:
            computed.append(len(days))
            return await scores_as_of(conn, days)

        async def counting_both(conn: Any, days: Any) -> Any:
            computed.append(len(days))
            return await read_with_series(conn, days)

        alone: list[date] = []  # the days read apart
        read_as_of = engine.read_as_of

        async def counting_alone(conn: Any, day: date) -> Any:
            alone.append(day)
            return await read_as_of(conn, day)

        monkeypatch.setattr(engine, "scores_as_of", counting)
        monkeypatch.setattr(engine, "read_with_series", counting_both)
        monkeypatch.setattr(engine, "read_as_of", counting_alone)
        reading = {"period": "2000-2019", "as_of": "2019-11-30"}
        page = await dash.member.get("/", params=reading)  # its findings and series at once
        assert page.status_code == 200
        assert computed == [24] and alone == []
        series = (await dash.get("/api/v1/coherence/score", **reading))["series"]
        assert computed == [24] and len(series) == 24  # the page's series, kept
        assert series[-1]["at"].startswith("2019-11-30")

        await dash.publish(make_event(ONBOARDED, project_id="p-ke-5", country="KE"))
        await dash.wait_applied(len(events) + 1)
        await dash.get("/api/v1/coherence/score", **reading)
        assert computed == [24, 24]
