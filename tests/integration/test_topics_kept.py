"""The topics are the network's record: a dashboard rebuild replays them from the first
event, so the topics the project creates keep their records for ever. Creating them says what
the broker refused, and returns once they are there."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import InvalidPartitionsError

from teamnl_shared.kafka import admin_client, delete_topics_where, ensure_topics, partitions_of

pytestmark = pytest.mark.integration


async def test_topics_the_project_creates_are_kept_for_ever(
    make_topics, kafka_bootstrap: str
) -> None:
    [topic] = await make_topics("kept", partitions=1)
    admin = admin_client(kafka_bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
    finally:
        await admin.close()
    configs = {entry[0]: entry[1] for entry in described.resources[0][4]}
    assert configs["retention.ms"] == "-1"


async def test_a_topic_the_broker_refuses_is_an_error_naming_it(kafka_bootstrap: str) -> None:
    """CreateTopics answers per topic; a refusal used to pass unseen."""
    name = f"test.refused.{uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidPartitionsError, match=name):
        await ensure_topics(kafka_bootstrap, [name], partitions=0)


async def test_created_topics_are_led_on_return(kafka_bootstrap: str) -> None:
    names = [f"test.led.{uuid.uuid4().hex[:8]}.{n}" for n in range(3)]
    try:
        await ensure_topics(kafka_bootstrap, names, partitions=3)
        assert {p.topic for p in await partitions_of(kafka_bootstrap, names)} == set(names)
    finally:
        await delete_topics_where(kafka_bootstrap, lambda topic: topic in names)
