"""Issue 10 against a running service (real Kafka and PostgreSQL): bounded contract fields
and attributes answer 4xx naming the field, never 500; one event's record is bounded in
every content mode; a row the relay cannot publish is parked and the service goes on;
/readyz stays ready without Kafka but reports a stuck relay; a key limited with --types
reads only what its types write."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from ingestion_helpers import (
    RunningService,
    auth,
    batch_headers,
    binary_headers,
    example,
    new_id,
    read_records,
    running,
    structured,
    written,
)
from tcp_proxy import TcpProxy

from support import SCRAPE, eventually
from teamnl_shared.contract.types import MAX_CENTS, MAX_COUNT, MAX_LIST_ITEMS
from teamnl_shared.contract.werkplaats import MAX_CONSORTIUM_MEMBERS

pytestmark = pytest.mark.integration
PROBLEM_JSON = "application/problem+json"

HELD = "nl.teamnl.nlib.mission.held.v1"
BUDGET = "nl.teamnl.nlib.budget.spent.v1"
LEAD = "nl.teamnl.nlib.lead.converted.v1"
ONBOARDED = "nl.teamnl.werkplaats.project.onboarded.v1"


def with_data(event_type: str, **changes: Any) -> dict[str, Any]:
    return structured(event_type, {**example(event_type, new_id()[:8]), **changes})


def assert_names(response: Any, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem: dict[str, Any] = response.json()
    assert field in [error["field"] for error in problem["errors"]], problem
    return problem


# (what, event, field named): each answered 500 or was accepted before the bounds.
NLIB_BAD = [
    ("2**40 companies", with_data(HELD, companies=2**40), "data/companies"),
    ("one count too many", with_data(HELD, leads=MAX_COUNT + 1), "data/leads"),
    ("5e18 cents", with_data(BUDGET, amount_cents=5 * 10**18), "data/amount_cents"),
    (
        "EUR 100 bn + 1 ct",
        with_data(LEAD, contract_value_cents=MAX_CENTS + 1),
        "data/contract_value_cents",
    ),
    ("80 kB event id", {**with_data(BUDGET), "id": "x" * 80_000}, "id"),
    ("id with a space", {**with_data(BUDGET), "id": "a b"}, "id"),
    ("id with a control code", {**with_data(BUDGET), "id": "a\x07b"}, "id"),
    ("80 kB source", {**with_data(BUDGET), "source": "/" + "s" * 80_000}, "source"),
    ("80 kB subject", {**with_data(BUDGET), "subject": "s" * 80_000}, "subject"),
    ("80 kB type", {**with_data(BUDGET), "type": "t" * 80_000}, "type"),
    ("1.1 MB extension", {**with_data(BUDGET), "big": "x" * 1_100_000}, "big"),
    ("17 extensions", {**with_data(BUDGET), **{f"ext{i}": "v" for i in range(17)}}, "/"),
    ("bad extension name", {**with_data(BUDGET), "Bad_Name": "v"}, "Bad_Name"),
]


@pytest.mark.parametrize("mode", ["single", "batch"])
async def test_out_of_bounds_fields_answer_422_naming_the_field_never_500(
    mode: str, database_url: str, kafka_bootstrap: str
) -> None:
    async with running("nlib", database_url, kafka_bootstrap, max_batch_bytes=4 * 1024**2) as svc:
        key = await svc.key()
        for name, event, field in NLIB_BAD:
            if mode == "single":
                response = await svc.post(event, key)
                status = 413 if len(json.dumps(event)) > svc.settings.max_event_bytes else 422
                assert_names(response, status, "body" if status == 413 else field)
                continue
            response = await svc.post_batch([event, with_data(BUDGET)], key)
            assert response.status_code == 200, (name, response.text)
            first, second = response.json()["results"]
            assert first["status"] == 422, (name, first)
            assert field in [e["field"] for e in first["problem"]["errors"]], (name, first)
            assert second["status"] == 202, "the good event of the batch is accepted"
        assert await svc.count("missions") == 0
        assert await svc.count("leads") == 0


async def test_binary_mode_bounds_header_attributes(
    database_url: str, kafka_bootstrap: str
) -> None:
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        body = json.dumps(example(BUDGET)).encode()
        too_long = await svc.client.post(
            "/v1/events", content=body, headers=binary_headers(key, BUDGET, "i" * 80_000)
        )
        assert_names(too_long, 422, "id")
        extension = await svc.client.post(
            "/v1/events",
            content=body,
            headers={**binary_headers(key, BUDGET, new_id()), "ce-big": "x" * 100_000},
        )
        assert_names(extension, 422, "big")


async def test_lists_and_the_size_of_one_event_are_bounded(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Lists hold at most MAX_LIST_ITEMS; a batch event whose Kafka record (4-byte
    characters in every text) exceeds max_event_bytes answers 413 naming the limit."""
    async with running("werkplaats", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        many = [f"sector {i}" for i in range(MAX_LIST_ITEMS + 1)]
        assert_names(await svc.post(with_data(ONBOARDED, sectors=many), key), 422, "data/sectors")

        wide = "\U0001f600" * 497  # 4 bytes each in UTF-8
        huge = with_data(
            ONBOARDED,
            sectors=[f"{i}{wide}" for i in range(MAX_LIST_ITEMS)],
            consortium_members=[f"{i}{wide}" for i in range(MAX_LIST_ITEMS)],
        )
        response = await svc.post_batch([huge], key)
        (item,) = response.json()["results"]
        assert item["status"] == 413, item
        assert str(svc.settings.max_event_bytes) in item["problem"]["detail"]
        assert "max_event_bytes" in item["problem"]["errors"][0]["reason"]
        assert await written(svc) == 0


async def test_a_parked_row_does_not_stop_the_service_and_is_visible(
    database_url: str, kafka_bootstrap: str
) -> None:
    """A row too large for Kafka (written before the door checked sizes) is parked: the
    events behind it are published, /readyz counts it, the metric and the CLI show it."""
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        stuck = with_data(HELD)
        await svc.runtime.relay.stop()  # type: ignore[union-attr]
        await svc.runtime._tasks[0]
        assert (await svc.post(stuck, key)).status_code == 202  # stays in the outbox
        await svc.pool.execute(
            "UPDATE outbox SET value = $1 WHERE event_id = $2",
            b"x" * (2 * 1024**2),
            stuck["id"],
        )
        svc.runtime._tasks[0] = asyncio.create_task(_restarted_relay(svc))
        after = [with_data(HELD) for _ in range(3)]
        for event in after:
            assert (await svc.post(event, key)).status_code == 202

        await eventually(lambda: _unpublished_is(svc, 0))
        records = await read_records(kafka_bootstrap, svc.topic("nlib"), 4)
        ids = {dict(r.headers)["ce_id"].decode() for r in records}
        assert {e["id"] for e in after} <= ids
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["outbox_parked"] == 1
        metrics = (await svc.client.get("/metrics", headers=SCRAPE)).text
        parked = [line for line in metrics.splitlines() if line.startswith("teamnl_outbox_parked")]
        assert len(parked) == 1, metrics
        assert 'reason="MessageSizeTooLargeError"' in parked[0] and parked[0].endswith(" 1.0")
        notices = await read_records(kafka_bootstrap, svc.runtime.parked_topic, 1)
        assert json.loads(notices[0].value)["ce_id"] == stuck["id"]

        cli = await asyncio.create_subprocess_exec(
            ".venv/bin/teamnl-keys",
            "parked",
            "--service",
            "nlib",
            "--database-url",
            database_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COLUMNS": "400"},
        )
        out, err = await cli.communicate()
        assert cli.returncode == 0, err.decode()
        assert "MessageSizeTooLargeError" in out.decode() and "1 parked row" in err.decode()


async def _restarted_relay(svc: RunningService) -> None:
    relay = svc.runtime.relay
    assert relay is not None
    relay._stopping.clear()
    await relay.run()


async def _unpublished_is(svc: RunningService, n: int) -> bool:
    count = await svc.pool.fetchval("SELECT count(*) FROM outbox")
    return int(count) == n


async def test_readyz_stays_ready_without_kafka(database_url: str, kafka_bootstrap: str) -> None:
    """A broker outage must not take ingestion out of the load balancer: events are still
    accepted into the outbox; /readyz says kafka false, status ready."""
    host, port = kafka_bootstrap.split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.up()
    async with running("nlib", database_url, f"127.0.0.1:{proxy.port}") as svc:
        await proxy.down()
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["kafka"] is False and ready.json()["status"] == "ready"
        assert (await svc.post(with_data(HELD), await svc.key())).status_code == 202


async def test_readyz_reports_a_stuck_relay(database_url: str, kafka_bootstrap: str) -> None:
    """The leading relay is held in PostgreSQL (a lock on the checkpoints its every read
    also writes) while Kafka answers: once the oldest row is older than
    relay_stuck_seconds, /readyz says 503."""
    async with running("nlib", database_url, kafka_bootstrap, relay_stuck_seconds=1.0) as svc:
        key = await svc.key()
        assert (await svc.client.get("/readyz")).status_code == 200
        blocker = await svc.pool.acquire()
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE outbox_checkpoints IN EXCLUSIVE MODE")
                assert (await svc.post(with_data(HELD), key)).status_code == 202
                await asyncio.sleep(1.5)
                ready = await svc.client.get("/readyz")
                assert ready.status_code == 503, ready.text
                body = ready.json()
                assert body["relay_stuck"] and body["relay_leader"] and body["kafka"]
        finally:
            await svc.pool.release(blocker)
        await eventually(lambda: _unpublished_is(svc, 0))
        assert (await svc.client.get("/readyz")).status_code == 200


async def test_a_key_limited_with_types_reads_only_what_its_types_write(
    database_url: str, kafka_bootstrap: str
) -> None:
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        full = await svc.key()
        missions_only = await svc.key(partner="other-partner", types=[HELD])
        assert (await svc.post(with_data(BUDGET), full)).status_code == 202
        assert (
            await svc.client.get("/v1/missions", headers=auth(missions_only))
        ).status_code == 200
        budget_only = await svc.key(partner="third-partner", types=[BUDGET])
        assert (
            await svc.client.get("/v1/budget-spendings", headers=auth(budget_only))
        ).status_code == 200
        for resource in ("budget-spendings", "leads", "companies"):
            response = await svc.client.get(f"/v1/{resource}", headers=auth(missions_only))
            assert_names(response, 403, "header/authorization")
        item = (await svc.client.get("/v1/budget-spendings", headers=auth(full))).json()["items"][0]
        one = f"/v1/budget-spendings/{item['spending_id']}"
        assert (await svc.client.get(one, headers=auth(budget_only))).status_code == 200
        response = await svc.client.get(one, headers=auth(missions_only))
        assert_names(response, 403, "header/authorization")


async def test_a_batch_of_replays_around_one_refused_event_answers_each(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Found by the bad-input fuzzing: one new event refused by its handler, followed by
    replays in the same batch, answered 500 (the replays after it got no outcome)."""
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        first, second = with_data(BUDGET), with_data(HELD)
        assert (await svc.post_batch([first, second], key)).status_code == 200
        orphan = with_data("nl.teamnl.nlib.mission.followup.held.v1", mission_id="m-unknown")
        response = await svc.post_batch([first, orphan, second], key)
        assert response.status_code == 200, response.text
        assert [item["status"] for item in response.json()["results"]] == [200, 422, 200]


async def test_batch_bodies_beyond_what_a_service_takes_at_once_wait_their_turn(
    database_url: str, kafka_bootstrap: str
) -> None:
    """A batch whose body does not fit beside those being handled (`batch_bytes_at_once`)
    is not read until it does, and answers 503 with Retry-After past `batch_wait_seconds`;
    once the first is done, the next is served. (One partner sending 8 batches of 15.6 MB
    at once took nlib from 75 MiB to 562 MiB: the rate limit counts requests, not bytes.)"""
    mission = "nl.teamnl.nlib.mission.held.v1"

    def batch(suffix: str) -> bytes:  # about 2 KB: two do not fit in the budget below
        event = structured(mission, example(mission, f"-{suffix}"), pad="p" * 1000)
        return json.dumps([event]).encode()

    first = batch("first")
    async with running(
        "nlib",
        database_url,
        kafka_bootstrap,
        max_batch_bytes=100_000,
        batch_bytes_at_once=len(first) + 500,
        batch_wait_seconds=0.5,
    ) as svc:
        key = await svc.key()
        half = len(first) // 2
        read_on = asyncio.Event()

        async def slowly() -> Any:  # the first body arrives in two parts, the rest held back
            yield first[:half]
            await read_on.wait()
            yield first[half:]

        headers = {**batch_headers(key), "content-length": str(len(first))}
        sending = asyncio.create_task(
            svc.client.post("/v1/events:batch", content=slowly(), headers=headers)
        )

        async def holding() -> bool:
            return svc.runtime.batch_budget.used > 0

        await eventually(holding)
        waited = await svc.client.post(
            "/v1/events:batch", content=batch("second"), headers=batch_headers(key)
        )
        read_on.set()
        answered = await sending
        third = await svc.client.post(
            "/v1/events:batch", content=batch("third"), headers=batch_headers(key)
        )
    assert waited.status_code == 503 and waited.headers["retry-after"] == "1", waited.text
    assert "at once" in waited.json()["detail"]
    assert answered.status_code == 200 and answered.json()["accepted"] == 1
    assert third.status_code == 200 and third.json()["accepted"] == 1
    assert svc.runtime.batch_budget.used == 0


async def test_a_mission_whose_contract_value_passes_a_bigint_accepts_its_next_lead(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: a mission's running contract value is kept exactly past 2^63 - 1 cents. The
    contract bounds one conversion (EUR 100 bn), not how many a mission may have: after
    about 922,000 maximal ones (written here as their sum), the next lead converted
    answered a 500 (the bigint total overflowed in its transaction); now 202, and the read
    API answers the exact sum."""
    async with running("nlib", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        held = with_data(HELD)
        mission = held["data"]["mission_id"]
        assert (await svc.post(held, key)).status_code == 202
        lead = with_data(LEAD, mission_id=mission, contract_value_cents=MAX_CENTS)
        assert (await svc.post(lead, key)).status_code == 202
        before = 2**63 - 1 - 5
        await svc.pool.execute(
            "UPDATE missions SET contract_value_cents = $2 WHERE mission_id = $1", mission, before
        )
        lead = with_data(LEAD, mission_id=mission, contract_value_cents=MAX_CENTS)
        assert (await svc.post(lead, key)).status_code == 202
        answer = await svc.client.get(f"/v1/missions/{mission}", headers=auth(key))
        assert answer.status_code == 200, answer.text
        assert answer.json()["contract_value_cents"] == before + MAX_CENTS
        assert answer.json()["leads_converted"] == 2
        listed = await svc.client.get("/v1/missions", headers=auth(key))
        assert listed.status_code == 200, listed.text
        assert [m["contract_value_cents"] for m in listed.json()["items"]] == [before + MAX_CENTS]


async def test_a_full_consortium_refuses_the_next_member_naming_the_field(
    database_url: str, kafka_bootstrap: str
) -> None:
    """Proves: a project's consortium holds at most `MAX_CONSORTIUM_MEMBERS`; the join past
    it answers 409 naming `data/member`, and the project keeps what it had. Each join grew
    the project's row without a bound (at 50,000 members of 500 characters a join took
    0.24 s and reading the project answered 25 MB)."""
    joined = "nl.teamnl.werkplaats.consortium.member.joined.v1"
    members = [f"member {i}" for i in range(MAX_CONSORTIUM_MEMBERS - 1)]
    async with running("werkplaats", database_url, kafka_bootstrap) as svc:
        key = await svc.key()
        onboarded = with_data(ONBOARDED, consortium_members=members)
        project = onboarded["data"]["project_id"]
        assert (await svc.post(onboarded, key)).status_code == 202

        def join(member: str) -> dict[str, Any]:
            return with_data(joined, project_id=project, member=member, joined_on="2019-01-01")

        assert (await svc.post(join("the last one"), key)).status_code == 202
        problem = assert_names(await svc.post(join("one too many"), key), 409, "data/member")
        assert str(MAX_CONSORTIUM_MEMBERS) in problem["errors"][0]["reason"], problem
        answer = await svc.client.get(f"/v1/projects/{project}", headers=auth(key))
    assert answer.status_code == 200, answer.text
    assert answer.json()["consortium_members"] == [*members, "the last one"]
