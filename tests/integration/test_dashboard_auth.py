"""Members, sessions and CSRF of the dashboard on a real, migrated PostgreSQL: sign-in,
401 for the API and a redirect for pages without a session, roles, CSRF on every POST,
sign-out, disabled members, and the members CLI (``python -m teamnl_dashboard.members``)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Annotated

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI

from teamnl_dashboard.auth import (
    CurrentMember,
    Member,
    MemberError,
    Role,
    create_member,
    install_auth,
    require_role,
)
from teamnl_dashboard.auth.members import authenticate, list_members, set_disabled
from teamnl_dashboard.web import login
from teamnl_shared.db import migrate

pytestmark = pytest.mark.integration
PASSWORD = "a long enough password"


@pytest.fixture
async def pool(migrated_pool: asyncpg.Pool) -> asyncpg.Pool:
    await migrate(migrated_pool, "teamnl_dashboard.migrations")
    return migrated_pool


def _app(pool: asyncpg.Pool) -> FastAPI:
    app = FastAPI()
    app.state.pool = pool
    install_auth(app, SimpleNamespace(session_secret="s" * 32, secure_cookies=False))
    app.include_router(login.router)

    @app.get("/api/v1/me")
    async def me(member: CurrentMember) -> dict[str, str]:
        return {"email": member.email, "role": member.role}

    @app.get("/page")
    async def page(member: CurrentMember) -> dict[str, str]:
        return {"email": member.email}

    @app.post("/api/v1/findings/1/resolve")
    async def resolve(
        member: Annotated[Member, Depends(require_role(Role.SECRETARIAT))],
    ) -> dict[str, str]:
        return {"resolved_by": member.email}

    return app


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(pool))
    async with httpx.AsyncClient(transport=transport, base_url="http://dash.test") as client:
        yield client


async def _sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return await client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token, "next": "/page"}
    )


async def test_without_a_session_the_api_answers_401_and_pages_redirect(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/v1/me")).status_code == 401
    page = await client.get("/page?x=1")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fpage%3Fx%3D1"


async def test_a_member_signs_in_with_a_secure_cookie_and_reads(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await create_member(pool, "Reader@Example.org", PASSWORD, "member")
    response = await _sign_in(client, "reader@example.org")
    assert response.status_code == 303
    assert response.headers["location"] == "/page"
    cookie = response.headers["set-cookie"]
    assert "teamnl_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert (await client.get("/api/v1/me")).json() == {
        "email": "reader@example.org",
        "role": "member",
    }
    stored = await pool.fetchval("SELECT key_hash FROM auth_sessions")
    assert client.cookies["teamnl_session"] not in stored  # only the HMAC is stored


async def test_a_wrong_password_or_unknown_member_is_refused(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await create_member(pool, "reader@example.org", PASSWORD, "member")
    assert (await _sign_in(client, "reader@example.org", "wrong password!!")).status_code == 400
    assert (await _sign_in(client, "nobody@example.org")).status_code == 400
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_login_without_the_csrf_token_is_refused(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await create_member(pool, "reader@example.org", PASSWORD, "member")
    response = await client.post(
        "/login", data={"email": "reader@example.org", "password": PASSWORD}
    )
    assert response.status_code == 403


async def test_state_changes_need_the_sessions_token_and_the_role(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await create_member(pool, "member@example.org", PASSWORD, "member")
    await create_member(pool, "secretariat@example.org", PASSWORD, "secretariat")
    await _sign_in(client, "member@example.org")
    assert (await client.get("/login")).status_code == 303  # signed in already

    session_token = await pool.fetchval("SELECT csrf_token FROM auth_sessions")
    url = "/api/v1/findings/1/resolve"
    assert (await client.post(url)).status_code == 403  # no token
    assert (await client.post(url, headers={"X-CSRF-Token": "wrong"})).status_code == 403
    assert (await client.post(url, headers={"X-CSRF-Token": session_token})).status_code == 403

    client.cookies.clear()
    await _sign_in(client, "secretariat@example.org")
    token = await pool.fetchval(
        "SELECT s.csrf_token FROM auth_sessions s JOIN auth_members m ON m.id = s.member_id"
        " WHERE m.email = 'secretariat@example.org'"
    )
    assert (await client.post(url)).status_code == 403
    ok = await client.post(url, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200
    assert ok.json() == {"resolved_by": "secretariat@example.org"}


async def test_sign_out_ends_the_session(pool: asyncpg.Pool, client: httpx.AsyncClient) -> None:
    await create_member(pool, "reader@example.org", PASSWORD, "member")
    await _sign_in(client, "reader@example.org")
    cookie = client.cookies["teamnl_session"]
    token = await pool.fetchval("SELECT csrf_token FROM auth_sessions")
    assert (await client.post("/logout")).status_code == 403  # CSRF applies to sign-out too
    response = await client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    client.cookies.set("teamnl_session", cookie)  # a stolen copy of the cookie is dead too
    assert (await client.get("/api/v1/me")).status_code == 401
    assert await pool.fetchval("SELECT count(*) FROM auth_sessions") == 0


async def test_disabling_a_member_ends_their_sessions(
    pool: asyncpg.Pool, client: httpx.AsyncClient
) -> None:
    await create_member(pool, "reader@example.org", PASSWORD, "member")
    await _sign_in(client, "reader@example.org")
    await set_disabled(pool, "reader@example.org")
    assert (await client.get("/api/v1/me")).status_code == 401
    assert await authenticate(pool, "reader@example.org", PASSWORD) is None


async def test_an_email_is_one_member(pool: asyncpg.Pool) -> None:
    await create_member(pool, "a@example.org", PASSWORD, "member")
    with pytest.raises(MemberError):
        await create_member(pool, "A@EXAMPLE.org", PASSWORD, "admin")


async def _members_cli(database_url: str, *args: str, stdin: bytes = b"") -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "teamnl_dashboard.members",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "DASHBOARD_DATABASE_URL": database_url},
    )
    out, _ = await process.communicate(stdin)
    return process.returncode, out.decode()


async def test_the_members_cli_creates_lists_re_roles_and_disables(
    pool: asyncpg.Pool, database_url: str
) -> None:
    code, out = await _members_cli(
        database_url,
        "create",
        "--email",
        "sec@example.org",
        "--role",
        "secretariat",
        "--password-stdin",
        stdin=PASSWORD.encode() + b"\n",
    )
    assert code == 0, out
    assert (await authenticate(pool, "sec@example.org", PASSWORD)).role is Role.SECRETARIAT
    code, out = await _members_cli(
        database_url, "set-role", "--email", "sec@example.org", "--role", "admin"
    )
    assert code == 0, out
    code, out = await _members_cli(database_url, "disable", "--email", "sec@example.org")
    assert code == 0, out
    code, out = await _members_cli(database_url, "list")
    assert out.split() == ["sec@example.org", "admin", "disabled"]
    assert [m.disabled for m in await list_members(pool)] == [True]
    code, out = await _members_cli(
        database_url, "create", "--email", "x@example.org", "--password-stdin", stdin=b"short\n"
    )
    assert code == 1 and "at least" in out
