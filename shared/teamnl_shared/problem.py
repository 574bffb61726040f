"""RFC 9457 problem details, as every teamnl HTTP surface answers a refusal: the ingestion
APIs (:mod:`teamnl_shared.ingestion.problems`), the dashboard's readings, and the metrics
pages (:mod:`teamnl_shared.telemetry.scrape`).

A document carries the standard members (``type``, a URN ``urn:teamnl:problem:<kind>``;
``title``, ``status``, ``detail``, ``instance``) and one extension, ``errors``: the
``{field, reason}`` that caused it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:teamnl:problem:"
PROBLEM_SCHEMA_REF = "#/components/schemas/ProblemDetails"
"""Where an OpenAPI document that adds :func:`problem_schemas` to its components has it."""

KIND_BY_STATUS = {
    400: "invalid-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "too-large",
    422: "invalid-request",
}
"""The problem kind of a refusal raised by status alone (a framework's HTTPException)."""


class FieldError(BaseModel):
    field: str
    reason: str


class ProblemDetails(BaseModel):
    """An RFC 9457 problem; ``type`` is a URN ``urn:teamnl:problem:<kind>``."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] = []


def problem_schemas() -> dict[str, Any]:
    """The JSON Schemas of :class:`ProblemDetails` and what it holds, for an OpenAPI
    document's ``components/schemas``."""
    problem = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**problem.pop("$defs", {}), "ProblemDetails": problem}


def validation_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """FastAPI's (pydantic's) validation errors as the problem's ``errors``: the field as a
    path (``query/limit``, ``body/note``) and the reason."""
    return [
        {
            "field": "/".join(str(part) for part in error.get("loc", ())),
            "reason": str(error.get("msg", "")),
        }
        for error in errors
    ]


def problem_document(
    status: int,
    kind: str,
    title: str,
    detail: str,
    errors: Iterable[Mapping[str, str]],
    instance: str | None = None,
) -> dict[str, Any]:
    """The problem's JSON document (``instance`` only when given)."""
    document: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + kind,
        "title": title,
        "status": status,
        "detail": detail,
        "errors": [dict(error) for error in errors],
    }
    if instance is not None:
        document["instance"] = instance
    return document


def joined(errors: Iterable[Mapping[str, str]]) -> str:
    """A problem's ``detail`` naming each of its `errors`: ``field: reason; ...``."""
    return "; ".join(f"{error['field']}: {error['reason']}" for error in errors)
