"""/login and /logout: the sign-in pages (the auth package holds the sessions and members)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ..auth import sessions, throttle
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
MAX_PASSWORD_CHARS = 1024  # argon2 takes any length; nobody types more


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:  # noqa: A002
    if await current_session(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return await templating.render(request, "login.html", {"next": safe_next(next), "error": False})


@router.post("/login")
async def login(
    request: Request,
    email: Annotated[str, Form(max_length=throttle.MAX_EMAIL_CHARS)],
    password: Annotated[str, Form(max_length=MAX_PASSWORD_CHARS)],
    next: Annotated[str, Form(max_length=2048)] = "/",  # noqa: A002
) -> Response:
    config, pool = auth_config(request), pool_of(request)
    keys = throttle.LoginKeys.of(email, request.client.host if request.client else None)
    wait = await throttle.retry_after(pool, keys)
    if wait is not None:
        return await _login_page_again(request, email, next, 429, {"Retry-After": str(wait)})
    member = await authenticate(pool, email, password)
    if member is None:
        await throttle.record_failure(pool, config.throttle, keys)
        return await _login_page_again(request, email, next, 400)
    await throttle.forget_account(pool, keys)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await sessions.end(pool, config.secret, old)
    token, _ = await sessions.start(pool, config.secret, member)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(sessions.LIFETIME.total_seconds()),
        **config.cookie_options(),
    )
    response.delete_cookie(ANONYMOUS_CSRF_COOKIE, **config.cookie_options())
    return response


async def _login_page_again(
    request: Request, email: str, next_: str, status: int, headers: dict[str, str] | None = None
) -> Response:
    """The form again with the e-mail address: 400 after a failure, 429 while throttled."""
    context = {"next": safe_next(next_), "error": True, "throttled": status == 429, "email": email}
    response = await templating.render(request, "login.html", context, status_code=status)
    response.headers.update(headers or {})
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
