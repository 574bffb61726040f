"""The CloudEvents HTTP content modes: read the body (bounded), decode, parse."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from teamnl_shared.contract.envelope import (
    CLOUDEVENTS_BATCH_JSON,
    CLOUDEVENTS_JSON,
    Event,
    InvalidEvent,
    Problem,
    parse_binary,
    parse_structured,
)

from .problems import ApiProblem, invalid_event, malformed, too_large


def declared_size(request: Request, limit: int) -> int:
    """The body's size as its ``content-length`` declares it, or `limit` where it declares
    none; 413 at once for a size past `limit`."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        return limit
    if int(declared) > limit:
        raise too_large(f"the body may hold at most {limit} bytes")
    return int(declared)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) more than ``limit`` bytes without reading them all."""
    declared_size(request, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(f"the body may hold at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise malformed("the body is not valid JSON") from None


def _may_hold_nul(event: Event) -> bool:
    """The cheap test first: canonical JSON writes U+0000 as ``\\u0000``, attributes are
    strings (or the parsed time)."""
    attributes = (event.id, event.source, event.type, event.subject, *event.extensions.values())
    return any("\x00" in value for value in attributes) or b"\\u0000" in event.data_json()


def _nul_fields(value: Any, path: str) -> list[Problem]:
    """PostgreSQL text cannot hold U+0000: refuse it up front, naming the field."""
    if isinstance(value, str):
        return [Problem(path, "must not contain the NUL character")] if "\x00" in value else []
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _nul_fields(item, f"{path}/{key}")]
    if isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in _nul_fields(item, f"{path}/{i}")]
    return []


def refuse_nul(event: Event) -> Event:
    if not _may_hold_nul(event):
        return event
    attributes = {name: value for name, value in event.to_structured().items() if name != "data"}
    problems = [p for name, value in attributes.items() for p in _nul_fields(value, name)]
    problems += _nul_fields(event.data_dict(), "data")
    if problems:
        raise invalid_event(InvalidEvent(problems, event.type))
    return event


def refuse_oversized(event: Event, max_bytes: int) -> Event:
    """One event's Kafka record must fit the relay's producer requests, whatever the mode."""
    size = event.record_size()
    if size > max_bytes:
        reason = f"the event's record (data, attributes, extensions) holds {size} bytes;"
        raise ApiProblem(
            413,
            "too-large",
            f"{reason} at most {max_bytes} are allowed",
            [Problem("/", f"{reason} the limit is {max_bytes} (max_event_bytes)")],
        )
    return event


def parse_single(headers: Mapping[str, str], body: bytes, max_bytes: int) -> Event:
    """Structured mode for ``application/cloudevents+json``, else binary mode (``ce-*``)."""
    kind = media_type(headers)
    if kind == CLOUDEVENTS_BATCH_JSON:
        raise ApiProblem(
            415, "unsupported-media-type", f"send {CLOUDEVENTS_BATCH_JSON} to POST /v1/events:batch"
        )
    try:
        if kind == CLOUDEVENTS_JSON:
            event = refuse_nul(parse_structured(load_json(body)))
        else:
            event = refuse_nul(parse_binary(headers, body))
    except InvalidEvent as error:
        raise invalid_event(error) from None
    return refuse_oversized(event, max_bytes)


def batch_documents(headers: Mapping[str, str], body: bytes, max_events: int) -> list[Any]:
    if media_type(headers) != CLOUDEVENTS_BATCH_JSON:
        raise ApiProblem(
            415, "unsupported-media-type", f"a batch is sent as {CLOUDEVENTS_BATCH_JSON}"
        )
    documents = load_json(body)
    if not isinstance(documents, list):
        raise malformed("a CloudEvents batch is a JSON array of structured events")
    if len(documents) > max_events:
        raise too_large(f"a batch holds at most {max_events} events, not {len(documents)}")
    return documents


def parse_document(document: Any, max_bytes: int) -> Event:
    try:
        event = refuse_nul(parse_structured(document))
    except InvalidEvent as error:
        raise invalid_event(error) from None
    return refuse_oversized(event, max_bytes)
