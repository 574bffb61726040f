"""Pages per initiative, the progress report to parliament (HTML and PDF) and the events
behind each of its figures (``/events`` and ``/api/v1/events``).

Every route reads the request's period and as-of date (``teamnl_dashboard.reading``, the
same defaults as every other view); a period or date that cannot be read is answered with a
422 problem (RFC 9457) naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from .. import api, initiatives, report
from ..auth.config import pool_of
from ..auth.dependencies import CurrentMember
from ..pdf import PdfFailed, html_to_pdf
from ..period import InvalidReading, Period, Reading
from ..queries import INITIATIVE_NAMES
from ..reading import CurrentReading
from ..report import FIGURES, FigureEvents, ReportSettings
from . import i18n, initiative_messages
from .data import country_name
from .templating import SECURITY_HEADERS, STATIC, environment, render

initiative_messages.register()
router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/v1", tags=["dashboard"], responses=api.RESPONSES)
PAGES = ("nlib", "tinl", "globalstars", "werkplaats")
REPORT_CSS = STATIC / "report.css"


ReadingDep = CurrentReading


def install(app: FastAPI) -> None:
    """Mount the pages and the events API; 422 problems for an unreadable period."""
    app.include_router(router)
    app.include_router(api_router)


def _settings(request: Request) -> ReportSettings:
    return ReportSettings.of(request.app.state.settings)


# -- formatting shared by the pages and the report ------------------------------------------


def _euro(language: str) -> Callable[[int | None], str]:
    def euro(cents: int | None) -> str:
        text = f"{(cents or 0) / 100:,.0f}"
        # a no-break space: the sign stays with its amount in narrow table cells
        return "€\u00a0" + (text.replace(",", ".") if language == "nl" else text)

    return euro


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _helpers(now: Reading, language: str, base: str = "") -> dict[str, Any]:
    def evidence(figure: str, period: str | None = None) -> str:
        chosen = Reading(Period.parse(period), now.as_of) if period else now
        return f"{base}/events?{chosen.query(figure=figure)}"

    return {
        "reading": now,
        "euro": _euro(language),
        "percent": _percent,
        "evidence": evidence,
        "country_name": country_name,
        "initiative_names": INITIATIVE_NAMES,
        "base_url": base,
    }


# -- pages per initiative --------------------------------------------------------------------


async def _page_data(request: Request, page: str, now: Reading) -> dict[str, Any]:
    pool, settings = pool_of(request), _settings(request)
    if page == "nlib":
        return {
            "nlib": await report.nlib_view(pool, now.period, now.as_of, settings),
            "cities": await initiatives.cities_of_opportunity(pool, now.period, now.as_of),
        }
    if page == "tinl":
        return {"tinl": await initiatives.tinl_network(pool, now.period, now.as_of)}
    if page == "globalstars":
        return {"globalstars": await report.globalstars_view(pool, now.period, now.as_of, settings)}
    return {"werkplaats": await report.werkplaats_view(pool, now.period, now.as_of, settings)}


@router.get("/initiatives")
async def initiatives_index(request: Request, member: CurrentMember, now: ReadingDep) -> Response:
    return RedirectResponse(f"/initiatives/nlib?{now.query()}", status_code=303)


@router.get("/initiatives/{page}")
async def initiative_page(
    request: Request, member: CurrentMember, page: str, now: ReadingDep
) -> Response:
    if page not in PAGES:
        raise HTTPException(404, "unknown initiative")
    language = i18n.negotiate(request)
    context = {**await _page_data(request, page, now), **_helpers(now, language), "page": page}
    return await render(request, f"initiative_{page}.html", context)


# -- the events behind a figure --------------------------------------------------------------

Figure = Annotated[str, Query(description="a figure of the progress report, e.g. missions.held")]


async def _figure_events(request: Request, figure: str, now: Reading) -> FigureEvents:
    if figure not in FIGURES:
        raise InvalidReading("figure", f"unknown figure; one of {', '.join(sorted(FIGURES))}")
    return await report.figure_events(
        pool_of(request), figure, now.period, now.as_of, _settings(request)
    )


@router.get("/events")
async def figure_events_page(
    request: Request, member: CurrentMember, figure: Figure, now: ReadingDep
) -> Response:
    behind = await _figure_events(request, figure, now)
    language = i18n.negotiate(request)
    context = {
        "figure": figure,
        "count": behind.count,
        "events": behind.events,
        **_helpers(now, language),
    }
    return await render(request, "figure_events.html", context)


@api_router.get("/events", summary="The events behind one figure of the progress report")
async def figure_events_api(
    request: Request, member: CurrentMember, figure: Figure, now: ReadingDep
) -> dict[str, Any]:
    """{"figure", "period", "as_of", "count", "events": [{"event_id", "source", "type",
    "family", "subject", "time", "title"}]}: ``count`` events lie behind the figure;
    ``events`` lists the latest of them (1,000 at most), oldest first."""
    behind = await _figure_events(request, figure, now)
    return {
        "figure": figure,
        "period": now.period.label,
        "as_of": now.as_of,
        "count": behind.count,
        "events": behind.events,
    }


# -- the progress report ---------------------------------------------------------------------


@router.get("/report")
async def progress_report(
    request: Request,
    member: CurrentMember,
    now: ReadingDep,
    lang: Literal["nl", "en"] | None = None,
    format: Literal["html", "pdf"] = "html",  # noqa: A002 - the documented parameter name
) -> Response:
    language = lang or i18n.negotiate(request)
    figures = await report.progress_report(
        pool_of(request), now.period, now.as_of, _settings(request)
    )
    context = {"report": figures, "generated_at": datetime.now(UTC), "language": language}
    if format == "html":
        context |= _helpers(now, language) | {
            "pdf_url": f"/report?{now.query(lang=language, format='pdf')}"
        }
        return await render(request, "report.html", context, language=language)
    base = str(request.base_url).rstrip("/")
    html = _print_html(context | _helpers(now, language, base), language)
    pdf = await _pdf(request, html)
    name = f"voortgangsrapportage-{now.period.label}-{language}.pdf"
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(pdf, media_type="application/pdf", headers=headers)


def _print_html(context: Mapping[str, Any], language: str) -> str:
    """The report as one self-contained document (its styles inline) for printing."""
    return environment.get_template("report_print.html").render(
        t=i18n.translator(language),
        lang=language,
        css=Path(REPORT_CSS).read_text(encoding="utf-8"),
        **context,
    )


async def _pdf(request: Request, html: str) -> bytes:
    try:
        return await html_to_pdf(html, browser=request.app.state.settings.report_browser)
    except PdfFailed as failed:
        raise HTTPException(503, f"the PDF could not be made: {failed}") from failed
