"""Reference facts from the minister's letter that the dashboard checks the events against.

The 38 Cities of Opportunity the letter names (it says forty), with their tier and country,
the four TINL focus markets, the Dutch cities the letter names (where TINL prepares foreign
markets at home), the 44 Eureka countries Global Stars stays outside of, and the letter's
targets. Event data names cities freely ("New York",
"Guangzhou"), so :func:`city_for` matches a name to a reference city through its aliases.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date

# re-exported: the contract declares the families once
from teamnl_shared.contract.registry import FAMILIES as FAMILIES
from teamnl_shared.contract.tinl import TinlPartner

FOCUS_MARKETS: tuple[str, ...] = ("CN", "DE", "US", "smart-cities")
HOME_COUNTRY = "NL"
SEED_EVENT_PREFIX = "seed-"
"""The ids of the seeded demo's events (teamnl_suite.seed): figures illustrative."""
CITIES_STATED = 40
"""The letter: NLIB identified forty Cities of Opportunity; it names 38 of them."""


@dataclass(frozen=True)
class City:
    slug: str
    name: str
    tier: str  # pilot | golden | silver
    country: str
    aliases: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        return (self.name, self.slug, *self.aliases)


def _city(name: str, tier: str, country: str, *aliases: str) -> City:
    return City(_slug(name), name, tier, country, aliases)


def _slug(name: str) -> str:
    return "-".join(normalise(name).split())


def normalise(name: str) -> str:
    """Lower case, accents and punctuation dropped: 'São Paulo' -> 'sao paulo'."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    for mark in "-./":
        plain = plain.replace(mark, " ")
    return " ".join(plain.split())


CITIES_OF_OPPORTUNITY: tuple[City, ...] = (
    _city("Warsaw", "pilot", "PL", "Warszawa"),
    _city("Munich", "pilot", "DE", "München", "Muenchen"),
    _city("Dubai", "pilot", "AE"),
    _city("Ho Chi Minh City", "pilot", "VN", "Ho Chi Minh", "Saigon"),
    _city(
        "Guangzhou/Pearl River Delta", "pilot", "CN", "Guangzhou", "Pearl River Delta", "Shenzhen"
    ),
    _city("Mexico City", "pilot", "MX", "Ciudad de México"),
    _city("Berlin", "golden", "DE"),
    _city("Hamburg", "golden", "DE"),
    _city("Düsseldorf", "golden", "DE", "Duesseldorf"),
    _city("Paris", "golden", "FR"),
    _city("Nantes", "golden", "FR"),
    _city("London", "golden", "GB"),
    _city("Manchester-Liverpool", "golden", "GB", "Manchester", "Liverpool"),
    _city("Shanghai", "golden", "CN"),
    _city("Tokyo", "golden", "JP"),
    _city("Bangkok", "golden", "TH"),
    _city("Singapore", "golden", "SG"),
    _city("Kuala Lumpur", "golden", "MY"),
    _city("Jakarta", "golden", "ID"),
    _city("Mumbai", "golden", "IN", "Bombay"),
    _city("New York City", "golden", "US", "New York", "NYC"),
    _city("Chicago", "golden", "US"),
    _city("Houston", "golden", "US"),
    _city("San Francisco", "golden", "US", "San Francisco Bay Area"),
    _city("São Paulo", "golden", "BR"),
    _city("Milan", "silver", "IT", "Milano"),
    _city("Kyiv", "silver", "UA", "Kiev"),
    _city("Istanbul", "silver", "TR"),
    _city("Moscow", "silver", "RU"),
    _city("Seoul", "silver", "KR"),
    _city("Manila", "silver", "PH"),
    _city("Dhaka", "silver", "BD"),
    _city("Buenos Aires", "silver", "AR"),
    _city("Bogotá", "silver", "CO"),
    _city("Tangier", "silver", "MA", "Tanger"),
    _city("Cairo", "silver", "EG"),
    _city("Lagos", "silver", "NG"),
    _city("Nairobi", "silver", "KE"),
)


def _by_name(cities: tuple[City, ...]) -> dict[str, City]:
    return {normalise(name): city for city in cities for name in city.names()}


def _find(by_name: dict[str, City], names: tuple[str | None, ...]) -> City | None:
    return next((by_name[normalise(n)] for n in names if n and normalise(n) in by_name), None)


_BY_NAME = _by_name(CITIES_OF_OPPORTUNITY)


def city_for(*names: str | None) -> City | None:
    """The City of Opportunity any of ``names`` refers to, if one does."""
    return _find(_BY_NAME, names)


def market_of(market: str | None, country: str | None) -> str | None:
    """The foreign market of an activity: its market, or for a theme the foreign country."""
    if market and len(market) == 2:
        return market
    return country if country and country != HOME_COUNTRY else None


DUTCH_CITIES: tuple[City, ...] = (
    _city("Tilburg", "domestic", HOME_COUNTRY),
    _city("Zaandam", "domestic", HOME_COUNTRY, "Zaanstad"),
    _city("Arnhem", "domestic", HOME_COUNTRY),
    _city("Rotterdam", "domestic", HOME_COUNTRY),
    _city("Eindhoven", "domestic", HOME_COUNTRY, "Brainport Eindhoven"),
    _city("Amsterdam", "domestic", HOME_COUNTRY),
)
"""The Dutch cities the letter names: China Business Week in Tilburg, Zaandam, Arnhem and
Rotterdam; the Smart City New York mission linking Rotterdam, Eindhoven and Amsterdam."""

_DUTCH_BY_NAME = _by_name(DUTCH_CITIES)


def dutch_city_for(*names: str | None) -> City | None:
    """The Dutch city of the letter any of ``names`` refers to, if one does."""
    return _find(_DUTCH_BY_NAME, names)


# The 44 Eureka countries of the letter ("projecten buiten de 44 Eureka landen"), as
# ISO 3166-1 alpha-2 codes, declared once here. Source: the Eureka membership in 2018
# (eurekanetwork.org, "Eureka countries"; the annual reports): the 40 full member countries
# (the 28 EU member states of 2018 and Iceland, Israel, Monaco, Montenegro, North Macedonia,
# Norway, Russia, San Marino, Serbia, Switzerland, Turkey, Ukraine) and the associated
# countries Canada, South Korea, South Africa and Argentina. The European Union itself is a
# member too but no country. ISO NL amends this list when the membership changes.
EUREKA_COUNTRIES: frozenset[str] = frozenset(
    {
        *("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE"),
        *("IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "GB"),
        *("IS", "IL", "MC", "ME", "MK", "NO", "RU", "SM", "RS", "CH", "TR", "UA"),
        *("CA", "KR", "ZA", "AR"),
    }
)
EUREKA_COUNT = 44

# The letter's targets (versioned as rules in rules/catalogue.py).
WERKPLAATS_TARGET_FIRST_YEAR = 2019
"""The portfolio target starts in 2019 (20 projects); never judged for 2017-2018."""
TINL_CONVENANT_SIGNED = date(2018, 1, 22)
NETWORK_OPERATIONAL_SINCE = date(2018, 1, 1)
"""The letter: after a start-up phase in 2017, NLIB, TINL and De Werkplaats became fully
operational in 2018 - the network's absence somewhere is judged from then on."""
TINL_PARTNERS: tuple[str, ...] = tuple(p.value for p in TinlPartner)
"""The eight partners of the TINL convenant of 22 January 2018 (partner keys)."""
PILOT_CITIES: tuple[str, ...] = tuple(c.slug for c in CITIES_OF_OPPORTUNITY if c.tier == "pilot")
