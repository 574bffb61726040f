"""The authentication and authorisation matrix of the ingestion API, and key storage."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from ingestion_helpers import (
    auth,
    example,
    running,
    structured,
    written,
)

from teamnl_shared.ingestion import list_keys, revoke_key
from teamnl_shared.ingestion.keycache import KeyCache
from teamnl_suite.infra import Infrastructure, with_database
from teamnl_suite.infra.postgres import create_databases, drop_databases

pytestmark = pytest.mark.integration
HELD = "nl.teamnl.nlib.mission.held.v1"
BUDGET = "nl.teamnl.nlib.budget.spent.v1"
UNKNOWN_KEY = "tnl_abcd1234_" + "x" * 43


def held() -> dict[str, Any]:
    return structured(HELD, example(HELD))


def assert_problem(response: Any, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]], response.json()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": f"Bearer {UNKNOWN_KEY}"},
        {"authorization": "Bearer not-a-key"},
        {"authorization": f"Basic {UNKNOWN_KEY}"},
    ],
    ids=["no key", "unknown key", "malformed key", "wrong scheme"],
)
async def test_missing_or_wrong_key_is_401(
    headers: dict[str, str], database_url: str, kafka_bootstrap: str
) -> None:
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        response = await svc.client.post(
            "/v1/events",
            json=held(),
            headers={**headers, "content-type": "application/cloudevents+json"},
        )
        assert_problem(response, 401, "header/authorization")
        assert response.headers["www-authenticate"].startswith("Bearer")
        listing = await svc.client.get("/v1/missions", headers=headers)
        assert listing.status_code == 401
        assert await written(svc) == 0


async def test_a_wrong_secret_for_a_known_key_id_is_401(
    database_url: str, kafka_bootstrap: str
) -> None:
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        forged = key[: len("tnl_12345678_")] + "y" * 43
        assert_problem(await svc.post(held(), forged), 401, "header/authorization")


async def test_a_revoked_key_is_401(database_url: str, kafka_bootstrap: str) -> None:
    async with running("nlib", database_url, kafka_bootstrap, key_cache_seconds=0) as svc:
        key = await svc.key()
        assert (await svc.post(held(), key)).status_code == 202
        assert await revoke_key(svc.runtime.keys_pool, key.split("_")[1])
        assert_problem(await svc.post(held(), key), 401, "header/authorization")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_revoked_key_is_401_within_the_key_cache_time(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves the documented bound: a verified key is trusted for key_cache_seconds, so a
    revocation takes effect at most that long after the key was last looked up; a wrong
    secret for a cached key id is refused at once."""
    async with running("nlib", database_url, kafka_bootstrap, key_cache_seconds=5) as svc:
        clock = FakeClock()
        svc.runtime.keys = KeyCache(svc.settings.key_cache_seconds, clock=clock)
        key = await svc.key()
        assert (await svc.post(held(), key)).status_code == 202
        forged = key[: len("tnl_12345678_")] + "y" * 43
        assert_problem(await svc.post(held(), forged), 401, "header/authorization")
        assert await revoke_key(svc.runtime.keys_pool, key.split("_")[1])
        clock.now += 4.9
        assert (await svc.post(held(), key)).status_code == 202  # still inside the bound
        clock.now += 0.1
        assert_problem(await svc.post(held(), key), 401, "header/authorization")


async def test_the_key_of_another_service_is_403(
    infra: Infrastructure, database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: with one key store shared by the services, a TINL key is known to NLIB and
    refused with 403 (not 401)."""
    admin = infra.admin_database_url()
    keys_db = f"keys_{database_url.rsplit('/', 1)[-1]}"
    await create_databases(admin, [keys_db])
    try:
        async with running(
            "nlib", database_url, kafka_bootstrap, keys_database_url=with_database(admin, keys_db)
        ) as svc:
            tinl_key = await svc.key(service="tinl")
            assert_problem(await svc.post(held(), tinl_key), 403, "header/authorization")
            assert (await svc.post(held(), await svc.key())).status_code == 202
    finally:
        await drop_databases(admin, [keys_db])


async def test_a_type_outside_the_key_scope_is_403(database_url: str, kafka_bootstrap: str) -> None:
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key(types=[BUDGET])
        assert_problem(await svc.post(held(), key), 403, "type")
        assert (await svc.post(structured(BUDGET, example(BUDGET)), key)).status_code == 202
        batch = (await svc.post_batch([held()], key)).json()
        assert batch["results"][0]["status"] == 403
        assert await svc.count("missions") == 0


async def test_a_spoofed_source_is_403(database_url: str, kafka_bootstrap: str) -> None:
    """Proves: a partner cannot write as another: source is bound to the key's partner."""
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key(partner="acme-partner")
        spoofed = structured(HELD, example(HELD), source="/partners/rvo-crm")
        assert_problem(await svc.post(spoofed, key), 403, "source")
        assert await written(svc) == 0


async def test_the_rate_limit_answers_429_with_retry_after(
    database_url: str, kafka_bootstrap: str
) -> None:
    async with running(
        "nlib", database_url, kafka_bootstrap, rate_limit_burst=3, rate_limit_per_second=0.01
    ) as svc:
        key, other = await svc.key(), await svc.key(partner="other-partner")
        statuses = [
            (await svc.client.get("/v1/missions", headers=auth(key))).status_code for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        limited = await svc.post(held(), key)
        assert_problem(limited, 429, "header/authorization")
        assert int(limited.headers["retry-after"]) >= 1
        from_other = structured(HELD, example(HELD), source="/partners/other-partner")
        assert (await svc.post(from_other, other)).status_code == 202  # the limit is per key


async def test_keys_are_stored_hashed_and_never_logged(
    database_url: str, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        secret = key.split("_", 2)[2]
        await svc.post(held(), key)
        await svc.client.get("/v1/missions", headers=auth(key))
        stored = await svc.pool.fetch("SELECT * FROM api_keys")
        assert secret not in repr([dict(row) for row in stored])
        assert key.split("_")[1] in [k.key_id for k in await list_keys(svc.pool)]
    assert secret not in caplog.text
