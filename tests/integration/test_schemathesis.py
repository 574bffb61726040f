"""Schemathesis against each service's own OpenAPI document: no 5xx, and every response
conforms to the document (status code, content type, headers, body schema).

The app runs under a real uvicorn server on the test's event loop; Schemathesis (synchronous)
runs in a worker thread. A bounded number of examples per operation keeps `make test` fast;
the documented examples (EventSpec.example) are sent too, with a key of their partner, so
the accepting paths (202 and replays) are exercised as well as the refusals.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

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
from teamnl_shared.ingestion import create_key
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
        accepted = await app.state.runtime.pool.fetchval("SELECT count(*) FROM ingestion_receipts")
    finally:
        server.should_exit = True
        await serving
    assert not failures, "\n\n".join(failures)
    assert accepted > 0, "the documented examples should have been accepted"
