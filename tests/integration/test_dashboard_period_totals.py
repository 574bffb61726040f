"""A period's figures from the running totals: the same as counting its rows.

The live reading is a year as of today, while the data go back years: its counts must not
grow with the history. Events and activities are totalled per day, De Werkplaats's
portfolio per onboarding and end year; these tests compare what those give with counting
the period's rows (``queries.werkplaats``, ``events``, ``activities``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from dashboard_harness import FakeClock, dashboard_settings, make_event, running_dashboard
from teamnl_dashboard import queries
from teamnl_dashboard.period import Period

pytestmark = pytest.mark.integration

NOW = datetime(2020, 1, 15, 12, tzinfo=UTC)
WP = "nl.teamnl.werkplaats.project"


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)


def project_events() -> list:
    """Projects from 2017 on: one graduated in 2018, one stopped in 2019, two running."""
    onboarded = [
        ("w-2017", "2017-03-01", [6]),
        ("w-2018", "2018-02-05", [6, 14]),
        ("w-2019", "2019-06-01", [7]),
        ("w-2019b", "2019-09-01", [13, 14]),
    ]
    events = [
        make_event(f"{WP}.onboarded.v1", project_id=p, onboarded_on=on, sdgs=sdgs, time=at(on))
        for p, on, sdgs in onboarded
    ]
    events.append(
        make_event(
            f"{WP}.graduated.v1",
            project_id="w-2017",
            graduated_on="2018-11-01",
            time=at("2018-11-01"),
        )
    )
    events.append(
        make_event(
            f"{WP}.stopped.v1", project_id="w-2019", stopped_on="2019-12-01", time=at("2019-12-01")
        )
    )
    return events


def counted_summary(found: dict) -> dict:
    """What ``werkplaats_summary`` answers, derived from the rows ``werkplaats`` counts."""
    return {
        "portfolio": found["portfolio"][-1] if found["portfolio"] else None,
        "next_target": found["next_target"],
        "sdgs_covered": found["sdgs_covered"],
        "graduations": len(found["graduations"]),
    }


READINGS = [  # (period, as_of): each reaches the latest event (2019-12-01) but one
    (Period(2019, 2019), date(2019, 12, 31)),
    (Period(2018, 2019), date(2019, 12, 1)),
    (Period(2017, 2019), None),
    (Period(2019, 2020), date(2020, 1, 15)),
    (Period(2018, 2018), date(2018, 12, 31)),  # ends before the latest: counted
]


async def test_a_period_up_to_now_reads_the_same_portfolio_as_counting_its_projects(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = project_events()
        await dash.publish(*events)
        await dash.wait_applied(len(events))
        reached = []
        for period, as_of in READINGS:
            summary = await queries.werkplaats_summary(dash.pool, period=period, as_of=as_of)
            found = await queries.werkplaats(dash.pool, period=period, as_of=as_of)
            assert summary == counted_summary(found), (period, as_of)
            _, last = queries._bounds(period, as_of)
            reached.append(await queries.reaches_latest(dash.pool, last))
        year = await queries.werkplaats_summary(dash.pool, period=Period(2019, 2019))

    assert reached == [True, True, True, True, False]
    # 2019: w-2018, w-2019 (stopped in December) and w-2019b ran in it; w-2017 had graduated
    assert {k: year["portfolio"][k] for k in ("year", "onboarded", "portfolio")} == {
        "year": 2019,
        "onboarded": 2,
        "portfolio": 3,
    }
    assert (year["sdgs_covered"], year["graduations"]) == (4, 0)


async def test_a_periods_events_and_activities_are_the_sum_of_its_days(
    database_url: str, kafka_bootstrap: str
) -> None:
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = [
            *project_events(),
            make_event(
                "nl.teamnl.nlib.mission.held.v1",
                mission_id="m-18",
                start_date="2018-04-08",
                end_date="2018-04-12",
                time=at("2018-04-13"),
            ),
            make_event(
                "nl.teamnl.nlib.mission.held.v1",
                mission_id="m-19",
                start_date="2019-12-30",
                end_date="2019-12-31",
                time=datetime(2019, 12, 31, 23, 59, 59, tzinfo=UTC),
            ),
            make_event(
                "nl.teamnl.tinl.activity.held.v1",
                activity_id="a-19",
                start_date="2019-01-01",
                end_date="2019-01-02",
                time=at("2019-01-03"),
            ),
        ]
        await dash.publish(*events)
        await dash.wait_applied(len(events))
        for period, as_of in [*READINGS, (Period(2019, 2019), date(2019, 12, 30))]:
            first, last = queries._bounds(period, as_of)
            totals = await queries._family_counts(dash.pool, first, last)
            counted_events = await dash.pool.fetch(
                "SELECT family, count(*), max(time) FROM proj.events"
                " WHERE time BETWEEN $1 AND $2 GROUP BY family",
                queries._start_of(first) or datetime.min.replace(tzinfo=UTC),
                queries._end_of(last) or datetime.max.replace(tzinfo=UTC),
            )
            counted_activities = await dash.pool.fetch(
                "SELECT family, count(*) FROM proj.activities"
                " WHERE on_date BETWEEN $1 AND $2 GROUP BY family",
                first or date.min,
                last or date.max,
            )
            reading = (period, as_of)
            assert {
                f: (t["events"], t["last_event_at"]) for f, t in totals.items() if t["events"]
            } == {r[0]: (r[1], r[2]) for r in counted_events}, reading
            assert {f: t["activities"] for f, t in totals.items() if t["activities"]} == dict(
                (r[0], r[1]) for r in counted_activities
            ), reading

        # the last second of 2019 is 2019's; as of 2019-12-30 it is not yet there
        year = await queries._family_counts(dash.pool, date(2019, 1, 1), date(2019, 12, 31))
        before = await queries._family_counts(dash.pool, date(2019, 1, 1), date(2019, 12, 30))
        assert year["nlib"]["events"] == before["nlib"]["events"] + 1
