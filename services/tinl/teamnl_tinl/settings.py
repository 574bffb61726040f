"""TINL settings: environment variables ``TINL_*`` (Kafka and TEAMNL_* ones are shared)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from teamnl_shared.ingestion import IngestionSettings


class TinlSettings(IngestionSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="TINL_")

    service_name: str = "tinl"
    port: int = 8102
