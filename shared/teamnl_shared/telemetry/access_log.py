"""One log line per HTTP request; the method, path, status, duration and partner only.

Headers and the query string are never logged: both can carry API keys.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ACCESS_LOGGER = "teamnl.access"


class RequestLogMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer streaming responses).

    Add it with ``app.add_middleware(RequestLogMiddleware)``; it runs inside the FastAPI
    server span, so the line carries that request's trace id. ``partner`` comes from
    ``request.state.partner`` (a slug, or an object with a ``slug``), set by authentication.
    """

    def __init__(self, app: ASGIApp, *, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before responding

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self._log(scope, status, (time.perf_counter() - started) * 1000)

    def _log(self, scope: Scope, status: int, duration_ms: float) -> None:
        fields: dict[str, object] = {
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(duration_ms, 3),
        }
        partner = _partner_label(scope.get("state", {}).get("partner"))
        if partner:
            fields["partner"] = partner
        self.logger.info("%s %s %s", scope["method"], scope["path"], status, extra=fields)


def _partner_label(partner: object) -> str | None:
    if partner is None or isinstance(partner, str):
        return partner
    return str(getattr(partner, "slug", partner))
