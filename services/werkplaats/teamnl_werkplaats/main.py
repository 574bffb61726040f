"""``teamnl-werkplaats``: run the Werkplaats service."""

from __future__ import annotations

from teamnl_shared.ingestion.server import serve

from .app import create_app
from .settings import WerkplaatsSettings


def main() -> None:
    serve(WerkplaatsSettings(), create_app)


if __name__ == "__main__":
    main()
