"""Only a scraper sending the deployment's token reads a process's metrics: on an app's
``/metrics`` and on the metrics server of a process without one (a worker, a relay). No
token configured: no metrics for anyone; a wrong or missing one: 401 with a challenge."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from support import METRICS_TOKEN, SCRAPE, free_port
from teamnl_nlib.settings import NlibSettings
from teamnl_shared.telemetry import Telemetry, setup_telemetry
from teamnl_shared.telemetry.scrape import refusal

WRONG = {"Authorization": "Bearer " + "w" * 40}


@pytest.fixture
def telemetry() -> Telemetry:
    telemetry = setup_telemetry("nlib", "test", "test")
    telemetry.metrics.event_accepted(service="nlib", event_type="x", partner="rvo")
    return telemetry


def test_only_the_token_in_a_bearer_header_passes() -> None:
    assert refusal(f"Bearer {METRICS_TOKEN}", METRICS_TOKEN) is None
    assert refusal(f"bearer  {METRICS_TOKEN} ", METRICS_TOKEN) is None  # scheme: any case
    missing = refusal(None, METRICS_TOKEN)
    assert missing is not None and missing.status == 401
    assert missing.headers == {"WWW-Authenticate": 'Bearer realm="metrics"'}
    for header in (f"Basic {METRICS_TOKEN}", METRICS_TOKEN, "Bearer " + METRICS_TOKEN[:-1]):
        refused = refusal(header, METRICS_TOKEN)
        assert refused is not None and refused.status == 401, header
    off = refusal(f"Bearer {METRICS_TOKEN}", None)
    assert off is not None and off.status == 403
    assert "TEAMNL_METRICS_TOKEN" in off.detail


@pytest.mark.parametrize("where", ["app", "server of its own", "server of its own on ::1"])
async def test_only_a_scraper_sending_the_token_reads_the_metrics(
    telemetry: Telemetry, where: str
) -> None:
    answers = await _answers(telemetry, METRICS_TOKEN, where)

    assert answers["token"].status_code == 200
    assert 'partner="rvo"' in answers["token"].text
    for sent in ("none", "another"):
        _refused(answers[sent], 401, "unauthorized")
        assert answers[sent].headers["www-authenticate"] == 'Bearer realm="metrics"'


@pytest.mark.parametrize("where", ["app", "server of its own"])
async def test_without_a_token_a_process_serves_no_metrics(
    telemetry: Telemetry, where: str
) -> None:
    answers = await _answers(telemetry, None, where)

    for response in answers.values():
        _refused(response, 403, "forbidden")


async def _answers(
    telemetry: Telemetry, token: str | None, where: str
) -> dict[str, httpx.Response]:
    """What `/metrics` answers a scrape sending the token, none, and another, on an app
    (``metrics_endpoint``) or on a metrics server of its own (``serve_metrics``)."""
    if where == "app":
        app = FastAPI()
        app.add_route("/metrics", telemetry.metrics_endpoint(token))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    else:
        port = free_port()
        host = "::1" if where.endswith("::1") else "127.0.0.1"
        telemetry.serve_metrics(host, port, token)
        client = httpx.AsyncClient(base_url=f"http://{'[::1]' if ':' in host else host}:{port}")
    async with client:
        first = await _when_listening(client, SCRAPE)
        return {
            "token": first,
            "none": await client.get("/metrics"),
            "another": await client.get("/metrics", headers=WRONG),
        }


def _refused(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = json.loads(response.content)
    assert problem["type"] == f"urn:teamnl:problem:{kind}"
    assert problem["status"] == status
    assert problem["errors"][0]["field"] == "header/authorization"
    assert "rvo" not in response.text


def test_a_token_is_32_to_256_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NLIB_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("TEAMNL_METRICS_TOKEN", METRICS_TOKEN)
    assert NlibSettings().scrape_token == METRICS_TOKEN
    monkeypatch.delenv("TEAMNL_METRICS_TOKEN")
    assert NlibSettings().scrape_token is None
    for token in ("s" * 31, "l" * 257):
        monkeypatch.setenv("TEAMNL_METRICS_TOKEN", token)
        with pytest.raises(ValidationError, match="TEAMNL_METRICS_TOKEN must be 32 to 256"):
            NlibSettings()


async def _when_listening(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    """The first answer to a scrape, from a server thread just started (it may not listen
    yet)."""
    for _ in range(100):
        try:
            return await client.get("/metrics", headers=headers)
        except httpx.ConnectError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens at {client.base_url}")
