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
from ..auth.members import Member
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

# Stands for the request's CSRF token in what is rendered once for many requests
# (`shared_part`, `page`); `respond` puts each request's own token in its place. Random per
# process, so no page or event text can contain it.
CSRF_SLOT = f"csrf-slot-{secrets.token_hex(16)}"


def bundle_available() -> bool:
    return (STATIC / BUNDLE).is_file()


def shared_part(template: str, language: str, /, **context: Any) -> Markup:
    """`template` rendered for every session that reads it in `language`: its forms carry
    `CSRF_SLOT`, never a session's token; `respond` fills them."""
    html = environment.get_template(template).render(
        t=i18n.translator(language), lang=language, csrf_token=CSRF_SLOT, **context
    )
    return Markup(html)  # noqa: S704 - the output of an autoescaping template


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    language: str,
    member: Member | None,
) -> Markup:
    """`template` as the whole page of this path for `member` in `language`, for any of the
    member's sessions (`shared_part`): the same for every request of theirs until the context
    changes, so it may be kept; `respond` sends it."""
    return shared_part(
        template,
        language,
        member=member,
        bundle=bundle_available(),
        path=request.url.path,
        **context,
    )


async def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    status_code: int = 200,
    language: str | None = None,
) -> HTMLResponse:
    """`template` for this request (its context may hold parts from `shared_part`)."""
    language = language if language in i18n.LANGUAGES else i18n.negotiate(request)
    session = await current_session(request)
    member = session.member if session else None
    return await respond(request, page(request, template, context, language, member), status_code)


async def respond(request: Request, html: Markup, status_code: int = 200) -> HTMLResponse:
    """A page from `page` for this request: its forms get the request's CSRF token (and the
    response the cookie of an anonymous one), and the security headers."""
    new_cookies: dict[str, str] = {}
    csrf_token = await csrf_token_for(request, new_cookies)
    # Markup.replace escapes the token
    filled = html.replace(CSRF_SLOT, csrf_token)
    response = HTMLResponse(filled, status_code=status_code, headers=SECURITY_HEADERS)
    options = auth_config(request).cookie_options()
    for name, value in new_cookies.items():
        response.set_cookie(name, value, max_age=ANONYMOUS_MAX_AGE, **options)
    return response
