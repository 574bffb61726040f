"""What `make faults` found (issue 10): an ingestion service must start during a broker
outage, and a cut to PostgreSQL must answer 503 in bounded time, not hold requests."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from ingestion_helpers import example, new_id, read_records, running, structured
from tcp_proxy import TcpProxy

from support import eventually
from teamnl_shared.contract import nlib

pytestmark = pytest.mark.integration
HELD = nlib.MissionHeld.TYPE


def held() -> dict[str, object]:
    return structured(HELD, example(HELD, new_id()[:8]))


async def test_a_service_started_during_a_broker_outage_takes_events_and_publishes_them_later(
    database_url: str, kafka_bootstrap: str
) -> None:
    host, port = kafka_bootstrap.split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.up()
    await proxy.down()  # Kafka refuses every connection while the service starts
    async with running("nlib", database_url, f"127.0.0.1:{proxy.port}") as svc:
        event = held()
        response = await svc.post(event, await svc.key())
        assert response.status_code == 202, response.text
        assert (await svc.client.get("/readyz")).status_code == 200

        await proxy.up()  # the broker is back: topics created, the outbox published
        records = await read_records(kafka_bootstrap, svc.topic("nlib"), 1, timeout=60)
        assert [dict(r.headers)["ce_id"].decode() for r in records] == [event["id"]]
    await proxy.down()


async def test_a_cut_to_postgresql_answers_503_within_the_command_timeout(
    database_url: str, kafka_bootstrap: str
) -> None:
    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.up()
    through_proxy = database_url.replace(f":{parts.port}/", f":{proxy.port}/", 1)
    async with running(
        "nlib", through_proxy, kafka_bootstrap, db_command_timeout=1.0, db_acquire_timeout=1.0
    ) as svc:
        key = await svc.key()
        assert (await svc.post(held(), key)).status_code == 202
        await proxy.blackhole()
        started = time.monotonic()
        response = await svc.post(held(), key)
        waited = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"]
        assert waited < 20, f"answered after {waited:.1f} s, not within the timeouts"
        await proxy.restore()

        async def accepted_again() -> bool:
            return (await svc.post(held(), key)).status_code == 202

        await eventually(accepted_again)
    await proxy.down()
