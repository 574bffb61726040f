"""The dashboard's server-rendered pages (``router``), the language switch and static files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from markupsafe import Markup

from ..actions import FindingId
from ..auth.config import auth_config, pool_of
from ..auth.dependencies import CurrentMember, require_role
from ..auth.members import Member
from ..auth.redirects import safe_next
from ..auth.roles import Role
from ..period import Reading
from ..read_cache import ReadCache, overview_key
from ..reading import (
    CurrentReading,
    FindingsThen,
    findings_then,
    is_past,
    rules_as_of,
    rules_with_series,
)
from . import data, i18n
from .templating import STATIC, page, render, respond, shared_part

router = APIRouter(include_in_schema=False)
Secretariat = Annotated[Member, Depends(require_role(Role.SECRETARIAT))]
FINDING_ACTIONS = {"acknowledge": "acknowledged", "resolve": "resolved"}


def _reading(request: Request, read: Reading) -> dict[str, Any]:
    return {"reading": data.reading_view(read, is_past(request, read))}


async def _as_of_findings(request: Request, read: Reading) -> FindingsThen | None:
    """For a past date, the findings the rules see as of then; None: the stored ones."""
    if not is_past(request, read):
        return None
    return findings_then(await rules_as_of(request, read))


@router.get("/")
async def overview(request: Request, member: CurrentMember, read: CurrentReading) -> Response:
    """The overview: for the current reading, the whole page is rendered once per member and
    language between two changes (`read_cache`), from content rendered once per role."""
    language = i18n.negotiate(request)
    if is_past(request, read):
        context = await _overview_context(request, read, member, language)
        return await render(request, "overview.html", context, language=language)

    async def whole_page() -> Markup:
        context = await _overview_context(request, read, member, language)
        return page(request, "overview.html", context, language, member)

    cache: ReadCache = request.app.state.overview_cache
    html = await cache.get((overview_key("page-whole", read), language, member), whole_page)
    return await respond(request, html)


async def _overview_context(
    request: Request, read: Reading, member: Member, language: str
) -> dict[str, Any]:
    main = await _overview_main(request, read, member, language)
    return {**_reading(request, read), "main": main}


async def _overview_main(request: Request, read: Reading, member: Member, language: str) -> Markup:
    """The overview's content as HTML: for the current reading, rendered once per language and
    role between two changes (`read_cache`), like the data it shows."""

    async def compute() -> Markup:
        view = {**await _overview(request, read), **_reading(request, read)}
        return shared_part(
            "_overview_main.html",
            language,
            member=member,
            path="/",
            findings_max=data.OVERVIEW_FINDINGS,  # the live feed keeps as many
            **view,
        )

    if is_past(request, read):
        return await compute()
    cache: ReadCache = request.app.state.overview_cache
    return await cache.get((overview_key("page-html", read), language, member.role), compute)


async def _overview(request: Request, read: Reading) -> dict[str, Any]:
    """The current reading's data as kept between two changes (`read_cache`); a past
    reading's with the findings and scores the rules see as of then."""
    pool, allocations = pool_of(request), request.app.state.settings.allocations_cents
    if is_past(request, read):
        as_of, scores = await rules_with_series(request, read)
        return await data.overview(pool, allocations, read, findings_then(as_of), scores)
    cache: ReadCache = request.app.state.overview_cache
    return await cache.get(
        overview_key("page", read), lambda: data.overview(pool, allocations, read)
    )


@router.get("/markets")
async def markets(request: Request, member: CurrentMember, read: CurrentReading) -> Response:
    view = await data.markets(pool_of(request), read)
    return await render(request, "markets.html", {**view, **_reading(request, read)})


@router.get("/markets/{country}")
async def market(
    request: Request, member: CurrentMember, read: CurrentReading, country: str
) -> Response:
    view = await data.market(pool_of(request), country, read)
    if view is None:
        raise HTTPException(404, "unknown market")
    return await render(request, "market.html", {"market": view, **_reading(request, read)})


@router.get("/map")
async def world_map(request: Request, member: CurrentMember, read: CurrentReading) -> Response:
    view = await data.world_map(pool_of(request), read)
    return await render(request, "map.html", {**view, **_reading(request, read)})


@router.get("/findings")
async def findings(
    request: Request, member: CurrentMember, read: CurrentReading, state: str | None = None
) -> Response:
    chosen = state if state in ("open", "acknowledged", "resolved") else None
    view = await data.findings(pool_of(request), chosen, await _as_of_findings(request, read))
    return await render(
        request, "findings.html", {**view, "state": chosen, **_reading(request, read)}
    )


@router.post("/findings/{finding_id}/{action}")
async def change_finding(
    request: Request,
    member: Secretariat,
    finding_id: FindingId,
    action: str,
    next: Annotated[str, Form()] = "/findings",  # noqa: A002
) -> Response:
    if action not in FINDING_ACTIONS:
        raise HTTPException(404, "unknown action")
    try:
        changed = await data.change_finding(
            pool_of(request), finding_id, FINDING_ACTIONS[action], member.email
        )
    except data.FindingRefused as refused:
        raise HTTPException(409, str(refused)) from refused
    if not changed:
        raise HTTPException(404, "unknown finding")
    return RedirectResponse(safe_next(next), status_code=303)


@router.get("/live/events")
async def live_events(request: Request, member: CurrentMember) -> list[dict[str, object]]:
    """The latest events, fetched by the page when the stream says that events arrived."""
    return await data.recent_events(pool_of(request))


@router.post("/language")
async def language(
    request: Request, lang: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
) -> Response:  # noqa: A002
    response = RedirectResponse(safe_next(next), status_code=303)
    if lang in i18n.LANGUAGES:
        options = auth_config(request).cookie_options()
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 24 * 3600, **options)
    return response


@router.get("/static/{path:path}")
async def static(path: str) -> Response:
    root = STATIC.resolve()
    try:
        target = (root / path).resolve()
        found = target.is_relative_to(root) and target.is_file() and not _hidden(target, root)
    except (ValueError, OSError):  # a NUL byte, a name too long for the file system
        found = False
    if not found:
        raise HTTPException(404)
    return FileResponse(
        target, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    )


def _hidden(target: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in target.relative_to(root).parts)
