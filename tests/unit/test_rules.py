"""Each coherence rule alone, as a pure function over a few facts and a given `now`."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest

from dashboard_harness import make_event
from teamnl_dashboard.reference import market_of
from teamnl_dashboard.rules import Facts, Rule, Severity, all_rules, build_engine, describe
from teamnl_dashboard.rules.catalogue import (
    BudgetOffPace,
    CityGap,
    FocusMarketGap,
    GlobalStarsLeadTime,
    GlobalStarsOutsideEureka,
    InvalidEvents,
    IsolatedProject,
    LeadsNotConverted,
    MarketDuplication,
    MissionFollowupOverdue,
    PilotWithoutSoftLanding,
    ProgrammeSpending,
    ScopedRule,
    ServiceSilent,
    TinlPartnerAbsent,
    WerkplaatsPortfolioTarget,
    daily,
    is_scoped,
    pair_activities,
    year_elapsed,
)
from teamnl_dashboard.rules.engine import FirstHits, Owed
from teamnl_dashboard.rules.findings import Growth, _content
from teamnl_dashboard.rules.model import (
    ActivityFact,
    BudgetFact,
    CallFact,
    CityProgrammeFact,
    DeadLettersFact,
    Hit,
    MissionFact,
    PartnerFact,
    PortfolioFact,
    ProjectFact,
    Scope,
    ServiceFact,
)
from teamnl_dashboard.rules.score import coherence_score
from teamnl_dashboard.settings import DashboardSettings

NOW = datetime(2019, 7, 1, 12, tzinfo=UTC)


def mission(end: date, *, followed_up: bool = False) -> MissionFact:
    return MissionFact("m1", "VN", end, "ev-held", followed_up)


def act(
    id_: str,
    family: str,
    market: str,
    start: date,
    days: int = 2,
    city: str | None = "Shanghai",
    country: str | None = None,
) -> ActivityFact:
    return ActivityFact(
        id_,
        family,
        market,
        country or market,
        city,
        start,
        start + timedelta(days=days),
        f"ev-{id_}",
    )


def test_followup_overdue_only_after_the_threshold_and_without_followup() -> None:
    rule = MissionFollowupOverdue(followup_days=60)
    due = NOW.date() - timedelta(days=60)
    assert rule.check(Facts(missions=(mission(due),)), NOW) == []
    [hit] = rule.check(Facts(missions=(mission(due - timedelta(days=1)),)), NOW)
    assert (hit.key, hit.severity, hit.event_ids) == ("m1", Severity.WARNING, ("ev-held",))
    assert rule.check(Facts(missions=(mission(date(2019, 1, 1), followed_up=True),)), NOW) == []


def test_pairs_are_joint_in_the_same_city_on_overlapping_dates() -> None:
    nlib = act("m1", "nlib", "CN", date(2019, 5, 1), city="Shanghai")
    joint = act("t1", "tinl", "CN", date(2019, 5, 2), city="Shanghai")
    apart = act("t2", "tinl", "CN", date(2019, 5, 20), city="Beijing")
    far = act("t3", "tinl", "CN", date(2019, 9, 1))
    other = act("t4", "tinl", "DE", date(2019, 5, 1))
    pairs = pair_activities((nlib, joint, apart, far, other), window_days=30)
    assert {(p.tinl.activity_id, p.joint) for p in pairs} == {("t1", True), ("t2", False)}


def every_pair(activities: tuple[ActivityFact, ...], window_days: int) -> list[tuple]:
    """The definition: each NLIB x TINL activity abroad in one foreign market whose date
    ranges are at most `window_days` apart, in the order of `activities`."""
    abroad = [
        (a, market_of(a.market, a.country))
        for a in activities
        if a.country != "NL" and market_of(a.market, a.country)
    ]
    return [
        (a.activity_id, b.activity_id)
        for a, market_a in abroad
        if a.family == "nlib"
        for b, market_b in abroad
        if b.family == "tinl"
        and market_a == market_b
        and (b.start_date - a.end_date).days <= window_days
        and (a.start_date - b.end_date).days <= window_days
    ]


@pytest.mark.parametrize("seed", range(20))
def test_pairing_finds_exactly_the_pairs_of_its_definition(seed: int) -> None:
    """Random missions and activities, some long, some at home, a few markets, dates
    crowded into a year: the sorted sweep misses no pair and adds none."""
    rng = random.Random(seed)
    start = date(2019, 1, 1)
    activities = tuple(
        act(
            f"{family[0]}{i:03d}",
            family,
            rng.choice(("CN", "DE", "smart-cities")),
            start + timedelta(days=rng.randrange(365)),
            days=rng.choice((0, 1, 4, 20, 90)),
            country=rng.choice(("CN", "DE", "US", "NL")),
        )
        for i, family in enumerate(rng.choice(("nlib", "tinl")) for _ in range(120))
    )
    position = {a.activity_id: i for i, a in enumerate(activities)}
    for window in (0, 5, 30):
        pairs = pair_activities(activities, window)
        found = [(p.nlib.activity_id, p.tinl.activity_id) for p in pairs]
        # grouped by market; per mission its partners in the order of `activities`
        assert sorted(found, key=lambda ids: position[ids[0]]) == every_pair(activities, window)
    assert len(every_pair(activities, 30)) > len(every_pair(activities, 0)) > 0


def test_market_duplication_raises_the_pairs_that_did_not_act_together() -> None:
    facts = Facts(
        paired_activities=(
            act("m1", "nlib", "CN", date(2019, 5, 1)),
            act("t2", "tinl", "CN", date(2019, 5, 20), city="Beijing"),
        )
    )
    [hit] = MarketDuplication(overlap_window_days=30).check(facts, NOW)
    assert hit.key == "m1|t2" and set(hit.event_ids) == {"ev-m1", "ev-t2"}
    assert MarketDuplication(overlap_window_days=5).check(facts, NOW) == []


def test_smart_cities_activities_count_for_the_country_where_they_happen() -> None:
    nyc = act("t1", "tinl", "smart-cities", date(2019, 5, 1), country="US", city="New York")
    mission_us = act("m1", "nlib", "US", date(2019, 5, 1), city="New York City")
    [pair] = pair_activities((nyc, mission_us), 30)
    assert pair.joint


def test_isolated_project_until_nlib_or_tinl_is_active_in_its_country() -> None:
    rule = IsolatedProject(isolation_days=365)
    project = ProjectFact("p1", "KE", "active", "ev-p1")
    [hit] = rule.check(Facts(projects=(project,)), NOW)
    assert hit.key == "p1" and hit.severity is Severity.INFO
    recent = act("m1", "nlib", "KE", date(2019, 3, 1))
    assert rule.check(Facts(projects=(project,), latest_activities=(recent,)), NOW) == []
    old = act("m0", "nlib", "KE", date(2017, 3, 1))
    assert len(rule.check(Facts(projects=(project,), latest_activities=(old,)), NOW)) == 1
    graduated = ProjectFact("p1", "KE", "graduated", "ev-p1")
    assert rule.check(Facts(projects=(graduated,)), NOW) == []


def test_isolated_project_as_events_arrive_judges_only_what_the_batch_touched() -> None:
    rule = IsolatedProject(isolation_days=365)
    batch = [
        make_event("nl.teamnl.werkplaats.project.onboarded.v1", project_id="p1", country="KE"),
        make_event("nl.teamnl.werkplaats.project.stopped.v1", project_id="p2"),
        make_event("nl.teamnl.tinl.activity.held.v1", market="smart-cities", country="US"),
        make_event("nl.teamnl.nlib.mission.held.v1", country="VN"),
        make_event("nl.teamnl.nlib.budget.spent.v1"),
    ]
    assert rule.scope(batch) == Scope(frozenset({"p1", "p2"}), frozenset({"US", "VN"}))


@pytest.mark.parametrize("seed", range(20))
def test_where_the_isolated_project_rule_has_settled_no_project_can_be_isolated(
    seed: int,
) -> None:
    """`settled` names exactly the countries where the rule can see no hit (the engine then
    judges there only the projects holding a finding): a project active since long ago is
    isolated in each of the others, in none of them."""
    rng = random.Random(seed)
    rule = IsolatedProject(isolation_days=365)
    countries = ("KE", "VN", "GH", "IN", "US")
    now = datetime(2021, 7, 1, 12, tzinfo=UTC) - timedelta(days=rng.randrange(0, 1000))
    activities = tuple(
        act(f"a{i}", rng.choice(("nlib", "tinl")), rng.choice(countries), start)
        for i in range(rng.randrange(0, 8))
        for start in [now.date() - timedelta(days=rng.randrange(-30, 600))]
    )
    asked = frozenset(rng.sample(countries, rng.randrange(1, len(countries) + 1)))
    settled = rule.settled(Facts(latest_activities=activities), now, asked)
    long_ago = date(2016, 1, 4)
    projects = tuple(ProjectFact(f"p-{c}", c, "active", f"e-{c}", long_ago) for c in countries)
    hits = rule.check(Facts(projects=projects, latest_activities=activities), now)
    isolated = {hit.details["country"] for hit in hits}
    assert settled <= asked
    assert settled == asked - isolated


def test_the_isolated_project_rule_settles_countries_that_are_active_or_too_early() -> None:
    rule = IsolatedProject(isolation_days=365)
    recent = act("m1", "nlib", "KE", date(2019, 3, 1))
    facts = Facts(latest_activities=(recent,))
    assert rule.settled(facts, NOW, frozenset({"KE", "VN"})) == {"KE"}
    early = datetime(2018, 12, 21, tzinfo=UTC)  # the network has not run a year yet
    assert rule.settled(facts, early, frozenset({"KE", "VN"})) == {"KE", "VN"}


@pytest.mark.parametrize("seed", range(10))
def test_an_isolated_project_is_the_same_all_day(seed: int) -> None:
    """The rule is `daily` (the scheduler judges the portfolio once a day): at any moment
    of one date it finds the same projects, whatever the projects and activities; over the
    days the same facts do give different findings (the test is not vacuous)."""
    rng = random.Random(seed)
    rule = IsolatedProject(isolation_days=365)
    day = date(2019, 7, 1)
    projects = tuple(
        ProjectFact(
            f"p{i}",
            rng.choice(("KE", "VN", "CN")),
            rng.choice(("active", "active", "graduated")),
            f"ev-p{i}",
            onboarded_on=day - timedelta(days=rng.randrange(300, 500)),
        )
        for i in range(40)
    )
    activities = tuple(
        act(f"a{i}", "nlib", country, day - timedelta(days=365 + rng.randrange(-25, 25)))
        for i, country in enumerate(("KE", "VN", "CN"))
    )
    facts = Facts(projects=projects, latest_activities=activities)
    found = []
    for offset in range(-30, 30):
        moment = datetime.combine(day + timedelta(days=offset), time(), UTC)
        first, last = moment, moment + timedelta(hours=23, minutes=59, seconds=59)
        found.append(rule.check(facts, first))
        assert found[-1] == rule.check(facts, last)
    assert len({tuple(hit.key for hit in hits) for hits in found}) > 1
    assert daily(rule)


@pytest.mark.parametrize("seed", range(10))
def test_the_mission_and_call_rules_are_the_same_all_day(seed: int) -> None:
    """The follow-up, conversion and lead-time rules are `daily` (the scheduler judges every
    mission and call once a day): at any moment of one date each finds the same, over the
    days they find different things (the test is not vacuous)."""
    rng = random.Random(seed)
    day = date(2019, 7, 1)
    missions = tuple(
        MissionFact(
            f"m{i}",
            "VN",
            day - timedelta(days=rng.randrange(0, 500)),
            f"ev-m{i}",
            followed_up=rng.random() < 0.3,
            leads=rng.randrange(0, 3),
            converted_leads=rng.randrange(0, 2),
        )
        for i in range(40)
    )
    calls = tuple(
        CallFact(
            f"c{i}",
            day - timedelta(days=rng.randrange(100, 200)),
            None if rng.random() < 0.5 else day - timedelta(days=rng.randrange(0, 60)),
            (f"ev-c{i}",),
        )
        for i in range(40)
    )
    facts = Facts(missions=missions, calls=calls)
    for rule in (MissionFollowupOverdue(), LeadsNotConverted(), GlobalStarsLeadTime()):
        found = []
        for offset in range(-150, 150, 5):
            moment = datetime.combine(day + timedelta(days=offset), time(), UTC)
            first, last = moment, moment + timedelta(hours=23, minutes=59, seconds=59)
            found.append(rule.check(facts, first))
            assert found[-1] == rule.check(facts, last), rule.name
        assert len({tuple(hit.key for hit in hits) for hits in found}) > 1, rule.name
        assert daily(rule)


def test_the_scheduler_judges_a_daily_rule_only_on_a_new_date() -> None:
    engine = build_engine(DashboardSettings(database_url="postgresql://unused/db"))
    names = {rule.name for rule in engine.scheduled}
    assert "isolated-project" in names

    def due(since: datetime | None) -> set[str]:
        return {rule.name for rule in engine.due(since, NOW)}

    daily = {"isolated-project", "mission-followup-overdue", "leads-not-converted"}
    daily |= {"globalstars-lead-time"}
    assert due(None) == names
    assert due(NOW - timedelta(hours=11)) == names - daily
    assert due(NOW - timedelta(hours=13)) == names  # the day before


def test_is_scoped_answers_as_the_protocol_check_every_time() -> None:
    rules = all_rules(DashboardSettings(database_url="postgresql://unused/db"))
    expected = [isinstance(rule, ScopedRule) for rule in rules]
    assert any(expected) and not all(expected)
    assert [is_scoped(rule) for rule in rules] == expected
    assert [is_scoped(rule) for rule in rules] == expected  # the second time, from its memo


def test_what_a_batch_owes_the_rules_and_queued_batches_owe_together() -> None:
    """What the consumer queues per fetch (``rules_pending``): the rules its events trigger,
    a scoped rule with only what they touched; queued fetches merge into one evaluation."""
    engine = build_engine(DashboardSettings(database_url="postgresql://unused/db"))
    first = engine.owed(
        [
            make_event("nl.teamnl.werkplaats.project.onboarded.v1", project_id="p1", country="KE"),
            make_event("nl.teamnl.nlib.budget.spent.v1"),
        ]
    )
    assert "budget-off-pace" in first.whole and "market-duplication" not in first.whole
    assert "isolated-project" not in first.whole
    assert first.scoped == {"isolated-project": Scope(frozenset({"p1"}), frozenset())}
    second = engine.owed(
        [make_event("nl.teamnl.nlib.mission.held.v1", mission_id="m1", country="VN")]
    )
    assert "market-duplication" in second.whole and "budget-off-pace" not in second.whole
    m1 = Scope(frozenset({"m1"}))  # the mission rules judge the mission named, alone
    assert second.scoped == {
        "isolated-project": Scope(frozenset(), frozenset({"VN"})),
        "mission-followup-overdue": m1,
        "leads-not-converted": m1,
    }
    planned = engine.owed([make_event("nl.teamnl.nlib.mission.planned.v1")])
    assert planned.whole == {"service-silent"} and not planned.scoped  # every event: a sign of life
    assert not engine.owed([]) and not Owed()

    def queued(owed: Owed) -> dict[str, object]:  # a rules_pending row, as queue writes it
        scoped = {name: scope.as_json() for name, scope in owed.scoped.items()}
        return {"rules": sorted(owed.whole), "scoped": json.dumps(scoped)}

    both = Owed.merged([queued(first), queued(second)])
    assert both.whole == first.whole | second.whole
    assert both.scoped == {
        "isolated-project": Scope(frozenset({"p1"}), frozenset({"VN"})),
        "mission-followup-overdue": m1,
        "leads-not-converted": m1,
    }
    # a row queued by an earlier version named a scope's keys "projects"
    earlier = {"rules": [], "scoped": '{"isolated-project": {"projects": ["p2"], "countries": []}}'}
    assert Owed.merged([earlier]).scoped == {"isolated-project": Scope(frozenset({"p2"}))}


def test_the_mission_and_call_rules_judge_only_the_items_their_events_name() -> None:
    """A follow-up or a converted lead can change only its mission's findings, a call's
    opening or close only that call's: those rules judge the items named, not all of them;
    other events of the batch name none."""
    engine = build_engine(DashboardSettings(database_url="postgresql://unused/db"))
    owed = engine.owed(
        [
            make_event("nl.teamnl.nlib.mission.followup.held.v1", mission_id="m1"),
            make_event("nl.teamnl.nlib.lead.converted.v1", mission_id="m2"),
            make_event("nl.teamnl.nlib.mission.planned.v1", mission_id="m3"),
            make_event("nl.teamnl.globalstars.call.closed.v1", call_id="c1"),
            make_event("nl.teamnl.globalstars.proposal.submitted.v1", call_id="c2"),
        ]
    )
    assert owed.scoped == {
        "mission-followup-overdue": Scope(frozenset({"m1"})),
        "leads-not-converted": Scope(frozenset({"m2"})),
        "globalstars-lead-time": Scope(frozenset({"c1"})),
        "globalstars-outside-eureka": Scope(frozenset({"c1"})),
    }
    assert not {"mission-followup-overdue", "globalstars-lead-time"} & owed.whole


def test_focus_market_gap_once_tinl_reports_anything() -> None:
    rule = FocusMarketGap(focus_market_gap_days=180)
    assert rule.check(Facts(), NOW) == []
    facts = Facts(
        latest_activities=(
            act("t1", "tinl", "CN", date(2019, 6, 1)),
            act("t2", "tinl", "DE", date(2018, 6, 1)),
        )
    )
    assert {h.key for h in rule.check(facts, NOW)} == {"DE", "US", "smart-cities"}


def test_city_gap_for_cities_in_the_programme_only() -> None:
    rule = CityGap(city_gap_days=365)
    programme = CityProgrammeFact("ho-chi-minh-city", "Ho Chi Minh City", "ev-c")
    [hit] = rule.check(Facts(city_programmes=(programme,)), NOW)
    assert hit.key == "ho-chi-minh-city"
    visit = act("m1", "nlib", "VN", date(2019, 4, 8), city="Ho Chi Minh")
    assert rule.check(Facts(city_programmes=(programme,), latest_activities=(visit,)), NOW) == []


def test_lead_time_over_five_months_closed_or_still_open() -> None:
    rule = GlobalStarsLeadTime(lead_time_max_months=5)
    on_time = CallFact("c1", date(2018, 1, 15), date(2018, 6, 15), ("a",))
    late = CallFact("c2", date(2018, 1, 15), date(2018, 6, 16), ("b",))
    open_late = CallFact("c3", date(2019, 1, 1), None, ("c",))
    open_fine = CallFact("c4", date(2019, 5, 1), None, ("d",))
    hits = rule.check(Facts(calls=(on_time, late, open_late, open_fine)), NOW)
    assert {h.key for h in hits} == {"c2", "c3"}


def test_budget_pace_and_overspending() -> None:
    rule = BudgetOffPace(budget_pace_tolerance=0.25)
    half = year_elapsed(NOW, 2019)
    assert 0.49 < half < 0.5
    on_pace = BudgetFact("nlib", 2019, 1000, 500)
    behind = BudgetFact("tinl", 2019, 1000, 100, ("s1",))
    over = BudgetFact("werkplaats", 2018, 1000, 1001)
    hits = {h.key: h for h in rule.check(Facts(budgets=(on_pace, behind, over)), NOW)}
    assert set(hits) == {"tinl:2019", "werkplaats:2018"}
    assert hits["werkplaats:2018"].severity is Severity.CRITICAL
    assert hits["tinl:2019"].event_ids == ("s1",)


def test_silent_service_and_invalid_events() -> None:
    heard = ServiceFact("nlib", NOW - timedelta(days=31), "e1")
    fresh = ServiceFact("tinl", NOW - timedelta(days=1), "e2")
    assert [h.key for h in ServiceSilent(30).check(Facts(services=(heard, fresh)), NOW)] == ["nlib"]
    dead = (
        DeadLettersFact("t.tinl", 1, "old", ()),
        DeadLettersFact("t.nlib", 3, "bad", ("x1", "x2")),
    )
    hits = InvalidEvents(7).check(Facts(dead_letters=dead), NOW)
    assert [(h.key, h.event_ids, h.details) for h in hits] == [
        ("t.nlib", ("x1", "x2"), {"count": 3}),
        ("t.tinl", (), {"count": 1}),
    ]
    assert hits[0].summary == "3 record(s) on t.nlib failed validation; last: bad"


def test_the_score_weighs_joint_actions_against_open_findings() -> None:
    acts = (act("m1", "nlib", "CN", date(2019, 5, 1)), act("t1", "tinl", "CN", date(2019, 5, 1)))
    assert coherence_score((), {}, NOW, 30).score == 100.0
    score = coherence_score(acts, {"warning": 1}, NOW, 30)
    assert (score.joint_actions, score.weighted_findings, score.score) == (1, 1.0, 50.0)


def test_every_rule_is_named_versioned_and_takes_its_thresholds_from_settings() -> None:
    settings = DashboardSettings(
        database_url="postgresql://unused/db",
        rules={"followup_days": 10, "partner_refused_share": 0.3, "partner_silent_days": 3},
    )
    rules = all_rules(settings)
    names = [r.name for r in rules]
    assert len(set(names)) == len(names) == 16
    described = {d["name"]: d for d in map(describe, rules)}
    assert described["mission-followup-overdue"]["thresholds"] == {"followup_days": 10}
    assert described["partner-quality"]["thresholds"] == {
        "refused_share": 0.3,
        "window_hours": 24,
        "min_events": 20,
        "silent_days": 3,
    }
    assert all(d["version"] >= 1 and d["description"] for d in described.values())


# -- issue 12: the letter read as of its date, and its targets ---------------------------------


def test_a_domestic_preparation_event_never_duplicates_a_mission_abroad() -> None:
    mission_cn = act("m1", "nlib", "CN", date(2018, 5, 28), city="Guangzhou")
    business_week = act("t1", "tinl", "CN", date(2018, 5, 14), city="Tilburg", country="NL")
    assert pair_activities((mission_cn, business_week), 30) == []
    facts = Facts(paired_activities=(mission_cn, business_week))
    assert MarketDuplication(30).check(facts, NOW) == []


def test_a_city_gap_counts_from_the_programme_date() -> None:
    programme = CityProgrammeFact("warsaw", "Warsaw", "ev-city", date(2018, 11, 1))
    rule = CityGap(365)
    assert rule.check(Facts(city_programmes=(programme,)), datetime(2018, 12, 21, tzinfo=UTC)) == []
    [gap] = rule.check(Facts(city_programmes=(programme,)), datetime(2019, 11, 2, tzinfo=UTC))
    assert gap.key == "warsaw"


def test_an_isolated_project_is_judged_once_project_and_network_ran_a_year() -> None:
    panama = ProjectFact("wp-pa", "PA", "active", "ev-pa", date(2017, 10, 2))
    rule = IsolatedProject(365)
    assert rule.check(Facts(projects=(panama,)), datetime(2018, 12, 21, tzinfo=UTC)) == []
    [hit] = rule.check(Facts(projects=(panama,)), datetime(2019, 1, 2, tzinfo=UTC))
    assert hit.key == "wp-pa"


def test_the_werkplaats_target_is_20_in_2019_then_30_and_never_before_2019() -> None:
    rule = WerkplaatsPortfolioTarget()
    eight = tuple(PortfolioFact(year, 8, ("ev-p7",)) for year in range(2019, 2021))
    assert rule.check(Facts(portfolio=eight[:0]), datetime(2019, 6, 1, tzinfo=UTC)) == []
    [short_2019] = rule.check(Facts(portfolio=eight[:1]), datetime(2020, 1, 2, tzinfo=UTC))
    assert short_2019.details == {"year": 2019, "portfolio": 8, "target": 20}
    assert short_2019.event_ids == ("ev-p7",)
    years = (PortfolioFact(2019, 20), PortfolioFact(2020, 20), PortfolioFact(2021, 0))
    [short_2020] = rule.check(Facts(portfolio=years), datetime(2021, 1, 2, tzinfo=UTC))
    assert short_2020.details == {"year": 2020, "portfolio": 20, "target": 30}
    assert rule.check(Facts(portfolio=(PortfolioFact(2018, 0),)), NOW) == []  # before 2019


def test_global_stars_calls_only_outside_the_eureka_countries() -> None:
    calls = tuple(
        CallFact(f"gs-{c}", date(2018, 1, 1), None, (f"ev-{c}",), c) for c in ("IN", "TW", "KR")
    )
    [hit] = GlobalStarsOutsideEureka().check(Facts(calls=calls), NOW)
    assert hit.key == "gs-KR"  # South Korea: a Eureka country


def test_leads_that_never_convert_within_a_year() -> None:
    converted = MissionFact("m1", "VN", date(2018, 4, 13), "ev-1", False, 42, 3)
    none = MissionFact("m2", "IN", date(2018, 11, 23), "ev-2", False, 38, 0)
    rule = LeadsNotConverted(365)
    facts = Facts(missions=(converted, none))
    assert rule.check(facts, datetime(2018, 12, 21, tzinfo=UTC)) == []
    assert [h.key for h in rule.check(facts, datetime(2019, 12, 1, tzinfo=UTC))] == ["m2"]


def test_a_tinl_partner_that_never_takes_part_once_the_convenant_ran_a_year() -> None:
    partners = (PartnerFact("rvo", date(2018, 12, 1), "ev-1"), PartnerFact("bom", None, None))
    rule = TinlPartnerAbsent(365)
    assert rule.check(Facts(tinl_partners=partners), datetime(2018, 12, 21, tzinfo=UTC)) == []
    [hit] = rule.check(Facts(tinl_partners=partners), datetime(2019, 3, 1, tzinfo=UTC))
    assert hit.key == "bom"


def test_soft_landing_in_the_pilot_cities() -> None:
    programmes = (
        CityProgrammeFact("warsaw", "Warsaw", "ev-1", date(2018, 11, 1), "pilot", "active"),
        CityProgrammeFact("dubai", "Dubai", "ev-2", date(2018, 11, 1), "pilot", "not_started"),
        CityProgrammeFact("lagos", "Lagos", "ev-3", date(2018, 11, 1), "silver", "not_started"),
    )
    [hit] = PilotWithoutSoftLanding().check(Facts(city_programmes=programmes), NOW)
    assert hit.key == "dubai"


def test_spending_over_the_whole_programme_period() -> None:
    def spent(family: str, year: int, cents: int, allocation: int) -> BudgetFact:
        return BudgetFact(family, year, allocation, cents, (f"ev-{family}-{year}",))

    on_pace = (spent("nlib", 2018, 550_000_000, 600_000_000),)
    rule = ProgrammeSpending(0.25)
    assert rule.check(Facts(budgets=on_pace), datetime(2018, 12, 21, tzinfo=UTC)) == []
    over = tuple(spent("nlib", y, 700_000_000, 600_000_000) for y in range(2017, 2022))
    [hit] = rule.check(Facts(budgets=over), datetime(2022, 1, 2, tzinfo=UTC))
    assert (hit.key, hit.severity) == ("nlib", Severity.CRITICAL)
    public = (
        spent("tinl", 2017, 600_000_000, 150_000_000),  # 80% of 2017-2021 at half-time
        spent("werkplaats", 2017, 0, 150_000_000),
        spent("globalstars", 2017, 0, 100_000_000),
    )
    keys = {h.key: h.severity for h in rule.check(Facts(budgets=public), NOW)}
    assert keys == {"tinl": Severity.WARNING}  # the public 4 M together: 30%, on pace


@pytest.mark.parametrize(
    ("details", "stored"),
    [
        ({"country": "KE", "days": 365, "share": 0.5, "late": True, "market": None}, None),
        ({"due": date(2026, 1, 2)}, {"due": "2026-01-02"}),
        ({"ids": ("a", "b")}, {"ids": ["a", "b"]}),
        ({"by": {"year": 2026}}, {"by": {"year": 2026}}),
        ({2026: "year"}, {"2026": "year"}),
    ],
)
def test_a_hit_is_compared_with_its_details_as_the_jsonb_column_keeps_them(
    details: dict[str, object], stored: dict[str, object] | None
) -> None:
    """Proves: what a hit's details are compared as is what JSON keeps of them, read back
    (the findings' jsonb column): text and numbers as they are, a date as its text, a tuple
    as a list, a number as a name as text."""
    hit = Hit("k", Severity.INFO, "summary", ("e1",), details)
    expected = json.loads(json.dumps(details, default=str))
    assert _content(hit) == (Severity.INFO.value, "summary", expected, ("e1",))
    assert _content(hit)[2] == (details if stored is None else stored)


def test_first_hits_keeps_the_first_of_each_rule_and_severity_by_key_and_counts_all() -> None:
    """FirstHits against sorting every hit: keys in any order, repeated keys (the earlier
    added first), groups cut back many times and later hits skipped past the kept ones."""
    rules = [ServiceSilent(30), InvalidEvents(7)]
    rng = random.Random(7)
    added: list[tuple[Rule, Hit]] = []
    first = FirstHits(3)
    for _ in range(40):  # parts of hits, as a scoped rule adds them
        rule = rng.choice(rules)
        part = [
            Hit(f"k{rng.randrange(60):02d}", rng.choice(list(Severity)), str(len(added) + n))
            for n in range(rng.randrange(12))
        ]
        first.add(rule, part)
        added += [(rule, hit) for hit in part]
    expected: dict[tuple[str, str], list[Hit]] = {}
    for rule, hit in sorted(added, key=lambda pair: pair[1].key):  # stable: ties as added
        expected.setdefault((rule.name, hit.severity.value), []).append(hit)
    kept: dict[tuple[str, str], list[Hit]] = {}
    for rule, hit in first.kept():
        kept.setdefault((rule.name, hit.severity.value), []).append(hit)
    assert kept == {group: hits[:3] for group, hits in expected.items()}
    assert first.counted == Counter(hit.severity.value for _, hit in added)


class Statements:
    """A connection's edge for :class:`Growth`: the statements it is asked to run."""

    def __init__(self) -> None:
        self.run: list[str] = []

    async def execute(self, statement: str) -> None:
        self.run.append(statement)


@pytest.mark.parametrize(
    ("known", "parts", "analyzed_after"),
    [
        (-1.0, [10] * 5, []),  # never analyzed, a few findings: none
        (0.0, [2000] * 8, [1, 2, 4, 8]),  # a fresh table, doubled each time
        (150_000.0, [2000] * 80, [75]),  # once, when the transaction doubled it
        (150_000.0, [600] * 3, []),  # an evaluation as events arrive: none
        (0.0, [400, 400, 400, 5000], [3, 4]),  # LEAST at least
    ],
)
async def test_a_transaction_analyzes_the_findings_each_time_it_doubles_them(
    known: float, parts: list[int], analyzed_after: list[int]
) -> None:
    conn = Statements()
    grown = Growth(known)
    analyzed = []
    for written, rows in enumerate(parts, start=1):
        await grown.wrote(conn, rows)  # type: ignore[arg-type]
        if conn.run:
            assert conn.run == [f"ANALYZE findings ({Growth.COLUMNS})"]
            analyzed.append(written)
            conn.run.clear()
    assert analyzed == analyzed_after
