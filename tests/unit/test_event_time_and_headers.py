"""An event's time, read by the standard library's parser in both content modes (HTTP and a
Kafka record), and Kafka headers without a value, which a record may carry (Kafka allows
them): refused or ignored, never a crash of the consumer that reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from support import BUDGET
from support import structured as document
from teamnl_dashboard.notices import NOTICE_HEADER, _notice
from teamnl_shared.contract.envelope import (
    DEFAULTED,
    Event,
    InvalidEvent,
    missing,
    parse_kafka,
    parse_structured,
)
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.contract.types import MAX_ATTRIBUTE_LENGTH
from teamnl_shared.inbox import _type_of
from teamnl_shared.ingestion.modes import parse_document, parse_single
from teamnl_shared.ingestion.problems import ApiProblem
from teamnl_shared.outbox import _chunk

TEN = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def fields(error: InvalidEvent) -> list[tuple[str, str]]:
    return [(p.field, p.reason) for p in error.problems]


def record_of(event: Event, **replaced: bytes | None) -> list[tuple[str, bytes | None]]:
    """`event`'s Kafka headers, with some replaced (None: a header without a value)."""
    headers = [(name, replaced.pop(name, value)) for name, value in event.to_kafka_headers()]
    return headers + list(replaced.items())


@pytest.mark.parametrize(
    ("given", "instant"),
    [
        ("2026-12-01T10:00:00Z", TEN),
        ("2026-12-01t10:00:00z", TEN),  # RFC 3339 allows lower case
        ("2026-12-01T11:00:00+01:00", TEN),
        ("2026-12-01T05:00:00-05:00", TEN),
        ("2026-12-01T10:00:00.123456789Z", TEN.replace(microsecond=123456)),
    ],
)
def test_an_rfc_3339_time_is_read_in_both_content_modes(given: str, instant: datetime) -> None:
    event = parse_structured(document(time=given))
    assert event.time == instant
    assert parse_kafka(event.to_kafka_headers(), event.data_json()) == event
    headers = record_of(event, ce_time=given.encode())
    assert parse_kafka(headers, event.data_json()).time == instant


@pytest.mark.parametrize(
    "given", ["2026-13-01T10:00:00Z", "2026-12-01T24:00:00Z", "yesterday", "2026-12-01T10:00Z!"]
)
def test_a_time_that_is_no_timestamp_is_refused_naming_it(given: str) -> None:
    with pytest.raises(InvalidEvent) as http:
        parse_structured(document(time=given))
    assert fields(http.value) == [("time", "not an RFC 3339 timestamp")]
    event = parse_structured(document())
    with pytest.raises(InvalidEvent) as kafka:
        parse_kafka(record_of(event, ce_time=given.encode()), event.data_json())
    assert fields(kafka.value) == [("time", "not an RFC 3339 timestamp")]


def test_a_time_without_an_offset_is_refused_in_both_content_modes() -> None:
    """For the same reason: a record's attributes are validated as a request's are."""
    with pytest.raises(InvalidEvent) as http:
        parse_structured(document(time="2026-12-01T10:00:00"))
    assert fields(http.value) == [("time", "Attribute 'time' must be timezone aware")]
    event = parse_structured(document())
    with pytest.raises(InvalidEvent) as kafka:
        parse_kafka(record_of(event, ce_time=b"2026-12-01T10:00:00"), event.data_json())
    assert fields(kafka.value) == fields(http.value)


def test_a_record_time_is_bounded_before_it_is_parsed() -> None:
    event = parse_structured(document())
    long = b"2026-12-01T10:00:00" + b"0" * MAX_ATTRIBUTE_LENGTH + b"Z"
    with pytest.raises(InvalidEvent) as refused:
        parse_kafka(record_of(event, ce_time=long), event.data_json())
    assert fields(refused.value) == [("time", f"at most {MAX_ATTRIBUTE_LENGTH} characters")]


def test_the_sdk_parser_no_longer_reads_a_record_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CloudEvents SDK reads ``ce_time`` with dateutil's isoparse, 40x the standard
    library's parser here; a record's time is read by ours instead."""

    def refuse(_: str) -> datetime:
        raise AssertionError("dateutil's isoparse read the time")

    monkeypatch.setattr("cloudevents.core.bindings.kafka.isoparse", refuse)
    event = parse_structured(document(time="2026-12-01T10:00:00Z"))
    assert parse_kafka(event.to_kafka_headers(), event.data_json()).time == TEN


@pytest.mark.parametrize("name", DEFAULTED)
def test_a_required_attribute_missing_is_refused_not_made_up(name: str) -> None:
    """The CloudEvents SDK makes up a UUID for a missing id (a partner's retry would then be
    a new event, and a record read again, a redelivery, another one, past the inbox) and
    takes a missing specversion for "1.0" (the contract requires it): refused in every
    content mode and on a Kafka record."""
    without = {key: v for key, v in document().items() if key != name}
    with pytest.raises(InvalidEvent) as http:
        parse_structured(without)
    assert fields(http.value) == [(name, missing(name))]
    with pytest.raises(ApiProblem) as item:  # an item of a batch
        parse_document(without, 10**6)
    assert (item.value.status, [p.field for p in item.value.errors]) == (422, [name])
    with pytest.raises(ApiProblem) as binary:
        headers = {f"ce-{key}": str(v) for key, v in without.items() if key != "data"}
        parse_single(headers, json.dumps(spec_for(BUDGET).example).encode(), 10**6)
    assert (binary.value.status, [p.field for p in binary.value.errors]) == (422, [name])
    event = parse_structured(document())
    headers = [(key, v) for key, v in event.to_kafka_headers() if key != f"ce_{name}"]
    with pytest.raises(InvalidEvent) as kafka:
        parse_kafka(headers, event.data_json())
    assert fields(kafka.value) == [(name, missing(name))]


def test_a_header_without_a_value_is_ignored_or_missing_never_a_crash() -> None:
    event = parse_structured(document())
    with_null = record_of(event, traceparent=None)
    assert parse_kafka(with_null, event.data_json()) == event
    with pytest.raises(InvalidEvent) as refused:
        parse_kafka(record_of(event, ce_id=None), event.data_json())
    assert fields(refused.value) == [("id", missing("id"))]
    null_time = parse_kafka(record_of(event, ce_time=None), event.data_json())
    assert null_time.id == event.id


class Record:
    def __init__(self, headers: list[tuple[str, bytes | None]], value: bytes = b"{}") -> None:
        self.headers, self.value, self.offset = headers, value, 7


def test_the_readers_of_single_headers_pass_over_one_without_a_value() -> None:
    assert _type_of(Record([("ce_type", None)])) == "unknown type"  # type: ignore[arg-type]
    assert _notice(Record([(NOTICE_HEADER, None)])) is None  # type: ignore[arg-type]

    class Paused:
        def pause(self, *_: TopicPartition) -> None:
            pass

    tp = TopicPartition("t", 0)
    found, _ = _chunk(
        Paused(),  # type: ignore[arg-type]
        {tp: [Record([("ce_source", None), ("ce_id", b"e-1")])]},
        {tp: 8},
    )
    assert found == {("", "e-1")}


@pytest.mark.parametrize("event_type", [BUDGET, "nl.teamnl.werkplaats.project.onboarded.v1"])
def test_the_kafka_headers_are_the_sdks_binding_of_the_whole_event(event_type: str) -> None:
    """The headers are made from the attributes alone (the value is `data_json()`): they must
    be what the CloudEvents SDK's Kafka binding gives the event with its data."""
    event = parse_structured(document(event_type, traceparent="00-ab-cd-01"))
    whole = ce_kafka.to_binary(CloudEvent(event.attributes(), event.data_dict()), JSONFormat())
    assert event.to_kafka_headers() == sorted(whole.headers.items())
    assert ("content-type", b"application/json") in event.to_kafka_headers()
