"""``teamnl-nlib``: run the NLIB service."""

from __future__ import annotations

from teamnl_shared.ingestion.server import serve

from .app import create_app
from .settings import NlibSettings


def main() -> None:
    serve(NlibSettings(), create_app)


if __name__ == "__main__":
    main()
