"""The reporting period and the as-of date every view and rule is read in.

A period is a calendar year (``2018``) or a run of years (``2017-2021``, the programme
period of the letter). ``as_of`` is the date the figures are read at: events after it are
left out, and the scheduled rules judge silence and gaps against it instead of today.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from urllib.parse import urlencode

from teamnl_shared.contract.types import EARLIEST_YEAR, LATEST_YEAR

PROGRAMME_FIRST_YEAR = 2017
PROGRAMME_LAST_YEAR = 2021
_SPEC = re.compile(r"^(\d{4})(?:-(\d{4}))?$")


class InvalidPeriod(ValueError):
    """A period or as-of date a member asked for that cannot be read."""


class InvalidReading(InvalidPeriod):
    """A bad ``period`` or ``as_of`` query parameter: names the parameter and the reason."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


@dataclass(frozen=True)
class Period:
    """Whole calendar years ``first_year`` .. ``last_year`` (both included)."""

    first_year: int
    last_year: int

    def __post_init__(self) -> None:
        if not EARLIEST_YEAR <= self.first_year <= self.last_year <= LATEST_YEAR:
            raise InvalidPeriod(
                f"a period runs between {EARLIEST_YEAR} and {LATEST_YEAR}, first year first"
            )

    @classmethod
    def year(cls, year: int) -> Period:
        return cls(year, year)

    @classmethod
    def programme(cls) -> Period:
        return cls(PROGRAMME_FIRST_YEAR, PROGRAMME_LAST_YEAR)

    @classmethod
    def parse(cls, spec: str) -> Period:
        """``"2018"`` or ``"2017-2021"``; :class:`InvalidPeriod` for anything else."""
        match = _SPEC.match(spec.strip())
        if match is None:
            raise InvalidPeriod("a period is a year (2018) or a run of years (2017-2021)")
        first = int(match.group(1))
        return cls(first, int(match.group(2) or first))

    @property
    def start(self) -> date:
        return date(self.first_year, 1, 1)

    @property
    def end(self) -> date:
        """The first day after the period (exclusive bound)."""
        return date(self.last_year + 1, 1, 1)

    @property
    def years(self) -> range:
        return range(self.first_year, self.last_year + 1)

    @property
    def label(self) -> str:
        if self.first_year == self.last_year:
            return str(self.first_year)
        return f"{self.first_year}-{self.last_year}"

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end


@dataclass(frozen=True)
class Reading:
    """What a page or API call reads: a period, as of a date (both included)."""

    period: Period
    as_of: date

    @property
    def until(self) -> date:
        """The last day read: the period's last day, or the as-of date when earlier."""
        return min(self.as_of, date(self.period.last_year, 12, 31))

    def query(self, **more: str) -> str:
        """The reading as a URL query string (for links that keep it), plus ``more``."""
        return urlencode({"period": self.period.label, "as_of": str(self.as_of), **more})


def parse_as_of(spec: str) -> date:
    """``"2018-12-31"``; :class:`InvalidPeriod` for anything else."""
    try:
        day = date.fromisoformat(spec.strip())
    except ValueError:
        raise InvalidPeriod("an as-of date is an ISO 8601 date (2018-12-31)") from None
    if not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
        raise InvalidPeriod(f"an as-of date lies between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return day


def default_as_of(latest_event_on: date | None, today: date) -> date:
    """The latest event's date when it lies in a past year (a seeded or archived data set,
    like the letter's 2018, opens at its own date), else today. Data of this year is read
    as of today: a service that went quiet last month must not pull the reading back to
    its last event and hide that very silence."""
    if latest_event_on is not None and latest_event_on.year < today.year:
        return latest_event_on
    return today


def read(
    period: str | None, as_of: str | None, *, latest_event_on: date | None, today: date
) -> Reading:
    """The reading a member asked for, with the defaults filled in: as of
    :func:`default_as_of`, in the year of the latest event up to that date (or of the
    as-of date when there is none). :class:`InvalidReading` names a bad parameter."""
    try:
        day = parse_as_of(as_of) if as_of else default_as_of(latest_event_on, today)
    except InvalidPeriod as bad:
        raise InvalidReading("as_of", str(bad)) from None
    try:
        chosen = Period.parse(period) if period else None
    except InvalidPeriod as bad:
        raise InvalidReading("period", str(bad)) from None
    if chosen is None:
        latest = latest_event_on if latest_event_on and latest_event_on <= day else day
        chosen = Period.year(latest.year)
    return Reading(chosen, day)


def end_of_day(day: date) -> datetime:
    """The last instant of ``day`` in UTC: an as-of date includes the whole day."""
    return datetime.combine(day, time.max, tzinfo=UTC)
