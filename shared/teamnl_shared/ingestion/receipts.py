"""Receipts: what an accepted event answers, stored for idempotent replays.

Receipt (JSON): ``{"status": "accepted", "id", "source", "type", "subject", "topic",
"sequence", "accepted_at"}``. The first acceptance answers 202; a replay of the same
``(source, id)`` with the same content answers 200 with the identical stored receipt (and
the header ``Idempotent-Replay: true``); with other content it answers 409.

How a transaction uses them (every statement takes a whole batch, so a batch of 100 costs
the round trips of one event):

1. :func:`claim` inserts a placeholder receipt per ``(source, id)``. The primary key makes
   a concurrent request for the same identity wait until this transaction ends, then skip
   it (it committed: a replay) or take it (it rolled back). Claims are taken in identity
   order, so two batches never deadlock on each other's claims.
2. :func:`find` reads the receipts of the identities that were not ours to claim.
3. The handlers apply the claimed events; :func:`record_accepted` then writes their outbox
   rows and fills their receipts (with the outbox sequence) in one statement, and
   :func:`release` drops the claims of the events that were refused.

The pipeline's first run of a transaction skips step 1 and claims in step 3 instead
(:func:`claim_and_record`): nearly every event is new, and a statement less is a round
trip less per transaction. When an identity turns out to be stored already, or a handler
refuses an event (which a replay's refusal would look like), that run is rolled back and the
transaction run again in the order above. A lone event whose handler is one statement
goes further (:func:`apply_claim_and_record`): its handler's statement, its outbox row and
its receipt are one statement, run outside any transaction (one round trip instead of
four, with BEGIN and COMMIT); a replay or a refusal makes the whole statement undo itself.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from teamnl_shared.outbox import INSERT_MANY, OutboxRecord, insert_many, insert_many_args

from .service import arity, shifted

Identity = tuple[str, str]  # (source, id)


@dataclass(frozen=True)
class StoredReceipt:
    fingerprint: str
    receipt: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    identity: Identity
    event_type: str
    fingerprint: str
    partner: str


_CLAIM = (
    "INSERT INTO ingestion_receipts"
    " (event_source, event_id, event_type, fingerprint, partner, receipt)"
    " SELECT c.source, c.id, c.type, c.fingerprint, c.partner, '{}'"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
    " AS c(source, id, type, fingerprint, partner)"
    " ORDER BY c.source, c.id"
    " ON CONFLICT DO NOTHING RETURNING event_source, event_id"
)
_FIND = (
    "SELECT r.event_source, r.event_id, r.fingerprint, r.receipt FROM ingestion_receipts r"
    " JOIN unnest($1::text[], $2::text[]) AS f(source, id)"
    " ON r.event_source = f.source AND r.event_id = f.id"
)
# A receipt, from the outbox row just queued (``q``, see outbox.INSERT_MANY's RETURNING) and
# the acceptance time ($9): the same bytes whichever statement stores it.
_RECEIPT = (
    "json_build_object('status', 'accepted', 'id', q.event_id,"
    " 'source', q.event_source, 'type', q.event_type, 'subject', q.key, 'topic', q.topic,"
    " 'sequence', q.seq, 'accepted_at', $9::text)"
)
# The outbox rows ($1..$7, see outbox.INSERT_MANY) and the receipts naming their sequence.
_RECORD = (
    f"WITH queued AS ({INSERT_MANY})"  # noqa: S608 - constants only, values are $n
    " UPDATE ingestion_receipts AS r SET event_type = q.event_type, fingerprint = f.fingerprint,"
    f" receipt = {_RECEIPT}"
    " FROM queued AS q"
    " JOIN unnest($2::text[], $1::text[], $8::text[]) AS f(source, id, fingerprint)"
    " ON f.source = q.event_source AND f.id = q.event_id"
    " WHERE r.event_source = q.event_source AND r.event_id = q.event_id"
    " RETURNING r.event_source, r.event_id, r.receipt::text"
)


def _claim_and_record(before: str, queue: str, on_conflict: str) -> str:
    """The outbox rows ($1..$7, queued by ``queue``) and the receipts naming their sequence,
    claimed in the same statement (identity order, as :data:`_CLAIM`); ``before``: CTEs
    that ``queue`` reads."""
    return (
        f"WITH {before}queued AS ({queue})"  # noqa: S608 - constants only, values are $n
        " INSERT INTO ingestion_receipts AS r"
        " (event_source, event_id, event_type, fingerprint, partner, receipt)"
        f" SELECT q.event_source, q.event_id, q.event_type, f.fingerprint, f.partner, {_RECEIPT}"
        " FROM queued AS q"
        " JOIN unnest($2::text[], $1::text[], $8::text[], $10::text[])"
        " AS f(source, id, fingerprint, partner)"
        " ON f.source = q.event_source AND f.id = q.event_id"
        f" ORDER BY q.event_source, q.event_id{on_conflict}"
        " RETURNING r.event_source, r.event_id, r.receipt::text"
    )


# Only the identities not stored before come back.
_CLAIM_AND_RECORD = _claim_and_record("", INSERT_MANY, " ON CONFLICT DO NOTHING")
_APPLY_ARGS = arity(_CLAIM_AND_RECORD)
"""The arguments of :data:`_CLAIM_AND_RECORD`; an event's own statement takes the next."""


@functools.cache
def _apply_claim_and_record(statement: str) -> str:
    """One event's own statement (its ``$n`` moved past :data:`_APPLY_ARGS`), its outbox row
    queued only if that wrote a row, and its receipt: a replay's receipt is in the way (no
    ``ON CONFLICT``), so the whole statement fails and nothing of it stays."""
    applied = f"applied AS ({shifted(statement, _APPLY_ARGS)} RETURNING 1), "
    return _claim_and_record(applied, insert_many("EXISTS (SELECT FROM applied)"), "")


_RELEASE = (
    "DELETE FROM ingestion_receipts AS r USING unnest($1::text[], $2::text[]) AS d(source, id)"
    " WHERE r.event_source = d.source AND r.event_id = d.id"
)


async def claim(conn: asyncpg.Connection, claims: Sequence[Claim]) -> set[Identity]:
    """Claim each identity for this transaction; returns those claimed (the others exist)."""
    rows = await conn.fetch(
        _CLAIM,
        [c.identity[0] for c in claims],
        [c.identity[1] for c in claims],
        [c.event_type for c in claims],
        [c.fingerprint for c in claims],
        [c.partner for c in claims],
    )
    return {(row["event_source"], row["event_id"]) for row in rows}


async def find(
    conn: asyncpg.Connection, identities: Sequence[Identity]
) -> dict[Identity, StoredReceipt]:
    rows = await conn.fetch(_FIND, [s for s, _ in identities], [i for _, i in identities])
    return {
        (row["event_source"], row["event_id"]): StoredReceipt(
            row["fingerprint"], json.loads(row["receipt"])
        )
        for row in rows
    }


async def record_accepted(
    conn: asyncpg.Connection,
    records: Sequence[OutboxRecord],
    fingerprints: Sequence[str],
    accepted_at: str,
) -> dict[Identity, dict[str, Any]]:
    """Queue the accepted events' Kafka records (in this order) and fill their receipts."""
    rows = await conn.fetch(_RECORD, *insert_many_args(records), list(fingerprints), accepted_at)
    return _receipts_of(rows)


async def claim_and_record(
    conn: asyncpg.Connection,
    records: Sequence[OutboxRecord],
    fingerprints: Sequence[str],
    partners: Sequence[str],
    accepted_at: str,
) -> dict[Identity, dict[str, Any]]:
    """:func:`claim` and :func:`record_accepted` in one statement, for events applied before
    their identities were claimed: queue their Kafka records and store their receipts. Only
    the identities stored by no other transaction come back (a concurrent one holding the
    same identity is waited for, as by :func:`claim`); the caller rolls back when one is
    missing, since its event was then applied twice. An identity whose outbox row is still
    unsent raises ``UniqueViolationError`` instead (the outbox's own key), which the caller
    reads the same way."""
    rows = await conn.fetch(
        _CLAIM_AND_RECORD,
        *insert_many_args(records),
        list(fingerprints),
        accepted_at,
        list(partners),
    )
    return _receipts_of(rows)


async def apply_claim_and_record(
    conn: asyncpg.Connection,
    statement: str,
    args: Sequence[Any],
    record: OutboxRecord,
    fingerprint: str,
    partner: str,
    accepted_at: str,
) -> dict[str, Any] | None:
    """A lone new event in one statement, outside any transaction: its own ``statement``
    (taking ``args``; it writes at most one row), its Kafka record queued and its receipt
    stored, as :func:`claim_and_record` does after the statement. Its receipt, or None when
    the statement wrote no row (nothing is stored then). A receipt or an outbox row of the
    same identity raises ``UniqueViolationError``, and nothing is stored either."""
    rows = await conn.fetch(
        _apply_claim_and_record(statement),
        *insert_many_args([record]),
        [fingerprint],
        accepted_at,
        [partner],
        *args,
    )
    return json.loads(rows[0]["receipt"]) if rows else None


def _receipts_of(rows: Sequence[asyncpg.Record]) -> dict[Identity, dict[str, Any]]:
    return {(row["event_source"], row["event_id"]): json.loads(row["receipt"]) for row in rows}


async def release(conn: asyncpg.Connection, identities: Sequence[Identity]) -> None:
    """Drop the claims of refused events (a later request with the same id is new)."""
    await conn.execute(_RELEASE, [s for s, _ in identities], [i for _, i in identities])
