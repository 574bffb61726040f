"""The reporting period and as-of date of a request (``?period=2018&as_of=2018-12-31``).

Every page and JSON view reads one: a year or a run of years, as of a date. Without them,
the dashboard reads the latest year with events as of the latest event's date when that
lies in the past (a seeded or archived data set opens at its own date), else as of today
(the app's clock). A bad value is a 422 problem naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from typing import Annotated, Any

from dateutil.relativedelta import relativedelta
from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse

from . import queries
from .period import InvalidReading, Reading, end_of_day, read
from .problems import problem_response
from .read_cache import ReadCache
from .rules.engine import AsOf, RulesEngine
from .rules.score import Score

LATEST_EVENT_ON = ("latest-event-on",)  # its key in the read cache


def _today(request: Request) -> date:
    today: date = request.app.state.clock().date()
    return today


async def reading(
    request: Request,
    period: Annotated[
        str | None,
        Query(description="a year (2018) or a run of years (2017-2021); default: the latest"),
    ] = None,
    as_of: Annotated[
        str | None,
        Query(description="read as of this date (2018-12-31); default: the data's latest date"),
    ] = None,
) -> Reading:
    latest = await _latest_event_on(request)
    return read(period, as_of, latest_event_on=latest, today=_today(request))


async def _latest_event_on(request: Request) -> date | None:
    """The latest event's date, which every page and JSON view reads: kept between two
    changes of the projections like the overview (`read_cache`), the events being one."""
    cache: ReadCache = request.app.state.overview_cache
    return await cache.get(LATEST_EVENT_ON, lambda: queries.latest_event_on(request.app.state.pool))


CurrentReading = Annotated[Reading, Depends(reading)]


def is_past(request: Request, chosen: Reading) -> bool:
    """Whether the reading lies before today: its findings are the rules' view as of then,
    not the live (stored) findings."""
    return chosen.as_of < _today(request)


async def rules_as_of(request: Request, chosen: Reading) -> AsOf:
    engine: RulesEngine = request.app.state.engine
    async with request.app.state.pool.acquire() as conn:
        return await engine.read_as_of(conn, chosen.as_of)


def score_of(as_of: AsOf) -> dict[str, Any]:
    """The coherence score of a reading as of a date, shaped like a stored snapshot."""
    return {"at": end_of_day(as_of.as_of), **asdict(as_of.score)}


async def score_as_of_series(request: Request, chosen: Reading) -> list[dict[str, Any]]:
    """The score at the points of :func:`series_days` (:meth:`RulesEngine.scores_as_of`),
    shaped like stored snapshots; kept between two changes of the projections like the
    overview (`read_cache`): the overview's page and the score's JSON read it."""
    engine: RulesEngine = request.app.state.engine
    days = series_days(chosen)

    async def series() -> list[dict[str, Any]]:
        async with request.app.state.pool.acquire() as conn:
            return _series(days, await engine.scores_as_of(conn, days))

    cache: ReadCache = request.app.state.overview_cache
    return await cache.get(_series_key(days), series)


async def rules_with_series(request: Request, chosen: Reading) -> tuple[AsOf, list[dict[str, Any]]]:
    """The rules as of the reading's date (:func:`rules_as_of`) and its score series, in one
    pass where the series ends on that date (:meth:`RulesEngine.read_with_series`); the
    series is kept as :func:`score_as_of_series` keeps it."""
    days = series_days(chosen)
    if days[-1] != chosen.as_of:  # the period ended before the date
        return await rules_as_of(request, chosen), await score_as_of_series(request, chosen)
    engine: RulesEngine = request.app.state.engine
    async with request.app.state.pool.acquire() as conn:
        as_of, scores = await engine.read_with_series(conn, days)
    series = _series(days, scores)

    async def computed() -> list[dict[str, Any]]:
        return series

    cache: ReadCache = request.app.state.overview_cache
    await cache.get(_series_key(days), computed)
    return as_of, series


def _series(days: list[date], scores: list[Score]) -> list[dict[str, Any]]:
    return [{"at": end_of_day(day), **asdict(s)} for day, s in zip(days, scores, strict=True)]


def _series_key(days: list[date]) -> tuple[str, tuple[date, ...]]:
    return ("score-series", tuple(days))


SCORE_POINTS = 24
"""Points of a past period's score series at most: each is a reading of the rules as of its
day (2 s at the bench's 1.5 M events), so a run of years read month by month (up to 1,212
for 2000-2100) would have one request evaluate them for minutes."""


def series_days(chosen: Reading) -> list[date]:
    """The month ends of the period before its last day read (`Reading.until`), and that
    day; past `SCORE_POINTS` of them, every k-th counted back from that day, so that at
    most that many remain: a year's are its month ends, the programme's five years' its
    quarter ends."""
    days = month_ends(chosen)
    step = -(-len(days) // SCORE_POINTS)  # the least step that leaves SCORE_POINTS at most
    return days[::-step][::-1]


def month_ends(chosen: Reading) -> list[date]:
    """The last day of every month of the period before the as-of date, and that date."""
    days = []
    month = chosen.period.start
    while (end := month + relativedelta(months=1, days=-1)) < chosen.until:
        days.append(end)
        month += relativedelta(months=1)
    return [*days, chosen.until]


@dataclass(frozen=True)
class FindingsThen:
    """What the rules see as of a past date, for the pages: the first findings of each rule
    and severity (:func:`findings_of`), and every one counted by severity."""

    rows: list[dict[str, Any]]
    open_by_severity: Mapping[str, int]


def findings_then(as_of: AsOf) -> FindingsThen:
    return FindingsThen(findings_of(as_of), dict(as_of.by_severity))


def findings_of(as_of: AsOf) -> list[dict[str, Any]]:
    """The hits a reading as of a date keeps (the first of each rule and severity), shaped
    like stored findings (no id, never acknowledged: nothing is stored), worst first."""
    order = {"critical": 0, "warning": 1, "info": 2}
    rows = [
        {
            "id": None,
            "rule": rule.name,
            "rule_version": rule.version,
            "finding_key": hit.key,
            "severity": hit.severity.value,
            "summary": hit.summary,
            "details": hit.details,
            "event_ids": list(hit.event_ids),
            "state": "open",
            "condition_holds": True,
            "raised_at": None,
            "updated_at": None,
            "acknowledged_by": None,
            "acknowledged_at": None,
            "resolved_by": None,
            "resolved_at": None,
        }
        for rule, hit in as_of.hits
    ]
    return sorted(rows, key=lambda r: (order.get(r["severity"], 3), r["rule"], r["finding_key"]))


async def reading_problem(request: Request, error: Exception) -> JSONResponse:
    """An RFC 9457 problem naming the bad query parameter."""
    assert isinstance(error, InvalidReading)  # noqa: S101 - registered for this type only
    errors = [{"field": f"query/{error.parameter}", "reason": error.reason}]
    return problem_response(request, 422, str(error), errors)
