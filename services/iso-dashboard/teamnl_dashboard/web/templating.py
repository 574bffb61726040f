"""Jinja2 rendering of the dashboard pages: autoescaped, translated, CSRF token, CSP."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..auth.config import auth_config, current_session
from ..auth.csrf import ANONYMOUS_MAX_AGE, csrf_token_for
from . import i18n

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent.parent / "static"
DIST = STATIC / "dist"
BUNDLE = "dist/dashboard.js"

# Scripts only from this site (the bundle): no inline script, no eval, no other origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "svg"], default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def bundle_available() -> bool:
    return (STATIC / BUNDLE).is_file()


async def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    status_code: int = 200,
    language: str | None = None,
) -> HTMLResponse:
    language = language if language in i18n.LANGUAGES else i18n.negotiate(request)
    session = await current_session(request)
    new_cookies: dict[str, str] = {}
    csrf_token = await csrf_token_for(request, new_cookies)
    html = environment.get_template(template).render(
        t=i18n.translator(language),
        lang=language,
        member=session.member if session else None,
        csrf_token=csrf_token,
        bundle=bundle_available(),
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
    options = auth_config(request).cookie_options()
    for name, value in new_cookies.items():
        response.set_cookie(name, value, max_age=ANONYMOUS_MAX_AGE, **options)
    return response
