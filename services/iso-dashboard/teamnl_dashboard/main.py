"""``teamnl-dashboard``: serve the ISO NL dashboard (settings from DASHBOARD_*), the same way
as the initiative services (``teamnl_shared.ingestion.server``): JSON logs, then uvicorn
with its own logging and access log off (``RequestLogMiddleware`` writes one line per
request); telemetry is set up by ``create_app``."""

from __future__ import annotations

import uvicorn

from teamnl_shared.collector import settle_collector
from teamnl_shared.http_head import BoundedHead
from teamnl_shared.telemetry import configure_logging

from .app import create_app
from .settings import DashboardSettings


def main() -> None:
    settings = DashboardSettings()
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
        proxy_headers=True,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )


if __name__ == "__main__":
    main()
