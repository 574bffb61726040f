"""Projections: each event type's effect on the dashboard's read model.

:func:`apply` runs inside the consumer's transaction (the runtime owns it), per event, after
the inbox recorded the event (a network event's ``events`` row: :data:`LEDGER`); the
consumer and the rebuild pass it a :class:`DeferredProjections` in place of the connection,
so a batch's writes go to the database set-based at the end of the inbox's savepoint;
:func:`fold_totals` folds the running totals' delta rows (`totals` beside the consumers, at
most once a second, ``totals_fold_seconds``; the rebuild now and then and at its end). An event a
projection can never store (a value out of the database's range, a broken constraint)
is refused with :class:`PoisonEvent`, so it goes to the dead-letter topic instead of
blocking its partition.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
from aiokafka import ConsumerRecord

from teamnl_shared.contract.envelope import Event
from teamnl_shared.contract.registry import CATALOGUE
from teamnl_shared.inbox import PoisonEvent

from . import globalstars, nlib, quality, tinl, werkplaats
from .ledger import LEDGER as LEDGER
from .writes import BufferedWrites

Projector = Callable[[asyncpg.Connection, Event], Awaitable[None]]

PROJECTORS: dict[str, Projector] = {
    **nlib.PROJECTORS,
    **tinl.PROJECTORS,
    **globalstars.PROJECTORS,
    **werkplaats.PROJECTORS,
    **quality.PROJECTORS,
}
assert set(PROJECTORS) == set(CATALOGUE), "every catalogue event type has a projection"

_REFUSED_BY_DATABASE = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, OverflowError)


async def apply(conn: asyncpg.Connection, event: Event) -> None:
    projector = PROJECTORS.get(event.type)
    if projector is None:
        raise PoisonEvent(f"no projection for {event.type}")
    try:
        await projector(conn, event)
    except _REFUSED_BY_DATABASE as error:
        raise PoisonEvent(f"projection refused the event: {error}") from error


async def handle(writes: asyncpg.Connection, event: Event, _record: ConsumerRecord) -> None:
    """The inbox's handler (the consumer's and the rebuild's): `event` projected into the
    buffer the inbox gives in place of the connection (a :class:`DeferredProjections`,
    flushed set-based at the end of its savepoint). The consumer calls it inside the
    record's consume span, which names its type: a span of its own would time only the
    buffering."""
    await apply(writes, event)


async def fold_totals(conn: asyncpg.Connection) -> None:
    """Fold the running totals' delta rows (schema.sql) into one row per key."""
    await conn.execute("SELECT fold_totals()")


class DeferredProjections(BufferedWrites):
    """The projections' writes of one inbox savepoint, sent set-based at its end (the
    inbox's `Deferred`); a write the database refuses makes the savepoint's events poison
    candidates (the inbox then applies them one by one to find the one)."""

    async def flush(self, conn: asyncpg.Connection) -> None:
        try:
            await super().flush(conn)
        except _REFUSED_BY_DATABASE as error:
            raise PoisonEvent(f"projection refused the event: {error}") from error
