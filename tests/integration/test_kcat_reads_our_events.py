"""A client nobody here wrote (kcat, librdkafka) reads our events and sees the CloudEvents
headers: the Kafka binding is the standard one, not our private convention."""

from __future__ import annotations

import subprocess

import pytest
from aiokafka import AIOKafkaProducer
from test_outbox_inbox import mission_event

pytestmark = pytest.mark.integration


async def test_kcat_shows_the_ce_headers_of_an_event(make_topics, kafka_bootstrap: str) -> None:
    (topic,) = await make_topics("kcat", partitions=1)
    event = mission_event(7, 3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await producer.send_and_wait(
        topic, event.data_json(), key=event.key.encode(), headers=event.to_kafka_headers()
    )
    await producer.stop()

    result = subprocess.run(
        [
            "kcat",
            "-b",
            kafka_bootstrap,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-c",
            "1",
            "-e",
            "-f",
            "key=%k\\nheaders=%h\\nvalue=%s\\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert lines["key"] == "m-7"
    headers = dict(h.split("=", 1) for h in lines["headers"].split(","))
    assert headers["ce_type"] == "nl.teamnl.nlib.mission.held.v1"
    assert headers["ce_id"] == "7-3"
    assert headers["ce_source"] == "/partners/test"
    assert headers["ce_specversion"] == "1.0"
    assert headers["content-type"] == "application/json"
    assert '"mission_id":"m-7"' in lines["value"]
