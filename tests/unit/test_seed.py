"""The seed: the letter's facts as CloudEvents that the catalogue accepts, unchanged."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from teamnl_shared.contract.envelope import Event, parse_structured
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.contract.topics import PUBLISHED_BY
from teamnl_suite import seed

EVENTS = seed.seed_events()
ALL = [event for events in EVENTS.values() for event in events]


def parsed(event_type: str) -> list[Event]:
    return [parse_structured(e) for e in ALL if e["type"] == event_type]


def test_every_seed_event_is_a_valid_event_of_the_catalogue() -> None:
    for document in ALL:
        event = parse_structured(document)
        assert event.to_structured()["data"] == spec_for(event.type).model.model_validate(
            document["data"]
        ).model_dump(mode="json")


@pytest.mark.parametrize("service", sorted(EVENTS))
def test_each_service_gets_only_its_own_families_written_as_its_seed_partner(service: str) -> None:
    for document in EVENTS[service]:
        event = parse_structured(document)
        assert PUBLISHED_BY[event.spec.family] == service
        assert event.source == f"/partners/{seed.SEED_PARTNERS[service]}"


def test_ids_are_unique_and_deterministic_so_seeding_twice_is_a_replay() -> None:
    ids = [(e["source"], e["id"]) for e in ALL]
    assert len(ids) == len(set(ids))
    again = seed.seed_events()
    assert [parse_structured(e).fingerprint() for es in again.values() for e in es] == [
        parse_structured(e).fingerprint() for e in ALL
    ]


def test_38_named_cities_of_opportunity_6_pilot_19_golden_13_silver() -> None:
    cities = parsed("nl.teamnl.nlib.city.programme.updated.v1")
    assert len({c.subject for c in cities}) == 38
    tiers = Counter(str(c.data.tier) for c in cities)  # type: ignore[attr-defined]
    assert tiers == {"pilot": 6, "golden": 19, "silver": 13}
    names = {c.data.city for c in cities}  # type: ignore[attr-defined]
    assert {"Warsaw", "Guangzhou/Pearl River Delta", "São Paulo", "Bogotá", "Kyiv"} <= names


def test_nlib_missions_outgoing_to_five_countries_and_incoming_from_bavaria() -> None:
    held = parsed("nl.teamnl.nlib.mission.held.v1")
    outgoing = {m.data.country for m in held if m.data.direction == "outgoing"}  # type: ignore[attr-defined]
    incoming = {m.data.country for m in held if m.data.direction == "incoming"}  # type: ignore[attr-defined]
    assert outgoing == {"VN", "CN", "IN", "CO", "PL"}
    assert incoming == {"DE"}
    followed_up = {f.subject for f in parsed("nl.teamnl.nlib.mission.followup.held.v1")}
    assert followed_up == {m.subject for m in held}
    assert parsed("nl.teamnl.nlib.lead.converted.v1")


def test_tinl_china_business_week_in_four_cities_and_smart_city_new_york() -> None:
    activities = parsed("nl.teamnl.tinl.activity.held.v1")
    cbw = {a.data.city for a in activities if a.data.title == "China Business Week"}  # type: ignore[attr-defined]
    assert cbw == {"Tilburg", "Zaandam", "Arnhem", "Rotterdam"}
    markets = {a.data.market for a in activities}  # type: ignore[attr-defined]
    assert {"CN", "DE", "US", "smart-cities"} <= markets
    new_york = [a for a in activities if a.data.market == "smart-cities"]  # type: ignore[attr-defined]
    assert [a.data.city for a in new_york] == ["New York"]  # type: ignore[attr-defined]


def test_three_global_stars_calls_with_32_dutch_proposals_and_4_to_5_months_lead_time() -> None:
    opened = {e.subject: e.data for e in parsed("nl.teamnl.globalstars.call.opened.v1")}
    closed = {e.subject: e.data for e in parsed("nl.teamnl.globalstars.call.closed.v1")}
    proposals = parsed("nl.teamnl.globalstars.proposal.submitted.v1")
    assert {data.country for data in opened.values()} == {"IN", "TW", "BR"}  # type: ignore[attr-defined]
    assert set(closed) == set(opened)
    assert sum(data.dutch_proposals for data in closed.values()) == 32  # type: ignore[attr-defined]
    assert len(proposals) == 32 and all(p.data.dutch for p in proposals)  # type: ignore[attr-defined]
    per_call = Counter(p.subject for p in proposals)
    assert per_call == {call: data.dutch_proposals for call, data in closed.items()}  # type: ignore[attr-defined]
    for call_id, data in closed.items():
        days = (data.closed_on - opened[call_id].negotiation_started_on).days  # type: ignore[attr-defined]
        assert 4 * 30.4 <= days <= 5 * 30.5, (call_id, days)


def test_proposals_come_before_their_call_closes_in_sending_order() -> None:
    order: dict[str, list[str]] = {}
    for document in EVENTS["tinl"]:
        if ".globalstars." in document["type"] and "call_id" in document["data"]:
            order.setdefault(document["data"]["call_id"], []).append(document["type"])
    for types in order.values():
        assert types[0].endswith("call.opened.v1") and types[-1].endswith("call.closed.v1")


def test_the_eight_werkplaats_programmes_with_sdgs() -> None:
    projects = parsed("nl.teamnl.werkplaats.project.onboarded.v1")
    countries = sorted(p.data.country for p in projects)  # type: ignore[attr-defined]
    assert countries == sorted(["PA", "IN", "KE", "DE", "CO", "CN", "AE", "VN"])
    assert all(p.data.sdgs for p in projects)  # type: ignore[attr-defined]


def test_budget_spent_for_every_family_within_its_allocation() -> None:
    allocation = {
        "nlib": 600_000_000,
        "globalstars": 100_000_000,
        "tinl": 150_000_000,
        "werkplaats": 150_000_000,
    }
    spent: Counter[str] = Counter()
    for document in ALL:
        if document["type"].endswith(".budget.spent.v1"):
            event = parse_structured(document)
            spent[event.spec.family] += event.data.amount_cents  # type: ignore[attr-defined]
    assert set(spent) == set(allocation)
    assert all(0 < spent[family] <= allocation[family] for family in allocation)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Guangzhou/Pearl River Delta", "guangzhou-pearl-river-delta"),
        ("Düsseldorf", "dusseldorf"),
        ("São Paulo", "sao-paulo"),
        ("New York City", "new-york-city"),
    ],
)
def test_city_slugs_are_ascii(name: str, expected: str) -> None:
    assert seed.slug(name) == expected


def _types(events: list[dict[str, Any]]) -> set[str]:
    return {e["type"] for e in events}


def test_the_seed_uses_every_fact_family_the_letter_names() -> None:
    assert _types(ALL) >= {
        "nl.teamnl.nlib.city.programme.updated.v1",
        "nl.teamnl.nlib.mission.planned.v1",
        "nl.teamnl.nlib.mission.held.v1",
        "nl.teamnl.nlib.mission.followup.held.v1",
        "nl.teamnl.nlib.lead.converted.v1",
        "nl.teamnl.tinl.activity.held.v1",
        "nl.teamnl.tinl.knowledge.shared.v1",
        "nl.teamnl.globalstars.call.opened.v1",
        "nl.teamnl.globalstars.proposal.submitted.v1",
        "nl.teamnl.globalstars.call.closed.v1",
        "nl.teamnl.werkplaats.project.onboarded.v1",
        "nl.teamnl.nlib.budget.spent.v1",
        "nl.teamnl.tinl.budget.spent.v1",
        "nl.teamnl.globalstars.budget.spent.v1",
        "nl.teamnl.werkplaats.budget.spent.v1",
    }
