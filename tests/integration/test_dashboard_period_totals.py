"""A period's figures from the running totals: the same as counting its rows.

The live reading is a year as of today, while the data go back years: its counts must not
grow with the history. Events and activities are totalled per day, the budget per day
spent, De Werkplaats's portfolio per onboarding and end year; these tests compare what
those give with counting the period's rows (``queries.werkplaats``, ``events``,
``activities``, ``budget_spent``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest

from dashboard_harness import FakeClock, dashboard_settings, make_event, running_dashboard
from teamnl_dashboard import initiatives, queries
from teamnl_dashboard.period import Period, end_of_day
from teamnl_dashboard.projections import fold_totals
from teamnl_dashboard.rules.facts import LOADERS

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


def nlib_and_tinl_events() -> list:
    """Missions of 2018 and 2019 (held, planned, followed up, leads converted in a later
    year) and TINL activities and knowledge shared across both years."""
    nlib = "nl.teamnl.nlib"
    events = []
    missions = [  # (id, held?, start, end, leads)
        ("m-18", True, "2018-04-08", "2018-04-12", 4),
        ("m-18b", True, "2018-11-01", "2018-11-03", 2),
        ("m-19", True, "2019-03-01", "2019-03-05", 5),
        ("m-19b", False, "2019-10-01", "2019-10-04", 0),
        ("m-19c", True, "2019-12-28", "2020-01-02", 3),  # ends after the year it starts in
    ]
    for mission, held, start, end, leads in missions:
        kind = "held" if held else "planned"
        data = {"leads": leads} if held else {}
        events.append(
            make_event(
                f"{nlib}.mission.{kind}.v1",
                mission_id=mission,
                start_date=start,
                end_date=end,
                time=at(end),
                **data,
            )
        )
    on_a_day = [  # (type, id field, day field, mission, id, day)
        ("mission.followup.held", "followup_id", "held_on", "m-18", "f1", "2018-05-01"),
        ("mission.followup.held", "followup_id", "held_on", "m-19", "f2", "2020-01-10"),
        ("lead.converted", "lead_id", "converted_on", "m-18", "l1", "2018-06-01"),
        ("lead.converted", "lead_id", "converted_on", "m-18", "l2", "2019-02-01"),
        ("lead.converted", "lead_id", "converted_on", "m-19", "l3", "2019-12-31"),
        ("lead.converted", "lead_id", "converted_on", "m-19c", "l4", "2020-01-05"),
    ]
    for kind, id_field, day_field, mission, key, on in on_a_day:
        data = {"mission_id": mission, id_field: key, day_field: on}
        events.append(make_event(f"{nlib}.{kind}.v1", time=at(on), **data))
    activities = [  # (id, end, partners)
        ("a-18", "2018-09-02", ["bom", "rvo"]),
        ("a-19", "2019-01-02", ["bom", "oost-nl", "rvo"]),
        ("a-19b", "2019-12-31", ["innovationquarter"]),
    ]
    for activity, end, partners in activities:
        data = {"activity_id": activity, "start_date": end, "end_date": end, "partners": partners}
        events.append(make_event("nl.teamnl.tinl.activity.held.v1", time=at(end), **data))
    shared = [("k-18", "2018-03-01", ["economic-board-utrecht", "rvo"])]
    shared += [("k-19", "2019-06-01", ["brainport-eindhoven", "bom"])]
    for knowledge, on, partners in shared:
        data = {"knowledge_id": knowledge, "shared_on": on, "partners": partners}
        events.append(make_event("nl.teamnl.tinl.knowledge.shared.v1", time=at(on), **data))
    return events


def counted_rates(found: dict) -> dict:
    return {k: found[k] for k in ("followup_rate", "lead_conversion")}


def counted_tinl(found: dict) -> dict:
    return {
        "activities": found["activities"],
        "partner_pairs": len(found["partner_pairs"]),
        "partners_taking_part": found["partners_taking_part"],
    }


async def test_the_overviews_rates_and_partner_counts_are_those_of_the_reports(
    database_url: str, kafka_bootstrap: str
) -> None:
    """``nlib_rates`` and ``tinl_summary`` count in SQL what the reports list, for any
    reading: a year, part of one, several, up to now, or everything."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    readings = [*READINGS, (None, None), (Period(2018, 2018), date(2018, 6, 30))]
    readings += [(Period(2020, 2020), date(2020, 1, 15)), (None, date(2019, 12, 31))]
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = nlib_and_tinl_events()
        await dash.publish(*events)
        await dash.wait_applied(len(events))
        for period, as_of in readings:
            rates = await queries.nlib_rates(dash.pool, period=period, as_of=as_of)
            found = await queries.nlib(dash.pool, period=period, as_of=as_of)
            assert rates == counted_rates(found), (period, as_of)
            summary = await queries.tinl_summary(dash.pool, period=period, as_of=as_of)
            listed = await queries.tinl(dash.pool, period=period, as_of=as_of)
            assert summary == counted_tinl(listed), (period, as_of)
        year = await queries.nlib_rates(dash.pool, period=Period(2018, 2018))
        both = await queries.tinl_summary(dash.pool, period=Period(2018, 2019))
        upto = await queries.nlib_rates(
            dash.pool, period=Period(2019, 2019), as_of=date(2019, 12, 30)
        )

    # 2018: two missions held (6 leads), m-18 followed up; l1 converted (l2 only in 2019)
    assert year == {"followup_rate": 0.5, "lead_conversion": 0.1667}
    # 2019 up to 30 December: m-19 held (m-19c ends in 2020, its follow-up in 2020)
    assert upto == {"followup_rate": 0.0, "lead_conversion": 0.0}
    # 2018-2019: three activities; pairs bom-rvo, bom-oost-nl, oost-nl-rvo, ebu-rvo,
    # bom-brainport; all but Amsterdam in Business and Rotterdam Partners took part
    assert both == {"activities": 3, "partner_pairs": 5, "partners_taking_part": 6}


async def test_an_activity_series_is_the_same_as_counting_its_activities(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: ``activity_series`` (the overview's activity chart), from the monthly running
    totals for the whole months and the activities themselves for a month begun or not
    ended, says what counting the activities says, by day, month and year, for a reading
    from and to the start, the middle or the end of a month. Found reading the overview's
    statements while the dashboard projects: this year as of today counted the year's rows
    every time (10 ms of PostgreSQL at the bench's million events); and a series from the
    middle of a month to a month's end counted that month whole (an activity of 2 March
    in a series from 3 March)."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    more = [  # the day before a series starts, in the month it starts; one in May
        make_event(
            "nl.teamnl.tinl.activity.held.v1",
            activity_id=activity,
            start_date=on,
            end_date=on,
            partners=["bom", "rvo"],
            time=at(on),
        )
        for activity, on in (("a-19-mar", "2019-03-02"), ("a-19-may", "2019-05-20"))
    ]
    readings = [  # (period, as_of, since)
        *((period, as_of, None) for period, as_of in READINGS),
        (None, None, None),
        (Period(2019, 2019), None, date(2019, 3, 3)),  # from the middle to a month's end
        (Period(2019, 2019), date(2019, 6, 15), date(2019, 3, 3)),
        (Period(2019, 2019), date(2019, 3, 20), date(2019, 3, 2)),  # within one month
        (Period(2019, 2019), date(2019, 3, 31), date(2019, 3, 1)),  # one month, whole
        (Period(2018, 2019), date(2019, 1, 1), None),
    ]
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = [*nlib_and_tinl_events(), *more]
        await dash.publish(*events)
        await dash.wait_applied(len(events))
        empty = []  # readings with no activity at all: they would compare nothing
        for period, as_of, since in readings:
            first, last = queries._bounds(period, as_of)
            first = max(filter(None, (first, since)), default=None)
            for granularity, form in (
                ("day", "YYYY-MM-DD"),
                ("month", "YYYY-MM"),
                ("year", "YYYY"),
            ):
                for family in (None, "tinl"):
                    series = await queries.activity_series(
                        dash.pool,
                        period=period,
                        as_of=as_of,
                        granularity=granularity,
                        family=family,
                        since=since,
                    )
                    counted = await dash.pool.fetch(
                        "SELECT to_char(on_date, $1) AS period, family, count(*) AS count"
                        " FROM proj.activities WHERE on_date BETWEEN $2 AND $3"
                        " AND ($4::text IS NULL OR family = $4) GROUP BY 1, 2 ORDER BY 1, 2",
                        form,
                        first or date.min,
                        last or date.max,
                        family,
                    )
                    reading = (period, as_of, since, granularity, family)
                    assert series == [dict(row) for row in counted], reading
                    if not series and family is None:
                        empty.append(reading)
    assert empty == []


SPENT = "nl.teamnl.{}.budget.spent.v1"
SPENDINGS = [  # (family, spend id, budget year, cents, spent on)
    ("nlib", "n-1", 2018, 100, "2018-03-01"),
    ("nlib", "n-2", 2019, 250, "2018-12-20"),  # the next year's budget, spent ahead
    ("nlib", "n-3", 2019, 400, "2019-06-30"),
    ("tinl", "t-1", 2019, 700, "2019-02-01"),
    ("tinl", "t-2", 2019, 900, "2019-11-15"),
    ("werkplaats", "w-1", 2019, 1100, "2019-06-30"),
]


async def test_the_budget_as_of_a_date_sums_the_days_spent_up_to_it(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: the budget as of a past date - the overview's and the API's
    (``queries.budget``), the spending page's (``initiatives.spending``) and the rules'
    (``facts._budgets``) - sums the running totals per day spent up to it, as counting the
    spendings up to it does, and reads no spending row: summing every spending up to the
    date took 0.3 s a reading at the bench's 584,000, once for each month end of a score
    series."""
    settings = dashboard_settings(database_url, kafka_bootstrap, rules_interval_seconds=3600)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = [
            make_event(SPENT.format(f), spend_id=s, year=y, amount_cents=c, spent_on=on)
            for f, s, y, c, on in SPENDINGS
        ]
        await dash.publish(*events)
        await dash.wait_applied(len(events))
        engine = dash.app.state.engine
        days = [date(2018, 1, 1), date(2018, 12, 31), date(2019, 6, 29), date(2019, 6, 30)]
        seen = []
        async with dash.pool.acquire() as conn, conn.transaction():
            await fold_totals(conn)
            for day in days:
                counted = {
                    (f, y): sum(
                        c
                        for f2, _, y2, c, on in SPENDINGS
                        if (f2, y2) == (f, y) and date.fromisoformat(on) <= day
                    )
                    for f, _, y, _, _ in SPENDINGS
                }
                await conn.execute("ALTER TABLE proj.budget_spent RENAME TO spendings_hidden")
                overview = await queries.budget(conn, period=Period(2018, 2019), as_of=day)
                page = await initiatives.spending(conn, Period(2018, 2019), day)
                await conn.execute("ALTER TABLE proj.spendings_hidden RENAME TO budget_spent")
                rules = await LOADERS["budgets"](conn, engine._context(end_of_day(day), as_of=day))
                assert {(r["family"], r["year"]): r["spent_cents"] for r in overview} == {
                    key: counted.get(key, 0) for key in ((r["family"], r["year"]) for r in overview)
                }, day
                assert {(r["family"], r["year"]): r["spent_cents"] for r in page["years"]} == {
                    (r["family"], r["year"]): counted.get((r["family"], r["year"]), 0)
                    for r in page["years"]
                }, day
                assert {(b.family, b.year): b.spent_cents for b in rules if b.spent_cents} == {
                    key: spent for key, spent in counted.items() if spent
                }, day
                seen.append(tuple(sorted(counted.items())))
        assert len(set(seen)) == len(days)  # each date sees another budget


GS = "nl.teamnl.globalstars"
CALLS = [  # (call, negotiation started, opened, closed or None)
    ("gs-a", "2019-01-10", "2019-02-01", "2019-05-20"),  # 4 months: within the target
    ("gs-b", "2019-01-10", "2019-03-01", "2019-09-30"),  # 8 months: outside it
    ("gs-c", "2018-11-01", "2018-12-01", "2019-03-31"),  # 5 months, closed early in 2019
    ("gs-d", "2019-10-01", "2019-11-01", "2020-02-15"),  # open at the end of 2019
    ("gs-e", "2020-01-05", "2020-02-01", None),  # never closed
]
PROPOSALS = [  # (proposal, call, dutch, submitted on)
    ("p-1", "gs-a", True, "2019-03-01"),
    ("p-2", "gs-a", False, "2019-03-02"),
    ("p-3", "gs-b", True, "2019-06-01"),
    ("p-4", "gs-b", True, "2019-09-01"),
    ("p-5", "gs-c", True, "2019-01-15"),
    ("p-6", "gs-d", True, "2019-12-01"),
    ("p-7", "gs-d", True, "2020-01-20"),
    ("p-8", "gs-e", True, "2020-03-01"),
]
OUT_OF_ORDER = [  # gs-f: its closing and a proposal before its opening, then closed again
    ("call.closed.v1", {"closed_on": "2020-04-01", "dutch_proposals": 1}),
    (
        "proposal.submitted.v1",
        {"proposal_id": "p-9", "dutch": True, "submitted_on": "2020-03-01"},
    ),
    ("call.opened.v1", {"negotiation_started_on": "2020-01-01", "opened_on": "2020-02-01"}),
    ("call.closed.v1", {"closed_on": "2020-05-15", "dutch_proposals": 1}),
]


def call_events() -> list:
    events = [
        make_event(f"{GS}.call.opened.v1", call_id=c, negotiation_started_on=n, opened_on=o)
        for c, n, o, _ in CALLS
    ]
    events += [
        make_event(
            f"{GS}.proposal.submitted.v1", proposal_id=p, call_id=c, dutch=d, submitted_on=on
        )
        for p, c, d, on in PROPOSALS
    ]
    events += [
        make_event(f"{GS}.call.closed.v1", call_id=c, closed_on=closed, dutch_proposals=1)
        for c, _, _, closed in CALLS
        if closed
    ]
    events += [make_event(f"{GS}.{kind}", call_id="gs-f", **data) for kind, data in OUT_OF_ORDER]
    return events


async def test_the_global_stars_counts_are_those_of_the_calls_listed(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: the overview's Global Stars targets (``globalstars_summary``, counted in SQL)
    are what listing the reading's calls counts (``globalstars``), for periods and as-of
    dates that cut calls and proposals, whether summed from the running totals per
    closing day (a reading up to a date after every date they count, either fold) or
    counted call by call (the others); a call's closing and a proposal arriving before its
    opening, and a second closing, included."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        events = call_events()
        for event in events:  # in order: a call's proposals and close after its opening
            await dash.publish(event)
        await dash.wait_applied(len(events))
        readings = [
            (Period(2019, 2019), date(2019, 12, 31)),
            (Period(2019, 2019), date(2019, 6, 30)),
            (Period(2019, 2020), date(2020, 1, 31)),
            (Period(2020, 2020), date(2020, 12, 31)),
            (None, None),
            (Period(2020, 2020), date(2020, 6, 1)),
            (None, date(2020, 12, 31)),
        ]
        summed = [False, False, False, True, False, True, True]
        seen = []
        sent: list[str] = []
        async with dash.pool.acquire() as conn:
            conn.add_query_logger(lambda logged: sent.append(logged.query))
            for (period, as_of), from_totals in [*zip(readings, summed, strict=True)] * 2:
                if len(seen) == len(readings):  # the same again, the totals folded
                    await fold_totals(conn)
                await asyncio.sleep(0)  # asyncpg calls its query loggers soon after a query
                sent.clear()
                summary = await queries.globalstars_summary(conn, period=period, as_of=as_of)
                await asyncio.sleep(0)
                assert any("FROM gs_calls c" in q for q in sent) != from_totals, (period, as_of)
                listed = await queries.globalstars(conn, period=period, as_of=as_of)
                counted = {
                    "calls_closed": listed["calls_closed"],
                    "dutch_proposals": listed["dutch_proposals"],
                    "within_target": sum(1 for c in listed["calls"] if c["within_target"]),
                }
                assert summary == counted, (period, as_of)
                seen.append(tuple(summary.values()))
        assert seen[: len(readings)] == seen[len(readings) :]
        assert len(set(seen[:5])) == 5  # each of the first five readings counts other calls
        assert (seen[0][2], seen[0][0] - seen[0][2]) == (2, 1)  # within the target, outside


async def test_the_months_a_call_took_answer_every_target_as_the_dates_do(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: ``months_taken`` (the running totals' whole months from a negotiation's start
    to its call's closing) is the least target of months the call closed within, as
    ``closed_on <= negotiation_started_on + make_interval(months => target)`` decides it,
    for every pair of days over two years from month ends and leap days and every target
    from 0 to 30 months; NULL when either day is."""
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings, FakeClock(NOW)) as dash:
        wrong = await dash.pool.fetch(
            "WITH d AS (SELECT s::date AS started, (s + make_interval(days => n))::date AS closed"
            "  FROM generate_series('2019-12-25'::date, '2020-03-05', '1 day') s,"
            "  generate_series(-40, 760, 7) n)"
            " SELECT started, closed, t, proj.months_taken(started, closed) AS m FROM d,"
            " generate_series(0, 30) t"
            " WHERE (closed <= started + make_interval(months => t))"
            "  <> (proj.months_taken(started, closed) <= t)"
        )
        assert [tuple(r) for r in wrong] == []
        nulls = await dash.pool.fetchrow(
            "SELECT proj.months_taken(NULL, '2020-01-01'), proj.months_taken('2020-01-01', NULL)"
        )
        assert tuple(nulls) == (None, None)
