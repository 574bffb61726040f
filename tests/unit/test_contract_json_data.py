"""A Kafka record's data is read by its model from the record's value (pydantic's JSON
mode), not decoded to a dict first: it accepts and refuses what the HTTP content modes do
(which read a dict), and a value that is not a JSON object is refused as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat

from teamnl_shared.contract.envelope import (
    NOT_A_JSON_OBJECT,
    Event,
    InvalidEvent,
    parse_event,
    parse_kafka,
)
from teamnl_shared.contract.registry import CATALOGUE, aggregate_id, spec_for

VALUES: list[Any] = [
    1,
    1.0,
    1.5,
    True,
    None,
    "1",
    "2026-01-02",
    "2026-01-02T00:00:00Z",
    [],
    {},
    -1,
    10**20,
    "NL",
    ["a"],
    ["a", "a"],
    [1],
    "  padded  ",
    "\u00e9",
    2026,
    "2026",
]
"""Each put in place of every field of each catalogue example in turn."""


def _variants(event_type: str) -> list[dict[str, Any]]:
    example = spec_for(event_type).example
    replaced = [{**example, name: value} for name in example for value in VALUES]
    dropped = [{k: v for k, v in example.items() if k != name} for name in example]
    return [example, *replaced, *dropped, {**example, "unknown": 1}]


def _headers(event_type: str, data: dict[str, Any]) -> list[tuple[str, bytes]]:
    try:
        subject = aggregate_id(event_type, spec_for(event_type).model.model_validate(data))
    except ValueError:
        subject = "s-1"
    attributes = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/partners/rvo",
        "type": event_type,
        "subject": subject,
        "time": "2026-12-01T10:00:00Z",
    }
    return [(f"ce_{name}", value.encode()) for name, value in attributes.items()] + [
        ("content-type", b"application/json")
    ]


def _outcome(read: Any) -> tuple[str, Any]:
    """What a parse gave: the event, or the fields its problems name."""
    try:
        event = read()
    except InvalidEvent as error:
        return "refused", [problem.field for problem in error.problems]
    assert isinstance(event, Event)
    return "accepted", event


@pytest.mark.parametrize("event_type", sorted(CATALOGUE))
def test_a_record_and_a_dict_of_the_same_data_are_read_alike(event_type: str) -> None:
    """Proves: for every catalogue type, the example and a few hundred variants of it (a
    field given another type, out of range, dropped, one unknown) are accepted as the same
    event, or refused naming the same fields, from a Kafka record as from a dict."""
    refused = 0
    for data in _variants(event_type):
        value = json.dumps(data).encode()
        headers = _headers(event_type, data)
        attributes = {name[3:]: text.decode() for name, text in headers if name.startswith("ce_")}
        from_record = _outcome(lambda: parse_kafka(headers, value))  # noqa: B023 - called now
        from_dict = _outcome(lambda: parse_event(attributes, json.loads(value)))  # noqa: B023
        assert from_record == from_dict, value
        refused += from_record[0] == "refused"
    assert 0 < refused < len(_variants(event_type)), "both outcomes were tried"


def test_a_record_s_data_is_not_decoded_before_its_model_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Proves: the SDK's data reader (``json.loads`` of the value) never sees the value;
    the model reads the value's bytes itself."""
    read = JSONFormat.read_data
    bodies: list[bytes] = []

    def reading(self: JSONFormat, body: bytes, content_type: str | None) -> Any:
        bodies.append(body)
        return read(self, body, content_type)

    monkeypatch.setattr(JSONFormat, "read_data", reading)
    event_type = sorted(CATALOGUE)[0]
    data = spec_for(event_type).example
    value = json.dumps(data).encode()
    event = parse_kafka(_headers(event_type, data), value)
    assert value not in bodies
    assert event.data == spec_for(event_type).model.model_validate(data)
    assert event.time == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "content_type"),
    [
        (b"{not json", b"application/json"),
        (b"[1, 2]", b"application/json"),
        (b"null", b"application/json"),
        (b'"text"', b"application/json"),
        (b"", b"application/json"),
        (b"\xff\xfe", b"application/json"),
        (None, b"application/json"),
    ],
)
def test_a_value_that_is_not_a_json_object_is_refused_as_such(
    value: bytes | None, content_type: bytes
) -> None:
    """Proves: a record whose value is not JSON, not an object or empty is refused with one
    problem on `data`, whichever the catalogue type."""
    event_type = sorted(CATALOGUE)[0]
    headers = [
        (name, content_type if name == "content-type" else text)
        for name, text in _headers(event_type, spec_for(event_type).example)
    ]
    with pytest.raises(InvalidEvent) as refused:
        parse_kafka(headers, value)
    assert [(p.field, p.reason) for p in refused.value.problems] == [("data", NOT_A_JSON_OBJECT)]
