"""The JSON API (and CSV exports) under ``/api/v1``: a thin layer over `queries`.

Every route needs a signed-in member (401 otherwise); acknowledging and resolving
findings needs the secretariat role. Tables are also served as CSV at ``<path>.csv``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import AfterValidator

from teamnl_shared.contract.registry import Family

from . import queries, schemas
from .actions import FindingId, TransitionRefused, change_finding
from .auth import CurrentMember, Member, require_role
from .live import LiveHub, sse_stream
from .period import Reading
from .problems import problem_responses
from .read_cache import ReadCache, overview_key
from .reading import (
    CurrentReading,
    findings_of,
    is_past,
    rules_as_of,
    score_as_of_series,
    score_of,
)
from .rules import RulesEngine, describe
from .rules.engine import AsOf
from .settings import DashboardSettings

RESPONSES = problem_responses(401, 403, 422)
router = APIRouter(prefix="/api/v1", tags=["dashboard"], responses=RESPONSES)
Secretariat = Annotated[Member, Depends(require_role("secretariat"))]
# Bounds on what a query may ask, so that no value reaches PostgreSQL out of its range
# (a 500) - it is a 422 naming the parameter instead.
Name = Annotated[str, Path(max_length=100, pattern=r"^[\w.:-]+$")]
NameFilter = Annotated[str | None, Query(max_length=100, pattern=r"^[\w.:-]+$")]


def _within_utc_years(moment: datetime) -> datetime:
    """A time with an offset must stay within years 1-9999 once in UTC, as PostgreSQL's
    ``timestamptz`` needs (``0001-01-01T00:01+01:01`` does not: a 500 before)."""
    if moment.tzinfo is not None:
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range: before year 1 or after 9999 in UTC") from None
    return moment


Since = Annotated[datetime, AfterValidator(_within_utc_years)]
NOT_FOUND = problem_responses(404)
CHANGE = problem_responses(400, 404, 409, 413)  # 400, 413: the body (csrf.py's bounds)
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "the table as CSV"}
}


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def _settings(request: Request) -> DashboardSettings:
    settings: DashboardSettings = request.app.state.settings
    return settings


# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection");
# event data comes from partners, so such a cell is prefixed with ' and stays text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        value = ";".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = json.dumps(value, default=str, sort_keys=True)
    elif isinstance(value, datetime | date):
        return value.isoformat()
    return neutralise_formula(value) if isinstance(value, str) else value


def csv_response(rows: Iterable[Mapping[str, Any]], name: str) -> Response:
    rows = list(rows)
    out = io.StringIO()
    if rows:
        # RFC 4180 line ends, so a cell with a bare \r or \n is quoted, never a new row
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


# -- network views ---------------------------------------------------------------------------


@router.get(
    "/overview",
    response_model=schemas.Overview,
    summary="Per initiative: events, activities, budget over the period; open findings",
)
async def overview(request: Request, member: CurrentMember, read: CurrentReading) -> dict[str, Any]:
    if not is_past(request, read):  # kept between two changes of the projections
        cache: ReadCache = request.app.state.overview_cache
        key = overview_key("api", read)
        return await cache.get(key, lambda: _overview(request, read, None))
    as_of = await rules_as_of(request, read)
    found = await _overview(request, read, as_of)
    found["score"] = score_of(as_of)
    return found


async def _overview(request: Request, read: Reading, as_of: AsOf | None) -> dict[str, Any]:
    """The overview of `read`; as of a past date (`as_of`), with the findings of then."""
    async with _pool(request).acquire() as conn:  # its queries share one connection
        return await queries.overview(
            conn,
            period=read.period,
            as_of=read.as_of,
            allocations_cents=_settings(request).allocations_cents,
            findings_open=dict(as_of.by_severity) if as_of else None,
            past=as_of is not None,
        )


@router.get(
    "/activity",
    response_model=list[schemas.ActivityPoint],
    summary="Activity over time per initiative (and market)",
)
async def activity(
    request: Request,
    member: CurrentMember,
    read: CurrentReading,
    granularity: Literal["day", "month", "year"] = "month",
    family: Family | None = None,
    market: NameFilter = None,
    since: date | None = None,
) -> list[dict[str, Any]]:
    return await queries.activity_series(
        _pool(request),
        period=read.period,
        as_of=read.as_of,
        granularity=granularity,
        family=family,
        market=market,
        since=since,
    )


@router.get("/activity.csv", responses=CSV, response_class=Response)
async def activity_csv(
    request: Request,
    member: CurrentMember,
    read: CurrentReading,
    granularity: Literal["day", "month", "year"] = "month",
    family: Family | None = None,
    market: NameFilter = None,
    since: date | None = None,
) -> Response:
    return csv_response(
        await activity(request, member, read, granularity, family, market, since), "activity"
    )


@router.get(
    "/budget",
    response_model=list[schemas.Budget],
    summary="Budget spent against the yearly allocation",
)
async def budget(
    request: Request, member: CurrentMember, read: CurrentReading
) -> list[dict[str, Any]]:
    return await queries.budget(
        _pool(request),
        period=read.period,
        as_of=read.as_of,
        allocations_cents=_settings(request).allocations_cents,
    )


@router.get("/budget.csv", responses=CSV, response_class=Response)
async def budget_csv(request: Request, member: CurrentMember, read: CurrentReading) -> Response:
    return csv_response(await budget(request, member, read), "budget")


@router.get(
    "/markets", response_model=list[schemas.Market], summary="Activity per market and initiative"
)
async def markets(
    request: Request, member: CurrentMember, read: CurrentReading
) -> list[dict[str, Any]]:
    return await queries.markets(_pool(request), period=read.period, as_of=read.as_of)


@router.get("/markets.csv", responses=CSV, response_class=Response)
async def markets_csv(request: Request, member: CurrentMember, read: CurrentReading) -> Response:
    return csv_response(await markets(request, member, read), "markets")


@router.get(
    "/complementarity",
    response_model=list[schemas.Complementarity],
    summary="Per market: which of the four initiatives worked it, and how they complement",
)
async def complementarity(
    request: Request, member: CurrentMember, read: CurrentReading
) -> list[dict[str, Any]]:
    return await queries.complementarity(_pool(request), period=read.period, as_of=read.as_of)


@router.get(
    "/markets/{code}",
    responses=NOT_FOUND,
    response_model=schemas.MarketDetail,
    summary="One market: activities and Werkplaats projects",
)
async def market(
    request: Request, member: CurrentMember, read: CurrentReading, code: Name
) -> dict[str, Any]:
    found = await queries.market(_pool(request), code, period=read.period, as_of=read.as_of)
    if found is None:
        raise HTTPException(404, "no such market: a country code or smart-cities")
    return found


@router.get(
    "/cities", response_model=schemas.Cities, summary="Coverage of the Cities of Opportunity"
)
async def cities(request: Request, member: CurrentMember, read: CurrentReading) -> dict[str, Any]:
    return await queries.cities(_pool(request), period=read.period, as_of=read.as_of)


@router.get("/cities.csv", responses=CSV, response_class=Response)
async def cities_csv(request: Request, member: CurrentMember, read: CurrentReading) -> Response:
    return csv_response((await cities(request, member, read))["cities"], "cities")


# -- initiatives -----------------------------------------------------------------------------


@router.get("/initiatives/nlib", summary="NLIB: missions, follow-up rate, lead conversion")
async def nlib(request: Request, member: CurrentMember, read: CurrentReading) -> dict[str, Any]:
    return await queries.nlib(_pool(request), period=read.period, as_of=read.as_of)


@router.get("/initiatives/nlib/missions.csv", responses=CSV, response_class=Response)
async def nlib_missions_csv(
    request: Request, member: CurrentMember, read: CurrentReading
) -> Response:
    return csv_response((await nlib(request, member, read))["missions"], "nlib-missions")


@router.get("/initiatives/tinl", summary="TINL: focus markets and partner cooperation")
async def tinl(request: Request, member: CurrentMember, read: CurrentReading) -> dict[str, Any]:
    return await queries.tinl(_pool(request), period=read.period, as_of=read.as_of)


@router.get("/initiatives/tinl/partner-pairs.csv", responses=CSV, response_class=Response)
async def tinl_pairs_csv(request: Request, member: CurrentMember, read: CurrentReading) -> Response:
    pairs = (await tinl(request, member, read))["partner_pairs"]
    return csv_response(pairs, "tinl-partner-pairs")


@router.get("/initiatives/globalstars", summary="Global Stars: proposals and lead time")
async def globalstars(
    request: Request, member: CurrentMember, read: CurrentReading
) -> dict[str, Any]:
    rules = _settings(request).rules
    return await queries.globalstars(
        _pool(request),
        period=read.period,
        as_of=read.as_of,
        target_months=(rules.lead_time_target_min_months, rules.lead_time_max_months),
    )


@router.get("/initiatives/globalstars/calls.csv", responses=CSV, response_class=Response)
async def globalstars_csv(
    request: Request, member: CurrentMember, read: CurrentReading
) -> Response:
    calls = (await globalstars(request, member, read))["calls"]
    return csv_response(calls, "globalstars-calls")


@router.get("/initiatives/werkplaats", summary="De Werkplaats: portfolio, SDGs, graduations")
async def werkplaats(
    request: Request, member: CurrentMember, read: CurrentReading
) -> dict[str, Any]:
    settings = _settings(request)
    return await queries.werkplaats(
        _pool(request),
        period=read.period,
        as_of=read.as_of,
        targets=settings.werkplaats_targets,
        yearly_target=settings.werkplaats_yearly_target,
    )


@router.get("/initiatives/werkplaats/portfolio.csv", responses=CSV, response_class=Response)
async def werkplaats_csv(request: Request, member: CurrentMember, read: CurrentReading) -> Response:
    portfolio = (await werkplaats(request, member, read))["portfolio"]
    return csv_response(portfolio, "werkplaats-portfolio")


# -- coherence -------------------------------------------------------------------------------


@router.get(
    "/rules",
    response_model=list[schemas.Rule],
    summary="The coherence rules with their versions and thresholds",
)
async def rules(request: Request, member: CurrentMember) -> list[dict[str, Any]]:
    engine: RulesEngine = request.app.state.engine
    return [describe(rule) for rule in engine.rules]


@router.get(
    "/findings",
    response_model=list[schemas.Finding],
    summary="Findings of the coherence rules, newest first",
)
async def findings(
    request: Request,
    member: CurrentMember,
    read: CurrentReading,
    state: Literal["open", "acknowledged", "resolved"] | None = None,
    rule: NameFilter = None,
    severity: Literal["info", "warning", "critical"] | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    """As of today: the stored findings with their state. As of a past date: what the
    rules see from the facts known then (``id`` None, state open; nothing is stored)."""
    if not is_past(request, read):
        return await queries.findings(
            _pool(request), state=state, rule=rule, severity=severity, limit=limit
        )
    found = findings_of(await rules_as_of(request, read))
    return [
        f
        for f in found
        if state in (None, "open")
        and rule in (None, f["rule"])
        and severity in (None, f["severity"])
    ][:limit]


@router.get("/findings.csv", responses=CSV, response_class=Response)
async def findings_csv(
    request: Request,
    member: CurrentMember,
    read: CurrentReading,
    state: Literal["open", "acknowledged", "resolved"] | None = None,
    rule: NameFilter = None,
) -> Response:
    found = await findings(request, member, read, state, rule, None, 5000)
    return csv_response(found, "findings")


@router.get(
    "/findings/{finding_id}",
    responses=NOT_FOUND,
    response_model=schemas.FindingWithHistory,
    summary="One finding with its history",
)
async def finding(request: Request, member: CurrentMember, finding_id: FindingId) -> dict[str, Any]:
    found = await queries.finding(_pool(request), finding_id)
    if found is None:
        raise HTTPException(404, "no such finding")
    return found


async def _change(
    request: Request, member: Member, finding_id: int, state: str, note: str | None
) -> dict[str, Any]:
    try:
        changed = await change_finding(
            _pool(request), finding_id, state, member.email, at=request.app.state.clock(), note=note
        )
    except TransitionRefused as refused:
        raise HTTPException(409, str(refused)) from None
    if changed is None:
        raise HTTPException(404, "no such finding")
    return await finding(request, member, finding_id)


Note = Annotated[str | None, Body(embed=True, max_length=2000)]


@router.post(
    "/findings/{finding_id}/acknowledge",
    responses=CHANGE,
    response_model=schemas.FindingWithHistory,
    summary="Acknowledge (secretariat)",
)
async def acknowledge(
    request: Request, member: Secretariat, finding_id: FindingId, note: Note = None
) -> dict[str, Any]:
    return await _change(request, member, finding_id, "acknowledged", note)


@router.post(
    "/findings/{finding_id}/resolve",
    responses=CHANGE,
    response_model=schemas.FindingWithHistory,
    summary="Resolve (secretariat)",
)
async def resolve(
    request: Request, member: Secretariat, finding_id: FindingId, note: Note = None
) -> dict[str, Any]:
    return await _change(request, member, finding_id, "resolved", note)


@router.get(
    "/coherence/score",
    response_model=schemas.CoherenceScore,
    summary="The network coherence score over time",
)
async def score(
    request: Request,
    member: CurrentMember,
    read: CurrentReading,
    bucket: Literal["hour", "day", "week", "month"] = "day",
    since: Since | None = None,
) -> dict[str, Any]:
    """As of today: the stored snapshots. As of a past date: the score the rules give at
    the end of each month of the period up to that date, and at the date itself."""
    pool = _pool(request)
    if is_past(request, read):
        series = await score_as_of_series(request, read)
        return {"definition": SCORE_DEFINITION, "current": series[-1], "series": series}
    return {
        "definition": SCORE_DEFINITION,
        "current": await queries.latest_score(pool),
        "series": await queries.score_series(pool, bucket=bucket, since=since),
    }


SCORE_DEFINITION = (
    "100 * J / (J + W): J joint NLIB-TINL actions and complementary links (per market,"
    " each pair of the four initiatives that both worked it) in the trailing year,"
    " W open findings weighted info 0.25, warning 1, critical 3"
)


@router.get("/coherence/score.csv", responses=CSV, response_class=Response)
async def score_csv(
    request: Request, member: CurrentMember, bucket: Literal["hour", "day", "week", "month"] = "day"
) -> Response:
    return csv_response(await queries.score_series(_pool(request), bucket=bucket), "score")


# -- operations and live updates -------------------------------------------------------------


@router.get(
    "/status",
    response_model=schemas.Status,
    summary="Projection version, events applied, dead letters",
)
async def status(request: Request, member: CurrentMember) -> dict[str, Any]:
    return await queries.status(_pool(request))


@router.get(
    "/stream",
    summary="Live changes as Server-Sent Events",
    response_class=Response,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: event|finding` with a JSON `data` line",
        }
    },
)
async def stream(request: Request, member: CurrentMember) -> StreamingResponse:
    hub: LiveHub = request.app.state.hub
    return StreamingResponse(
        sse_stream(hub),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
