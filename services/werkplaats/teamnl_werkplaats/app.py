"""Composition root of the De Werkplaats service."""

from __future__ import annotations

from fastapi import FastAPI

from teamnl_shared.ingestion import ServiceDefinition, create_ingestion_app
from teamnl_shared.telemetry import Telemetry

from .handlers import HANDLERS
from .resources import RESOURCES
from .settings import WerkplaatsSettings

SERVICE = ServiceDefinition(
    name="werkplaats",
    title="De Werkplaats ingestion API",
    description="Partners of De Werkplaats push the life of consortium projects (onboarding, "
    "members, milestones, graduation or stop) and budget facts; published on "
    "teamnl.werkplaats.events.",
    families=("werkplaats",),
    handlers=HANDLERS,
    migrations_package="teamnl_werkplaats.migrations",
    resources=RESOURCES,
)


def create_app(settings: WerkplaatsSettings, *, telemetry: Telemetry | None = None) -> FastAPI:
    return create_ingestion_app(settings, SERVICE, telemetry=telemetry)
