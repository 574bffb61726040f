"""CSRF protection for every state-changing request.

- signed-in: the session's synchroniser token, sent as the ``csrf_token`` form field (HTML
  forms) or the ``X-CSRF-Token`` header (JSON requests);
- not signed in (the login form, the language switch on it): a signed double-submit token,
  the same value in the form and in the ``teamnl_csrf`` cookie;
- always: a request that says it comes from another site (``Origin`` of another host,
  ``Sec-Fetch-Site: cross-site``) is refused before any token is looked at.

The middleware also bounds what a POST may send before anything parses it: a body over
``form_max_bytes`` answers 413, a form with more than ``form_max_fields`` fields 400.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..problems import is_api, problem_response
from .config import ANONYMOUS_CSRF_COOKIE, auth_config, current_session

HEADER = "x-csrf-token"
FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
ANONYMOUS_MAX_AGE = 2 * 3600


def tokens_match(sent: str | None, expected: str | None) -> bool:
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


class AnonymousTokens:
    """Signed double-submit tokens for forms shown before a session exists."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="teamnl-dashboard-csrf")

    def issue(self) -> str:
        return self._serializer.dumps(secrets.token_urlsafe(16))

    def valid(self, token: str | None, max_age: int = ANONYMOUS_MAX_AGE) -> bool:
        if not token:
            return False
        try:
            self._serializer.loads(token, max_age=max_age)
        except BadSignature:
            return False
        return True

    def check(self, sent: str | None, cookie: str | None) -> bool:
        return tokens_match(sent, cookie) and self.valid(sent)


def cross_site(headers: Mapping[str, str]) -> bool:
    """True when the browser tells us the request was made by another site."""
    if headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc != headers.get("host")


async def expected_token(conn: HTTPConnection) -> tuple[str | None, bool]:
    """(token the request must carry, whether it is a session's token)."""
    session = await current_session(conn)
    if session is not None:
        return session.csrf_token, True
    return conn.cookies.get(ANONYMOUS_CSRF_COOKIE), False


async def csrf_token_for(request: Request, response_cookies: dict[str, str]) -> str:
    """The token to put in this page's forms; adds the anonymous cookie when one is needed."""
    expected, is_session = await expected_token(request)
    anonymous = AnonymousTokens(auth_config(request).secret)
    if is_session and expected:
        return expected
    if expected and anonymous.valid(expected, max_age=ANONYMOUS_MAX_AGE // 2):
        return expected
    token = anonymous.issue()
    response_cookies[ANONYMOUS_CSRF_COOKIE] = token
    return token


class CsrfMiddleware:
    """Refuses state-changing requests without a valid token (403)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if cross_site(request.headers):
            refusal = _refuse(request, "cross-site request refused", field="header/origin")
            await refusal(scope, receive, send)
            return
        try:
            sent, receive = await _sent_token(request, _bounded(request, receive))
        except FormRefused as refused:
            await _refuse(request, refused.detail, refused.status_code)(scope, receive, send)
            return
        expected, is_session = await expected_token(request)
        ok = (
            tokens_match(sent, expected)
            if is_session
            else AnonymousTokens(auth_config(request).secret).check(sent, expected)
        )
        if not ok:
            refusal = _refuse(request, "CSRF token missing or invalid", field=f"header/{HEADER}")
            await refusal(scope, receive, send)
            return
        await _bounded_app(self.app, request, receive, send)


async def _bounded_app(app: ASGIApp, request: Request, receive: Receive, send: Send) -> None:
    """The app; a body found too large while the app streams it still answers 413."""
    started = False

    async def watched_send(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await app(request.scope, receive, watched_send)
    except FormRefused as refused:
        if started:
            raise
        await _refuse(request, refused.detail, refused.status_code)(request.scope, receive, send)


class FormRefused(HTTPException):
    """A body or form past the limits. An HTTPException, so that raised while FastAPI reads
    the body it still answers with this status (FastAPI turns other errors into 400)."""


def _bounded(request: Request, receive: Receive) -> Receive:
    """`receive`, refusing a body larger than the configured limit (declared or streamed).
    Raised while the app reads the body, FastAPI answers it as a 400."""
    limit = auth_config(request).form_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise FormRefused(413, f"request body larger than {limit} bytes")
    size = 0

    async def bounded() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise FormRefused(413, f"request body larger than {limit} bytes")
        return message

    return bounded


async def _sent_token(request: Request, receive: Receive) -> tuple[str | None, Receive]:
    """The token from the header or the urlencoded form; the body is replayed downstream."""
    header = request.headers.get(HEADER)
    if header is not None:
        return header, receive
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        return None, receive
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    fields = _form_fields(body, auth_config(request).form_max_fields)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    values = fields.get(FIELD)
    return (values[0] if values else None), replay


def _form_fields(body: bytes, max_fields: int) -> dict[str, list[str]]:
    try:
        return parse_qs(body.decode("latin-1"), max_num_fields=max_fields)
    except ValueError:  # parse_qs says "Max number of fields exceeded"
        raise FormRefused(400, f"a form may have at most {max_fields} fields") from None


def _refuse(request: Request, reason: str, status: int = 403, field: str = "body") -> Response:
    """The refusal: a problem naming `field` under ``/api/``, plain text elsewhere."""
    if is_api(request):
        return problem_response(request, status, reason, [{"field": field, "reason": reason}])
    return PlainTextResponse(reason, status_code=status)


__all__ = ["AnonymousTokens", "CsrfMiddleware", "csrf_token_for", "cross_site", "tokens_match"]
