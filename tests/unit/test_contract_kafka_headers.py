"""A Kafka record's attributes are read from its headers as the CloudEvents SDK's Kafka
binding reads them (``from_binary``), though not through it (``kafka_attributes``)."""

from __future__ import annotations

from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from teamnl_shared.contract import envelope
from teamnl_shared.contract.envelope import (
    InvalidEvent,
    kafka_attributes,
    parse_kafka,
    parse_structured,
    rfc3339,
)
from teamnl_shared.contract.registry import CATALOGUE

RELAYED = [
    parse_structured(
        {
            "specversion": "1.0",
            "id": f"e-{n}",
            "source": "/partners/acme",
            "type": spec.type,
            "time": "2026-12-01T10:00:00Z",
            "data": spec.example,
        }
    )
    for n, spec in enumerate(CATALOGUE.values())
]
Headers = list[tuple[str, bytes | None]]


def sdk_attributes(headers: Headers) -> dict[str, Any]:
    """What ``from_binary`` reads from `headers` (keyed as the record carries them: a later
    header of one name in another case wins, as in the binding's own loop)."""
    message = ce_kafka.KafkaMessage(
        headers={name: text for name, text in headers if text is not None}, key=None, value=b""
    )
    return dict(ce_kafka.from_binary(message, JSONFormat(), CloudEvent).get_attributes())


def same_as_the_sdk(headers: Headers) -> None:
    ours, sdk = kafka_attributes(headers), sdk_attributes(headers)
    if "time" in ours:  # the SDK reads it at once (dateutil); ours once bounded (rfc3339)
        assert rfc3339(ours.pop("time")) == sdk.pop("time")
    else:  # the SDK makes one up
        sdk.pop("time")
    assert ours == sdk


@pytest.mark.parametrize("event", RELAYED, ids=lambda event: event.type)
def test_every_relayed_record_reads_as_the_sdk_reads_it(event: Any) -> None:
    headers: Headers = list(event.to_kafka_headers())
    same_as_the_sdk(headers)
    assert parse_kafka(headers, event.data_json()) == event


def test_names_in_any_case_extensions_and_headers_without_a_value() -> None:
    event = RELAYED[0]
    headers: Headers = [
        (name.upper() if name in ("ce_id", "content-type") else name, text)
        for name, text in event.to_kafka_headers()
    ]
    headers += [
        ("ce_partner", b"acme"),
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("ce_comment", None),
        ("Content-Type", b"application/json; charset=utf-8"),
    ]
    same_as_the_sdk(headers)
    assert kafka_attributes(headers)["datacontenttype"] == "application/json; charset=utf-8"
    assert parse_kafka(headers, event.data_json()).extensions == {"partner": "acme"}


def test_without_a_time_or_a_content_type() -> None:
    headers: Headers = [
        (name, text)
        for name, text in RELAYED[0].to_kafka_headers()
        if name not in ("ce_time", "ce_datacontenttype", "content-type")
    ]
    same_as_the_sdk(headers)
    assert "datacontenttype" not in kafka_attributes(headers)


def test_a_header_that_is_not_utf_8_refuses_the_record_not_the_reader() -> None:
    headers: Headers = [*RELAYED[0].to_kafka_headers(), ("ce_partner", b"\xff\xfe")]
    with pytest.raises(InvalidEvent) as refused:
        kafka_attributes(headers)
    assert [problem.field for problem in refused.value.problems] == ["record"]
    assert "not a CloudEvent in binary mode" in refused.value.problems[0].reason


def test_header_names_are_read_the_same_once_known_and_past_the_kept_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The attribute a header name carries is kept for the next record (a bounded table of
    names): a record reads the same the first time, once its names are kept, and once the
    table is full of other names, which it does not outgrow."""
    kept: dict[str, Any] = {}
    monkeypatch.setattr(envelope, "_HEADER_ATTRIBUTES", kept)
    monkeypatch.setattr(envelope, "_HEADER_NAMES_KEPT", 12)
    headers: Headers = [
        *RELAYED[0].to_kafka_headers(),
        ("CE_Partner", b"acme"),
        ("ce_", b"no name"),  # an attribute without a name: refused by parse_event
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ]
    first = kafka_attributes(headers)
    assert first["partner"] == "acme" and first[""] == "no name"
    assert "traceparent" not in first
    assert kept["CE_Partner"] == "partner" and kept["traceparent"] is False
    assert kafka_attributes(headers) == first

    kept.clear()
    others: Headers = [(f"ce_other{n}", b"x") for n in range(20)]
    assert kafka_attributes(others) == {f"other{n}": "x" for n in range(20)}
    assert len(kept) == 12
    assert kafka_attributes(headers) == first  # none of its names kept now
    assert len(kept) == 12
    with pytest.raises(InvalidEvent) as refused:
        parse_kafka(headers, RELAYED[0].data_json())
    assert [problem.field for problem in refused.value.problems] == [""]
