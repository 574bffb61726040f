"""The letter's reference facts: the Dutch cities it names and the 44 Eureka countries."""

from __future__ import annotations

import pycountry
import pytest

from teamnl_dashboard.reference import EUREKA_COUNT, EUREKA_COUNTRIES, dutch_city_for
from teamnl_dashboard.web.geo import dutch_position


@pytest.mark.parametrize(
    "name", ["Tilburg", "Zaandam", "Arnhem", "Rotterdam", "Eindhoven", "Amsterdam"]
)
def test_the_six_dutch_cities_of_the_letter_resolve_and_have_a_place_on_the_map(
    name: str,
) -> None:
    city = dutch_city_for(name)
    assert city is not None and city.name == name and city.country == "NL"
    assert dutch_position(name) is not None


def test_the_44_eureka_countries_are_iso_codes_and_leave_the_global_stars_countries_out() -> None:
    assert len(EUREKA_COUNTRIES) == EUREKA_COUNT == 44
    assert all(pycountry.countries.get(alpha_2=code) for code in EUREKA_COUNTRIES)
    assert not {"IN", "TW", "BR"} & EUREKA_COUNTRIES  # the letter's first calls
