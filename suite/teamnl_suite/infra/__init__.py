"""Local infrastructure started by the project itself: Apache Kafka and PostgreSQL.

One entry point for ``make run``, the test fixtures and CI: :class:`Infrastructure`.
Already-running infrastructure is used instead when ``KAFKA_BOOTSTRAP_SERVERS`` /
``DATABASE_URL`` are set.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from teamnl_shared.kafka import ping

from .config import InfraConfig
from .kafka import LocalKafka, wait_ready
from .postgres import LocalPostgres, create_databases

__all__ = ["InfraConfig", "Infrastructure", "with_database"]


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@dataclass
class Infrastructure:
    config: InfraConfig

    @classmethod
    def from_env(cls) -> Infrastructure:
        return cls(InfraConfig.from_env())

    @property
    def kafka(self) -> LocalKafka:
        return LocalKafka(self.config)

    @property
    def postgres(self) -> LocalPostgres:
        return LocalPostgres(self.config)

    @property
    def kafka_bootstrap(self) -> str:
        return self.config.kafka_bootstrap

    def admin_database_url(self) -> str:
        if self.config.external_database_url:
            return self.config.external_database_url
        return self.postgres.url("postgres")

    def database_url(self, database: str) -> str:
        return with_database(self.admin_database_url(), database)

    def up(self) -> None:
        """Start what is not running yet and wait until both answer. Idempotent."""
        if self.config.external_database_url is None:
            self.postgres.start()
        if self.config.external_kafka is None:
            self.kafka.start()
        else:
            wait_ready(self.config.external_kafka, 60.0)

    def down(self) -> None:
        if self.config.external_kafka is None:
            self.kafka.stop()
        if self.config.external_database_url is None:
            self.postgres.stop()

    async def ensure_databases(self, names: list[str]) -> None:
        await create_databases(self.admin_database_url(), names)

    async def kafka_ready(self) -> bool:
        return await ping(self.kafka_bootstrap)
