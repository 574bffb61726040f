"""What a past period's score series rests on: a project as known on a day
(`ProjectFact.known_on`), the isolated-project rule's hits counted without making them
(`IsolatedProject.count`), and the days the series reads (`reading.series_days`)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest

from teamnl_dashboard.period import Period, Reading
from teamnl_dashboard.reading import SCORE_POINTS, series_days
from teamnl_dashboard.rules import Facts
from teamnl_dashboard.rules.catalogue import IsolatedProject
from teamnl_dashboard.rules.engine import count_hits
from teamnl_dashboard.rules.facts import projects_known_on, scoped_known_on
from teamnl_dashboard.rules.model import ActivityFact, Hit, ProjectFact, Severity


def test_a_project_as_known_on_a_day() -> None:
    graduated = ProjectFact("p", "KE", "graduated", "ev", date(2018, 3, 1), date(2019, 5, 10))
    assert graduated.known_on(date(2018, 2, 28)) is None  # not onboarded yet
    then = graduated.known_on(date(2019, 5, 9))
    assert then == ProjectFact("p", "KE", "active", "ev", date(2018, 3, 1), None)
    assert graduated.known_on(date(2019, 5, 10)) == graduated
    running = ProjectFact("q", "KE", "active", "ev", date(2018, 3, 1))
    assert running.known_on(date(2018, 3, 1)) is running
    assert then.known_on(date(2018, 12, 31)) == then  # as known later, then earlier


def _portfolio(rng: random.Random, day: date) -> Facts:
    projects = []
    for i in range(60):
        onboarded = day - timedelta(days=rng.randrange(0, 900))
        ended = onboarded + timedelta(days=rng.randrange(1, 900)) if rng.random() < 0.4 else None
        status = "active" if ended is None else rng.choice(("graduated", "stopped"))
        projects.append(
            ProjectFact(f"p{i}", rng.choice(("KE", "VN", "GH")), status, f"e{i}", onboarded, ended)
        )
    activities = tuple(
        ActivityFact(f"a{i}", "nlib", c, c, "City", start, start + timedelta(days=2), f"ev-a{i}")
        for i, c in enumerate(("KE", "VN"))
        for start in [day - timedelta(days=rng.randrange(0, 800))]
    )
    return Facts(projects=tuple(projects), latest_activities=activities)


@pytest.mark.parametrize("seed", range(10))
def test_isolated_projects_counted_are_the_hits_checked(seed: int) -> None:
    rng = random.Random(seed)
    rule = IsolatedProject(isolation_days=365)
    day = date(2020, 6, 30)
    facts = _portfolio(rng, day)
    counts = []
    for offset in range(0, 720, 30):
        now = datetime.combine(day - timedelta(days=offset), time.max, UTC)
        known = Facts(
            projects=tuple(
                p for p in (q.known_on(now.date()) for q in facts.projects) if p is not None
            ),
            latest_activities=facts.latest_activities,
        )
        checked = Counter(hit.severity.value for hit in rule.check(known, now))
        assert rule.count(known, now) == checked == count_hits(rule, known, now)
        counts.append(checked["info"])
    assert len(set(counts)) > 2, counts  # the days see different portfolios


def test_a_rule_without_a_count_of_its_own_is_counted_by_checking() -> None:
    class Twice:
        name, version, description = "twice", 1, ""
        needs: frozenset[str] = frozenset()
        triggers: frozenset[str] = frozenset()
        scheduled = False

        def check(self, facts: Facts, now: datetime) -> list[Hit]:
            return [Hit("a", Severity.WARNING, ""), Hit("b", Severity.WARNING, "")]

    assert count_hits(Twice(), Facts(), datetime.now(UTC)) == Counter({"warning": 2})


@pytest.mark.parametrize(
    ("period", "as_of", "points", "first"),
    [
        (Period(2018, 2018), date(2018, 12, 31), 12, date(2018, 1, 31)),
        (Period(2018, 2018), date(2018, 5, 3), 5, date(2018, 1, 31)),
        (Period(2018, 2019), date(2019, 12, 31), 24, date(2018, 1, 31)),
        (Period(2017, 2021), date(2021, 12, 31), 20, date(2017, 3, 31)),  # quarter ends
        (Period(2000, 2100), date(2026, 6, 15), 23, date(2000, 10, 31)),
    ],
)
def test_a_series_reads_month_ends_and_at_most_its_points(
    period: Period, as_of: date, points: int, first: date
) -> None:
    days = series_days(Reading(period, as_of))
    assert len(days) == points <= SCORE_POINTS
    assert days[0] == first and days[-1] == min(as_of, date(period.last_year, 12, 31))
    assert days == sorted(set(days))
    assert all((d + timedelta(days=1)).day == 1 for d in days[:-1])  # month ends


@pytest.mark.parametrize("seed", range(5))
def test_a_part_known_on_each_day_is_each_project_known_on_it(seed: int) -> None:
    """The projects no day changes are split off once (`scoped_known_on`): each day still
    sees every project as known on it, and the split is not all or nothing."""
    rng = random.Random(seed)
    own = _portfolio(rng, date(2020, 6, 30))
    days = [date(2019, m, 28) for m in range(1, 13)]
    steady = sum(1 for p in own.projects if p.known_on(days[0]) is p)
    assert 0 < steady < len(own.projects)
    for day, then in scoped_known_on(own, days):
        assert sorted(then.projects) == sorted(projects_known_on(own.projects, day)), day
