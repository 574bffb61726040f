"""Sign-in throttling per account and per client address, kept in PostgreSQL
(``auth_login_failures``) so every dashboard instance sees the same counts.

After ``max_failures_per_account`` failed sign-ins for one e-mail address (or
``max_failures_per_address`` from one client address, an IPv6 client counted per /64) within
``window_seconds`` of each other, further attempts answer 429 with Retry-After for
``lockout_seconds``, doubling with every further failure up to ``max_lockout_seconds``.
Attempts refused while blocked verify no password and count no failure, and a quiet window
forgets the failures: an attacker can hold an account back for at most the capped lockout
at a time, never lock it for good. Unknown addresses are counted like known ones, so a 429
does not tell which accounts exist. A successful sign-in forgets the account's failures.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass

import asyncpg
from pydantic import BaseModel, Field

ACCOUNT, ADDRESS = "account", "address"
MAX_EMAIL_CHARS = 320


class LoginThrottle(BaseModel):
    """Sign-in throttling; nested in the dashboard settings as ``DASHBOARD_LOGIN__<NAME>``."""

    max_failures_per_account: int = Field(
        5, ge=1, description="failed sign-ins for one e-mail address before it is throttled"
    )
    max_failures_per_address: int = Field(
        20, ge=1, description="failed sign-ins from one client address before it is throttled"
    )
    window_seconds: float = Field(
        900.0, gt=0, description="failures further apart than this start the count again"
    )
    lockout_seconds: float = Field(
        30.0, gt=0, description="first lockout; doubles with every further failure"
    )
    max_lockout_seconds: float = Field(900.0, gt=0, description="longest lockout")

    def lockout(self, failures: int, limit: int) -> float | None:
        """Seconds to block after `failures` failures against a `limit`, or None."""
        if failures < limit:
            return None
        doublings = min(failures - limit, 32)
        return min(self.lockout_seconds * 2.0**doublings, self.max_lockout_seconds)


@dataclass(frozen=True)
class LoginKeys:
    """What one sign-in attempt is counted against (as SHA-256 digests)."""

    account: str
    address: str

    @classmethod
    def of(cls, email: str, client_host: str | None) -> LoginKeys:
        return cls(
            account=_digest(email.strip().lower()[:MAX_EMAIL_CHARS]),
            address=_digest(client_network(client_host)),
        )


def client_network(host: str | None) -> str:
    """The client's address; an IPv6 client's /64, since one host usually has all of it."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def retry_after(pool: asyncpg.Pool, keys: LoginKeys) -> int | None:
    """Whole seconds until an attempt with these keys is let through, or None if it is now."""
    seconds = await pool.fetchval(
        "SELECT extract(epoch FROM max(blocked_until) - now()) FROM auth_login_failures"
        " WHERE ((scope = 'account' AND key_hash = $1) OR (scope = 'address' AND key_hash = $2))"
        " AND blocked_until > now()",
        keys.account,
        keys.address,
    )
    return max(1, math.ceil(seconds)) if seconds is not None else None


_COUNT_FAILURE = """
INSERT INTO auth_login_failures AS f (scope, key_hash, failures, last_failure_at)
VALUES ($1, $2, 1, now())
ON CONFLICT (scope, key_hash) DO UPDATE SET
    failures = CASE WHEN f.last_failure_at < now() - make_interval(secs => $3) THEN 1
                    ELSE f.failures + 1 END,
    last_failure_at = now()
RETURNING failures
"""
_BLOCK = """
UPDATE auth_login_failures
SET blocked_until = greatest(blocked_until, now() + make_interval(secs => $3))
WHERE scope = $1 AND key_hash = $2
"""
_FORGET_QUIET = """
DELETE FROM auth_login_failures
WHERE last_failure_at < now() - make_interval(secs => $1)
  AND (blocked_until IS NULL OR blocked_until < now())
"""


async def record_failure(pool: asyncpg.Pool, policy: LoginThrottle, keys: LoginKeys) -> None:
    """Count a failed sign-in against the account and the address; block them past the limit."""
    counted = (
        (ACCOUNT, keys.account, policy.max_failures_per_account),
        (ADDRESS, keys.address, policy.max_failures_per_address),
    )
    async with pool.acquire() as conn, conn.transaction():
        for scope, key, limit in counted:
            failures = await conn.fetchval(_COUNT_FAILURE, scope, key, policy.window_seconds)
            lockout = policy.lockout(failures, limit)
            if lockout is not None:
                await conn.execute(_BLOCK, scope, key, lockout)
        await conn.execute(_FORGET_QUIET, policy.window_seconds + policy.max_lockout_seconds)


async def forget_account(pool: asyncpg.Pool, keys: LoginKeys) -> None:
    """After a successful sign-in the account starts with a clean slate (the address not)."""
    await pool.execute(
        "DELETE FROM auth_login_failures WHERE scope = 'account' AND key_hash = $1", keys.account
    )
