"""The topics are the network's record: a dashboard rebuild replays them from the first
event, so the topics the project creates keep their records for ever."""

from __future__ import annotations

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from teamnl_shared.kafka import admin_client

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
