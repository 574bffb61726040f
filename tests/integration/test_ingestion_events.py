"""Every event type of the catalogue goes in over HTTP (structured, binary and batch mode)
and comes out on the service's Kafka topic (``ce_type``, key, data) and in its read API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ingestion_helpers import (
    SOURCE,
    RunningService,
    binary_headers,
    headers_of,
    new_id,
    read_records,
    running,
    scenario,
    structured,
    written,
)

from teamnl_nlib.app import SERVICE as NLIB
from teamnl_shared.contract.envelope import parse_structured
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.ingestion.service import ServiceDefinition
from teamnl_tinl.app import SERVICE as TINL
from teamnl_werkplaats.app import SERVICE as WERKPLAATS

pytestmark = pytest.mark.integration
DEFINITIONS: dict[str, ServiceDefinition] = {"nlib": NLIB, "tinl": TINL, "werkplaats": WERKPLAATS}


def read_back(service: str, s: str) -> list[tuple[str, dict[str, Any]]]:
    """(read API path, fields expected there) once the whole scenario with suffix s is in."""
    return {
        "nlib": [
            (
                f"/v1/missions/m-2019-vn-01{s}",
                {
                    "status": "held",
                    "companies": 24,
                    "followups": 1,
                    "leads_converted": 1,
                    "contract_value_cents": 450_000_000,
                },
            ),
            (f"/v1/followups/m-2019-vn-01-ws1{s}", {"held_on": "2019-05-20"}),
            (f"/v1/leads/lead-0815{s}", {"mission_id": f"m-2019-vn-01{s}"}),
            (f"/v1/cities/ho-chi-minh-city{s}", {"tier": "pilot", "soft_landing": "active"}),
            (f"/v1/companies/kvk-12345678{s}", {"supports": 1, "last_country": "PL"}),
            (f"/v1/budget-spendings/nlib:2019-0042{s}", {"amount_cents": 1_250_000}),
        ],
        "tinl": [
            (
                f"/v1/activities/tinl-2019-cbw-tilburg{s}",
                {"market": "CN", "partners": ["bom", "rvo"]},
            ),
            (f"/v1/knowledge/ks-2019-07{s}", {"shared_on": "2019-06-03"}),
            (
                f"/v1/calls/gs-in-2018{s}",
                {"status": "closed", "dutch_proposals": 12, "proposals_submitted": 1},
            ),
            (f"/v1/proposals/gs-in-2018-p07{s}", {"dutch": True}),
            (f"/v1/budget-spendings/tinl:2019-0042{s}", {"family": "tinl"}),
            (f"/v1/budget-spendings/globalstars:2019-0042{s}", {"family": "globalstars"}),
        ],
        "werkplaats": [
            (
                f"/v1/projects/gw-ganges{s}",
                {
                    "status": "graduated",
                    "milestones_reached": 1,
                    "sdgs": [6, 14],
                    "consortium_members": ["Witteveen+Bos", "TU Delft", "Deltares"],
                },
            ),
            (
                f"/v1/projects/gw-ganges{s}-2",
                {"status": "stopped", "stop_reason": "no financing found"},
            ),
            (f"/v1/budget-spendings/werkplaats:2019-0042{s}", {"year": 2019}),
        ],
    }[service]


async def send_structured(svc: RunningService, key: str, events: list[dict[str, Any]]) -> None:
    for event in events:
        response = await svc.post(event, key)
        assert response.status_code == 202, response.text


async def send_binary(svc: RunningService, key: str, events: list[dict[str, Any]]) -> None:
    for event in events:
        headers = binary_headers(key, event["type"], event["id"], event["source"])
        response = await svc.client.post(
            "/v1/events", content=json.dumps(event["data"]), headers=headers
        )
        assert response.status_code == 202, response.text


async def send_batch(svc: RunningService, key: str, events: list[dict[str, Any]]) -> None:
    response = await svc.post_batch(events, key)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["accepted"] == len(events), result
    assert [item["status"] for item in result["results"]] == [202] * len(events)


SENDERS = {"structured": send_structured, "binary": send_binary, "batch": send_batch}


@pytest.mark.parametrize("mode", sorted(SENDERS))
@pytest.mark.parametrize("service", sorted(DEFINITIONS))
async def test_every_event_type_reaches_kafka_and_the_read_api(
    service: str, mode: str, database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: each catalogue type of the service is accepted in this content mode, published
    on its family's (prefixed) topic with ce_type, key = subject and the data, and visible
    through the read API."""
    events = [structured(t, data) for t, data in scenario(service, f"-{mode}")]
    assert {e["type"] for e in events} == set(DEFINITIONS[service].event_types)
    async with running(service, database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        await SENDERS[mode](svc, key, events)
        await assert_published(svc, kafka_bootstrap, events)
        for path, expected in read_back(service, f"-{mode}"):
            response = await svc.client.get(path, headers={"authorization": f"Bearer {key}"})
            assert response.status_code == 200, (path, response.text)
            assert expected.items() <= response.json().items(), (path, response.json())


async def assert_published(
    svc: RunningService, bootstrap: str, events: list[dict[str, Any]]
) -> None:
    by_family: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_family.setdefault(spec_for(event["type"]).family, []).append(event)
    for family, sent in by_family.items():
        records = await read_records(bootstrap, svc.topic(family), len(sent))
        assert len(records) == len(sent), (family, len(records))
        received = {headers_of(r)["ce_id"]: r for r in records}
        for event in sent:
            record = received[event["id"]]
            expected = parse_structured(event)
            assert headers_of(record)["ce_type"] == event["type"]
            assert headers_of(record)["ce_source"] == SOURCE
            assert record.key.decode() == expected.subject
            assert json.loads(record.value) == expected.data_dict()


async def test_a_batch_answers_per_event(database_url: str, kafka_bootstrap: str) -> None:
    """Proves: one invalid event in a batch is refused alone; the others are accepted."""
    good = [structured(t, d) for t, d in scenario("nlib", "-mixed")[:2]]
    bad = structured(
        "nl.teamnl.nlib.budget.spent.v1",
        {**spec_for("nl.teamnl.nlib.budget.spent.v1").example, "amount_cents": -1},
    )
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        response = await svc.post_batch([good[0], bad, good[1]], await svc.key())
        result = response.json()
        assert (result["accepted"], result["rejected"]) == (2, 1)
        refused = result["results"][1]
        assert refused["status"] == 422
        assert refused["problem"]["errors"][0]["field"] == "data/amount_cents"
        assert await svc.count("budget_spendings") == 0


async def test_a_batch_over_1000_events_is_too_large(
    database_url: str, kafka_bootstrap: str
) -> None:
    event = structured(
        "nl.teamnl.nlib.company.supported.v1",
        spec_for("nl.teamnl.nlib.company.supported.v1").example,
    )
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        response = await svc.post_batch(
            [{**event, "id": new_id()} for _ in range(1001)], await svc.key()
        )
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert await written(svc) == 0
