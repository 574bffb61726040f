"""The CloudEvents 1.0 envelope of every teamnl event.

- over HTTP: structured (``application/cloudevents+json``), binary (``ce-*`` headers) and
  batch (``application/cloudevents-batch+json``) content modes;
- on Kafka: binary content mode (``ce_*`` headers, JSON data as the value, the aggregate id
  as the key), through the CloudEvents SDK's Kafka binding.

Parsing returns an :class:`Event` whose data has been validated against the catalogue, or
raises :class:`InvalidEvent` listing every problem as ``(field, reason)``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any, Literal

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.bindings.common import CONTENT_TYPE_HEADER, DATACONTENTTYPE_ATTR
from cloudevents.core.exceptions import BaseCloudEventException, CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from .registry import EventSpec, UnknownEventType, aggregate_id, spec_for
from .topics import topic_for
from .types import (
    EARLIEST_YEAR,
    LATEST_YEAR,
    MAX_ATTRIBUTE_LENGTH,
    MAX_DATASCHEMA_LENGTH,
    MAX_EVENT_ID_LENGTH,
    MAX_EXTENSION_NAME_LENGTH,
    MAX_EXTENSION_VALUE_LENGTH,
    MAX_EXTENSIONS,
    MAX_SOURCE_LENGTH,
    SAFE_ATTRIBUTE_PATTERN,
    EventData,
)

CLOUDEVENTS_JSON = "application/cloudevents+json"
CLOUDEVENTS_BATCH_JSON = "application/cloudevents-batch+json"
JSON = "application/json"
DEFAULTED = ("id", "specversion")
"""Required attributes the CloudEvents SDK makes up when they are missing (a new UUID, or
"1.0"): refused before it sees them. A made-up id would make a partner's retry, or a
record read again, a new event; the contract (and the OpenAPI) require a specversion."""


def missing(name: str) -> str:
    """Why a required attribute is refused when absent, worded as the SDK words the others."""
    return f"Missing required attribute: '{name}'"


_FORMAT = JSONFormat()
_SAFE_ATTRIBUTE = re.compile(SAFE_ATTRIBUTE_PATTERN)
_EXTENSION_NAME = re.compile(r"^[a-z0-9]+$")
_MAX_LENGTHS = {
    "id": MAX_EVENT_ID_LENGTH,
    "source": MAX_SOURCE_LENGTH,
    "type": MAX_ATTRIBUTE_LENGTH,
    "subject": MAX_ATTRIBUTE_LENGTH,
    "time": MAX_ATTRIBUTE_LENGTH,
    "datacontenttype": MAX_ATTRIBUTE_LENGTH,
    "specversion": MAX_ATTRIBUTE_LENGTH,
    "dataschema": MAX_DATASCHEMA_LENGTH,
}
_SAFE_CHARACTERS = ("id", "source", "subject")
_FIRST_INSTANT = datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC)
_END_INSTANT = datetime(LATEST_YEAR + 1, 1, 1, tzinfo=UTC)
TIME_OUT_OF_RANGE = f"a time in the years {EARLIEST_YEAR} to {LATEST_YEAR} (UTC)"
NOT_JSON_CONTENT = f"teamnl events carry JSON data ({JSON} or another JSON media type)"
_KNOWN_ATTRIBUTES = {
    "id",
    "source",
    "specversion",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
}


@dataclass(frozen=True)
class Problem:
    """One reason an event was refused: the field (JSON-pointer-like path) and why."""

    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class InvalidEvent(ValueError):
    def __init__(self, problems: Sequence[Problem], event_type: str | None = None) -> None:
        self.problems = list(problems)
        self.event_type = event_type
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in self.problems))


@dataclass(frozen=True)
class Event:
    """A CloudEvent of the teamnl catalogue whose attributes and data are valid."""

    id: str
    source: str
    type: str
    subject: str
    time: datetime
    data: EventData
    extensions: Mapping[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> EventSpec:
        return spec_for(self.type)

    @property
    def topic(self) -> str:
        return topic_for(self.type)

    @property
    def key(self) -> str:
        return self.subject

    def data_dict(self) -> dict[str, Any]:
        return self.data.model_dump(mode="json")

    def data_json(self) -> bytes:
        return self._data_json

    @cached_property
    def _data_json(self) -> bytes:
        # An accepted event's data is serialised for its fingerprint, its size, its NUL
        # check and its outbox row: once (the event is frozen, so is its data's JSON).
        return canonical_json(self.data_dict())

    def fingerprint(self) -> str:
        """Identifies the content, so a replay with other content can be told apart."""
        digest = hashlib.sha256(self.type.encode() + b"\0" + self.data_json())
        return digest.hexdigest()

    def attributes(self) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": JSON,
            **self.extensions,
        }

    def to_structured(self) -> dict[str, Any]:
        attributes = self.attributes()
        attributes["time"] = _iso(self.time)
        return {**attributes, "data": self.data_dict()}

    def to_kafka_headers(self) -> list[tuple[str, bytes]]:
        return list(self._kafka_headers)

    @cached_property
    def _kafka_headers(self) -> tuple[tuple[str, bytes], ...]:
        # The headers only: the record's value is data_json(), so the SDK's event carries no
        # data to dump and encode again (a third of this call's time).
        message = ce_kafka.to_binary(CloudEvent(self.attributes(), None), _FORMAT)
        return tuple(sorted(message.headers.items()))

    def record_size(self) -> int:
        """Bytes of its Kafka record (key, value, ``ce_*`` headers): what one event costs the
        producer, whose request size is bounded."""
        headers = sum(len(name) + len(value) for name, value in self.to_kafka_headers())
        return len(self.key.encode()) + len(self.data_json()) + headers


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


@dataclass(frozen=True, slots=True)
class JsonData:
    """An event's data as JSON text (a Kafka record's value), for :func:`parse_event`: its
    model reads the text itself, in one pass (pydantic's JSON mode), rather than
    ``json.loads`` making a dict that the model then reads (:func:`parse_kafka` took 18.3
    us a record against 21.8, on the bench machine). Both ways accept and refuse the same
    data for every catalogue model (``tests/unit/test_contract_json_data.py``); only some
    reasons are worded differently ("Input should be an object", not "a valid
    dictionary")."""

    value: bytes


NOT_A_JSON_OBJECT = "the record value is not a JSON object"
_NOT_AN_OBJECT = frozenset({"json_invalid", "model_type"})
_JSON_CONTENT_TYPE = JSONFormat.JSON_CONTENT_TYPE_PATTERN  # the SDK's, as it reads data
_CE_PREFIX_LENGTH = len(ce_kafka.CE_PREFIX)  # a Kafka record's attribute headers' (ce_)


# -- parsing --------------------------------------------------------------------------------


def parse_event(attributes: Mapping[str, Any], data: Any, *, prefix: str = "") -> Event:
    """Validate CloudEvents attributes and the catalogue data; return the :class:`Event`.
    `data`: the decoded JSON, or :class:`JsonData` (JSON text) for the model to read."""
    return _parse_event(dict(attributes), data, prefix)


def _parse_event(attrs: dict[str, Any], data: Any, prefix: str) -> Event:
    """:func:`parse_event` on attributes of its own (it reads the time into them)."""
    problems = _attribute_problems(attrs, prefix)
    event_type = attrs.get("type") if isinstance(attrs.get("type"), str) else None
    spec = _lookup(event_type, prefix, problems)
    if problems or spec is None:
        raise InvalidEvent(problems, event_type)
    model = _parse_data(spec, data, prefix)
    return Event(
        id=attrs["id"],
        source=attrs["source"],
        type=spec.type,
        subject=_subject(attrs, spec, model, prefix),
        time=_time(attrs),
        data=model,
        extensions=_extensions(attrs),
    )


def _attribute_problems(attrs: dict[str, Any], prefix: str) -> list[Problem]:
    absent = [Problem(f"{prefix}{n}", missing(n)) for n in DEFAULTED if attrs.get(n) is None]
    if absent:
        return absent
    bounds = _bound_problems(attrs, prefix)
    if bounds:
        return bounds  # nothing else reads an unbounded attribute
    content_type = attrs.get(DATACONTENTTYPE_ATTR)
    if content_type is not None and not (
        isinstance(content_type, str) and _json_content(content_type)
    ):
        return [Problem(f"{prefix}{DATACONTENTTYPE_ATTR}", NOT_JSON_CONTENT)]
    if isinstance(attrs.get("time"), str):
        try:
            attrs["time"] = rfc3339(attrs["time"])
        except ValueError:
            return [Problem(f"{prefix}time", "not an RFC 3339 timestamp")]
    try:
        CloudEvent(dict(attrs))
    except CloudEventValidationError as error:
        return [
            Problem(f"{prefix}{name}", str(reason))
            for name, reasons in sorted(error.errors.items())
            for reason in reasons
        ]
    except BaseCloudEventException as error:
        return [Problem(f"{prefix}specversion", str(error))]
    moment = attrs.get("time")  # offset-aware now: the SDK refuses a time without one
    if moment is not None and not _FIRST_INSTANT <= moment < _END_INSTANT:
        return [Problem(f"{prefix}time", TIME_OUT_OF_RANGE)]
    return []


def rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp (and the other ISO 8601 forms the standard library reads; RFC
    3339 also allows a lower-case "t" and "z"). The standard library's parser, not dateutil's
    ``isoparse``: 16 us a timestamp against 0.4, which was 5% of the live projection's CPU
    (the CloudEvents SDK parses ``ce_time`` with it, so :func:`parse_kafka` reads the time
    itself)."""
    return datetime.fromisoformat(text.upper())


def _bound_problems(attrs: dict[str, Any], prefix: str) -> list[Problem]:
    """Lengths, character sets and the number of extensions: checked before any parser or
    database sees an attribute (an 80 kB id must answer 422, not break an index). One pass
    over the attributes (every record read and every event accepted comes through here:
    a comprehension per check took a fifth of reading a record); the problems are listed
    in the order of `_MAX_LENGTHS`, then `_SAFE_CHARACTERS`, then the extensions'."""
    lengths: list[str] = []
    characters: list[str] = []
    extensions: list[Problem] = []
    extension_count = 0
    for name, value in attrs.items():
        limit = _MAX_LENGTHS.get(name)
        if limit is None:
            extension_count += 1
            if len(name) > MAX_EXTENSION_NAME_LENGTH or not _EXTENSION_NAME.match(name):
                reason = f"an extension name is 1-{MAX_EXTENSION_NAME_LENGTH} of [a-z0-9]"
                extensions.append(Problem(f"{prefix}{name[:MAX_EXTENSION_NAME_LENGTH]}", reason))
            elif len(str(value)) > MAX_EXTENSION_VALUE_LENGTH:
                reason = f"an extension value has at most {MAX_EXTENSION_VALUE_LENGTH} characters"
                extensions.append(Problem(f"{prefix}{name}", reason))
        elif isinstance(value, str):
            if len(value) > limit:
                lengths.append(name)
            elif name in _SAFE_CHARACTERS and not _SAFE_ATTRIBUTE.match(value):
                characters.append(name)
    if extension_count > MAX_EXTENSIONS:
        extensions = [Problem(prefix or "/", f"at most {MAX_EXTENSIONS} extension attributes")]
    if not (lengths or characters):
        return extensions
    return [
        *(
            Problem(f"{prefix}{name}", f"at most {_MAX_LENGTHS[name]} characters")
            for name in _MAX_LENGTHS
            if name in lengths
        ),
        *(
            Problem(f"{prefix}{name}", "only visible ASCII characters (no spaces or control codes)")
            for name in _SAFE_CHARACTERS
            if name in characters
        ),
        *extensions,
    ]


def _lookup(event_type: str | None, prefix: str, problems: list[Problem]) -> EventSpec | None:
    if event_type is None:
        return None
    try:
        return spec_for(event_type)
    except UnknownEventType:
        problems.append(Problem(f"{prefix}type", f"unknown event type {event_type!r}"))
        return None


def _parse_data(spec: EventSpec, data: Any, prefix: str) -> EventData:
    if data is None:
        raise InvalidEvent([Problem(f"{prefix}data", "data is required")], spec.type)
    try:
        if isinstance(data, JsonData):
            return spec.model.model_validate_json(data.value)
        return spec.model.model_validate(data)
    except ValidationError as error:
        if isinstance(data, JsonData) and _not_an_object(error):
            raise InvalidEvent([Problem(f"{prefix}data", NOT_A_JSON_OBJECT)], spec.type) from None
        raise InvalidEvent(
            [
                Problem(
                    f"{prefix}data/" + "/".join(str(part) for part in err["loc"])
                    if err["loc"]
                    else f"{prefix}data",
                    err["msg"],
                )
                for err in error.errors()
            ],
            spec.type,
        ) from None


def _not_an_object(error: ValidationError) -> bool:
    """Whether the model refused JSON data as a whole: not JSON at all, or not an object
    (a model's own check of the whole object is a ``value_error`` there, and stays one)."""
    return any(not err["loc"] and err["type"] in _NOT_AN_OBJECT for err in error.errors())


def _subject(attrs: dict[str, Any], spec: EventSpec, data: EventData, prefix: str) -> str:
    expected = aggregate_id(spec.type, data)
    given = attrs.get("subject")
    if given is not None and given != expected:
        raise InvalidEvent(
            [Problem(f"{prefix}subject", f"must equal data.{spec.aggregate} ({expected!r})")],
            spec.type,
        )
    return expected


def _time(attrs: dict[str, Any]) -> datetime:
    """The event's time (now when it names none): read by :func:`rfc3339`, and one without
    an offset refused by the SDK's validation (:func:`_attribute_problems`)."""
    moment = attrs.get("time")
    if moment is None:
        return datetime.now(UTC)
    return moment  # type: ignore[no-any-return]


def _extensions(attrs: dict[str, Any]) -> dict[str, str]:
    return {
        name: str(value)
        for name, value in attrs.items()
        if name not in _KNOWN_ATTRIBUTES and name != "partitionkey"
    }


# -- HTTP content modes ---------------------------------------------------------------------


def parse_structured(document: Any, *, prefix: str = "") -> Event:
    if not isinstance(document, dict):
        raise InvalidEvent([Problem(prefix or "/", "a structured CloudEvent is a JSON object")])
    attributes = {k: v for k, v in document.items() if k not in ("data", "data_base64")}
    if "data_base64" in document:
        raise InvalidEvent([Problem(f"{prefix}data_base64", "teamnl events carry JSON data")])
    return parse_event(attributes, document.get("data"), prefix=prefix)


def parse_binary(headers: Mapping[str, str], body: bytes) -> Event:
    attributes: dict[str, Any] = {
        name.lower()[3:]: value for name, value in headers.items() if name.lower().startswith("ce-")
    }
    content_type = headers.get("content-type", JSON).split(";")[0].strip().lower()
    if content_type != JSON:
        raise InvalidEvent([Problem("content-type", f"data must be {JSON}")])
    try:
        data = json.loads(body) if body else None
    except ValueError:
        raise InvalidEvent([Problem("data", "body is not valid JSON")]) from None
    return parse_event(attributes, data)


def parse_kafka(headers: Sequence[tuple[str, bytes | None]], value: bytes | None) -> Event:
    """Read an event back from a Kafka record in binary content mode: its attributes from
    its headers (:func:`kafka_attributes`), its data from its value (:class:`JsonData`,
    read by its model in one pass), both validated as those of every content mode are
    (:func:`parse_event`: our bounds, the time, the CloudEvents SDK's validation, the
    catalogue)."""
    attrs = kafka_attributes(headers)
    absent = [Problem(name, missing(name)) for name in DEFAULTED if name not in attrs]
    if absent:
        raise InvalidEvent(absent)
    if not value:
        raise InvalidEvent([Problem("data", NOT_A_JSON_OBJECT)])
    return _parse_event(attrs, JsonData(value), "")


def kafka_attributes(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, Any]:
    """A record's CloudEvents attributes as the SDK's Kafka binding reads them from its
    headers (``from_binary``; ``tests/unit/test_contract_kafka_headers.py`` holds the two
    to the same attributes): ``ce_<name>`` (any case) is the attribute `name`,
    ``content-type`` the ``datacontenttype``; a header without a value carries none. The
    time stays text, for :func:`parse_event` to bound before it reads it (:func:`rfc3339`).

    Not through ``from_binary`` itself, which took 5.9 us of a record's 15.4, 2.6 of them
    the validation :func:`parse_event` has the SDK do: the rest made up a time for the one
    it was not given and read data it was given none of. A rebuild reads every record of
    the log so: the whole read took 14.4 us a record against 17.1 (bench events, one
    process)."""
    attrs: dict[str, Any] = {}
    read = _HEADER_ATTRIBUTES
    try:
        for name, text in headers:
            if text is None:
                continue
            attribute = read.get(name)
            if attribute is None:
                attribute = _header_attribute(name)
            if attribute is not False:
                attrs[attribute] = text.decode("utf-8")
    except (UnicodeDecodeError, AttributeError) as error:
        raise InvalidEvent(
            [Problem("record", f"not a CloudEvent in binary mode: {error}")]
        ) from None
    return attrs


_HEADER_ATTRIBUTES: dict[str, str | Literal[False]] = {}
"""The attribute each header name read so far carries (False: none), at most
`_HEADER_NAMES_KEPT` names: every record of a deployment carries the same few, and a
name read from this table, rather than lowered and matched again, took a record's headers
1.1 us to read against 2.3 (nine headers)."""
_HEADER_NAMES_KEPT = 256  # beyond them (a producer's own names), each is worked out again


def _header_attribute(name: str) -> str | Literal[False]:
    """The CloudEvents attribute a Kafka header `name` carries, if any (and kept)."""
    lowered = name.lower()
    attribute: str | Literal[False] = False
    if lowered.startswith(ce_kafka.CE_PREFIX):
        attribute = lowered[_CE_PREFIX_LENGTH:]
    elif lowered == CONTENT_TYPE_HEADER:
        attribute = DATACONTENTTYPE_ATTR
    if len(_HEADER_ATTRIBUTES) < _HEADER_NAMES_KEPT:
        _HEADER_ATTRIBUTES[name] = attribute
    return attribute


@lru_cache(maxsize=64)
def _json_content(content_type: str) -> bool:
    """Whether a record's data is JSON by its content type (as the SDK tells, whose pattern
    this is): a deployment's records carry one or two, read once each."""
    return _JSON_CONTENT_TYPE.match(content_type) is not None
