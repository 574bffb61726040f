"""The services' ``/metrics`` pages, read over HTTP after a known set of events.

NLIB and the dashboard run in this process as in production (real uvicorn, PostgreSQL and
Kafka). What this proves, counting exactly:
- NLIB counts each accepted event once in ``teamnl_events_accepted_total`` (a replay is not
  counted again) and each refused one in ``teamnl_events_rejected_total`` with its reason;
- the dashboard counts each record it sends to its dead-letter topic in
  ``teamnl_deadletter_total`` and observes each applied event once, and only those, in
  ``teamnl_end_to_end_latency_seconds``;
- the outbox gauges and the consumer lag gauge are served under their documented names;
- both pages go only to a scrape sending the metrics token (401 without it).
"""

from __future__ import annotations

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from inprocess import (
    MISSION_HELD,
    PARTNER,
    metric_total,
    mission_held,
    nlib_and_dashboard,
    post_event,
)
from support import SCRAPE, eventually
from teamnl_shared.telemetry import setup_telemetry
from teamnl_suite.infra import Infrastructure

pytestmark = pytest.mark.integration

ACCEPTED, REJECTED, DEAD_LETTERED = 3, 2, 2


async def publish_garbage(bootstrap: str, topic: str) -> None:
    """Two records no consumer can parse: no CloudEvents headers, and broken JSON data."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"not an event", key=b"garbage-1")
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", b"garbage-2"),
            ("ce_source", f"/partners/{PARTNER}".encode()),
            ("ce_type", MISSION_HELD.encode()),
            ("content-type", b"application/json"),
        ]
        await producer.send_and_wait(topic, b"{broken", key=b"garbage-2", headers=headers)
    finally:
        await producer.stop()


async def test_metrics_count_what_happened(infra: Infrastructure) -> None:
    nlib_telemetry = setup_telemetry("nlib", "test", "test")
    dashboard_telemetry = setup_telemetry("iso-dashboard", "test", "test")
    try:
        async with nlib_and_dashboard(
            infra, nlib_telemetry=nlib_telemetry, dashboard_telemetry=dashboard_telemetry
        ) as pipeline:
            accepted = [mission_held(f"m-metrics-{n}") for n in range(ACCEPTED)]
            # A partner may report an event long after it happened: latency counts from
            # acceptance (the outbox's teamnl_accepted_at), not from the event's own time.
            accepted[0]["time"] = "2019-04-12T09:00:00+00:00"
            unknown_field = mission_held("m-refused", note="no such field")
            foreign_source = mission_held("m-refused", partner="someone-else")
            async with httpx.AsyncClient(base_url=pipeline.nlib_url) as nlib:
                statuses = [
                    (await post_event(nlib, pipeline.key, event)).status_code
                    for event in [*accepted, accepted[0], unknown_field, foreign_source]
                ]
                assert statuses == [202] * ACCEPTED + [200, 422, 403]
                nlib_page = (await nlib.get("/metrics", headers=SCRAPE)).text
                anonymous = [(await nlib.get("/metrics")).status_code]
            await publish_garbage(infra.kafka_bootstrap, pipeline.nlib_topic)

            async with httpx.AsyncClient(base_url=pipeline.dashboard_url) as dashboard:
                page = ""

                async def all_consumed() -> bool:
                    nonlocal page
                    page = (await dashboard.get("/metrics", headers=SCRAPE)).text
                    latency = metric_total(page, "teamnl_end_to_end_latency_seconds_count")
                    dead = metric_total(page, "teamnl_deadletter_total")
                    lag = "teamnl_consumer_lag" in page
                    return latency >= ACCEPTED and dead >= DEAD_LETTERED and lag

                anonymous.append((await dashboard.get("/metrics")).status_code)
                try:
                    await eventually(all_consumed)
                except AssertionError as error:
                    teamnl = [line for line in page.splitlines() if line.startswith("teamnl_")]
                    raise AssertionError(f"{error}; the dashboard serves {teamnl}") from None
    finally:
        nlib_telemetry.shutdown()
        dashboard_telemetry.shutdown()

    assert anonymous == [401, 401]  # the pages name partners: only the scraper reads them
    assert metric_total(nlib_page, "teamnl_events_accepted_total") == ACCEPTED
    labels = {"service": "nlib", "type": MISSION_HELD, "partner": PARTNER}
    assert metric_total(nlib_page, "teamnl_events_accepted_total", **labels) == ACCEPTED
    assert metric_total(nlib_page, "teamnl_events_rejected_total") == REJECTED
    for reason in ("invalid-event", "forbidden"):
        rejected = metric_total(nlib_page, "teamnl_events_rejected_total", reason=reason)
        assert rejected == 1, f"{reason}: {rejected}"
    assert "teamnl_outbox_backlog " in nlib_page or "teamnl_outbox_backlog{" in nlib_page
    assert "teamnl_outbox_oldest_age_seconds" in nlib_page

    assert metric_total(page, "teamnl_deadletter_total") == DEAD_LETTERED
    latency_count = metric_total(
        page, "teamnl_end_to_end_latency_seconds_count", topic=pipeline.nlib_topic
    )
    assert latency_count == ACCEPTED, "the latency histogram missed or double-counted events"
    assert metric_total(page, "teamnl_end_to_end_latency_seconds_count") == ACCEPTED
    latency_sum = metric_total(page, "teamnl_end_to_end_latency_seconds_sum")
    assert 0 < latency_sum < 60 * ACCEPTED, "latency measured from the event's own time"
