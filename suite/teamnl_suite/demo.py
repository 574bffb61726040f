"""Setting up a running suite for a demo: readiness, the demo member, demo keys, the seed.

- The demo member (``demo@iso.nl``, role secretariat) is created through the dashboard's own
  ``create_member``; when it exists already its password is reset. The password is generated
  (``TEAMNL_DEMO_PASSWORD`` fixes it, in development and test only).
- Demo partner keys, one per initiative service, are issued through the ingestion kit for the
  partners ``demo-nlib``, ``demo-tinl``, ``demo-werkplaats``; the previous demo keys are revoked
  first. Each start therefore prints fresh credentials, and no older demo secret stays valid.
- The seed is sent through the public HTTP API of each service, as the seed partners of
  :mod:`.seed`, with a key issued for the occasion and revoked right after.

Credentials are returned to the caller, which prints them once; nothing here logs them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import asyncpg
import httpx

from teamnl_shared.contract.topics import INGESTION_SERVICES
from teamnl_shared.db import create_pool
from teamnl_suite.infra import with_database
from teamnl_suite.infra.postgres import create_databases

from . import seed
from .client import IngestionClient, SendReport
from .config import SuiteConfig, database_name

DEMO_EMAIL = "demo@iso.nl"
DEMO_ROLE = "secretariat"
DEMO_PARTNER_PREFIX = "demo-"
T = TypeVar("T")


class NotReady(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoKey:
    service: str
    partner: str
    key_id: str
    key: str


@dataclass
class DemoCredentials:
    email: str
    password: str
    keys: list[DemoKey] = field(default_factory=list)


# -- databases and readiness ----------------------------------------------------------------


async def ensure_databases(config: SuiteConfig) -> None:
    """Create each service's database on its server when missing (names may be per test)."""
    by_server: dict[str, list[str]] = {}
    for endpoint in config.endpoints.values():
        admin = with_database(endpoint.database_url, "postgres")
        by_server.setdefault(admin, []).append(database_name(endpoint.database_url))
    for admin, names in by_server.items():
        await create_databases(admin, names)


async def wait_until_ready(
    config: SuiteConfig,
    *,
    timeout: float,
    still_running: Callable[[], bool],
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Poll every service's readiness URL until all answer 200, within ``timeout`` seconds.

    Fails early when ``still_running()`` turns false (the supervisor stopped or gave up).
    """
    pending = dict(config.endpoints)
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(timeout=3.0) as http:
        while pending:
            if not still_running():
                raise NotReady("the suite stopped while starting; see the log lines above")
            if asyncio.get_running_loop().time() > deadline:
                raise NotReady(f"not ready after {timeout:.0f} s: {', '.join(sorted(pending))}")
            for name, endpoint in list(pending.items()):
                if await _answers(http, endpoint.ready_url):
                    del pending[name]
                    if on_ready is not None:
                        on_ready(name)
            if pending:
                await asyncio.sleep(0.25)  # poll interval, not a synchronisation


async def _answers(http: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await http.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


# -- credentials ----------------------------------------------------------------------------


def demo_password() -> str:
    fixed = os.environ.get("TEAMNL_DEMO_PASSWORD")
    if fixed:
        if os.environ.get("TEAMNL_ENVIRONMENT", "development") not in ("development", "test"):
            raise ValueError("TEAMNL_DEMO_PASSWORD is for development and test only")
        return fixed
    return secrets.token_urlsafe(15)


async def _with_pool(url: str, action: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    pool = await create_pool(url, max_size=2)
    try:
        return await action(pool)
    finally:
        await pool.close()


async def create_demo_member(config: SuiteConfig, password: str) -> None:
    """Create the demo member, or reset its password and role (the dashboard's own function)."""
    from teamnl_dashboard.auth import accounts

    await accounts.ensure_member(
        config.endpoint("dashboard").database_url, DEMO_EMAIL, password, DEMO_ROLE
    )


async def rotate_key(pool: asyncpg.Pool, *, service: str, partner: str) -> DemoKey:
    """Revoke the partner's active keys on ``service`` and issue a new one."""
    from teamnl_shared.ingestion import create_key, ensure_key_store, list_keys, revoke_key

    await ensure_key_store(pool)
    for stored in await list_keys(pool, service=service):
        if stored.partner == partner and stored.revoked_at is None:
            await revoke_key(pool, stored.key_id)
    issued = await create_key(pool, service=service, partner=partner)
    return DemoKey(service, partner, issued.key_id, issued.key)


async def issue_demo_keys(config: SuiteConfig) -> list[DemoKey]:
    return [
        await _with_pool(
            config.keys_database_url(service),
            partial(rotate_key, service=service, partner=DEMO_PARTNER_PREFIX + service),
        )
        for service in INGESTION_SERVICES
    ]


async def revoke(config: SuiteConfig, key: DemoKey) -> None:
    from teamnl_shared.ingestion import revoke_key

    await _with_pool(
        config.keys_database_url(key.service), lambda pool: revoke_key(pool, key.key_id)
    )


# -- the seed -------------------------------------------------------------------------------


async def seed_service(
    config: SuiteConfig, service: str, key: str, on_batch: Callable[[int], None] | None = None
) -> SendReport:
    documents = seed.seed_events()[service]
    async with IngestionClient(config.endpoint(service).url, key) as client:
        return await client.send(documents, batch_size=200, on_batch=on_batch)


async def run_seed(
    config: SuiteConfig,
    keys: dict[str, str] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, SendReport]:
    """Send the seed to each initiative service. Without ``keys``, issue temporary ones."""
    reports: dict[str, SendReport] = {}
    for service in INGESTION_SERVICES:
        if keys and service in keys:
            reports[service] = await seed_service(config, service, keys[service], on_batch)
            continue
        partner = seed.SEED_PARTNERS[service]
        temporary = await _with_pool(
            config.keys_database_url(service), partial(_issue, service=service, partner=partner)
        )
        try:
            reports[service] = await seed_service(config, service, temporary.key, on_batch)
        finally:
            await revoke(config, temporary)
    return reports


async def _issue(pool: asyncpg.Pool, *, service: str, partner: str) -> DemoKey:
    from teamnl_shared.ingestion import create_key, ensure_key_store

    await ensure_key_store(pool)
    issued = await create_key(pool, service=service, partner=partner)
    return DemoKey(service, partner, issued.key_id, issued.key)


def seed_size() -> int:
    return sum(len(events) for events in seed.seed_events().values())
