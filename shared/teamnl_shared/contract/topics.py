"""Kafka topics: one per event family, one dead-letter topic per consumer group."""

from __future__ import annotations

import re
from typing import Literal, get_args

from teamnl_shared.contract.registry import spec_for

TOPICS: dict[str, str] = {
    "nlib": "teamnl.nlib.events",
    "tinl": "teamnl.tinl.events",
    "globalstars": "teamnl.globalstars.events",
    "werkplaats": "teamnl.werkplaats.events",
    "ops": "teamnl.ops.events",
}
ALL_EVENT_TOPICS: tuple[str, ...] = tuple(TOPICS.values())

PUBLISHED_BY: dict[str, str] = {
    "nlib": "nlib",
    "tinl": "tinl",
    "globalstars": "tinl",
    "werkplaats": "werkplaats",
}
"""The service that publishes each initiative family (TINL runs the Global Stars calls);
every ingestion service publishes the ``ops`` family about itself."""
IngestionService = Literal["nlib", "tinl", "werkplaats"]
"""An initiative service: each takes its partners' events and relays them to Kafka from its
own outbox; the publishers of `PUBLISHED_BY`."""
INGESTION_SERVICES: tuple[IngestionService, ...] = get_args(IngestionService)
OPS_PUBLISHER = "every ingestion service"

DEADLETTER_PREFIX = "teamnl.deadletter."
_KAFKA_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")
_KAFKA_TOPIC_MAX = 249


def topic_for(event_type: str) -> str:
    """The topic an event type is published on; raises UnknownEventType."""
    return TOPICS[spec_for(event_type).family]


def deadletter_topic(group: str) -> str:
    topic = DEADLETTER_PREFIX + group
    if not _KAFKA_TOPIC_CHARS.match(group) or len(topic) > _KAFKA_TOPIC_MAX:
        raise ValueError(f"consumer group {group!r} cannot name a Kafka topic")
    return topic
