"""CSRF checks: token comparison, signed anonymous tokens, cross-site detection, and the
middleware refusing state-changing requests without a valid token (no session needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import FastAPI, Form
from fastapi.testclient import TestClient

from teamnl_dashboard.auth.config import ANONYMOUS_CSRF_COOKIE, AuthConfig
from teamnl_dashboard.auth.csrf import AnonymousTokens, CsrfMiddleware, cross_site, tokens_match

SECRET = "a-test-secret-of-thirty-two-chars!"


def test_tokens_match_only_when_equal_and_present() -> None:
    assert tokens_match("abc", "abc")
    assert not tokens_match("abc", "abd")
    assert not tokens_match("", "")
    assert not tokens_match(None, "abc")
    assert not tokens_match("abc", None)


def test_anonymous_tokens_are_signed_with_the_secret() -> None:
    tokens = AnonymousTokens(SECRET)
    token = tokens.issue()
    assert tokens.check(token, token)
    assert not tokens.check(token, tokens.issue())  # form and cookie differ
    assert not AnonymousTokens("another-secret-of-thirty-two-ch").check(token, token)
    forged = "forged.token"
    assert not tokens.check(forged, forged)


def test_anonymous_tokens_expire() -> None:
    tokens = AnonymousTokens(SECRET)
    token = tokens.issue()
    assert not tokens.valid(token, max_age=-1)


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"host": "dash.example"}, False),
        ({"host": "dash.example", "origin": "https://dash.example"}, False),
        ({"host": "127.0.0.1:8100", "origin": "http://127.0.0.1:8100"}, False),
        ({"host": "dash.example", "origin": "https://evil.example"}, True),
        ({"host": "dash.example", "origin": "null"}, True),
        ({"host": "dash.example", "sec-fetch-site": "cross-site"}, True),
        ({"host": "dash.example", "sec-fetch-site": "same-origin"}, False),
    ],
)
def test_cross_site_requests_are_recognised(headers: dict[str, str], refused: bool) -> None:
    assert cross_site(headers) is refused


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    app.state.teamnl_auth = AuthConfig.from_settings(
        SimpleNamespace(session_secret=SECRET, secure_cookies=False)
    )
    app.add_middleware(CsrfMiddleware)

    @app.post("/form")
    async def form(name: str = Form()) -> dict[str, str]:  # noqa: B008
        return {"name": name}

    @app.post("/api/v1/thing")
    async def api() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/read")
    async def read() -> dict[str, bool]:
        return {"ok": True}

    return TestClient(app, base_url="http://dash.test")


def test_reads_need_no_token(client: TestClient) -> None:
    assert client.get("/read").status_code == 200


def test_a_form_post_without_a_token_is_refused(client: TestClient) -> None:
    response = client.post("/form", data={"name": "x"})
    assert response.status_code == 403
    assert "CSRF" in response.text


def test_a_form_post_with_the_cookie_token_passes_and_keeps_its_body(client: TestClient) -> None:
    token = AnonymousTokens(SECRET).issue()
    client.cookies.set(ANONYMOUS_CSRF_COOKIE, token)
    response = client.post("/form", data={"name": "kept", "csrf_token": token})
    assert response.status_code == 200
    assert response.json() == {"name": "kept"}


def test_a_token_not_matching_the_cookie_is_refused(client: TestClient) -> None:
    client.cookies.set(ANONYMOUS_CSRF_COOKIE, AnonymousTokens(SECRET).issue())
    other = AnonymousTokens(SECRET).issue()
    assert client.post("/form", data={"name": "x", "csrf_token": other}).status_code == 403


def test_json_posts_need_the_header_token(client: TestClient) -> None:
    token = AnonymousTokens(SECRET).issue()
    client.cookies.set(ANONYMOUS_CSRF_COOKIE, token)
    refused = client.post("/api/v1/thing", json={})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json() == {
        "type": "urn:teamnl:problem:forbidden",
        "title": "Not allowed",
        "status": 403,
        "detail": "CSRF token missing or invalid",
        "errors": [{"field": "header/x-csrf-token", "reason": "CSRF token missing or invalid"}],
        "instance": "/api/v1/thing",
    }
    assert client.post("/api/v1/thing", json={}, headers={"X-CSRF-Token": token}).status_code == 200


def test_a_cross_site_post_is_refused_even_with_a_valid_token(client: TestClient) -> None:
    token = AnonymousTokens(SECRET).issue()
    client.cookies.set(ANONYMOUS_CSRF_COOKIE, token)
    response = client.post(
        "/form", data={"name": "x", "csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
