"""Composition root of the NLIB service."""

from __future__ import annotations

from fastapi import FastAPI

from teamnl_shared.ingestion import ServiceDefinition, create_ingestion_app
from teamnl_shared.telemetry import Telemetry

from .handlers import HANDLERS
from .resources import RESOURCES
from .settings import NlibSettings

SERVICE = ServiceDefinition(
    name="nlib",
    title="NLinBusiness ingestion API",
    description="Partners of NLinBusiness push mission, lead, city, support and budget facts "
    "as CloudEvents; the service validates, keeps state and publishes them on "
    "teamnl.nlib.events.",
    families=("nlib",),
    handlers=HANDLERS,
    migrations_package="teamnl_nlib.migrations",
    resources=RESOURCES,
)


def create_app(settings: NlibSettings, *, telemetry: Telemetry | None = None) -> FastAPI:
    return create_ingestion_app(settings, SERVICE, telemetry=telemetry)
