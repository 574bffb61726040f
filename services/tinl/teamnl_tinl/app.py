"""Composition root of the TINL service (Trade & Innovate NL, and the Global Stars calls)."""

from __future__ import annotations

from fastapi import FastAPI

from teamnl_shared.ingestion import ServiceDefinition, create_ingestion_app
from teamnl_shared.telemetry import Telemetry

from .handlers import HANDLERS
from .resources import RESOURCES
from .settings import TinlSettings

SERVICE = ServiceDefinition(
    name="tinl",
    title="Trade & Innovate NL ingestion API",
    description="The TINL partners push joint activities, knowledge sharing and budget "
    "facts; RVO pushes the Global Stars calls and proposals. Published on "
    "teamnl.tinl.events and teamnl.globalstars.events.",
    families=("tinl", "globalstars"),
    handlers=HANDLERS,
    migrations_package="teamnl_tinl.migrations",
    resources=RESOURCES,
)


def create_app(settings: TinlSettings, *, telemetry: Telemetry | None = None) -> FastAPI:
    return create_ingestion_app(settings, SERVICE, telemetry=telemetry)
