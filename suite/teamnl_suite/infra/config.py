"""Where the local infrastructure lives and which ports it uses.

Everything is configurable through environment variables with safe defaults on 127.0.0.1.
When ``KAFKA_BOOTSTRAP_SERVERS`` or ``DATABASE_URL`` is set, that infrastructure is used
instead and nothing is started for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.1.2"
SERVICE_DATABASES = ("teamnl_nlib", "teamnl_tinl", "teamnl_werkplaats", "teamnl_dashboard")


def _default_state_dir() -> Path:
    # PostgreSQL runs as the `postgres` user when we are root, and that user cannot
    # enter /root: keep the state in a folder it can reach.
    if os.geteuid() == 0:
        return Path("/var/lib/teamnl")
    return Path.home() / ".local" / "state" / "teamnl"


@dataclass(frozen=True)
class InfraConfig:
    state_dir: Path
    cache_dir: Path
    host: str
    kafka_port: int
    kafka_controller_port: int
    postgres_port: int
    external_kafka: str | None
    external_database_url: str | None
    # (listener port, advertised port): a second broker listener whose clients are told to
    # connect to the advertised port, where a TCP proxy forwards to the listener; so all of
    # their traffic passes the proxy (the fault run cuts it). None: no second listener.
    kafka_proxied_listener: tuple[int, int] | None = None
    # further ``name=value`` server settings (the bench's: pg_stat_statements for ``--pg-stats``,
    # maintenance logged); a server already running without them must be stopped first
    postgres_settings: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> InfraConfig:
        env = os.environ
        return cls(
            state_dir=Path(env.get("TEAMNL_STATE_DIR") or _default_state_dir()),
            cache_dir=Path(env.get("TEAMNL_CACHE_DIR") or Path.home() / ".cache" / "teamnl"),
            host="127.0.0.1",
            kafka_port=int(env.get("TEAMNL_KAFKA_PORT", "19092")),
            kafka_controller_port=int(env.get("TEAMNL_KAFKA_CONTROLLER_PORT", "19093")),
            postgres_port=int(env.get("TEAMNL_POSTGRES_PORT", "55432")),
            external_kafka=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            external_database_url=env.get("DATABASE_URL") or None,
        )

    @property
    def kafka_bootstrap(self) -> str:
        return self.external_kafka or f"{self.host}:{self.kafka_port}"

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def postgres_dir(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def kafka_libs(self) -> Path:
        return self.cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"
