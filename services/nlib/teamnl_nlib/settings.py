"""NLIB settings: environment variables ``NLIB_*`` (Kafka and TEAMNL_* ones are shared)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from teamnl_shared.ingestion import IngestionSettings


class NlibSettings(IngestionSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="NLIB_")

    service_name: str = "nlib"
    port: int = 8101
