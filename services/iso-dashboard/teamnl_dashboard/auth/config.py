"""What the auth package needs from the dashboard settings, and the request's session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from starlette.requests import HTTPConnection

from . import sessions
from .sessions import Session
from .throttle import LoginThrottle

SESSION_COOKIE = "teamnl_session"
ANONYMOUS_CSRF_COOKIE = "teamnl_csrf"
_CACHE = "teamnl_auth_session"
_MISSING = object()
FORM_MAX_BYTES = 64 * 1024
FORM_MAX_FIELDS = 20


class AuthSettings(Protocol):
    """The part of DashboardSettings the auth package reads (``login``, ``form_max_bytes``
    and ``form_max_fields`` are optional: the defaults here apply without them)."""

    session_secret: Any  # str or pydantic SecretStr
    secure_cookies: bool


@dataclass(frozen=True)
class AuthConfig:
    secret: str
    secure_cookies: bool
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    form_max_bytes: int = FORM_MAX_BYTES
    form_max_fields: int = FORM_MAX_FIELDS

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> AuthConfig:
        secret = settings.session_secret
        if hasattr(secret, "get_secret_value"):
            secret = secret.get_secret_value()
        if not secret:
            raise ValueError("the dashboard's session_secret is empty")
        return cls(
            secret=str(secret),
            secure_cookies=bool(settings.secure_cookies),
            throttle=getattr(settings, "login", None) or LoginThrottle(),
            form_max_bytes=getattr(settings, "form_max_bytes", FORM_MAX_BYTES),
            form_max_fields=getattr(settings, "form_max_fields", FORM_MAX_FIELDS),
        )

    def cookie_options(self) -> dict[str, Any]:
        return {"httponly": True, "samesite": "lax", "secure": self.secure_cookies, "path": "/"}


def auth_config(conn: HTTPConnection) -> AuthConfig:
    config: AuthConfig = conn.app.state.teamnl_auth
    return config


def pool_of(conn: HTTPConnection) -> asyncpg.Pool:
    """The dashboard's pool: create_app puts it on ``app.state.pool``."""
    pool: asyncpg.Pool = conn.app.state.pool
    return pool


async def current_session(conn: HTTPConnection) -> Session | None:
    """The signed-in session of this request (looked up once per request), or None."""
    cached = conn.scope.setdefault("state", {}).get(_CACHE, _MISSING)
    if cached is not _MISSING:
        return cached  # type: ignore[return-value]
    token = conn.cookies.get(SESSION_COOKIE)
    session = None
    if token:
        session = await sessions.load(pool_of(conn), auth_config(conn).secret, token)
    conn.scope["state"][_CACHE] = session
    return session


def forget_session(conn: HTTPConnection) -> None:
    conn.scope.setdefault("state", {})[_CACHE] = None
