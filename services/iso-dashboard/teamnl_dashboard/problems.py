"""Every refusal of the dashboard's JSON API (``/api/``) is an RFC 9457 problem
(``application/problem+json``), as the ingestion APIs' are: FastAPI's validation errors, the
routes' ``HTTPException`` (404, 409), the 401 of a request not signed in, the 403 of a role
that may not, and the CSRF middleware's refusals (403, 413, 400); the readings' own 422
(:mod:`.reading`). ``errors`` names the field where one is at fault.

The HTML pages keep their answers (a redirect to sign in, plain text, FastAPI's own).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from teamnl_shared.problem import (
    KIND_BY_STATUS,
    PROBLEM_JSON,
    PROBLEM_SCHEMA_REF,
    joined,
    problem_document,
    problem_schemas,
    validation_errors,
)

API_PREFIX = "/api/"

TITLES = {
    400: "The request is not valid",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "The finding's state does not allow this change",
    413: "The request is too large",
    422: "The request parameters are not valid",
}

DESCRIPTIONS = {
    401: "Not signed in",
    403: "The member's role may not do this, or the CSRF token is missing or invalid",
    404: "No such resource",
    409: "The finding's state does not allow this change",
    413: "The body is too large",
    422: "A parameter is invalid; `errors` names each one and why",
}


def is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


def problem_response(
    request: Request,
    status: int,
    detail: str,
    errors: Iterable[Mapping[str, str]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The problem `status` with `detail`, for `request`'s path."""
    document = problem_document(
        status,
        KIND_BY_STATUS.get(status, "invalid-request"),
        TITLES.get(status, "The request is refused"),
        detail,
        errors,
        request.url.path,
    )
    return JSONResponse(
        document, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {})
    )


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of problems with these statuses."""
    return {
        status: {
            "description": DESCRIPTIONS.get(status, TITLES.get(status, "refused")),
            "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        for status in statuses
    }


async def _on_http(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)  # noqa: S101 - registered for this type only
    if not is_api(request):
        return await http_exception_handler(request, error)
    return problem_response(request, error.status_code, str(error.detail), headers=error.headers)


async def _on_validation(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)  # noqa: S101 - registered for this type only
    if not is_api(request):
        return await request_validation_exception_handler(request, error)
    errors = validation_errors(error.errors())
    return problem_response(request, 422, joined(errors), errors)


def install_api_problems(app: FastAPI) -> None:
    """Answer the API's refusals as problems, and document the problem's schema."""
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            document.setdefault("components", {}).setdefault("schemas", {}).update(
                problem_schemas()
            )
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
