"""Accepting one parsed event: authorise, deduplicate, apply, enqueue, all in one transaction.

The request handler never publishes: the event's Kafka record is written to the outbox in
the same transaction as the state rows and the receipt; the relay publishes it after commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from teamnl_shared import outbox
from teamnl_shared.contract.envelope import Event, Problem

from .keys import Partner
from .problems import ApiProblem, field_problem, forbidden
from .receipts import find_receipt, lock_identity, make_receipt, save_receipt
from .service import Rejected, ServiceDefinition
from .settings import IngestionSettings

REPLAY_HEADER = "Idempotent-Replay"


@dataclass(frozen=True)
class Outcome:
    """What one event answers: 202 accepted, 200 replay, or a problem."""

    status: int
    receipt: dict[str, Any] | None = None
    problem: ApiProblem | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.status == 202


@dataclass(frozen=True)
class Pipeline:
    service: ServiceDefinition
    settings: IngestionSettings

    def authorise(self, partner: Partner, event: Event) -> None:
        if not self.service.accepts(event.type):
            raise field_problem(
                422,
                "invalid-event",
                "type",
                f"{event.type} is not an event type of the {self.service.name} service",
            )
        if event.type not in partner.event_types:
            raise forbidden("type", f"the key of {partner.partner} may not send {event.type}")
        if event.source != partner.source:
            raise forbidden(
                "source",
                f"the key of {partner.partner} writes as {partner.source!r}, not {event.source!r}",
            )

    async def accept(
        self,
        conn: asyncpg.Connection,
        partner: Partner,
        event: Event,
        trace_headers: Mapping[str, str],
    ) -> Outcome:
        """Authorise and apply ``event`` in its own transaction on ``conn``."""
        try:
            self.authorise(partner, event)
            async with conn.transaction():
                return await self._apply(conn, partner, event, trace_headers)
        except Rejected as rejected:
            problem = ApiProblem(
                rejected.status,
                "rejected",
                str(rejected),
                [Problem(rejected.field, rejected.reason)],
            )
            return Outcome(problem.status, problem=problem)
        except ApiProblem as problem:
            return Outcome(problem.status, problem=problem)

    async def _apply(
        self,
        conn: asyncpg.Connection,
        partner: Partner,
        event: Event,
        trace_headers: Mapping[str, str],
    ) -> Outcome:
        await lock_identity(conn, event)
        stored = await find_receipt(conn, event)
        if stored is not None:
            return _replay_or_conflict(stored.fingerprint, stored.receipt, event)
        await self.service.handlers[event.type](conn, event)
        topic = self.settings.topic(event.topic)
        sequence = await outbox.enqueue(conn, event, trace_headers, topic=topic)
        receipt = make_receipt(event, topic=topic, sequence=sequence)
        await save_receipt(conn, event, partner.partner, receipt)
        return Outcome(202, receipt=receipt)


def _replay_or_conflict(fingerprint: str, receipt: dict[str, Any], event: Event) -> Outcome:
    if fingerprint == event.fingerprint():
        return Outcome(200, receipt=receipt, headers={REPLAY_HEADER: "true"})
    problem = field_problem(
        409, "conflict", "id", f"({event.source}, {event.id}) was accepted with other content"
    )
    return Outcome(409, problem=problem)
