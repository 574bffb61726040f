"""Schemathesis against each service's own OpenAPI document: no 5xx, and every response
conforms to the document (status code, content type, headers, body schema).

The app runs under a real uvicorn server on the test's event loop; Schemathesis (synchronous)
runs in a worker thread. A bounded number of examples per operation keeps `make test` fast;
the documented examples (EventSpec.example) are sent too, with a key of their partner, so
the accepting paths (202 and replays) are exercised as well as the refusals.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase
from ingestion_helpers import FACTORIES, service_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from support import eventually
from teamnl_shared.contract.envelope import CLOUDEVENTS_BATCH_JSON, CLOUDEVENTS_JSON
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.ingestion import create_key
from teamnl_shared.ingestion.keys import service_event_types
from teamnl_shared.ingestion.openapi import EXAMPLE_SOURCE

pytestmark = pytest.mark.integration
MAX_EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fuzz(base_url: str, headers: dict[str, str], **only: Any) -> list[str]:
    """Run every operation (or those `only` selects, see schemathesis' ``include``); return
    the failures (operation and error) found."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    if only:
        schema = schema.include(**only)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        strategies = [operation.as_strategy(), *schema.get_strategies_from_examples(operation)]
        for strategy in strategies:

            @hypothesis.given(case=strategy)
            @hypothesis.settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            def check(case: Any) -> None:
                case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

            try:
                check()
            except Exception as error:  # noqa: BLE001 - collect, report all operations
                failures.append(f"{operation.label}: {error}")
    return failures


def _out_of_bounds(value: Any) -> Any:
    """A value of the same JSON type, far beyond any bound of the contract."""
    if isinstance(value, int):
        return 2**64
    if isinstance(value, str):
        return "\u00e9" * 80_000
    if isinstance(value, list):
        return [f"item {i}" for i in range(10_000)]
    return value


def bad_events(service: str) -> list[dict[str, Any]]:
    """Each field of each event type of the service out of bounds, one at a time, then the
    attributes (80 kB id, source, subject; an oversized and a surplus of extensions)."""
    events = []
    for event_type in service_event_types(service):
        example = spec_for(event_type).example
        base = {"specversion": "1.0", "source": EXAMPLE_SOURCE, "type": event_type}
        for name, value in example.items():
            if isinstance(value, bool):
                continue  # a boolean has no out-of-bounds value of its own type
            data = {**example, name: _out_of_bounds(value)}
            events.append({**base, "id": uuid.uuid4().hex, "data": data})
        events += [
            {**base, "id": "i" * 80_000, "data": example},
            {**base, "id": uuid.uuid4().hex, "source": "/" * 80_000, "data": example},
            {**base, "id": uuid.uuid4().hex, "subject": "s" * 80_000, "data": example},
            {**base, "id": uuid.uuid4().hex, "big": "x" * 1_100_000, "data": example},
            {**base, "id": uuid.uuid4().hex, **{f"e{i}": "v" for i in range(40)}, "data": example},
        ]
    return events


def send_bad_events(base_url: str, key: str, service: str) -> list[str]:
    """Over real HTTP, one by one and as one batch: every answer must be a 4xx."""
    auth = {"authorization": f"Bearer {key}"}
    failures: list[str] = []
    events = bad_events(service)
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for event in events:
            response = client.post(
                "/v1/events",
                content=json.dumps(event, ensure_ascii=False).encode(),
                headers={**auth, "content-type": CLOUDEVENTS_JSON},
            )
            if not 400 <= response.status_code < 500:
                failures.append(f"{response.status_code} {response.text[:300]}")
        response = client.post(
            "/v1/events:batch",
            content=json.dumps(events, ensure_ascii=False).encode(),
            headers={**auth, "content-type": CLOUDEVENTS_BATCH_JSON},
        )
        assert response.status_code == 200, response.text[:500]
        statuses = [item["status"] for item in response.json()["results"]]
        failures += [f"batch item {i}: {s}" for i, s in enumerate(statuses) if not 400 <= s < 500]
    return failures


@pytest.mark.parametrize("service", sorted(FACTORIES))
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    service: str, database_url: str, kafka_bootstrap: str
) -> None:
    settings = service_settings(
        service,
        database_url,
        kafka_bootstrap,
        rate_limit_burst=100_000,
        rate_limit_per_second=10_000,
        max_batch_bytes=64 * 1024 * 1024,  # the batch of bad events holds ~20 MB
    )
    app = FACTORIES[service][1](settings)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    serving = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return server.started

        await eventually(started)
        partner = EXAMPLE_SOURCE.rsplit("/", 1)[-1]
        key = (await create_key(app.state.runtime.keys_pool, service=service, partner=partner)).key
        headers = {"authorization": f"Bearer {key}"}
        failures = await asyncio.to_thread(fuzz, f"http://127.0.0.1:{port}", headers)
        failures += await asyncio.to_thread(
            send_bad_events, f"http://127.0.0.1:{port}", key, service
        )
        accepted = await app.state.runtime.pool.fetchval("SELECT count(*) FROM ingestion_receipts")
    finally:
        server.should_exit = True
        await serving
    assert not failures, "\n\n".join(failures)
    assert accepted > 0, "the documented examples should have been accepted"
