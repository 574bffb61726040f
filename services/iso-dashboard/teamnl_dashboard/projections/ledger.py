"""The dashboard's inbox: the row each network event gets in ``events`` anyway.

The shared inbox records each event it applies by its identity (topic, source, id), so a
copy delivered again is known (`teamnl_shared.inbox`). A network event's ``events`` row
is that record here: it holds the topic, partition and offset the event came from, and its
key (family, source, id) tells events apart as (topic, source, id) does, each family having
a topic of its own (`teamnl_shared.contract.topics`). An ops event, a report about the
system with no ``events`` row, is recorded in ``inbox`` (the shared ledger, `INBOX_TABLE`).

One row per event instead of two (an inbox row beside the ``events`` row): a rebuild's
replay wrote and indexed both, and PostgreSQL's share of it was that much larger.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
from aiokafka import ConsumerRecord

from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.registry import OPS_FAMILY
from teamnl_shared.inbox import INBOX_TABLE, Identity, LedgerTable, Row

from .titles import event_title


def _event_row(
    event: Event, record: ConsumerRecord
) -> tuple[str, str, str, str, str, datetime, str, str, int, int]:
    return (
        event.id,
        event.source,
        event.type,
        event.spec.family,
        event.subject,
        event.time,
        event_title(event),
        record.topic,
        record.partition,
        record.offset,
    )


EVENTS_TABLE = LedgerTable(
    "events",
    (
        ("event_id", "text"),
        ("source", "text"),
        ("type", "text"),
        ("family", "text"),
        ("subject", "text"),
        ("time", "timestamptz"),
        ("title", "text"),
        ("topic", "text"),
        ("kafka_partition", "int"),
        ("kafka_offset", "bigint"),
    ),
    _event_row,
    ("topic", "source", "event_id"),
)


def _table_for(event: Event) -> LedgerTable:
    return INBOX_TABLE if event.spec.family == OPS_FAMILY else EVENTS_TABLE


def _network_and_ops(rows: Sequence[Row]) -> tuple[list[Row], list[Row]]:
    network: list[Row] = []
    ops: list[Row] = []
    for row in rows:
        (network if _table_for(row[0]) is EVENTS_TABLE else ops).append(row)
    return network, ops


class EventsLedger:
    """The shared inbox's `Ledger` for the dashboard: ``events`` for network events,
    ``inbox`` for ops events, in that order (`schema.lock_for_swap` locks them so)."""

    async def record_new(self, conn: asyncpg.Connection, rows: Sequence[Row]) -> None:
        network, ops = _network_and_ops(rows)
        await EVENTS_TABLE.record_new(conn, network)
        await INBOX_TABLE.record_new(conn, ops)

    async def record_fresh(self, conn: asyncpg.Connection, rows: Sequence[Row]) -> set[Identity]:
        network, ops = _network_and_ops(rows)
        fresh = await EVENTS_TABLE.record_fresh(conn, network)
        return fresh | await INBOX_TABLE.record_fresh(conn, ops)

    async def record_one(
        self, conn: asyncpg.Connection, event: Event, record: ConsumerRecord
    ) -> bool:
        return await _table_for(event).record_one(conn, event, record)


LEDGER = EventsLedger()
