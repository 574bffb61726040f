"""``teamnl-dashboard``: serve the ISO NL dashboard with uvicorn (settings from DASHBOARD_*)."""

from __future__ import annotations

import uvicorn

from .app import create_app
from .settings import DashboardSettings


def main() -> None:
    settings = DashboardSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level.lower(), proxy_headers=True)


if __name__ == "__main__":
    main()
