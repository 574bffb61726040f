"""Running a service: JSON logs, then uvicorn. On SIGTERM uvicorn stops accepting, lets
in-flight requests finish (up to ``shutdown_grace_seconds``) and then runs the lifespan exit,
which flushes the outbox relay and closes the pool."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from teamnl_shared.collector import settle_collector
from teamnl_shared.http_head import BoundedHead
from teamnl_shared.telemetry import configure_logging

from .settings import IngestionSettings

S = TypeVar("S", bound=IngestionSettings)


def serve(settings: S, create_app: Callable[[S], FastAPI]) -> None:
    configure_logging(settings.service_name, settings.log_level)
    app = create_app(settings)
    settle_collector()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        http=BoundedHead,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
