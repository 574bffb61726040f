"""RFC 9457 problem details: every 4xx/5xx of the ingestion API is ``application/problem+json``.

The body carries the standard members (``type``, ``title``, ``status``, ``detail``,
``instance``) and one extension, ``errors``: the list of ``{field, reason}`` that caused it,
where ``field`` is a JSON-pointer-like path into the CloudEvent (``data/held_on``,
``specversion``) or the request (``header/authorization``, ``query/limit``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse

from teamnl_shared.contract.envelope import InvalidEvent, Problem
from teamnl_shared.problem import (
    PROBLEM_JSON,
    PROBLEM_SCHEMA_REF,
    joined,
    problem_document,
    validation_errors,
)

UNAVAILABLE_RETRY_AFTER = 1  # seconds; a PostgreSQL restart takes about that long

TITLES: dict[str, str] = {
    "malformed-request": "The request body is not valid JSON",
    "invalid-event": "The event is not valid",
    "unsupported-media-type": "Unsupported content type",
    "unauthorized": "Missing or unknown API key",
    "forbidden": "The API key may not do this",
    "rate-limited": "Too many requests for this API key",
    "conflict": "Another event already has this source and id",
    "rejected": "The event breaks a rule of the service",
    "too-large": "The request is too large",
    "not-found": "Not found",
    "method-not-allowed": "Method not allowed",
    "invalid-request": "The request parameters are not valid",
    "unavailable": "The service is temporarily unavailable",
}


@dataclass
class ApiProblem(Exception):
    """Raised anywhere in a request; rendered by the app's exception handler."""

    status: int
    kind: str
    detail: str
    errors: Sequence[Problem] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    def body(self, instance: str | None = None) -> dict[str, Any]:
        return problem_document(
            self.status,
            self.kind,
            TITLES.get(self.kind, self.kind),
            self.detail,
            [problem.as_dict() for problem in self.errors],
            instance,
        )

    def response(self, instance: str | None = None) -> JSONResponse:
        return JSONResponse(
            self.body(instance),
            status_code=self.status,
            media_type=PROBLEM_JSON,
            headers=dict(self.headers),
        )


def field_problem(status: int, kind: str, name: str, reason: str) -> ApiProblem:
    return ApiProblem(status, kind, f"{name}: {reason}", [Problem(name, reason)])


def invalid_event(error: InvalidEvent) -> ApiProblem:
    if any(p.field.endswith("content-type") for p in error.problems):
        return ApiProblem(415, "unsupported-media-type", str(error), error.problems)
    return ApiProblem(422, "invalid-event", str(error), error.problems)


def malformed(detail: str) -> ApiProblem:
    return ApiProblem(400, "malformed-request", detail, [Problem("body", detail)])


def unauthorized(reason: str) -> ApiProblem:
    return ApiProblem(
        401,
        "unauthorized",
        reason,
        [Problem("header/authorization", reason)],
        headers={"WWW-Authenticate": 'Bearer realm="teamnl"'},
    )


def forbidden(name: str, reason: str) -> ApiProblem:
    return field_problem(403, "forbidden", name, reason)


def too_large(reason: str) -> ApiProblem:
    return field_problem(413, "too-large", "body", reason)


def rate_limited(retry_after: int) -> ApiProblem:
    reason = f"rate limit exceeded; retry after {retry_after} s"
    return ApiProblem(
        429,
        "rate-limited",
        reason,
        [Problem("header/authorization", reason)],
        headers={"Retry-After": str(retry_after)},
    )


def unavailable(reason: str, retry_after: int = UNAVAILABLE_RETRY_AFTER) -> ApiProblem:
    """503: the database is unreachable (restarting, connections lost, pool exhausted).
    Nothing of the request was stored; the client retries it unchanged after ``Retry-After``."""
    return ApiProblem(503, "unavailable", reason, headers={"Retry-After": str(retry_after)})


def not_found(what: str) -> ApiProblem:
    return ApiProblem(404, "not-found", f"{what} not found")


def from_validation_errors(errors: Iterable[Mapping[str, Any]]) -> ApiProblem:
    fields = validation_errors(errors)
    problems = [Problem(error["field"], error["reason"]) for error in fields]
    return ApiProblem(422, "invalid-request", joined(fields), problems)


def openapi_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entries documenting problem bodies for the given statuses."""
    return {
        status: {
            "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
            "description": _DESCRIPTIONS.get(status, "problem"),
            **({"headers": _HEADERS[status]} if status in _HEADERS else {}),
        }
        for status in statuses
    }


_DESCRIPTIONS = {
    400: "The body is not JSON",
    401: "No API key, or an unknown or revoked one",
    403: "The key belongs to another service, or the type or source is outside its scope",
    404: "No such resource",
    409: "The same (source, id) was accepted earlier with other content",
    413: "The body (or the batch) is too large",
    415: "The content type is not a CloudEvents content mode this endpoint takes",
    422: "The event (or a query parameter) is invalid; `errors` names each field and why",
    429: "The key's rate limit is exhausted",
    503: "The database is unavailable for a moment; nothing was stored, retry the same"
    " request after `Retry-After` seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
_HEADERS = {429: _RETRY_AFTER, 503: _RETRY_AFTER}
