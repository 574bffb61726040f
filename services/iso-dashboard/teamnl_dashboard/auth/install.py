"""``install_auth(app, settings)``: CSRF middleware and 401/redirect handling. The sign-in
pages (/login, /logout) are the web package's (`teamnl_dashboard.web.login`)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from ..problems import is_api, problem_response
from .config import AuthConfig, AuthSettings
from .csrf import CsrfMiddleware
from .dependencies import NotAuthenticated


def install_auth(app: FastAPI, settings: AuthSettings) -> None:
    """Add CSRF checks and the sign-in redirect to the app. The app must put its asyncpg pool
    on ``app.state.pool`` (the dashboard's lifespan does) and apply the dashboard migrations."""
    app.state.teamnl_auth = AuthConfig.from_settings(settings)
    app.add_middleware(CsrfMiddleware)
    app.add_exception_handler(NotAuthenticated, _not_authenticated)


async def _not_authenticated(request: Request, _: Exception) -> Response:
    if is_api(request):
        return problem_response(
            request,
            401,
            "not signed in",
            [{"field": "cookie/teamnl_session", "reason": "no valid session"}],
            headers={"WWW-Authenticate": 'Cookie realm="teamnl-dashboard"'},
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
