"""Every event the contract accepts, at the edges of its bounds, is projected by the dashboard
and read back by its pages: none is dead-lettered, no page answers a 5xx.

The ingestion services accept what the contract accepts (and fits `max_event_bytes`), so an
event at a bound that the dashboard then could not store would be accepted with a 202 and
lost to ISO NL: a time of year 10000 in UTC was (the contract bounds it now). The values are
worked out from each model's JSON Schema - its longest texts (in two-byte characters), its
largest numbers and lists, its first and last days - and kept only where the model accepts
them, alone and all together."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dashboard_harness import dashboard_settings, make_event, running_dashboard
from teamnl_shared.contract.envelope import Event, InvalidEvent
from teamnl_shared.contract.registry import CATALOGUE, spec_for
from teamnl_shared.contract.types import EARLIEST_YEAR, FIRST_DAY, LAST_DAY, LATEST_YEAR
from teamnl_shared.ingestion.settings import IngestionSettings

pytestmark = pytest.mark.integration
MAX_EVENT_BYTES = IngestionSettings.model_fields["max_event_bytes"].default
SOURCE = "/partners/" + "p" * 200  # a long source, within its bound
TIMES = (
    datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC),
    datetime(LATEST_YEAR, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
)


def _resolved(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in prop:
        return _resolved(defs[prop["$ref"].rsplit("/", 1)[1]], defs)
    branches = [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
    return _resolved(branches[0], defs) if branches else prop


def _scalars(prop: dict[str, Any]) -> list[Any]:
    """A scalar property's values at its bounds (longest first)."""
    if "enum" in prop:
        return list(prop["enum"])
    if prop.get("format") == "date":
        return [str(LAST_DAY), str(FIRST_DAY)]
    if prop.get("type") == "integer":
        return [v for v in (prop.get("maximum"), prop.get("minimum")) if v is not None]
    if prop.get("type") == "string" and "maxLength" in prop:
        longest = prop["maxLength"]
        return ["\u00e9" * longest, "a" * longest]  # two bytes each in UTF-8, then ASCII
    return []


def _candidates(prop: dict[str, Any], defs: dict[str, Any]) -> list[Any]:
    prop = _resolved(prop, defs)
    if prop.get("type") != "array":
        return _scalars(prop)
    items = _resolved(prop["items"], defs)
    most = prop.get("maxItems", 1)
    if "enum" in items:
        return [list(items["enum"])[:most]]
    if items.get("type") == "integer":
        low, high = items.get("minimum", 0), items.get("maximum", most)
        return [list(range(low, min(high, low + most - 1) + 1))]
    if items.get("type") == "string":
        width = items.get("maxLength", 8)
        return [[f"{i:03d}" + "\u00e9" * (width - 3) for i in range(most)], ["a", "b"]]
    return []


def _variants(event_type: str) -> Iterator[dict[str, Any]]:
    """The example's data with one field at a bound, for each such value the model accepts;
    then with every field at its first accepted bound at once."""
    spec = spec_for(event_type)
    schema = spec.model.model_json_schema()
    defs = schema.get("$defs", {})
    chosen: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        for value in _candidates(prop, defs):
            data = {**spec.example, name: value}
            if _valid(event_type, data):
                chosen.setdefault(name, value)
                yield data
    together = {**spec.example, **chosen}
    if _valid(event_type, together):
        yield together


def _valid(event_type: str, data: dict[str, Any]) -> bool:
    try:
        event = make_event(event_type, time=TIMES[0], source=SOURCE, **data)
    except InvalidEvent:
        return False
    return event.record_size() <= MAX_EVENT_BYTES  # what the ingestion services accept


def extreme_events() -> list[Event]:
    return [
        make_event(event_type, time=TIMES[n % 2], source=SOURCE, **data)
        for event_type in sorted(CATALOGUE)
        for n, data in enumerate(_variants(event_type))
    ]


def test_every_type_has_events_at_its_bounds() -> None:
    """The schema walk finds bounds for every type (a type it could not read would test
    nothing), and days at both ends."""
    events = extreme_events()
    assert {e.type for e in events} == set(CATALOGUE)
    days = {str(v) for e in events for v in e.data.model_dump().values()}
    assert {str(FIRST_DAY), str(LAST_DAY)} <= days
    assert len(events) > 3 * len(CATALOGUE)


READS = (
    "/api/v1/overview",
    "/api/v1/initiatives/nlib",
    "/api/v1/initiatives/tinl",
    "/api/v1/initiatives/werkplaats",
    "/api/v1/initiatives/globalstars",
    "/api/v1/findings",
    "/api/v1/partners/quality",
    "/",
    "/initiatives/nlib",
    "/initiatives/tinl",
    "/initiatives/werkplaats",
    "/initiatives/globalstars",
    "/report",
    "/markets",
    "/findings",
    "/partners",
)


@pytest.mark.timeout(300)
async def test_events_at_the_bounds_of_the_contract_are_projected_and_read(
    database_url: str, kafka_bootstrap: str
) -> None:
    events = extreme_events()
    settings = dashboard_settings(database_url, kafka_bootstrap)
    async with running_dashboard(settings) as dash:
        await dash.publish(*events)
        await dash.wait_applied(len(events))
        dead = await dash.pool.fetch("SELECT event_type, reason FROM proj.dead_letters")
        answers = {}
        for path in sorted({*READS, *_plain_gets(dash.app)}):
            for year in (EARLIEST_YEAR, LATEST_YEAR):
                params = {"period": str(year), "as_of": f"{year}-12-31"}
                answers[f"{path} {year}"] = (await dash.member.get(path, params=params)).status_code
    assert [tuple(row) for row in dead] == []
    assert {read: status for read, status in answers.items() if status >= 500} == {}
    wanted = {f"{path} {year}" for path in READS for year in (EARLIEST_YEAR, LATEST_YEAR)}
    assert {read: answers[read] for read in wanted if answers[read] != 200} == {}


def _plain_gets(app: Any) -> set[str]:
    """Every GET route of the app without a path parameter, but the streams and files."""
    return {
        route.path
        for route in app.routes
        if "GET" in getattr(route, "methods", ())
        and "{" not in route.path
        and not route.path.endswith(("/stream", "/live/events", "/login"))
        and route.path not in ("/healthz", "/readyz", "/metrics")
    }
