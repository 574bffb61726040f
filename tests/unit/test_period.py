"""The reading a member asks for: a period and an as-of date, with the defaults filled in."""

from __future__ import annotations

from datetime import date

import pytest

from teamnl_dashboard.period import InvalidReading, Period, Reading, read

TODAY = date(2026, 12, 1)


def test_a_past_years_data_opens_at_its_own_latest_date() -> None:
    assert read(None, None, latest_event_on=date(2018, 12, 21), today=TODAY) == Reading(
        Period.year(2018), date(2018, 12, 21)
    )


def test_this_years_data_is_read_as_of_today_even_when_quiet_for_a_while() -> None:
    chosen = read(None, None, latest_event_on=date(2026, 10, 1), today=TODAY)
    assert chosen == Reading(Period.year(2026), TODAY)
    assert read(None, None, latest_event_on=None, today=TODAY).as_of == TODAY


def test_a_period_and_an_as_of_date_asked_for() -> None:
    chosen = read("2017-2021", "2018-06-30", latest_event_on=date(2018, 12, 21), today=TODAY)
    assert (chosen.period.label, chosen.as_of, chosen.until) == (
        "2017-2021",
        date(2018, 6, 30),
        date(2018, 6, 30),
    )
    assert read("2018", None, latest_event_on=None, today=TODAY).until == date(2018, 12, 31)


@pytest.mark.parametrize(
    ("period", "as_of", "parameter"),
    [("2018-2017", None, "period"), ("18", None, "period"), (None, "31-12-2018", "as_of")],
)
def test_a_bad_value_names_its_parameter(
    period: str | None, as_of: str | None, parameter: str
) -> None:
    with pytest.raises(InvalidReading) as refused:
        read(period, as_of, latest_event_on=None, today=TODAY)
    assert refused.value.parameter == parameter
