"""The ISO NL dashboard's web pages, sign-in included: ``router`` (include it in the app)."""

from fastapi import APIRouter

from . import login, pages

__all__ = ["router"]

router = APIRouter()
router.include_router(login.router)
router.include_router(pages.router)
