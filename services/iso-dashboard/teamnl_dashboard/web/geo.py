"""The offline world map: country outlines projected at build time (frontend/build/build.mjs,
equirectangular 960x480) and markers projected here with the same formula."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import pycountry

from ..reference import city_for, dutch_city_for
from .templating import DIST

WIDTH, HEIGHT = 960, 480
WORLD_FILE = DIST / "world-110m.json"


def project(lat: float, lon: float) -> tuple[float, float]:
    return round((lon + 180) / 360 * WIDTH, 1), round((90 - lat) / 180 * HEIGHT, 1)


# Where the Cities of Opportunity (teamnl_dashboard.reference) lie, by slug: map data only.
COORDINATES: dict[str, tuple[float, float]] = {
    "warsaw": (52.23, 21.01),
    "munich": (48.14, 11.58),
    "dubai": (25.20, 55.27),
    "ho-chi-minh-city": (10.82, 106.63),
    "guangzhou-pearl-river-delta": (23.13, 113.26),
    "mexico-city": (19.43, -99.13),
    "berlin": (52.52, 13.40),
    "hamburg": (53.55, 9.99),
    "dusseldorf": (51.23, 6.77),
    "paris": (48.86, 2.35),
    "nantes": (47.22, -1.55),
    "london": (51.51, -0.13),
    "manchester-liverpool": (53.45, -2.60),
    "shanghai": (31.23, 121.47),
    "tokyo": (35.68, 139.69),
    "bangkok": (13.76, 100.50),
    "singapore": (1.35, 103.82),
    "kuala-lumpur": (3.14, 101.69),
    "jakarta": (-6.21, 106.85),
    "mumbai": (19.08, 72.88),
    "new-york-city": (40.71, -74.01),
    "chicago": (41.88, -87.63),
    "houston": (29.76, -95.37),
    "san-francisco": (37.77, -122.42),
    "sao-paulo": (-23.55, -46.63),
    "milan": (45.46, 9.19),
    "kyiv": (50.45, 30.52),
    "istanbul": (41.01, 28.98),
    "moscow": (55.76, 37.62),
    "seoul": (37.57, 126.98),
    "manila": (14.60, 120.98),
    "dhaka": (23.81, 90.41),
    "buenos-aires": (-34.60, -58.38),
    "bogota": (4.71, -74.07),
    "tangier": (35.76, -5.83),
    "cairo": (30.04, 31.24),
    "lagos": (6.52, 3.38),
    "nairobi": (-1.29, 36.82),
}


# The Dutch cities of the letter (teamnl_dashboard.reference.DUTCH_CITIES), by slug.
DUTCH_COORDINATES: dict[str, tuple[float, float]] = {
    "tilburg": (51.56, 5.09),
    "zaandam": (52.44, 4.83),
    "arnhem": (51.98, 5.91),
    "rotterdam": (51.92, 4.48),
    "eindhoven": (51.44, 5.48),
    "amsterdam": (52.37, 4.90),
}


def dutch_position(name: str | None) -> tuple[str, float, float] | None:
    """(name, x, y) of the Dutch city of the letter `name` refers to."""
    city = dutch_city_for(name)
    if city is None or city.slug not in DUTCH_COORDINATES:
        return None
    x, y = project(*DUTCH_COORDINATES[city.slug])
    return city.name, x, y


def city_position(*names: str | None) -> tuple[str, float, float] | None:
    """(tier, x, y) of the City of Opportunity any of ``names`` refers to."""
    city = city_for(*names)
    if city is None or city.slug not in COORDINATES:
        return None
    x, y = project(*COORDINATES[city.slug])
    return city.tier, x, y


@lru_cache(maxsize=4)
def _outlines(path: Path, mtime: float) -> list[dict[str, Any]]:
    countries = json.loads(path.read_text())["countries"]
    for country in countries:
        found = pycountry.countries.get(numeric=country["id"]) if country.get("id") else None
        country["code"] = found.alpha_2 if found else None
    return countries


def outlines() -> list[dict[str, Any]]:
    """Country outlines from the built bundle; none when it was not built."""
    if not WORLD_FILE.is_file():
        return []
    return _outlines(WORLD_FILE, WORLD_FILE.stat().st_mtime)


def _level(events: int) -> int:
    return 0 if events <= 0 else 1 if events < 5 else 2 if events < 20 else 3


def world(
    activity_by_country: Mapping[str, int],
    cities: Iterable[Mapping[str, Any]],
    preparation: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The map's view model: outlines shaded by activity, one marker per city, and one per
    Dutch city where TINL prepared a foreign market (China Business Week in Tilburg)."""
    countries = [
        {
            "d": c["d"],
            "name": c["name"],
            "code": c["code"],
            "events": activity_by_country.get(c["code"] or "", 0),
            "level": _level(activity_by_country.get(c["code"] or "", 0)),
        }
        for c in outlines()
    ]
    markers = []
    for city in cities:
        position = city_position(city.get("slug"), city.get("name"))
        if position is None:
            continue
        tier, x, y = position
        markers.append(
            {
                "name": city.get("name"),
                "tier": city.get("tier") or tier,
                "x": x,
                "y": y,
                "covered": bool(city.get("covered")),
                "last_activity": city.get("last_activity"),
            }
        )
    domestic: dict[str, dict[str, Any]] = {}
    for event in preparation:
        position = dutch_position(event.get("city"))
        if position is not None:
            name, x, y = position
            entry = domestic.setdefault(name, {"name": name, "x": x, "y": y, "markets": []})
            entry["markets"].append(event.get("market"))
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "countries": countries,
        "cities": markers,
        "domestic": list(domestic.values()),
        "covered": sum(1 for m in markers if m["covered"]),
        "total": len(markers),
    }
