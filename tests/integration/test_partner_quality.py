"""The per-partner data-quality scorecard, end to end on the real stack.

NLIB (its production app, reporting every half second) takes good, bad (422, 403),
replayed (200) and conflicting (409) events from two partner keys; its quality reports go
through its outbox and Kafka to a running dashboard. What this proves:
- ``/api/v1/partners/quality`` shows exactly those counts per partner (rejected by reason),
  the lateness of an event sent an hour after its own time, and the silence;
- the ``partner-quality`` rule raises a finding for the partner whose refused share passes
  the threshold, and none for the other; ``/partners`` shows both, only to members;
- the window still open at shutdown is reported and published before the relay stops.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from ingestion_helpers import read_records

from dashboard_harness import dashboard_settings, running_dashboard
from inprocess import fresh_database, mission_held, post_event, serving
from support import eventually, topic_prefix
from teamnl_dashboard.settings import RuleThresholds
from teamnl_nlib.app import create_app as create_nlib
from teamnl_nlib.settings import NlibSettings
from teamnl_shared.contract.ops import PartnerQualityReported
from teamnl_shared.db import create_pool
from teamnl_shared.ingestion import create_key
from teamnl_suite.infra import Infrastructure

pytestmark = pytest.mark.integration

GOOD, BAD = "good-partner", "bad-partner"
EXPECTED: dict[str, dict[str, Any]] = {
    GOOD: {
        "accepted": 3,
        "replayed": 1,
        "conflicting": 1,
        "rejected": 1,
        "rejected_by_reason": {"invalid-event": 1},
        "parked": 0,
        "events": 6,
        "lateness_samples": 3,
    },
    BAD: {
        "accepted": 1,
        "replayed": 0,
        "conflicting": 0,
        "rejected": 3,
        "rejected_by_reason": {"forbidden": 1, "invalid-event": 2},
        "parked": 0,
        "events": 4,
        "lateness_samples": 1,
    },
}


def nlib_reporting(
    database_url: str, infra: Infrastructure, prefix: str, every: float, partitions: int = 1
) -> NlibSettings:
    """NLIB on the test's topics, writing its quality report every ``every`` seconds."""
    return NlibSettings(
        database_url=database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        topic_prefix=prefix,
        topic_partitions=partitions,
        environment="test",
        relay_poll_interval=0.1,
        quality_report_seconds=every,
    )


async def keys_of(database_url: str, *partners: str) -> list[str]:
    pool = await create_pool(database_url, max_size=1)
    try:
        return [(await create_key(pool, service="nlib", partner=p)).key for p in partners]
    finally:
        await pool.close()


async def send_good(nlib: httpx.AsyncClient, key: str) -> list[int]:
    late = mission_held("m-good-late", partner=GOOD)
    late["time"] = "2000-01-01T00:00:00+00:00"  # far older than any window: lateness is exact
    fresh = [mission_held(f"m-good-{n}", partner=GOOD) for n in range(2)]
    conflicting = copy.deepcopy(fresh[0])
    conflicting["data"]["companies"] = 99  # the same id with other content
    invalid = mission_held("m-good-invalid", partner=GOOD, note="no such field")
    return [
        (await post_event(nlib, key, event)).status_code
        for event in [late, *fresh, fresh[1], conflicting, invalid]
    ]


async def send_bad(nlib: httpx.AsyncClient, key: str) -> list[int]:
    events = [
        mission_held("m-bad-0", partner=BAD),
        mission_held("m-bad-1", partner=BAD, note="no such field"),
        mission_held("m-bad-2", partner=BAD, companies="three"),
        mission_held("m-bad-3", partner="someone-else"),
    ]
    return [(await post_event(nlib, key, event)).status_code for event in events]


async def test_scorecard_counts_each_partner_and_the_rule_flags_the_bad_one(
    infra: Infrastructure, database_url: str
) -> None:
    thresholds = RuleThresholds(partner_refused_share=0.5, partner_min_events=4)
    settings = dashboard_settings(database_url, infra.kafka_bootstrap, rules=thresholds)
    async with (
        running_dashboard(settings) as dash,
        fresh_database(infra, "quality_nlib") as nlib_db,
    ):
        nlib_settings = nlib_reporting(
            nlib_db, infra, settings.topic_prefix, 0.5, settings.topic_partitions
        )
        async with serving(create_nlib(nlib_settings)) as nlib_url:
            good_key, bad_key = await keys_of(nlib_db, GOOD, BAD)
            async with httpx.AsyncClient(base_url=nlib_url) as nlib:
                assert await send_good(nlib, good_key) == [202, 202, 202, 200, 409, 422]
                assert await send_bad(nlib, bad_key) == [202, 422, 422, 403]

            card: dict[str, Any] = {}

            async def every_answer_reported() -> bool:
                card.update(await dash.get("/api/v1/partners/quality"))
                scores = {p["partner"]: p for p in card["partners"]}
                return {
                    partner: {name: scores.get(partner, {}).get(name) for name in counts}
                    for partner, counts in EXPECTED.items()
                } == EXPECTED

            await eventually(every_answer_reported, timeout=60)
            scores = {p["partner"]: p for p in card["partners"]}
            assert set(scores) == {GOOD, BAD}
            assert all(p["service"] == "nlib" for p in card["partners"])
            assert scores[BAD]["refused_share"] == pytest.approx(3 / 4)
            assert scores[GOOD]["refused_share"] == pytest.approx(2 / 6)
            # sent in 2026 or later with a time in 2000: at least 26 years late
            assert scores[GOOD]["lateness_max_seconds"] > 26 * 365 * 86400
            assert scores[BAD]["lateness_max_seconds"] < 60
            assert 0 <= scores[GOOD]["silence_seconds"] < 120

            findings = await dash.wait_findings("partner-quality", "open")
            assert [f["finding_key"] for f in findings] == [f"nlib/{BAD}/refused"]

            page = await dash.member.get("/partners")
            assert page.status_code == 200
            assert f'data-partner="{GOOD}"' in page.text and f'data-partner="{BAD}"' in page.text
            anonymous = await dash.anonymous.get("/api/v1/partners/quality")
            assert anonymous.status_code == 401


async def test_the_last_window_is_reported_and_published_at_shutdown(
    infra: Infrastructure, database_url: str
) -> None:
    """A window far longer than the test: only the shutdown report can carry the counts."""
    settings = nlib_reporting(database_url, infra, topic_prefix(), 3600)
    async with serving(create_nlib(settings)) as nlib_url:
        [key] = await keys_of(database_url, BAD)
        async with httpx.AsyncClient(base_url=nlib_url) as nlib:
            assert await send_bad(nlib, key) == [202, 422, 422, 403]
    pool = await create_pool(database_url, max_size=1)
    try:
        unsent = await pool.fetchval("SELECT count(*) FROM outbox")
    finally:
        await pool.close()
    assert unsent == 0  # the relay flushed the report before stopping
    records = await read_records(
        settings.kafka_bootstrap_servers,
        settings.topic("teamnl.ops.events"),
        1,
        partitions=settings.topic_partitions,
    )
    [record] = [
        r for r in records if dict(r.headers)["ce_type"] == PartnerQualityReported.TYPE.encode()
    ]
    assert record.key == BAD.encode()
    report = PartnerQualityReported.model_validate_json(record.value)
    assert (report.accepted, report.rejected) == (1, {"forbidden": 1, "invalid-event": 2})
