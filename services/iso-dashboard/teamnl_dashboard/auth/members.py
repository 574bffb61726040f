"""Member accounts: the Member record and its repository (all SQL on ``auth_members``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .passwords import hash_password_off_loop, needs_rehash, verify_password_off_loop
from .roles import Role

_COLUMNS = "id, email, role, disabled, created_at"


@dataclass(frozen=True)
class Member:
    id: int
    email: str
    role: Role
    disabled: bool = False
    created_at: datetime | None = None

    def has_role(self, required: Role | str) -> bool:
        return self.role.includes(required)


class MemberError(ValueError):
    pass


def normalise_email(email: str) -> str:
    address = email.strip().lower()
    local, at, domain = address.partition("@")
    if not (local and at and "." in domain) or any(c.isspace() for c in address):
        raise MemberError(f"not an e-mail address: {email!r}")
    return address


def _member(row: asyncpg.Record) -> Member:
    return Member(
        id=row["id"],
        email=row["email"],
        role=Role(row["role"]),
        disabled=row["disabled"],
        created_at=row["created_at"],
    )


async def create_member(
    pool: asyncpg.Pool | asyncpg.Connection,
    email: str,
    password: str,
    role: Role | str = Role.MEMBER,
) -> Member:
    """Create a member with an Argon2id password hash; raises MemberError if the e-mail exists."""
    address, checked_role = normalise_email(email), Role(role)
    try:
        row = await pool.fetchrow(
            f"INSERT INTO auth_members (email, password_hash, role) VALUES ($1, $2, $3)"  # noqa: S608
            f" RETURNING {_COLUMNS}",
            address,
            await hash_password_off_loop(password),
            checked_role.value,
        )
    except asyncpg.UniqueViolationError:
        raise MemberError(f"a member with e-mail {address} exists already") from None
    return _member(row)


async def authenticate(pool: asyncpg.Pool, email: str, password: str) -> Member | None:
    """The enabled member with these credentials, or None (same cost either way)."""
    try:
        address = normalise_email(email)
    except MemberError:
        address = ""
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS}, password_hash FROM auth_members WHERE email = $1",  # noqa: S608
        address,
    )
    if not await verify_password_off_loop(row["password_hash"] if row else None, password):
        return None
    if row["disabled"]:
        return None
    if needs_rehash(row["password_hash"]):
        await pool.execute(
            "UPDATE auth_members SET password_hash = $2 WHERE id = $1",
            row["id"],
            await hash_password_off_loop(password),
        )
    return _member(row)


async def list_members(pool: asyncpg.Pool) -> list[Member]:
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM auth_members ORDER BY email")  # noqa: S608
    return [_member(row) for row in rows]


async def set_role(pool: asyncpg.Pool, email: str, role: Role | str) -> Member:
    return await _update(pool, email, "role = $2", Role(role).value)


async def set_disabled(pool: asyncpg.Pool, email: str, disabled: bool = True) -> Member:
    """Disabling also ends the member's sessions."""
    member = await _update(pool, email, "disabled = $2", disabled)
    if disabled:
        await pool.execute("DELETE FROM auth_sessions WHERE member_id = $1", member.id)
    return member


async def set_password(pool: asyncpg.Pool, email: str, password: str) -> Member:
    """A new password also ends every session of the member: whoever held the old one (or a
    copy of a cookie) is signed out with it."""
    password_hash = await hash_password_off_loop(password)
    async with pool.acquire() as conn, conn.transaction():
        member = await _update(conn, email, "password_hash = $2", password_hash)
        await conn.execute("DELETE FROM auth_sessions WHERE member_id = $1", member.id)
    return member


async def _update(
    pool: asyncpg.Pool | asyncpg.Connection, email: str, assignment: str, value: object
) -> Member:
    address = normalise_email(email)
    row = await pool.fetchrow(
        f"UPDATE auth_members SET {assignment}, updated_at = now() WHERE email = $1"  # noqa: S608
        f" RETURNING {_COLUMNS}",
        address,
        value,
    )
    if row is None:
        raise MemberError(f"no member with e-mail {address}")
    return _member(row)
