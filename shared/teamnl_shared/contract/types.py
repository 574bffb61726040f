"""Value types and base models shared by every v1 event of the catalogue.

Each event's data is an `EventData`: frozen, unknown fields refused, integers never coerced
from strings or booleans. Money is integer euro cents, days are ISO 8601 dates, countries
are ISO 3166-1 alpha-2 codes checked against pycountry.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, ClassVar, TypeVar

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

SMART_CITIES = "smart-cities"
"""The one TINL market that is a theme, not a country."""

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"

# Upper bounds of the catalogue, declared once. Far above anything real (one event worth
# EUR 100 bn, a mission of a million companies), far below what a database column holds.
# They bound one event, not how many a partner sends: a sum of money over many events (a
# year's spending, a mission's contract value) is kept in numeric, since a bigint total
# passes 2^63 - 1 cents after ~922,000 maximal events.
MAX_CENTS = 10**13
"""EUR 100 bn in cents: the most one event may carry."""
MAX_COUNT = 1_000_000
"""The most participants, leads, proposals, ... one event may count."""
MAX_TEXT_LENGTH = 500
"""Characters of one free-text field."""
MAX_IDENTIFIER_LENGTH = 64
"""Characters of one identifier or slug chosen by a partner system."""
MAX_LIST_ITEMS = 100
"""Items of one list (partners, sectors, SDGs, consortium members)."""
EARLIEST_YEAR = 2000
LATEST_YEAR = 2100
"""The years an event's days, years and time lie in, and a member's readings: the network
began in 2017-2018, and a day such as 0001-01-01 or 9999-12-31 is a partner system's
placeholder or typo (the earliest is stored as ``-infinity``; a later one cannot be moved
by a rule's 60 days, or to UTC from a negative offset, without overflowing)."""
FIRST_DAY = date(EARLIEST_YEAR, 1, 1)
LAST_DAY = date(LATEST_YEAR, 12, 31)

# Bounds of the CloudEvents attributes (checked by the envelope before anything else reads
# them): an id must fit a PostgreSQL index entry and a Kafka header many times over.
MAX_EVENT_ID_LENGTH = 128
MAX_SOURCE_LENGTH = 256
MAX_ATTRIBUTE_LENGTH = 256
"""Characters of ``type``, ``subject``, ``datacontenttype`` and ``time``."""
MAX_DATASCHEMA_LENGTH = 2048
MAX_EXTENSIONS = 16
"""Extension attributes on one event."""
MAX_EXTENSION_NAME_LENGTH = 20
"""The CloudEvents specification's own advice for extension attribute names."""
MAX_EXTENSION_VALUE_LENGTH = 1024
SAFE_ATTRIBUTE_PATTERN = r"^[\x21-\x7e]+$"
"""Visible ASCII only: no spaces, control characters or look-alike Unicode in ids."""
_SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"


_COUNTRY_CODES = frozenset(country.alpha_2 for country in pycountry.countries)
"""pycountry's alpha-2 codes, read once: its ``get`` lower-cases and looks up each code
again (a microsecond, on every country of every event read)."""


def is_country_code(code: str) -> bool:
    """An ISO 3166-1 alpha-2 country code (upper case)."""
    return code in _COUNTRY_CODES


def _known_country(code: str) -> str:
    if not is_country_code(code):  # upper case: the pattern is checked first
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def _known_market(market: str) -> str:
    return market if market == SMART_CITIES else _known_country(market)


def _iso_day(value: object) -> object:
    """Accept a `date` or an ISO 8601 string only, never a number read as a timestamp."""
    if isinstance(value, date | str):
        return value
    raise ValueError("expected an ISO 8601 date (YYYY-MM-DD)")


def _within_the_years(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"a day from {FIRST_DAY} to {LAST_DAY}")
    return day


def _unique(items: Sequence[Hashable]) -> Sequence[Hashable]:
    if len(set(items)) != len(items):
        raise ValueError("items must be unique")
    return items


CountryCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{2}$"),
    AfterValidator(_known_country),
    Field(description="ISO 3166-1 alpha-2 country code, upper case", examples=["NL"]),
]
Market = Annotated[
    str,
    StringConstraints(pattern=rf"^([A-Z]{{2}}|{SMART_CITIES})$"),
    AfterValidator(_known_market),
    Field(description=f"ISO 3166-1 alpha-2 country code, or the theme '{SMART_CITIES}'"),
]
Sdg = Annotated[int, Strict(), Field(ge=1, le=17, description="UN Sustainable Development Goal")]
Cents = Annotated[
    int,
    Strict(),
    Field(ge=0, le=MAX_CENTS, description="amount in euro cents, never negative, at most 10^13"),
]
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_COUNT)]
Year = Annotated[int, Strict(), Field(ge=EARLIEST_YEAR, le=LATEST_YEAR)]
NonEmptyStr = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_LENGTH)
]
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_IDENTIFIER_LENGTH, pattern=_ID_PATTERN),
    Field(description="identifier chosen by the partner system"),
]
Slug = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_IDENTIFIER_LENGTH, pattern=_SLUG_PATTERN),
    Field(description="lower-case slug, e.g. 'ho-chi-minh-city'"),
]
Day = Annotated[
    date,
    BeforeValidator(_iso_day),
    AfterValidator(_within_the_years),
    Field(
        description=f"ISO 8601 date, {FIRST_DAY} to {LAST_DAY}",
        json_schema_extra={"formatMinimum": str(FIRST_DAY), "formatMaximum": str(LAST_DAY)},
    ),
]
TIME_DESCRIPTION = f"RFC 3339 timestamp, in the years {EARLIEST_YEAR} to {LATEST_YEAR} (UTC)"
"""An event's ``time`` (checked by the envelope, not a model)."""

T = TypeVar("T", bound=Hashable)
NonEmptyUniqueList = Annotated[
    tuple[T, ...],
    Field(min_length=1, max_length=MAX_LIST_ITEMS, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_unique),
]
"""One to ``MAX_LIST_ITEMS`` items, no duplicates; a tuple so that frozen events stay
immutable."""


@dataclass(frozen=True)
class EventMeta:
    """What the `event` decorator attaches to a model; the registry reads it."""

    type: str
    aggregate: str
    example: dict[str, Any]


class EventData(BaseModel):
    """Base of every event's data payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_meta: ClassVar[EventMeta | None] = None
    TYPE: ClassVar[str] = ""
    """The CloudEvents type this model is the data of (set by `event`): handler, projection
    and rule maps are keyed by ``MissionHeld.TYPE``, never by a re-typed string."""


M = TypeVar("M", bound=type[EventData])


def event(type_: str, *, aggregate: str, example: dict[str, Any]) -> Callable[[M], M]:
    """Declare a model as the data of one CloudEvents type (read by `registry`)."""

    def declare(model: M) -> M:
        model.event_meta = EventMeta(type_, aggregate, example)
        model.TYPE = type_
        return model

    return declare


def not_before(earlier_field: str) -> Callable[[date, ValidationInfo], date]:
    """A field validator refusing a date earlier than the date in `earlier_field`."""

    def check(value: date, info: ValidationInfo) -> date:
        earlier = info.data.get(earlier_field)
        if earlier is not None and value < earlier:
            raise ValueError(f"{info.field_name} must not be before {earlier_field}")
        return value

    return check


class DateSpan(EventData):
    """Something that takes place from `start_date` to `end_date`, both inclusive."""

    start_date: Day
    end_date: Day

    check_end_date = field_validator("end_date")(not_before("start_date"))


class BudgetSpent(EventData):
    """Money spent from an initiative's yearly budget (each family subclasses this once)."""

    spend_id: Identifier
    year: Year = Field(description="budget year the spending counts against")
    amount_cents: Cents
    category: NonEmptyStr = Field(description="e.g. staff, travel, events, subsidy")
    spent_on: Day


BUDGET_SPENT_EXAMPLE: dict[str, Any] = {
    "spend_id": "2019-0042",
    "year": 2019,
    "amount_cents": 1_250_000,
    "category": "events",
    "spent_on": "2019-03-14",
}
