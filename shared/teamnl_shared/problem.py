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

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:teamnl:problem:"


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
