"""Receipts: what an accepted event answers, stored for idempotent replays.

Receipt (JSON): ``{"id", "source", "type", "subject", "topic", "sequence", "accepted_at",
"status": "accepted"}``. The first acceptance answers 202; a replay of the same
``(source, id)`` with the same content answers 200 with the identical stored receipt (and
the header ``Idempotent-Replay: true``); with other content it answers 409.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from teamnl_shared.contract.envelope import Event


@dataclass(frozen=True)
class StoredReceipt:
    fingerprint: str
    receipt: dict[str, Any]


def make_receipt(event: Event, *, topic: str, sequence: int) -> dict[str, Any]:
    return {
        "status": "accepted",
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "subject": event.subject,
        "topic": topic,
        "sequence": sequence,
        "accepted_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }


async def lock_identity(conn: asyncpg.Connection, event: Event) -> None:
    """Serialise concurrent requests for the same (source, id) until the transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 7310003))",
        json.dumps([event.source, event.id]),
    )


async def find_receipt(conn: asyncpg.Connection, event: Event) -> StoredReceipt | None:
    row = await conn.fetchrow(
        "SELECT fingerprint, receipt FROM ingestion_receipts"
        " WHERE event_source = $1 AND event_id = $2",
        event.source,
        event.id,
    )
    if row is None:
        return None
    return StoredReceipt(row["fingerprint"], json.loads(row["receipt"]))


async def save_receipt(
    conn: asyncpg.Connection, event: Event, partner: str, receipt: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO ingestion_receipts"
        " (event_source, event_id, event_type, fingerprint, partner, receipt)"
        " VALUES ($1, $2, $3, $4, $5, $6::json)",
        event.source,
        event.id,
        event.type,
        event.fingerprint(),
        partner,
        json.dumps(receipt),
    )
