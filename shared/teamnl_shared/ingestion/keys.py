"""Partner API keys: format, issuance, storage (hashed) and lookup.

A key reads ``tnl_<key id>_<secret>``: the key id (8 characters, public) finds the row, the
secret (43 characters, 256 random bits) proves possession. Only the SHA-256 of the secret is
stored. A fast hash is the standard choice for high-entropy machine keys: nobody can guess or
brute-force 256 random bits, so the slowness of argon2/bcrypt (which protects *low*-entropy
passwords) buys nothing here, and would cost ~50 ms of CPU on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import asyncpg

from teamnl_shared.contract.registry import specs_for_family
from teamnl_shared.contract.topics import PUBLISHED_BY

KEY_PREFIX = "tnl"
KEY_ID_LENGTH = 8
_KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
_KEY_PATTERN = re.compile(r"^tnl_([a-z0-9]{8})_([A-Za-z0-9_-]{32,128})$")
_SLUG_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class InvalidKeyRequest(ValueError):
    """A key cannot be issued as asked (unknown service, type outside it, bad slug)."""


@dataclass(frozen=True)
class Partner:
    """The authenticated caller: who it is and what its key allows."""

    key_id: str
    partner: str
    service: str
    event_types: frozenset[str]

    @property
    def source(self) -> str:
        """The only CloudEvents ``source`` this partner may write as."""
        return source_of(self.partner)

    @property
    def slug(self) -> str:  # read by the access log
        return self.partner


@dataclass(frozen=True)
class StoredKey:
    key_id: str
    partner: str
    service: str
    event_types: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class IssuedKey:
    """A new key; ``key`` is shown once and never stored."""

    key: str
    key_id: str
    partner: str
    service: str
    event_types: tuple[str, ...]


def source_of(partner: str) -> str:
    return f"/partners/{partner}"


def service_event_types(service: str) -> tuple[str, ...]:
    families = [family for family, owner in PUBLISHED_BY.items() if owner == service]
    if not families:
        raise InvalidKeyRequest(f"unknown service {service!r}")
    return tuple(spec.type for family in families for spec in specs_for_family(family))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = _KEY_PATTERN.match(key)
    return (match.group(1), match.group(2)) if match else None


def generate_key() -> tuple[str, str, str]:
    """(key, key id, secret) of a fresh random key."""
    key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}_{key_id}_{secret}", key_id, secret


def secret_matches(secret: str, stored_sha256: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_sha256)


def _scope(service: str, event_types: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    allowed = service_event_types(service)
    if not event_types:
        return allowed
    outside = sorted(set(event_types) - set(allowed))
    if outside:
        raise InvalidKeyRequest(f"not event types of the {service} service: {outside}")
    return tuple(sorted(set(event_types)))


# -- storage ----------------------------------------------------------------------------------


async def ensure_key_store(pool: asyncpg.Pool) -> None:
    sql = resources.files(__package__).joinpath("key_store.sql").read_text()
    async with pool.acquire() as conn:
        await conn.execute(sql)


async def create_key(
    pool: asyncpg.Pool,
    *,
    service: str,
    partner: str,
    event_types: list[str] | tuple[str, ...] | None = None,
) -> IssuedKey:
    """Issue a key for ``partner`` on ``service``; ``event_types`` default: all of the service."""
    if not _SLUG_PATTERN.match(partner) or len(partner) > 64:
        raise InvalidKeyRequest(f"partner must be a lower-case slug, not {partner!r}")
    scope = _scope(service, event_types)
    key, key_id, secret = generate_key()
    await pool.execute(
        "INSERT INTO api_keys (key_id, secret_sha256, partner, service, event_types)"
        " VALUES ($1, $2, $3, $4, $5)",
        key_id,
        hash_secret(secret),
        partner,
        service,
        list(scope),
    )
    return IssuedKey(key, key_id, partner, service, scope)


async def list_keys(pool: asyncpg.Pool, *, service: str | None = None) -> list[StoredKey]:
    rows = await pool.fetch(
        "SELECT key_id, partner, service, event_types, created_at, revoked_at FROM api_keys"
        " WHERE $1::text IS NULL OR service = $1 ORDER BY service, partner, created_at",
        service,
    )
    return [
        StoredKey(
            r["key_id"],
            r["partner"],
            r["service"],
            tuple(r["event_types"]),
            r["created_at"],
            r["revoked_at"],
        )
        for r in rows
    ]


async def revoke_key(pool: asyncpg.Pool, key_id: str, service: str | None = None) -> bool:
    """Revoke a key by its id, only if it is `service`'s when one is named (the services may
    share one key store); False when no such active key exists."""
    status: str = await pool.execute(
        "UPDATE api_keys SET revoked_at = now()"
        " WHERE key_id = $1 AND revoked_at IS NULL AND ($2::text IS NULL OR service = $2)",
        key_id,
        service,
    )
    return status.endswith(" 1")


@dataclass(frozen=True)
class ActiveKey:
    secret_sha256: str
    partner: Partner


async def find_active_key(pool: asyncpg.Pool, key_id: str) -> ActiveKey | None:
    """The stored hash and scope of an active (not revoked) key, by its public id."""
    row = await pool.fetchrow(
        "SELECT secret_sha256, partner, service, event_types FROM api_keys"
        " WHERE key_id = $1 AND revoked_at IS NULL",
        key_id,
    )
    if row is None:
        return None
    partner = Partner(key_id, row["partner"], row["service"], frozenset(row["event_types"]))
    return ActiveKey(row["secret_sha256"], partner)
