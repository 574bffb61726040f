"""Bad input answers 4xx with an RFC 9457 problem naming the field and the reason, and
leaves nothing behind: no state row, no receipt, no outbox row, no Kafka record."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from ingestion_helpers import (
    RunningService,
    auth,
    binary_headers,
    example,
    new_id,
    read_records,
    running,
    structured,
    structured_headers,
    topic_size,
    written,
)

pytestmark = pytest.mark.integration
PROBLEM_JSON = "application/problem+json"

BUDGET = "nl.teamnl.nlib.budget.spent.v1"
HELD = "nl.teamnl.nlib.mission.held.v1"
FOLLOWUP = "nl.teamnl.nlib.mission.followup.held.v1"


@dataclass(frozen=True)
class BadInput:
    name: str
    send: Callable[[RunningService, str], Any]  # (service, key) -> awaitable response
    status: int
    field: str


def post(event: dict[str, Any]) -> Callable[[RunningService, str], Any]:
    return lambda svc, key: svc.post(event, key)


def raw(body: bytes, content_type: str) -> Callable[[RunningService, str], Any]:
    return lambda svc, key: svc.client.post(
        "/v1/events", content=body, headers={**auth(key), "content-type": content_type}
    )


def with_data(event_type: str, **changes: Any) -> dict[str, Any]:
    return structured(event_type, {**example(event_type), **changes})


NLIB_CASES = [
    BadInput(
        "unknown type",
        post(structured("nl.teamnl.nlib.mission.cancelled.v1", example(HELD))),
        422,
        "type",
    ),
    BadInput(
        "type of another service",
        post(structured("nl.teamnl.tinl.budget.spent.v1", example(BUDGET))),
        422,
        "type",
    ),
    BadInput(
        "wrong specversion", post({**with_data(BUDGET), "specversion": "0.3"}), 422, "specversion"
    ),
    BadInput("year out of range", post(with_data(BUDGET, year=1999)), 422, "data/year"),
    BadInput(
        "negative amount", post(with_data(BUDGET, amount_cents=-100)), 422, "data/amount_cents"
    ),
    BadInput("unknown field", post(with_data(BUDGET, colour="red")), 422, "data/colour"),
    BadInput(
        "follow-up before its mission ended",
        post(with_data(FOLLOWUP, held_on="2019-04-10")),
        422,
        "data/held_on",
    ),
    BadInput(
        "follow-up of an unknown mission",
        post(with_data(FOLLOWUP, mission_id="m-unknown")),
        422,
        "data/mission_id",
    ),
    BadInput(
        "subject other than the aggregate",
        post({**with_data(BUDGET), "subject": "other"}),
        422,
        "subject",
    ),
    BadInput("not JSON", raw(b"{not json", "application/cloudevents+json"), 400, "body"),
    BadInput(
        "binary mode with a text body",
        lambda svc, key: svc.client.post(
            "/v1/events",
            content=b"hello",
            headers={**binary_headers(key, BUDGET, new_id()), "content-type": "text/plain"},
        ),
        415,
        "content-type",
    ),
    BadInput("oversized body", post(with_data(BUDGET, category="x" * 300_000)), 413, "body"),
    # accepted (202) until the contract bounded days and times; the dashboard then stored
    # the first as -infinity and dead-lettered the second (year 10000 in UTC)
    BadInput(
        "placeholder day", post(with_data(HELD, start_date="0001-01-01")), 422, "data/start_date"
    ),
    BadInput(
        "time past the years",
        post({**with_data(BUDGET), "time": "9999-12-31T23:59:59-12:00"}),
        422,
        "time",
    ),
    BadInput(
        "data said not to be JSON",
        post({**with_data(BUDGET), "datacontenttype": "text/plain"}),
        422,
        "datacontenttype",
    ),
]
TINL_CASES = [
    BadInput(
        "unknown TINL partner",
        post(with_data("nl.teamnl.tinl.activity.held.v1", partners=["bom", "acme-consulting"])),
        422,
        "data/partners/1",
    ),
    BadInput(
        "proposal for an unknown call",
        post(with_data("nl.teamnl.globalstars.proposal.submitted.v1", call_id="gs-unknown")),
        422,
        "data/call_id",
    ),
]
WERKPLAATS_CASES = [
    BadInput(
        "SDG 18",
        post(with_data("nl.teamnl.werkplaats.project.onboarded.v1", sdgs=[6, 18])),
        422,
        "data/sdgs/1",
    ),
    BadInput(
        "milestone of an unknown project",
        post(with_data("nl.teamnl.werkplaats.milestone.reached.v1")),
        422,
        "data/project_id",
    ),
]
CASES = {"nlib": NLIB_CASES, "tinl": TINL_CASES, "werkplaats": WERKPLAATS_CASES}
# One valid event per service sent after the bad ones: once it is on Kafka, the topic must
# hold it alone, which proves none of the bad ones was published.
SENTINEL = {
    "nlib": HELD,
    "tinl": "nl.teamnl.tinl.knowledge.shared.v1",
    "werkplaats": "nl.teamnl.werkplaats.project.onboarded.v1",
}
STATE_TABLES = {
    "nlib": ["mission_followups", "leads", "budget_spendings"],
    "tinl": ["activities", "proposals", "calls"],
    "werkplaats": ["project_milestones", "budget_spendings"],
}


def assert_problem(response: Any, case: BadInput) -> None:
    assert response.status_code == case.status, (case.name, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON, case.name
    problem = response.json()
    assert problem["status"] == case.status
    assert problem["type"].startswith("urn:teamnl:problem:")
    assert problem["title"] and problem["detail"]
    fields = [error["field"] for error in problem["errors"]]
    assert case.field in fields, (case.name, problem)
    assert all(error["reason"] for error in problem["errors"])


@pytest.mark.parametrize("service", sorted(CASES))
async def test_bad_input_answers_a_problem_and_leaves_nothing(
    service: str, database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: each bad input of the issue answers its 4xx problem naming the field, and
    nothing of it is stored (state, receipts, outbox) or published (Kafka)."""
    sentinel = SENTINEL[service]
    async with running(service, database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        if service == "nlib":  # the follow-up cases need a held mission
            assert (await svc.post(with_data(HELD), key)).status_code == 202
        for case in CASES[service]:
            assert_problem(await case.send(svc, key), case)
        baseline = 1 if service == "nlib" else 0
        for table in STATE_TABLES[service]:
            assert await svc.count(table) == 0, table
        assert await svc.count("ingestion_receipts") == baseline
        if service != "nlib":
            response = await svc.post(with_data(sentinel), key)
            assert response.status_code == 202
        assert await written(svc) == 1
        family = sentinel.split(".")[2]
        records = await read_records(kafka_bootstrap, svc.topic(family), 1)
        assert [dict(r.headers)["ce_type"].decode() for r in records] == [sentinel]
        assert await topic_size(kafka_bootstrap, svc.topic(family)) == 1


async def test_replay_answers_the_original_receipt_and_publishes_once(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: the same (source, id) and content answers 200 with the byte-identical receipt
    of the first 202, in structured, binary and batch mode, and Kafka gets one record."""
    event = with_data(HELD)
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        first = await svc.post(event, key)
        assert first.status_code == 202
        again = await svc.post(event, key)
        assert again.status_code == 200
        assert again.content == first.content
        assert again.headers["idempotent-replay"] == "true"
        binary = await svc.client.post(
            "/v1/events",
            content=json.dumps(event["data"]),
            headers=binary_headers(key, event["type"], event["id"]),
        )
        assert (binary.status_code, binary.json()) == (200, first.json())
        batch = (await svc.post_batch([event], key)).json()
        assert batch["replayed"] == 1 and batch["results"][0]["receipt"] == first.json()
        assert await written(svc) == 1
        records = await read_records(kafka_bootstrap, svc.topic("nlib"), 1)
        assert len(records) == 1
        assert await topic_size(kafka_bootstrap, svc.topic("nlib")) == 1


async def test_same_id_with_other_content_is_a_conflict(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: (source, id) reused with other data answers 409 and changes nothing."""
    event = with_data(HELD)
    changed = {**event, "data": {**event["data"], "leads": 99}}
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        assert (await svc.post(event, key)).status_code == 202
        response = await svc.post(changed, key)
        assert response.status_code == 409
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["errors"][0]["field"] == "id"
        mission = await svc.client.get("/v1/missions/m-2019-vn-01", headers=auth(key))
        assert mission.json()["leads"] == 37
        assert await written(svc) == 1


async def test_structured_content_type_is_required_for_structured_mode(
    database_url: str, kafka_bootstrap: str
) -> None:
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        response = await svc.client.post(
            "/v1/events",
            content=json.dumps([with_data(HELD)]),
            headers={**auth(key), "content-type": "application/cloudevents-batch+json"},
        )
        assert response.status_code == 415
        assert (await svc.post(with_data(HELD), key)).status_code == 202
        assert structured_headers(key)["content-type"] == "application/cloudevents+json"
