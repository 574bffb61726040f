"""The bounds of the contract and of one event, and how the relay sorts out send results:
pure functions, no broker or database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.structs import RecordMetadata
from pydantic import ValidationError

from support import BUDGET
from support import structured as document
from teamnl_shared.contract.envelope import InvalidEvent, parse_structured
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.contract.types import (
    MAX_CENTS,
    MAX_COUNT,
    MAX_EVENT_ID_LENGTH,
    MAX_EXTENSION_VALUE_LENGTH,
    MAX_EXTENSIONS,
    MAX_LIST_ITEMS,
)
from teamnl_shared.ingestion.settings import RECORD_HEADROOM_BYTES, IngestionSettings
from teamnl_shared.outbox import _Row, _sort_out

HELD = "nl.teamnl.nlib.mission.held.v1"
ONBOARDED = "nl.teamnl.werkplaats.project.onboarded.v1"


def fields(error: InvalidEvent) -> list[str]:
    return [p.field for p in error.problems]


@pytest.mark.parametrize(
    ("event_type", "name", "most"),
    [
        (BUDGET, "amount_cents", MAX_CENTS),
        (HELD, "companies", MAX_COUNT),
        (HELD, "leads", MAX_COUNT),
    ],
)
def test_money_and_counts_are_bounded(event_type: str, name: str, most: int) -> None:
    model = spec_for(event_type).model
    example = spec_for(event_type).example
    assert getattr(model.model_validate({**example, name: most}), name) == most
    with pytest.raises(ValidationError, match=name):
        model.model_validate({**example, name: most + 1})


def test_lists_are_bounded() -> None:
    model = spec_for(ONBOARDED).model
    example = spec_for(ONBOARDED).example
    model.model_validate({**example, "sectors": [f"s{i}" for i in range(MAX_LIST_ITEMS)]})
    with pytest.raises(ValidationError, match="sectors"):
        model.model_validate({**example, "sectors": [f"s{i}" for i in range(MAX_LIST_ITEMS + 1)]})


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"id": "x" * (MAX_EVENT_ID_LENGTH + 1)}, "id"),
        ({"id": "with space"}, "id"),
        ({"id": "caf\u00e9"}, "id"),
        ({"source": "/partners/" + "a" * 300}, "source"),
        ({"subject": "s" * 300}, "subject"),
        ({"type": "t" * 300}, "type"),
        ({"dataschema": "https://x/" + "d" * 3000}, "dataschema"),
        ({"big": "x" * (MAX_EXTENSION_VALUE_LENGTH + 1)}, "big"),
        ({"Upper": "v"}, "Upper"),
        ({f"x{i}": "v" for i in range(MAX_EXTENSIONS + 1)}, "/"),
    ],
)
def test_attributes_are_bounded(attributes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        parse_structured(document(**attributes))
    assert field in fields(refused.value)


def test_attributes_at_their_bounds_are_accepted() -> None:
    extensions = {f"x{i}": "v" * MAX_EXTENSION_VALUE_LENGTH for i in range(MAX_EXTENSIONS)}
    event = parse_structured(document(id="i" * MAX_EVENT_ID_LENGTH, **extensions))
    assert len(event.extensions) == MAX_EXTENSIONS
    bare = parse_structured(document())
    assert event.record_size() > bare.record_size() + MAX_EXTENSIONS * MAX_EXTENSION_VALUE_LENGTH


def test_an_event_must_fit_a_kafka_request() -> None:
    base = {"database_url": "postgresql://x/y", "environment": "test"}
    IngestionSettings(
        **base, kafka_max_request_bytes=1024**2, max_event_bytes=1024**2 - RECORD_HEADROOM_BYTES
    )
    with pytest.raises(ValidationError, match="kafka_max_request_bytes"):
        IngestionSettings(**base, kafka_max_request_bytes=1024**2, max_event_bytes=1024**2)


def test_the_relay_parks_only_what_no_retry_can_cure() -> None:
    rows = [_Row(seq, "t", "k", [], b"", ("s", str(seq))) for seq in (1, 2, 3)]
    loop = asyncio.new_event_loop()
    futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in rows]
    loop.close()
    results: list[Any] = [
        RecordMetadata("t", 0, None, 41, -1, None, 0),
        MessageSizeTooLargeError("too big"),
        KafkaConnectionError("broker gone"),
    ]
    unpublishable: list[tuple[_Row, str]] = []
    published, offsets, retry = _sort_out(
        list(zip(rows, futures, strict=True)), results, unpublishable
    )
    assert published == [1]
    assert offsets == {("t", 0): 42}
    assert [(row.seq, reason.split(":")[0]) for row, reason in unpublishable] == [
        (2, "MessageSizeTooLargeError")
    ]
    assert isinstance(retry, KafkaConnectionError), "a session-wide error is retried, not parked"
