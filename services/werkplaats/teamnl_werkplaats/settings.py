"""Werkplaats settings: environment variables ``WERKPLAATS_*`` (Kafka, TEAMNL_* are shared)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from teamnl_shared.ingestion import IngestionSettings


class WerkplaatsSettings(IngestionSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="WERKPLAATS_")

    service_name: str = "werkplaats"
    port: int = 8103
