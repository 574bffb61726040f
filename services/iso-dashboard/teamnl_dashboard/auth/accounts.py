"""Member administration from outside the web app (the members CLI, the ``teamnl`` suite,
the demo set-up): open the dashboard's database, bring its schema up to date, act, close.
Each operation is the repository's (`members`); this module only owns the connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from teamnl_shared.db import create_pool, migrate

from ..database import MIGRATIONS
from . import members
from .members import Member
from .roles import Role

T = TypeVar("T")


async def with_member_store(database_url: str, action: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    pool = await create_pool(database_url, max_size=2)
    try:
        await migrate(pool, MIGRATIONS)
        return await action(pool)
    finally:
        await pool.close()


async def create_member(
    database_url: str, email: str, password: str, role: Role | str = Role.MEMBER
) -> Member:
    """Create a member; raises MemberError when the e-mail exists, WeakPassword when weak."""
    return await with_member_store(
        database_url, lambda pool: members.create_member(pool, email, password, role)
    )


async def ensure_member(database_url: str, email: str, password: str, role: Role | str) -> Member:
    """Create the member, or give the existing one this password and role and enable it."""

    async def upsert(pool: asyncpg.Pool) -> Member:
        try:
            return await members.create_member(pool, email, password, role)
        except members.MemberError:
            await members.set_password(pool, email, password)
            await members.set_role(pool, email, role)
            return await members.set_disabled(pool, email, False)

    return await with_member_store(database_url, upsert)
