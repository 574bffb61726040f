"""The events the benchmarks send: valid v1 events of each service, unique per run.

Each event is a catalogue example whose aggregate id is replaced by a unique one, so no two
events of a run touch the same aggregate and no domain rule sees a repeat. The same
event renders as a structured CloudEvent (HTTP) or as the Kafka record the outbox relay
writes (binary content mode), so baselines and the pipeline move identical bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from teamnl_shared.contract.envelope import canonical_json
from teamnl_shared.contract.registry import spec_for
from teamnl_shared.contract.topics import topic_for

SERVICES = ("nlib", "tinl", "werkplaats")

# Types whose aggregate id alone makes an event independent of every other event.
EVENT_MIX: dict[str, tuple[str, ...]] = {
    "nlib": (
        "nl.teamnl.nlib.mission.planned.v1",
        "nl.teamnl.nlib.company.supported.v1",
        "nl.teamnl.nlib.budget.spent.v1",
    ),
    "tinl": (
        "nl.teamnl.tinl.activity.held.v1",
        "nl.teamnl.tinl.knowledge.shared.v1",
        "nl.teamnl.tinl.budget.spent.v1",
    ),
    "werkplaats": (
        "nl.teamnl.werkplaats.project.onboarded.v1",
        "nl.teamnl.werkplaats.budget.spent.v1",
    ),
}


def partner_of(service: str) -> str:
    return f"bench-{service}"


def source_of(service: str) -> str:
    return f"/partners/{partner_of(service)}"


@dataclass(frozen=True)
class BenchEvent:
    service: str
    id: str
    type: str
    subject: str
    data: dict[str, Any]
    time: str

    @property
    def source(self) -> str:
        return source_of(self.service)

    def structured(self) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": "application/json",
            "data": self.data,
        }

    def body(self) -> bytes:
        return json.dumps(self.structured(), separators=(",", ":")).encode()

    def topic(self, prefix: str = "") -> str:
        return prefix + topic_for(self.type)

    def kafka_record(self) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
        """(key, value, headers) exactly as the outbox relay writes them (minus traceparent)."""
        headers = [
            ("ce_id", self.id),
            ("ce_source", self.source),
            ("ce_specversion", "1.0"),
            ("ce_subject", self.subject),
            ("ce_time", self.time),
            ("ce_type", self.type),
            ("content-type", "application/json"),
        ]
        return (
            self.subject.encode(),
            canonical_json(self.data),
            [(name, value.encode()) for name, value in headers],
        )


def make_event(service: str, run_id: str, index: int, now: datetime | None = None) -> BenchEvent:
    mix = EVENT_MIX[service]
    spec = spec_for(mix[index % len(mix)])
    event_id = f"{run_id}-{service}-{index:09d}"
    data = {**spec.example, spec.aggregate: event_id}
    if "amount_cents" in data:
        # Amounts differ per event, so a sum that counts one twice or misses one shows.
        data["amount_cents"] = 100 + (index * 7919) % 5_000_000
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return BenchEvent(service, event_id, spec.type, event_id, data, stamp)


def events(service: str, run_id: str, count: int, start: int = 0) -> Iterator[BenchEvent]:
    now = datetime.now(UTC)
    for index in range(start, start + count):
        yield make_event(service, run_id, index, now)


def topics(prefix: str = "", types: Iterable[str] = ()) -> list[str]:
    """The event topics of the mix the services are sent, and of `types`."""
    mixed = [t for mix in EVENT_MIX.values() for t in mix]
    return sorted({prefix + topic_for(t) for t in (*mixed, *types)})
