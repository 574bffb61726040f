"""The ISO NL dashboard's web pages: ``router`` (include it in the app).

``router`` is imported on first use: the auth package renders its login page with this
package's templating, and must not pull in the pages (and the backend's queries) with it,
so that the members CLI runs on its own.
"""

from __future__ import annotations

from typing import Any

__all__ = ["router"]


def __getattr__(name: str) -> Any:
    if name == "router":
        from .pages import router

        return router
    raise AttributeError(name)
