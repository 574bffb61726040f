"""Server-side sessions (``auth_sessions``): the cookie carries a random token, the table
its HMAC (keyed with the dashboard's session secret), the member and a CSRF token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from .members import Member
from .roles import Role

LIFETIME = timedelta(hours=12)


@dataclass(frozen=True)
class Session:
    member: Member
    csrf_token: str


def session_key(secret: str, token: str) -> str:
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


async def start(pool: asyncpg.Pool, secret: str, member: Member) -> tuple[str, Session]:
    """A new session for the member: (cookie token, session)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO auth_sessions (key_hash, member_id, csrf_token, expires_at)"
        " VALUES ($1, $2, $3, now() + $4::interval)",
        session_key(secret, token),
        member.id,
        csrf,
        LIFETIME,
    )
    return token, Session(member=member, csrf_token=csrf)


async def load(pool: asyncpg.Pool, secret: str, token: str) -> Session | None:
    """The live session of an enabled member behind the cookie token, or None."""
    row = await pool.fetchrow(
        "SELECT s.csrf_token, m.id, m.email, m.role, m.disabled, m.created_at"
        " FROM auth_sessions s JOIN auth_members m ON m.id = s.member_id"
        " WHERE s.key_hash = $1 AND s.expires_at > now() AND NOT m.disabled",
        session_key(secret, token),
    )
    if row is None:
        return None
    member = Member(
        id=row["id"],
        email=row["email"],
        role=Role(row["role"]),
        disabled=row["disabled"],
        created_at=row["created_at"],
    )
    return Session(member=member, csrf_token=row["csrf_token"])


async def end(pool: asyncpg.Pool, secret: str, token: str) -> None:
    await pool.execute(
        "DELETE FROM auth_sessions WHERE key_hash = $1 OR expires_at <= now()",
        session_key(secret, token),
    )
