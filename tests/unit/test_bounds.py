"""The bounds of the contract and of one event, and how the relay sorts out send results:
pure functions, no broker or database."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.structs import RecordMetadata
from pydantic import ValidationError

from support import BUDGET
from support import structured as document
from teamnl_shared.contract.envelope import (
    NOT_JSON_CONTENT,
    TIME_OUT_OF_RANGE,
    InvalidEvent,
    parse_binary,
    parse_kafka,
    parse_structured,
)
from teamnl_shared.contract.registry import CATALOGUE, spec_for
from teamnl_shared.contract.types import (
    FIRST_DAY,
    LAST_DAY,
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


def _days(event_type: str) -> list[str]:
    """The names of `event_type`'s fields that are days."""
    model = spec_for(event_type).model
    return [name for name, info in model.model_fields.items() if info.annotation is date]


DAYS = [(t, name) for t in sorted(CATALOGUE) for name in _days(t)]


def test_every_event_type_with_days_is_checked() -> None:
    assert len(DAYS) >= 20, DAYS  # the catalogue's days: none left out by the lookup


@pytest.mark.parametrize(("event_type", "name"), DAYS)
@pytest.mark.parametrize("day", ["0001-01-01", "1999-12-31", "2101-01-01", "9999-12-31"])
def test_days_lie_in_the_years_of_the_network(event_type: str, name: str, day: str) -> None:
    """A placeholder day (0001-01-01, 9999-12-31) or one outside 2000-2100 is refused on its
    field, before any projection stores it (as -infinity) or a rule adds days to it."""
    with pytest.raises(InvalidEvent) as refused:
        parse_structured(document(event_type, data={**spec_for(event_type).example, name: day}))
    assert f"data/{name}" in fields(refused.value)


@pytest.mark.parametrize("day", [FIRST_DAY, LAST_DAY])
def test_days_at_their_bounds_are_accepted(day: date) -> None:
    model = spec_for(HELD).model
    example = spec_for(HELD).example
    held = model.model_validate({**example, "start_date": day, "end_date": day})
    assert held.start_date == day  # type: ignore[attr-defined]


BUDGET_DATA = json.dumps(spec_for(BUDGET).example).encode()


def _binary(**attributes: str) -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    """A budget event with `attributes` in binary mode: its HTTP headers (``ce-*``, its data
    said to be JSON by ``content-type``) and its Kafka record's headers (``ce_*``, where
    ``content-type`` carries the ``datacontenttype``, JSON when none is given)."""
    given = {"specversion": "1.0", "id": "e-1", "source": "/partners/acme", "type": BUDGET}
    given |= attributes
    http = {f"ce-{name}": value for name, value in given.items()}
    content_type = given.pop("datacontenttype", "application/json")
    kafka = [(f"ce_{name}", value.encode()) for name, value in given.items()]
    return {**http, "content-type": "application/json"}, [
        *kafka,
        ("content-type", content_type.encode()),
    ]


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
        "1999-12-31T23:59:59Z",
        "2000-01-01T00:00:00+01:00",  # 1999 in UTC
        "2101-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-12:00",  # after year 9999 in UTC
    ],
)
def test_an_event_time_lies_in_the_years_of_the_network(moment: str) -> None:
    """In every content mode, a time outside 2000-2100 (UTC) is refused on `time`: one after
    9999 in UTC was accepted (202), and the dashboard then dead-lettered it."""
    with pytest.raises(InvalidEvent) as structured:
        parse_structured(document(time=moment))
    assert [(p.field, p.reason) for p in structured.value.problems] == [("time", TIME_OUT_OF_RANGE)]
    headers, record = _binary(time=moment)
    with pytest.raises(InvalidEvent) as binary:
        parse_binary(headers, BUDGET_DATA)
    assert [p.field for p in binary.value.problems] == ["time"]
    with pytest.raises(InvalidEvent) as read:
        parse_kafka(record, BUDGET_DATA)
    assert [p.field for p in read.value.problems] == ["time"]


@pytest.mark.parametrize(
    "moment", ["2000-01-01T00:00:00Z", "2100-12-31T23:59:59.999999Z", "2100-12-31T23:00:00-00:59"]
)
def test_times_at_their_bounds_are_accepted(moment: str) -> None:
    assert parse_structured(document(time=moment)).time.year in (2000, 2100)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "", 5])
def test_data_is_json_whatever_the_content_mode(content_type: object) -> None:
    """A structured event (or a binary one's ``ce-datacontenttype``) that says its data is not
    JSON is refused on `datacontenttype`: the data is read as JSON and published as JSON, so
    an event that said otherwise was stored saying one thing and carrying another. A Kafka
    record of another content type is refused the same way."""
    with pytest.raises(InvalidEvent) as refused:
        parse_structured(document(datacontenttype=content_type))
    assert [(p.field, p.reason) for p in refused.value.problems] == [
        ("datacontenttype", NOT_JSON_CONTENT)
    ]
    if isinstance(content_type, str) and content_type:
        headers, record = _binary(datacontenttype=content_type)
        with pytest.raises(InvalidEvent) as binary:
            parse_binary(headers, BUDGET_DATA)
        assert [p.field for p in binary.value.problems] == ["datacontenttype"]
        with pytest.raises(InvalidEvent) as read:
            parse_kafka(record, BUDGET_DATA)
        assert [p.field for p in read.value.problems] == ["datacontenttype"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "text/json"]
)
def test_json_content_types_are_accepted(content_type: str) -> None:
    assert parse_structured(document(datacontenttype=content_type)).type == BUDGET


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
