"""``teamnl-tinl``: run the TINL service."""

from __future__ import annotations

from teamnl_shared.ingestion.server import serve

from .app import create_app
from .settings import TinlSettings


def main() -> None:
    serve(TinlSettings(), create_app)


if __name__ == "__main__":
    main()
