"""Rebuild the projections from the topics, while the dashboard keeps serving.

``python -m teamnl_dashboard.rebuild`` (settings from DASHBOARD_*), or :func:`rebuild`.

1. Create a fresh schema ``proj_rebuild_<id>`` (projection tables and its own inbox).
2. Replay every family topic from the beginning into it (no consumer group: partitions
   are assigned directly), up to the end offsets seen at the start; progress is printed.
3. Switch over in one transaction: lock the live inbox (live consumers finish their batch
   and wait), replay what the live projections have seen since, drop the live schema and
   rename the new one to ``proj``. Waiting consumers then continue on the new schema,
   whose inbox already knows what was replayed.
4. Evaluate every coherence rule once against the new projections (findings are kept:
   they live outside the projection schema and are reconciled, not recreated).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import uvloop
from aiokafka import ConsumerRecord, TopicPartition

from teamnl_shared.contract.envelope import Event
from teamnl_shared.inbox import Applied, Inbox
from teamnl_shared.kafka import assigned_reader, partitions_of

from . import projections
from .consumer import event_topics
from .database import create_dashboard_pool, prepare_database
from .projections.network import record_dead_letter
from .projections.schema import (
    PROJECTION_VERSION,
    can_upgrade_in_place,
    create_schema,
    drop_schema,
    live_positions,
    live_version,
    lock_for_swap,
    search_path,
    swap_in,
    upgrade_in_place,
)
from .rules import Clock, RulesEngine, build_engine, system_clock
from .settings import DashboardSettings

log = logging.getLogger(__name__)
REBUILD_LOCK = 7_310_103
Progress = Callable[[str], None]
Positions = dict[TopicPartition, int]
REPLAY_BATCH = 5000
"""Records per fetch and transaction while replaying: large, since the rules are evaluated
once at the end, not per batch."""


class RebuildRunning(RuntimeError):
    """Another rebuild holds the lock."""


@dataclass
class RebuildResult:
    schema: str
    records: int
    applied: int
    dead_letters: int
    seconds: float


class _Replayer:
    """Reads the topics from the beginning and applies them to one schema."""

    def __init__(self, settings: DashboardSettings, pool: asyncpg.Pool, progress: Progress) -> None:
        self.settings = settings
        self.pool = pool
        self.progress = progress
        self.writes = projections.DeferredProjections()
        self.inbox = Inbox(
            pool, self._project, "rebuild", before_commit=self._fold, deferred=self.writes
        )
        self.consumer = assigned_reader(settings.kafka_bootstrap_servers)
        self.positions: Positions = {}
        self.records = self.applied = self.dead = 0

    async def _project(self, _conn: asyncpg.Connection, event: Event, _rec: ConsumerRecord) -> None:
        await projections.apply(self.writes.as_connection(), event)

    @staticmethod
    async def _fold(conn: asyncpg.Connection, _applied: Applied) -> None:
        await projections.fold_totals(conn)

    async def start(self) -> Positions:
        """Assign every partition from the beginning; returns the current end offsets."""
        partitions = await partitions_of(
            self.settings.kafka_bootstrap_servers, event_topics(self.settings)
        )
        await self.consumer.start()
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)
        self.positions = {tp: await self.consumer.position(tp) for tp in partitions}
        return await self.consumer.end_offsets(partitions)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def replay_until(self, targets: Positions) -> None:
        total = sum(targets.values())
        while any(self.positions.get(tp, 0) < end for tp, end in targets.items()):
            batch = await self.consumer.getmany(timeout_ms=500, max_records=REPLAY_BATCH)
            if batch:  # one transaction per fetch, each partition's records in order
                await self._apply([record for records in batch.values() for record in records])
            for tp in self.positions:
                self.positions[tp] = await self.consumer.position(tp)
            self.progress(
                f"replayed {self.records} records ({self.applied} applied,"
                f" {self.dead} dead letters) of about {total}"
            )

    async def _apply(self, records: list[ConsumerRecord]) -> None:
        outcome = await self.inbox.apply(records)
        for record, reason in outcome.dead:
            async with self.pool.acquire() as conn:
                await record_dead_letter(
                    conn,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    reason=reason,
                    event_id=None,
                    event_type=None,
                    recorded_at=datetime.fromtimestamp(record.timestamp / 1000, UTC),
                )
        self.records += len(records)
        self.applied += len(outcome.applied)
        self.dead += len(outcome.dead)


async def rebuild(
    settings: DashboardSettings,
    *,
    progress: Progress = print,
    clock: Clock = system_clock,
    engine: RulesEngine | None = None,
) -> RebuildResult:
    """Rebuild the projections and switch the dashboard over to them atomically."""
    await prepare_database(settings.database_url)
    return await _rebuild_prepared(settings, progress, engine or build_engine(settings, clock))


async def _rebuild_prepared(
    settings: DashboardSettings, progress: Progress, engine: RulesEngine
) -> RebuildResult:
    """:func:`rebuild` on a database whose migrations and live schema are in place."""
    started = asyncio.get_running_loop().time()
    admin = await asyncpg.connect(settings.database_url)
    try:
        if not await admin.fetchval("SELECT pg_try_advisory_lock($1)", REBUILD_LOCK):
            raise RebuildRunning("another rebuild is running")
        schema = f"proj_rebuild_{uuid.uuid4().hex[:10]}"
        async with admin.transaction():
            await create_schema(admin, schema)
        progress(f"building {schema}")
        try:
            replayer = await _replay_and_swap(settings, admin, schema, progress)
        except BaseException:
            await drop_schema(admin, schema)
            raise
    finally:
        await admin.close()
    await _reconcile_findings(settings, engine)
    seconds = asyncio.get_running_loop().time() - started
    progress(f"switched to the rebuilt projections: {replayer.applied} events in {seconds:.1f}s")
    return RebuildResult(schema, replayer.records, replayer.applied, replayer.dead, seconds)


async def upgrade_projections(
    settings: DashboardSettings, engine: RulesEngine, *, progress: Progress | None = None
) -> RebuildResult | None:
    """At start-up, after `prepare_database`: rebuild the live projections when an older
    ``PROJECTION_VERSION`` built them (their tables lack what this code reads). Returns None
    when they are current; when another instance is already rebuilding, waits for it to
    finish."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        version = await live_version(conn) or 0
        if version >= PROJECTION_VERSION:
            return None
        if can_upgrade_in_place(version):
            await _upgrade_in_place(conn, version)
            return None
        log.warning(
            "projections are version %d, this code needs %d: rebuilding from the topics",
            version,
            PROJECTION_VERSION,
        )
        try:
            return await _rebuild_prepared(settings, progress or log.info, engine)
        except RebuildRunning:
            log.warning("another instance is rebuilding the projections; waiting for it")
            await conn.execute("SELECT pg_advisory_lock($1)", REBUILD_LOCK)
            await conn.execute("SELECT pg_advisory_unlock($1)", REBUILD_LOCK)
            return None
    finally:
        await conn.close()


async def _upgrade_in_place(conn: asyncpg.Connection, version: int) -> None:
    async with conn.transaction():
        await lock_for_swap(conn)  # live consumers wait; another instance may have done it
        current = await live_version(conn) or 0
        if current < PROJECTION_VERSION:
            await upgrade_in_place(conn, current)
            log.warning(
                "projections upgraded in place from version %d to %d", current, PROJECTION_VERSION
            )


async def _replay_and_swap(
    settings: DashboardSettings, admin: asyncpg.Connection, schema: str, progress: Progress
) -> _Replayer:
    pool = await create_dashboard_pool(settings.database_url, search_path(schema), max_size=2)
    replayer = _Replayer(settings, pool, progress)
    try:
        await replayer.replay_until(await replayer.start())
        progress("caught up; switching over")
        async with admin.transaction():
            await lock_for_swap(admin)
            live = await live_positions(admin)
            await replayer.replay_until(
                {
                    tp: max(live.get((tp.topic, tp.partition), 0), pos)
                    for tp, pos in replayer.positions.items()
                }
            )
            await swap_in(admin, schema)
    finally:
        await replayer.stop()
        await pool.close()
    return replayer


async def _reconcile_findings(settings: DashboardSettings, engine: RulesEngine) -> None:
    pool = await create_dashboard_pool(settings.database_url, max_size=1)
    try:
        await engine.evaluate_all(pool)
    finally:
        await pool.close()


def main() -> None:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = uvloop.run(rebuild(DashboardSettings(), progress=lambda line: print(line, flush=True)))
    print(
        f"done: {result.records} records, {result.applied} applied, "
        f"{result.dead_letters} dead letters, {result.seconds:.1f}s"
    )


if __name__ == "__main__":
    main()
