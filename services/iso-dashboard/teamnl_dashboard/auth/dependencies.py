"""FastAPI dependencies: ``CurrentMember`` and ``require_role(role)``.

Without a session, pages under ``/api/`` answer 401; HTML pages redirect to ``/login``
(see :func:`teamnl_dashboard.auth.install.install_auth`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from .config import current_session
from .members import Member
from .roles import Role


class NotAuthenticated(Exception):
    """No signed-in member: 401 for the API, a redirect to /login for pages."""


async def current_member(request: Request) -> Member:
    session = await current_session(request)
    if session is None:
        raise NotAuthenticated
    return session.member


CurrentMember = Annotated[Member, Depends(current_member)]


def require_role(role: Role | str) -> Callable[..., Awaitable[Member]]:
    """A dependency that returns the signed-in member if their role includes ``role``."""
    required = Role(role)

    async def member_with_role(member: CurrentMember) -> Member:
        if not member.has_role(required):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs the {required} role")
        return member

    member_with_role.__name__ = f"require_{required.value}"
    return member_with_role
