"""Fixtures every test layer shares: real Kafka and real PostgreSQL.

Three ways to get them, all through the same fixtures:
- default: the project's own local Kafka and PostgreSQL (``teamnl-infra up``);
- ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` set: that running infrastructure;
- ``TEAMNL_INFRA=testcontainers``: containers, where a Docker engine exists (skipped, with
  the reason, where none does).

Each test gets databases and topics of its own (unique names), so tests never see each
other's data and can run against a shared cluster.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest

from support import METRICS_TOKEN, SESSION_TOPICS, topic_prefix
from teamnl_shared.db import create_pool, migrate
from teamnl_shared.kafka import delete_topics_containing, ensure_topics
from teamnl_shared.telemetry.scrape import TOKEN_VARIABLE
from teamnl_suite.infra import InfraConfig, Infrastructure, with_database
from teamnl_suite.infra.postgres import create_databases, drop_databases


@pytest.fixture(autouse=True, scope="session")
def _metrics_token() -> Iterator[None]:
    """Every service a test runs, in process or as a child, serves its metrics to the tests'
    scrapes (``support.SCRAPE``), as a deployment's do to its Prometheus."""
    os.environ[TOKEN_VARIABLE] = METRICS_TOKEN
    yield
    os.environ.pop(TOKEN_VARIABLE, None)


def _docker_engine_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def infra() -> Iterator[Infrastructure]:
    if os.environ.get("TEAMNL_INFRA") == "testcontainers":
        yield from _testcontainers_infra()
        return
    infrastructure = Infrastructure.from_env()
    infrastructure.up()
    yield infrastructure


def _testcontainers_infra() -> Iterator[Infrastructure]:
    if not _docker_engine_available():
        pytest.skip("TEAMNL_INFRA=testcontainers, but this machine has no Docker engine")
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with (
        KafkaContainer("apache/kafka:4.1.2").with_kraft() as kafka,
        PostgresContainer("postgres:15", driver=None) as pg,
    ):
        base = InfraConfig.from_env()
        config = InfraConfig(
            **{
                **base.__dict__,
                "external_kafka": kafka.get_bootstrap_server(),
                "external_database_url": pg.get_connection_url(),
            }
        )
        yield Infrastructure(config)


@pytest.fixture(scope="session")
def kafka_bootstrap(infra: Infrastructure) -> Iterator[str]:
    """The broker; at the end of the run, the topics the run made are deleted (a broker
    that gathers every run's topics starts ever more slowly)."""
    yield infra.kafka_bootstrap
    try:
        asyncio.run(
            asyncio.wait_for(delete_topics_containing(infra.kafka_bootstrap, SESSION_TOPICS), 60)
        )
    except Exception as error:  # noqa: BLE001 - the tests ran; a leftover topic costs only disk
        warnings.warn(f"could not delete this run's topics: {error!r}", stacklevel=1)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def database_url(infra: Infrastructure) -> AsyncIterator[str]:
    """A fresh, empty database of this test's own."""
    name = unique("t")
    admin = infra.admin_database_url()
    await create_databases(admin, [name])
    yield with_database(admin, name)
    await drop_databases(admin, [name])


@pytest.fixture
async def migrated_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database with the shared migrations (outbox, inbox) applied."""
    pool = await create_pool(database_url, max_size=10)
    await migrate(pool)
    yield pool
    await pool.close()


TopicFactory = Callable[..., Awaitable[list[str]]]


@pytest.fixture
def make_topics(kafka_bootstrap: str) -> TopicFactory:
    """Create uniquely named topics: ``await make_topics("orders", partitions=3)``."""

    async def make(*names: str, partitions: int = 3) -> list[str]:
        prefix = topic_prefix()
        topics = [f"{prefix}{name}" for name in names]
        await ensure_topics(kafka_bootstrap, topics, partitions=partitions)
        return topics

    return make
