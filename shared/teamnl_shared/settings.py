"""Settings shared by every service: one pydantic-settings class per service extends this.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix`` (``NLIB_``,
``TINL_``, ``WERKPLAATS_``, ``DASHBOARD_``). Kafka and OpenTelemetry variables are shared
and carry no prefix. Outside ``development`` and ``test``, unsafe values are refused.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from teamnl_shared.telemetry.scrape import TOKEN_LENGTH, TOKEN_VARIABLE

Environment = Literal["development", "test", "production"]
PLACEHOLDER_MARKS = ("change-me", "changeme", "change_me")
"""What every default secret of the code and of docker-compose.yml says of itself (the
Kubernetes manifests hold none); production refuses a secret that says it."""


def is_placeholder(secret: str | SecretStr) -> bool:
    """Whether `secret` is one of the demo defaults that ask to be changed."""
    text = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return any(mark in text.lower() for mark in PLACEHOLDER_MARKS)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="TEAMNL_")

    service_name: str = Field("teamnl", description="service.name in traces, metrics and logs")
    environment: Environment = Field(
        "development",
        validation_alias=AliasChoices("TEAMNL_ENVIRONMENT", "environment"),
        description="development, test or production (production refuses unsafe values)",
    )
    host: str = Field("127.0.0.1", description="address the HTTP server listens on")
    port: int = Field(8000, description="HTTP port")
    database_url: str = Field(
        "", description="required: the service's own PostgreSQL database (postgresql://…)"
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
        description="Kafka brokers, comma-separated host:port",
    )
    # Prepended to every topic name, so several deployments (or test runs) share a cluster.
    topic_prefix: str = Field(
        "",
        validation_alias=AliasChoices("TEAMNL_TOPIC_PREFIX", "topic_prefix"),
        description="prepended to every topic name (several deployments on one cluster)",
    )
    topic_partitions: int = Field(
        6,
        ge=1,
        validation_alias=AliasChoices("TEAMNL_TOPIC_PARTITIONS", "topic_partitions"),
        description="partitions of topics created at start-up (existing ones are kept)",
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    metrics_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(TOKEN_VARIABLE, "metrics_token"),
        description="the bearer token a scraper sends for /metrics (32-256 characters, the"
        " same for every process); unset: /metrics is off (403)",
    )

    @field_validator("metrics_token")
    @classmethod
    def _token_length(cls, token: SecretStr | None) -> SecretStr | None:
        least, most = TOKEN_LENGTH
        if token is not None and not least <= len(token.get_secret_value()) <= most:
            raise ValueError(f"{TOKEN_VARIABLE} must be {least} to {most} characters")
        return token

    @property
    def scrape_token(self) -> str | None:
        """The metrics token in clear, for the one comparison that needs it."""
        return None if self.metrics_token is None else self.metrics_token.get_secret_value()

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> ServiceSettings:
        if not self.database_url:
            raise ValueError(f"{self.model_config.get('env_prefix')}DATABASE_URL is required")
        if self.environment == "production":
            if self.metrics_token is not None and is_placeholder(self.metrics_token):
                raise ValueError(f"{TOKEN_VARIABLE} is a placeholder: set one of its own")
            self.check_production()
        return self

    def check_production(self) -> None:
        """Subclasses refuse their own unsafe values (default secrets, ...) here."""

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"
