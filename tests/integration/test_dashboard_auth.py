"""Members, sessions and CSRF of the dashboard on a real, migrated PostgreSQL: sign-in,
401 for the API and a redirect for pages without a session, roles, CSRF on every POST,
sign-out, disabled members, and the members CLI (``python -m teamnl_dashboard.members``)."""

from __future__ import annotations

import asyncio
import logging
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
from teamnl_dashboard.auth.throttle import LoginThrottle
from teamnl_dashboard.web import login
from teamnl_shared.db import migrate
from teamnl_shared.telemetry import RequestLogMiddleware

pytestmark = pytest.mark.integration
PASSWORD = "a long enough password"


@pytest.fixture
async def pool(migrated_pool: asyncpg.Pool) -> asyncpg.Pool:
    await migrate(migrated_pool, "teamnl_dashboard.migrations")
    return migrated_pool


def _app(pool: asyncpg.Pool, **settings: object) -> FastAPI:
    app = FastAPI()
    app.state.pool = pool
    install_auth(app, SimpleNamespace(session_secret="s" * 32, secure_cookies=False, **settings))
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


# -- sign-in throttling, hashing off the event loop, bounded forms ---------------------------


def _client_of(app: FastAPI, address: str = "10.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://dash.test")


def _throttled_app(pool: asyncpg.Pool, **policy: float) -> FastAPI:
    return _app(pool, login=LoginThrottle(**policy))


async def _blocked_for(pool: asyncpg.Pool) -> list[float]:
    rows = await pool.fetch(
        "SELECT extract(epoch FROM blocked_until - now()) AS left FROM auth_login_failures"
        " WHERE scope = 'account' AND blocked_until > now()"
    )
    return [float(row["left"]) for row in rows]


async def test_failed_sign_ins_throttle_the_account_on_every_instance(
    pool: asyncpg.Pool,
) -> None:
    """Three failures on one instance: another instance (sharing only PostgreSQL) answers
    429 with Retry-After, even to the right password and from another address."""
    await create_member(pool, "reader@example.org", PASSWORD, "member")
    policy = {"max_failures_per_account": 3, "lockout_seconds": 60}
    async with _client_of(_throttled_app(pool, **policy), "10.0.0.1") as first:
        for _ in range(3):
            assert (
                await _sign_in(first, "reader@example.org", "wrong password!!")
            ).status_code == 400
    async with _client_of(_throttled_app(pool, **policy), "10.0.0.2") as second:
        refused = await _sign_in(second, "reader@example.org")
        assert refused.status_code == 429
        assert 55 <= int(refused.headers["retry-after"]) <= 60
        assert "Too many failed sign-ins" in refused.text
        assert (await second.get("/api/v1/me")).status_code == 401
        other = await create_member(pool, "other@example.org", PASSWORD, "member")
        assert (await _sign_in(second, other.email)).status_code == 303  # only that account


async def test_an_unknown_account_is_throttled_like_a_known_one(pool: asyncpg.Pool) -> None:
    async with _client_of(_throttled_app(pool, max_failures_per_account=2)) as client:
        statuses = [(await _sign_in(client, "nobody@example.org")).status_code for _ in range(3)]
    assert statuses == [400, 400, 429]


async def test_failed_sign_ins_throttle_the_client_address(pool: asyncpg.Pool) -> None:
    """Many accounts tried from one address: the address is throttled, others are not."""
    await create_member(pool, "reader@example.org", PASSWORD, "member")
    app = _throttled_app(pool, max_failures_per_account=100, max_failures_per_address=4)
    async with _client_of(app, "10.0.0.9") as attacker, _client_of(app, "10.0.0.10") as member:
        statuses = [
            (await _sign_in(attacker, f"guess{i}@example.org")).status_code for i in range(5)
        ]
        assert statuses == [400, 400, 400, 400, 429]
        assert (await _sign_in(attacker, "reader@example.org")).status_code == 429
        assert (await _sign_in(member, "reader@example.org")).status_code == 303


async def test_ipv6_clients_are_counted_per_64_network(pool: asyncpg.Pool) -> None:
    app = _throttled_app(pool, max_failures_per_account=100, max_failures_per_address=2)
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::ffff"):
        async with _client_of(app, host) as client:
            assert (await _sign_in(client, f"x@{host[-4:]}.example.org")).status_code == 400
    async with _client_of(app, "2001:db8:1:2::77") as client:
        assert (await _sign_in(client, "y@example.org")).status_code == 429
    async with _client_of(app, "2001:db8:1:3::1") as client:
        assert (await _sign_in(client, "y@example.org")).status_code == 400


async def test_a_successful_sign_in_forgets_the_accounts_failures(pool: asyncpg.Pool) -> None:
    await create_member(pool, "reader@example.org", PASSWORD, "member")
    async with _client_of(_throttled_app(pool, max_failures_per_account=3)) as client:
        for _ in range(2):
            await _sign_in(client, "reader@example.org", "wrong password!!")
        assert (await _sign_in(client, "reader@example.org")).status_code == 303
        client.cookies.clear()
        statuses = [
            (await _sign_in(client, "reader@example.org", "wrong password!!")).status_code
            for _ in range(2)
        ]
    assert statuses == [400, 400]  # the count started again


async def test_the_lockout_doubles_up_to_a_cap_and_then_lets_the_member_in(
    pool: asyncpg.Pool,
) -> None:
    """An attacker who keeps failing holds the account for at most the capped lockout at a
    time; once it has passed, the real member signs in. (Expiry is simulated in the table.)"""
    await create_member(pool, "reader@example.org", PASSWORD, "member")
    policy = {"max_failures_per_account": 2, "lockout_seconds": 100, "max_lockout_seconds": 250}
    lockouts = []
    async with _client_of(_throttled_app(pool, **policy)) as attacker:
        await _sign_in(attacker, "reader@example.org", "wrong password!!")
        for _ in range(4):
            await _sign_in(attacker, "reader@example.org", "wrong password!!")
            [left] = await _blocked_for(pool)
            lockouts.append(round(left / 10) * 10)
            refused = await _sign_in(attacker, "reader@example.org", "wrong password!!")
            assert refused.status_code == 429  # not counted: the lockout does not grow
            await pool.execute("UPDATE auth_login_failures SET blocked_until = now()")
    assert lockouts == [100, 200, 250, 250]
    async with _client_of(_throttled_app(pool, **policy), "10.0.0.3") as member:
        assert (await _sign_in(member, "reader@example.org")).status_code == 303


async def test_failures_further_apart_than_the_window_are_forgotten(pool: asyncpg.Pool) -> None:
    policy = {"max_failures_per_account": 2, "window_seconds": 600}
    async with _client_of(_throttled_app(pool, **policy)) as client:
        await _sign_in(client, "reader@example.org", "wrong password!!")
        await pool.execute(
            "UPDATE auth_login_failures SET last_failure_at = now() - interval '11 minutes'"
        )
        await _sign_in(client, "reader@example.org", "wrong password!!")
        assert await _blocked_for(pool) == []
        assert (
            await pool.fetchval("SELECT failures FROM auth_login_failures WHERE scope = 'account'")
            == 1
        )


async def test_passwords_never_reach_the_logs(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    app = _throttled_app(pool, max_failures_per_account=1)
    app.add_middleware(RequestLogMiddleware)
    caplog.set_level(logging.DEBUG)
    async with _client_of(app) as client:
        for _ in range(2):
            await _sign_in(client, "reader@example.org", "secret-typed-in-password")
    assert caplog.records, "the access log should have written something"
    assert "secret-typed-in-password" not in caplog.text


async def test_concurrent_sign_ins_do_not_stall_the_event_loop(pool: asyncpg.Pool) -> None:
    """Ten sign-ins (argon2, ~0.2 s of CPU each on an idle machine) run while another request
    is answered over and over. With hashing on the event loop nothing else runs while a hash
    does: measured, ~4 answers per sign-in; off the loop ~45 (the burst lasts about as long
    either way, ten hashes one after another). Asserted: at least 10 per sign-in."""
    await create_member(pool, "reader@example.org", PASSWORD, "member")
    app = _throttled_app(pool, max_failures_per_account=100, max_failures_per_address=100)

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    async with _client_of(app) as client:
        token = await _login_form_token(client)

        async def sign_in(i: int) -> int:
            form = {"email": "reader@example.org", "password": f"wrong {i}", "csrf_token": token}
            return (await client.post("/login", data=form)).status_code

        burst = asyncio.gather(*(sign_in(i) for i in range(10)))
        answered = 0
        while not burst.done():
            assert (await client.get("/ping")).status_code == 200
            answered += 1
            await asyncio.sleep(0.001)  # an in-process request may never yield on its own
        assert await burst == [400] * 10
    assert answered >= 10 * 10, f"only {answered} pings answered while 10 sign-ins ran"


async def _login_form_token(client: httpx.AsyncClient) -> str:
    page = await client.get("/login")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(lambda token: "&".join(f"f{i}=x" for i in range(500)), 400, id="500-fields"),
        pytest.param(
            lambda token: f"csrf_token={token}&email=a@b.org&password=" + "x" * 200_000,
            413,
            id="huge-field",
        ),
        pytest.param(lambda token: f"csrf_token={token}&%zz%=&&==%%&email", 422, id="malformed"),
    ],
)
async def test_an_oversized_or_malformed_form_answers_4xx(
    pool: asyncpg.Pool, body: object, status: int
) -> None:
    async with _client_of(_app(pool)) as client:
        token = await _login_form_token(client)
        response = await client.post(
            "/login",
            content=body(token),  # type: ignore[operator]
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == status, response.text


async def test_a_streamed_body_past_the_limit_answers_413(pool: asyncpg.Pool) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 4096

    async with _client_of(_app(pool, form_max_bytes=64 * 1024)) as client:
        token = await _login_form_token(client)
        response = await client.post(
            "/login",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded", "x-csrf-token": token},
        )
    assert response.status_code == 413


async def test_a_multipart_form_with_many_fields_answers_4xx(pool: asyncpg.Pool) -> None:
    async with _client_of(_app(pool)) as client:
        token = await _login_form_token(client)
        files = {f"f{i}": (None, "x") for i in range(1500)}
        response = await client.post("/login", files=files, headers={"x-csrf-token": token})
    assert 400 <= response.status_code < 500


async def test_a_new_password_ends_every_session_of_the_member(
    pool: asyncpg.Pool, client: httpx.AsyncClient, database_url: str
) -> None:
    await create_member(pool, "reader@example.org", PASSWORD, "member")
    await _sign_in(client, "reader@example.org")
    assert (await client.get("/api/v1/me")).status_code == 200
    code, out = await _members_cli(
        database_url,
        "set-password",
        "--email",
        "reader@example.org",
        "--password-stdin",
        stdin=b"another long password\n",
    )
    assert code == 0, out
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await client.get("/page")).status_code == 303  # pages send it to /login
    assert await authenticate(pool, "reader@example.org", "another long password") is not None
