"""Rebuild the projections from the topics, while the dashboard keeps serving.

``python -m teamnl_dashboard.rebuild`` (settings from DASHBOARD_*), or :func:`rebuild`.

1. Create a fresh schema ``proj_rebuild_<id>`` (projection tables and its own inbox), to
   be loaded: without secondary indexes and without the running totals' triggers.
2. Replay every family topic from the beginning into it (no consumer group: partitions
   are assigned directly), up to the end offsets seen at the start; progress is printed.
   Then sum the running totals from the loaded rows and build the indexes and triggers
   (``complete_load``, split by table between as many connections as processes).
3. Switch over in one transaction: lock the live inbox (live consumers finish their batch
   and wait), replay what the live projections have seen since, rename the live schema
   to ``proj_retired_<id>`` and the new one to ``proj``. Waiting consumers then continue
   on the new schema, whose inbox already knows what was replayed.
4. Evaluate every coherence rule once against the new projections (findings are kept:
   they live outside the projection schema and are reconciled, not recreated), while the
   retired schema is dropped.

A rebuild that was killed leaves its schemas behind (and one whose drop of the retired
schema failed, that one); the next rebuild drops them first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection

import asyncpg
import uvloop
from aiokafka import ConsumerRecord, TopicPartition
from opentelemetry import trace

from teamnl_shared.collector import settle_collector
from teamnl_shared.inbox import Ahead, Inbox, parse_ahead, records_of
from teamnl_shared.kafka import assigned_reader, partitions_of
from teamnl_shared.undecodable import UNDECODABLE, Fetched, past_undecodable

from . import projections
from .consumer import event_topics
from .database import create_dashboard_pool, prepare_database
from .live import notify
from .projections.network import DeadLetter, record_dead_letters
from .projections.schema import (
    PROJECTION_VERSION,
    can_upgrade_in_place,
    complete_load,
    create_schema,
    drop_schema,
    live_positions,
    live_version,
    lock_for_swap,
    rebuilding_schema,
    search_path,
    set_apart_schemas,
    swap_in,
    upgrade_in_place,
)
from .rules import Clock, RulesEngine, build_engine, system_clock
from .rules.engine import READ_AHEAD
from .settings import DashboardSettings

log = logging.getLogger(__name__)
REBUILD_LOCK = 7_310_103
Progress = Callable[[str], None]
Positions = dict[TopicPartition, int]
_TRACER = trace.get_tracer("teamnl.dashboard.rebuild")
PARALLEL_FROM_RECORDS = 50_000
"""A smaller log is replayed in this process alone (another process takes seconds to start)."""
REPLAY_BATCH = 5000
"""Records per fetch and transaction while replaying: large, since the rules are evaluated
once at the end, not per batch."""
REPLAY_YOUNG_THRESHOLD = 100 * REPLAY_BATCH
"""A replay's processes look for reference cycles every this many container objects
allocated net (:func:`settle_collector`), ten times a service's 50,000: a fetch of
`REPLAY_BATCH` records, parsed while the one before is applied, keeps far more than 50,000
alive (records, events, buffered rows), so each look walked objects still in use and moved
them to an older generation. Replaying 400,000 events in two processes, that was 212 looks
and 1.9-2.0 s of each process's 10.7-11.9 s of CPU; at this threshold none fell within
the replay. Three A/Bs on one stack: replay 14.2-15.0 s against 17.1-17.8, the rebuild's
CPU 19.2-20.1 s against 22.6-23.0 and PostgreSQL's 11.0-11.7 against 13.0-14.1; the
largest process 134 MiB at most against 127."""


class RebuildRunning(RuntimeError):
    """Another rebuild holds the lock."""


@dataclass
class RebuildResult:
    schema: str
    records: int
    applied: int
    dead_letters: int
    seconds: float
    phases: dict[str, float]
    """Seconds per phase: ``replay`` (up to the end offsets seen at the start), ``load``
    (the running totals summed, the indexes built), ``switch`` (the catch-up under the
    lock and the swap), ``rules`` (every rule evaluated once, while the retired schema is
    dropped)."""


class _Replayer:
    """Reads the topics from the beginning and applies them to one schema."""

    def __init__(self, settings: DashboardSettings, pool: asyncpg.Pool, progress: Progress) -> None:
        self.settings = settings
        self.pool = pool
        self.progress = progress
        self.inbox = Inbox(
            pool,
            projections.handle,
            "rebuild",
            deferred=projections.DeferredProjections,
            trace_records=False,
            ledger=projections.LEDGER,
        )
        self.consumer = assigned_reader(settings.kafka_bootstrap_servers)
        self.positions: Positions = {}
        self.records = self.applied = self.dead = 0
        self.phases: dict[str, float] = {}

    async def fold(self) -> None:
        """Fold the running totals' delta rows that a catch-up's records added (readers sum
        a key's rows: they read the same either way, but fewer rows faster)."""
        async with self.pool.acquire() as conn:
            await projections.fold_totals(conn)

    async def complete_load(self, schema: str) -> None:
        """After the replay of every part: the running totals, indexes and triggers, on as
        many connections as the replay had processes."""
        await complete_load(self.pool, schema, lanes=self.settings.rebuild_processes)

    async def start(self) -> None:
        """Connect to Kafka."""
        await self.consumer.start()

    async def end_offsets(self) -> Positions:
        """Every partition's current end offset (once started)."""
        partitions = await partitions_of(
            self.settings.kafka_bootstrap_servers, event_topics(self.settings)
        )
        ends: Positions = await self.consumer.end_offsets(partitions)
        return ends

    async def assign(self, partitions: list[TopicPartition], at: Positions | None = None) -> None:
        """Read `partitions`, each from `at` (default: its beginning)."""
        self.consumer.assign(partitions)
        if at is None:
            await self.consumer.seek_to_beginning(*partitions)
        else:
            for tp in partitions:
                self.consumer.seek(tp, at[tp])
        self.positions = {tp: await self.consumer.position(tp) for tp in partitions}

    def add(self, part: PartResult) -> None:
        """Count what another process replayed."""
        self.records += part.records
        self.applied += part.applied
        self.dead += part.dead

    async def stop(self) -> None:
        await self.consumer.stop()

    async def replay_until(self, targets: Positions) -> None:
        """Apply every record up to `targets`. Reads ahead: while one fetch's transaction is
        in the database, the next fetch is read and parsed (Python and PostgreSQL work at
        the same time); the transactions still run one after the other, in order."""
        total = sum(targets.values())
        applying: asyncio.Task[None] | None = None
        try:
            while any(self.positions.get(tp, 0) < end for tp, end in targets.items()):
                try:
                    batch = await self.consumer.getmany(timeout_ms=500, max_records=REPLAY_BATCH)
                except UNDECODABLE as error:
                    if applying is not None:
                        await applying
                        applying = None
                    await self._past_undecodable(targets, error)
                    continue
                records = records_of(batch)
                # Parsed ahead, not projected ahead (Inbox.read_ahead): the replay's processes
                # and PostgreSQL keep both cores busy already; projecting ahead gained nothing
                # (600,000 events, A/B on one stack: 27.6 / 28.2 / 27.0 s against 27.5 /
                # 27.0 / 27.2 s of replay).
                ahead = Ahead(await parse_ahead(records))
                if applying is not None:
                    await applying
                    applying = None
                if records:  # one transaction per fetch, each partition's records in order
                    applying = asyncio.ensure_future(self._apply(records, ahead))
                for tp in self.positions:
                    self.positions[tp] = await self.consumer.position(tp)
                self.progress(
                    f"replayed {self.records} records ({self.applied} applied,"
                    f" {self.dead} dead letters) of about {total}"
                )
            if applying is not None:
                await applying
                applying = None
        finally:
            if applying is not None and not applying.done():
                applying.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await applying

    async def _past_undecodable(self, targets: Positions, error: UnicodeDecodeError) -> None:
        """A fetch met a record aiokafka cannot decode (:mod:`teamnl_shared.undecodable`),
        somewhere: every partition is read again from its position before that fetch, the
        records before each such record (before its target) applied, fetched alone, and the
        record dead-lettered by its position."""
        reading = past_undecodable(
            self.consumer,
            self.settings.kafka_bootstrap_servers,
            dict(self.positions),
            error,
            ends=targets,
            max_records=REPLAY_BATCH,
        )
        async with contextlib.aclosing(reading) as items:
            async for item in items:
                if isinstance(item, Fetched):
                    await self._apply(item.records, Ahead(await parse_ahead(item.records)))
                    continue
                tp = item.tp
                at = datetime.now(UTC)
                dead = DeadLetter(tp.topic, tp.partition, item.offset, item.reason, None, None, at)
                await self._record([dead])
                self.records += 1
                self.dead += 1
                self.positions[tp] = item.past

    async def _apply(self, records: list[ConsumerRecord], ahead: Ahead) -> None:
        with _TRACER.start_as_current_span("rebuild apply") as span:
            outcome = await self.inbox.apply(records, ahead)
            span.set_attribute("teamnl.rebuild.records", len(records))
            span.set_attribute("teamnl.rebuild.applied", len(outcome.applied))
        if outcome.dead:
            await self._record([_dead_letter(record, reason) for record, reason in outcome.dead])
        self.records += len(records)
        self.applied += len(outcome.applied)
        self.dead += len(outcome.dead)

    async def _record(self, letters: list[DeadLetter]) -> None:
        async with self.pool.acquire() as conn:
            await record_dead_letters(conn, letters)


def _dead_letter(record: ConsumerRecord, reason: str) -> DeadLetter:
    """A record replayed into the dead letters, at its own time (its timestamp)."""
    at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    return DeadLetter(record.topic, record.partition, record.offset, reason, None, None, at)


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
    clock = asyncio.get_running_loop().time
    started = clock()
    admin = await asyncpg.connect(settings.database_url)
    try:
        if not await admin.fetchval("SELECT pg_try_advisory_lock($1)", REBUILD_LOCK):
            raise RebuildRunning("another rebuild is running")
        for leftover in await set_apart_schemas(admin):
            await drop_schema(admin, leftover)
            progress(f"dropped {leftover}, left by an earlier rebuild")
        schema = rebuilding_schema()
        try:
            replayer, retired = await _replay_and_swap(settings, admin, schema, progress)
        except BaseException:
            await drop_schema(admin, schema)
            raise
        progress(f"evaluating every coherence rule; dropping {retired}")
        rules_started = clock()
        dropping = asyncio.create_task(_drop_retired(admin, retired, progress))
        try:
            await _reconcile_findings(settings, engine)
        except BaseException:
            dropping.cancel()  # ended before the admin connection closes
            await asyncio.wait([dropping])
            raise
        await dropping
    finally:
        await admin.close()
    phases = {**replayer.phases, "rules": clock() - rules_started}
    seconds = clock() - started
    progress(
        f"switched to the rebuilt projections: {replayer.applied} events in {seconds:.1f}s ("
        + ", ".join(f"{name} {value:.1f}s" for name, value in phases.items())
        + ")"
    )
    return RebuildResult(schema, replayer.records, replayer.applied, replayer.dead, seconds, phases)


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


async def _drop_retired(admin: asyncpg.Connection, retired: str, progress: Progress) -> None:
    """Drop the schema the switch retired. The rebuild is done either way: a schema not
    dropped (the server refused, or the connection was lost) is left to the next rebuild,
    which drops what earlier ones left first."""
    try:
        await drop_schema(admin, retired)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
        progress(f"{retired} is left for the next rebuild to drop: {error}")


async def _replay_and_swap(
    settings: DashboardSettings, admin: asyncpg.Connection, schema: str, progress: Progress
) -> tuple[_Replayer, str]:
    """Replay into `schema` and swap it in; the replayer and the retired schema's name."""
    pool = await create_dashboard_pool(
        settings.database_url, search_path(schema), max_size=max(2, settings.rebuild_processes)
    )
    replayer = _Replayer(settings, pool, progress)
    clock = asyncio.get_running_loop().time
    try:
        started = clock()
        await _replay_in_parts(settings, admin, schema, replayer)
        replayer.phases["replay"] = clock() - started
        progress("every record replayed; summing the running totals, building the indexes")
        started = clock()
        await replayer.complete_load(schema)
        replayer.phases["load"] = clock() - started
        progress("caught up; switching over")
        started = clock()
        retired = await _switch(admin, schema, replayer)
        replayer.phases["switch"] = clock() - started
    finally:
        await replayer.stop()
        await pool.close()
    return replayer, retired


async def _switch(admin: asyncpg.Connection, schema: str, replayer: _Replayer) -> str:
    """Lock the live inbox, replay what the live projections saw since, swap the schemas;
    the name the live schema was retired under."""
    async with admin.transaction():
        await lock_for_swap(admin)
        live = await live_positions(admin)
        await replayer.replay_until(
            {
                tp: max(live.get((tp.topic, tp.partition), 0), pos)
                for tp, pos in replayer.positions.items()
            }
        )
        await replayer.fold()
        retired = await swap_in(admin, schema)
        # at the switch's commit: every instance's overview cache and open page hear of it
        await notify(admin, {"kind": "projections", "rebuilt": schema})
    return retired


async def _replay_in_parts(
    settings: DashboardSettings, admin: asyncpg.Connection, schema: str, replayer: _Replayer
) -> None:
    """Create `schema` (to be loaded) and replay into it up to the end offsets seen now. A
    large log is split by partition between `processes` (this one and others it starts):
    each partition's records stay in order in one process, as a consumer group splits them
    between dashboard instances (the projections are built for that). Returns when every
    part is done; `replayer` then reads every partition from where its part stopped.

    The other processes start before the schema is made and get ready meanwhile, reading
    no end offsets of their own: this one replays alone until they are. A part's process
    started after the schema was made fetched first 1.49 s after this one (0.88 s its
    imports, 0.53 its Kafka client and the end offsets); now 0.66 s after (a rebuild of
    908,000 events on two processes)."""
    await replayer.start()
    ends = await replayer.end_offsets()
    parts = _split(ends, _processes(settings, ends))
    others = [_PartProcess(settings, schema, part) for part in parts[1:]]
    try:
        async with admin.transaction():
            await create_schema(admin, schema, to_load=True)
        for other in others:
            other.begin()
        replayer.progress(f"building {schema}")
        if others:
            replayer.progress(
                f"replaying in {len(parts)} processes, by partition;"
                " progress below is this process's part"
            )
        await replayer.assign(list(parts[0]))
        await replayer.replay_until(parts[0])
        positions = dict(replayer.positions)
        for other in others:
            done = await other.result()
            replayer.add(done)
            positions.update(done.positions)
    finally:
        for other in others:
            other.stop()
    await replayer.assign(list(ends), positions)


def _processes(settings: DashboardSettings, ends: Positions) -> int:
    records = sum(ends.values())
    if records < PARALLEL_FROM_RECORDS:
        return 1  # starting a process costs more than it saves
    return max(1, min(settings.rebuild_processes, sum(1 for end in ends.values() if end)))


def _split(ends: Positions, processes: int) -> list[Positions]:
    """`processes` parts of about equal records: the largest partitions first, each to the
    part with the fewest records so far (the first part is this process's)."""
    parts: list[Positions] = [{} for _ in range(processes)]
    for tp, end in sorted(ends.items(), key=lambda item: -item[1]):
        min(parts, key=lambda part: sum(part.values()))[tp] = end
    return parts


@dataclass
class PartResult:
    """What one process replayed: its counts and where each of its partitions stopped."""

    records: int
    applied: int
    dead: int
    positions: Positions


class _PartProcess:
    """One part of a rebuild's replay in a process of its own (spawned: a fresh
    interpreter, no state of this one's event loop). It starts at once and gets ready
    (imports, its connections, its partitions) while the schema is made, then replays
    once told to :meth:`begin`; its result comes back over a pipe."""

    def __init__(self, settings: DashboardSettings, schema: str, targets: Positions) -> None:
        context = multiprocessing.get_context("spawn")
        self._result, theirs = context.Pipe(duplex=False)
        go, self._go = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_replay_part_in_process,
            args=(settings, schema, targets, theirs, go),
            name=f"rebuild-part-{schema}",
            daemon=True,
        )
        self._process.start()
        theirs.close()
        go.close()

    def begin(self) -> None:
        """The schema is there: replay."""
        self._go.send(True)

    async def result(self) -> PartResult:
        try:
            kind, value = await asyncio.to_thread(self._result.recv)
        except EOFError:
            raise RuntimeError(
                f"a rebuild process ended without a result (exit code {self._process.exitcode})"
            ) from None
        await asyncio.to_thread(self._process.join)
        if kind != "done":
            raise RuntimeError(f"a rebuild process failed: {value}")
        assert isinstance(value, PartResult)
        return value

    def stop(self) -> None:
        """End the process if it still runs (this rebuild failed elsewhere)."""
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)
        self._result.close()
        self._go.close()


def _replay_part_in_process(
    settings: DashboardSettings,
    schema: str,
    targets: Positions,
    result: Connection,
    go: Connection,
) -> None:
    """The entry point of a part's process; `go` tells it the schema is there."""
    settle_collector(REPLAY_YOUNG_THRESHOLD)
    try:
        done = uvloop.run(_replay_part(settings, schema, targets, go))
    except BaseException as error:
        result.send(("failed", repr(error)))
        raise
    result.send(("done", done))
    result.close()


async def _replay_part(
    settings: DashboardSettings, schema: str, targets: Positions, go: Connection
) -> PartResult:
    """Replay `targets` into `schema` once `go` says it is there (ready meanwhile: the
    connections open, the partitions assigned)."""
    pool = await create_dashboard_pool(settings.database_url, search_path(schema), max_size=2)
    replayer = _Replayer(settings, pool, lambda _line: None)
    try:
        await replayer.start()
        await replayer.assign(list(targets))
        await asyncio.to_thread(go.recv)
        await replayer.replay_until(targets)
        return PartResult(replayer.records, replayer.applied, replayer.dead, replayer.positions)
    finally:
        await replayer.stop()
        await pool.close()


async def _reconcile_findings(settings: DashboardSettings, engine: RulesEngine) -> None:
    pool = await create_dashboard_pool(settings.database_url, max_size=1 + READ_AHEAD)
    try:
        await engine.evaluate_all(pool)
    finally:
        await pool.close()


def main() -> None:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    logging.basicConfig(level=logging.WARNING)
    settle_collector(REPLAY_YOUNG_THRESHOLD)
    result = uvloop.run(rebuild(DashboardSettings(), progress=lambda line: print(line, flush=True)))
    print(
        f"done: {result.records} records, {result.applied} applied, "
        f"{result.dead_letters} dead letters, {result.seconds:.1f}s; phases "
        + json.dumps({name: round(value, 2) for name, value in result.phases.items()})
    )


if __name__ == "__main__":
    # Run as the imported module, not as __main__: the processes a rebuild starts find their
    # entry point (and the result they send back) by the module's own name.
    from teamnl_dashboard.rebuild import main as imported_main

    imported_main()
