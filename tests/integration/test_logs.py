"""The NLIB service's logs, captured whole while it serves real requests (real PostgreSQL and
Kafka, real uvicorn).

What this proves:
- the access log line of a request carries that request's trace id: the one a caller sent
  in ``traceparent``, and otherwise the one of the server span the app started;
- an API key sent with a request never reaches any log output (the JSON log stream of every
  logger, and the process's stdout/stderr): not for a valid key, a wrong key, a malformed
  key, a key in the query string, in another header, in the URL path, or inside the body.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from inprocess import PARTNER, mission_held, serving, spans_named
from support import topic_prefix
from teamnl_nlib.app import create_app
from teamnl_nlib.settings import NlibSettings
from teamnl_shared.db import create_pool
from teamnl_shared.ingestion import create_key
from teamnl_shared.telemetry import configure_logging, setup_telemetry
from teamnl_suite.infra import Infrastructure

pytestmark = pytest.mark.integration

ACCESS_LOGGER = "teamnl.access"


@dataclass
class Nlib:
    url: str
    key: str
    spans: InMemorySpanExporter
    log: io.StringIO

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line]

    def access_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == ACCESS_LOGGER]


def secret_of(key: str) -> str:
    """The part after ``tnl_<key id>_`` (after ``tnl_`` for a key without an id)."""
    return key.split("_", 2)[-1]


@pytest.fixture
async def nlib(infra: Infrastructure, database_url: str) -> AsyncIterator[Nlib]:
    log = io.StringIO()
    root = logging.getLogger()
    level = root.level
    # DEBUG: every record any library makes during the requests is in the captured stream.
    handler = configure_logging("nlib", logging.DEBUG, stream=log)
    exporter = InMemorySpanExporter()
    telemetry = setup_telemetry("nlib", "test", "test", span_exporter=exporter)
    settings = NlibSettings(
        database_url=database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        topic_prefix=topic_prefix(),
        topic_partitions=1,
        environment="test",
    )
    try:
        async with serving(create_app(settings, telemetry=telemetry)) as url:
            pool = await create_pool(database_url, max_size=1)
            try:
                issued = await create_key(pool, service="nlib", partner=PARTNER)
            finally:
                await pool.close()
            yield Nlib(url, issued.key, exporter, log)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        telemetry.shutdown()


async def test_an_access_line_carries_its_requests_trace_id(nlib: Nlib) -> None:
    sent_trace_id = uuid.uuid4().hex
    traceparent = f"00-{sent_trace_id}-{uuid.uuid4().hex[:16]}-01"
    async with httpx.AsyncClient(base_url=nlib.url) as client:
        continued = await client.post(
            "/v1/events",
            content=json.dumps(mission_held("m-logs")),
            headers={
                "content-type": "application/cloudevents+json",
                "authorization": f"Bearer {nlib.key}",
                "traceparent": traceparent,
            },
        )
        fresh = await client.get(
            "/v1/missions/m-logs", headers={"authorization": f"Bearer {nlib.key}"}
        )
    assert continued.status_code == 202, continued.text
    assert fresh.status_code == 200, fresh.text

    post_line, get_line = nlib.access_lines()
    assert (post_line["method"], post_line["path"], post_line["status"]) == (
        "POST",
        "/v1/events",
        202,
    )
    assert post_line["trace_id"] == sent_trace_id
    assert post_line["partner"] == PARTNER

    (server_span,) = spans_named(
        nlib.spans.get_finished_spans(), "GET /v1/missions/{mission_id}", SpanKind.SERVER
    )
    server_trace_id = f"{server_span.context.trace_id:032x}"
    assert server_trace_id != sent_trace_id
    assert (get_line["path"], get_line["trace_id"]) == ("/v1/missions/m-logs", server_trace_id)
    assert get_line["span_id"]  # the line was written inside a span of that trace


async def test_an_api_key_never_reaches_the_logs(
    nlib: Nlib, capfd: pytest.CaptureFixture[str]
) -> None:
    key = nlib.key
    wrong_key = key[:-6] + ("AAAAAA" if not key.endswith("AAAAAA") else "BBBBBB")
    unknown_key = f"tnl_zzzzzzzz_{uuid.uuid4().hex}{uuid.uuid4().hex}"
    malformed_key = f"tnl_{uuid.uuid4().hex}"
    bearer = {"authorization": f"Bearer {key}"}
    ce_json = {"content-type": "application/cloudevents+json"}

    async with httpx.AsyncClient(base_url=nlib.url) as client:
        answers = {
            "valid key": await client.post(
                "/v1/events",
                content=json.dumps(mission_held("m-logs")),
                headers={**ce_json, **bearer},
            ),
            "valid key, event refused": await client.post(
                "/v1/events",
                content=json.dumps(mission_held("m-logs", note=key)),
                headers={**ce_json, **bearer},
            ),
            "valid key, malformed body": await client.post(
                "/v1/events", content=f'{{"id": "{key}"', headers={**ce_json, **bearer}
            ),
            "wrong secret": await client.post(
                "/v1/events",
                content=json.dumps(mission_held("m-logs")),
                headers={**ce_json, "authorization": f"Bearer {wrong_key}"},
            ),
            "unknown key": await client.get(
                "/v1/missions", headers={"authorization": f"Bearer {unknown_key}"}
            ),
            "malformed key": await client.get(
                "/v1/missions", headers={"authorization": f"Bearer {malformed_key}"}
            ),
            "key in the query string": await client.post(
                f"/v1/events?api_key={key}&token={key}",
                content=json.dumps(mission_held("m-logs")),
                headers=ce_json,
            ),
            "key in another header": await client.get(
                "/v1/missions", headers={"x-api-key": key, "cookie": f"session={key}"}
            ),
            "key in the path": await client.get(f"/v1/missions/{key}", headers=bearer),
            "key as a basic password": await client.get("/v1/missions", auth=(PARTNER, key)),
        }

    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "valid key": 202,
        "valid key, event refused": 422,
        "valid key, malformed body": 400,
        "wrong secret": 401,
        "unknown key": 401,
        "malformed key": 401,
        "key in the query string": 401,
        "key in another header": 401,
        "key in the path": 404,
        "key as a basic password": 401,
    }
    # Not vacuous: every request was logged, each in the captured stream.
    assert len(nlib.access_lines()) == len(answers)
    assert "/v1/missions/[REDACTED]" in [line["path"] for line in nlib.access_lines()]
    captured = capfd.readouterr()
    outputs = {
        "JSON log stream": nlib.log.getvalue(),
        "stdout": captured.out,
        "stderr": captured.err,
    }
    for secret in (key, wrong_key, unknown_key, malformed_key):
        for name, text in outputs.items():
            assert secret not in text, f"a key reached the {name}"
            assert secret_of(secret) not in text, f"a key's secret reached the {name}"
