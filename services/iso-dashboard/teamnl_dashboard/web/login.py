"""/login and /logout: the sign-in pages (the auth package holds the sessions and members)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ..auth import sessions
from ..auth.config import (
    ANONYMOUS_CSRF_COOKIE,
    SESSION_COOKIE,
    auth_config,
    current_session,
    forget_session,
    pool_of,
)
from ..auth.members import authenticate
from ..auth.redirects import safe_next
from . import templating

router = APIRouter(include_in_schema=False)


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:  # noqa: A002
    if await current_session(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return await templating.render(request, "login.html", {"next": safe_next(next), "error": False})


@router.post("/login")
async def login(
    request: Request,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",  # noqa: A002
) -> Response:
    config = auth_config(request)
    member = await authenticate(pool_of(request), email, password)
    if member is None:
        return await templating.render(
            request,
            "login.html",
            {"next": safe_next(next), "error": True, "email": email},
            status_code=400,
        )
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await sessions.end(pool_of(request), config.secret, old)
    token, _ = await sessions.start(pool_of(request), config.secret, member)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(sessions.LIFETIME.total_seconds()),
        **config.cookie_options(),
    )
    response.delete_cookie(ANONYMOUS_CSRF_COOKIE, **config.cookie_options())
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    config = auth_config(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await sessions.end(pool_of(request), config.secret, token)
    forget_session(request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, **config.cookie_options())
    return response
