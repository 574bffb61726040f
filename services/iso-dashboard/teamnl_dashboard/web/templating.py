"""Jinja2 rendering of the dashboard pages: autoescaped, translated, CSRF token, CSP."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
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
    auto_reload=False,  # the templates are the package's own: no stat() of each per render
)

# Stands for the request's CSRF token in a part rendered once for many sessions
# (`shared_part`); `render` puts each request's own token in its place. Random per process,
# so no page or event text can contain it.
CSRF_SLOT = f"csrf-slot-{secrets.token_hex(16)}"


def bundle_available() -> bool:
    return (STATIC / BUNDLE).is_file()


def shared_part(template: str, language: str, **context: Any) -> Markup:
    """`template` rendered for every session that reads it in `language`: its forms carry
    `CSRF_SLOT`, never a session's token; pass it to `render` in ``parts``."""
    html = environment.get_template(template).render(
        t=i18n.translator(language), lang=language, csrf_token=CSRF_SLOT, **context
    )
    return Markup(html)  # noqa: S704 - the output of an autoescaping template


async def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    status_code: int = 200,
    language: str | None = None,
    parts: Mapping[str, Markup] | None = None,
) -> HTMLResponse:
    """`template` for this request; each of `parts` (from `shared_part`) goes into the context
    under its name, with this request's CSRF token in its slots."""
    language = language if language in i18n.LANGUAGES else i18n.negotiate(request)
    session = await current_session(request)
    new_cookies: dict[str, str] = {}
    csrf_token = await csrf_token_for(request, new_cookies)
    # Markup.replace escapes the token
    filled = {name: part.replace(CSRF_SLOT, csrf_token) for name, part in (parts or {}).items()}
    html = environment.get_template(template).render(
        t=i18n.translator(language),
        lang=language,
        member=session.member if session else None,
        csrf_token=csrf_token,
        bundle=bundle_available(),
        path=request.url.path,
        **context,
        **filled,
    )
    response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
    options = auth_config(request).cookie_options()
    for name, value in new_cookies.items():
        response.set_cookie(name, value, max_age=ANONYMOUS_MAX_AGE, **options)
    return response
