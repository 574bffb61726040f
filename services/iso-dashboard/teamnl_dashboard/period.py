"""The reporting period and the as-of date every view and rule is read in.

A period is a calendar year (``2018``) or a run of years (``2017-2021``, the programme
period of the letter). ``as_of`` is the date the figures are read at: events after it are
left out, and the scheduled rules judge silence and gaps against it instead of today.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

PROGRAMME_FIRST_YEAR = 2017
PROGRAMME_LAST_YEAR = 2021
EARLIEST_YEAR = 2000
LATEST_YEAR = 2100
_SPEC = re.compile(r"^(\d{4})(?:-(\d{4}))?$")


class InvalidPeriod(ValueError):
    """A period or as-of date a member asked for that cannot be read."""


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


def end_of_day(day: date) -> datetime:
    """The last instant of ``day`` in UTC: an as-of date includes the whole day."""
    return datetime.combine(day, time.max, tzinfo=UTC)
