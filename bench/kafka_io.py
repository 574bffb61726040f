"""Bare aiokafka: the producer and consumer baselines, the fast loader, and the audit reader.

``python -m bench.kafka_io produce|trickle|consume|roundtrip ...`` runs one of them as its own
process and prints a JSON result on its last stdout line.

- ``produce``: the floor of batch accept (acks=all, idempotent, pipelined sends);
- ``trickle``: the same events at a steady ``--rate`` for ``--seconds``;
- ``consume``: read every record; with ``--copy-to DATABASE_URL`` it also parses each value
  as JSON and writes one row per record with COPY into a fresh table, the floor of a
  projection rebuild; with ``--validate`` it reads each record as the dashboard does, through
  the contract (``parse_kafka``: the CloudEvents SDK, then the pydantic models), and does
  nothing else - the floor of anything that must validate every record; with ``--trace`` as
  well, it also traces each record as the dashboard's consumer does (a consume span and the
  end-to-end latency measured, on the services' own telemetry set-up, exported nowhere as in
  the bench), and nothing else - the floor of a live projection, which must do both;
- ``roundtrip``: Kafka's own end-to-end latency, producer send -> consumer poll, at a fixed
  rate, one record at a time (the floor of the end-to-end latency figure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import uvloop
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import chains, events
from bench.procmem import CpuMeter
from bench.stats import rate, summarise
from teamnl_shared import kafka
from teamnl_shared.collector import settle_collector
from teamnl_shared.contract.envelope import Event, InvalidEvent, parse_kafka
from teamnl_shared.kafka import assigned_reader, ensure_topics, idempotent_producer
from teamnl_shared.telemetry import setup_telemetry
from teamnl_shared.telemetry.messaging import start_consume_span

IN_FLIGHT = 20_000  # sends queued before awaiting the oldest: pipelined, memory bounded
HISTORY_DAYS = 365
FLOOR_GROUP = "iso-dashboard"
"""The consumer group the traced floor's spans name, as the dashboard's do."""


def loaded_events(
    run_id: str,
    count: int,
    history_every: int = 0,
    now: datetime | None = None,
    chain_share: float = 0.0,
) -> Iterator[events.BenchEvent]:
    """``count`` events: ``chain_share`` of them, spread evenly, the events of dependent
    chains (:mod:`bench.chains`: in the order of their days, over the years before `now`),
    the rest independent events round-robin over the services, each dated when it is made
    (or `now`); with ``history_every`` n, one independent event in n (the n-th, 2n-th, ...)
    ``HISTORY_DAYS`` earlier. Times differ as a partner's do: a million events of one instant
    would make every "latest events" read sort their ties."""
    chained = chains.events(run_id, now or datetime.now(UTC), int(count * chain_share))
    independent = 0
    for index in range(count):
        if chains.takes_slot(index, chain_share):
            yield next(chained)
            continue
        moment = now or datetime.now(UTC)
        if history_every > 0 and independent % history_every == history_every - 1:
            moment -= timedelta(days=HISTORY_DAYS)
        yield events.make_event(events.SERVICES[independent % 3], run_id, independent // 3, moment)
        independent += 1


async def produce(
    bootstrap: str,
    prefix: str,
    run_id: str,
    count: int,
    topic: str | None = None,
    rate_per_s: float | None = None,
    history_every: int = 0,
    chain_share: float = 0.0,
) -> dict[str, Any]:
    """Write ``count`` events (round-robin over the services) with acks=all, idempotent.

    ``topic`` set: all into that one topic (the baseline); else each into its family topic
    under ``prefix`` (the fast loader for the million-event dashboard figure). ``rate_per_s``
    set: one event every ``1/rate`` s (the trickle the dashboard projects while its overview
    page is measured again); else as fast as Kafka takes them. ``history_every`` n: one
    event in n is dated a year earlier (a deployment's history: the dashboard's reading of
    this year then holds only part of the events). ``chain_share``: that share of the events
    are dependent chains' (:func:`loaded_events`), counted by type in the result's
    ``chains``.
    """
    records, chained, chain_ids = [], Counter[str](), chains.id_prefix(run_id)
    for event in loaded_events(run_id, count, history_every, chain_share=chain_share):
        records.append((topic or event.topic(prefix), *event.kafka_record()))
        if event.id.startswith(chain_ids):
            chained[event.type] += 1
    if topic:
        await ensure_topics(bootstrap, [topic])
    # IN_FLIGHT sends before it awaits them: a linger fills the batches (the baseline's own)
    producer = idempotent_producer(bootstrap, linger_ms=5)
    await producer.start()
    try:
        # the machine's CPU while the records are sent (the events were made before): what
        # putting one record into Kafka costs the producer and the broker together
        with CpuMeter({"baseline": os.getpid()}) as meter:
            started = time.monotonic()
            pending: list[asyncio.Future[Any]] = []
            for index, (name, key, value, headers) in enumerate(records):
                if rate_per_s:
                    await asyncio.sleep(max(0.0, started + index / rate_per_s - time.monotonic()))
                pending.append(await producer.send(name, value, key=key, headers=headers))
                if len(pending) >= IN_FLIGHT:
                    await asyncio.gather(*pending)
                    pending = []
            await asyncio.gather(*pending)
            elapsed = time.monotonic() - started
    finally:
        await producer.stop()
    return {
        "events": count,
        "elapsed_s": round(elapsed, 3),
        "rate": rate(count, elapsed),
        "cpu": meter.per_event(count),  # the rest of the machine: the broker, mostly
        "chains": dict(sorted(chained.items())),
    }


async def _reader(
    bootstrap: str, topics: list[str]
) -> tuple[AIOKafkaConsumer, dict[TopicPartition, int]]:
    consumer = assigned_reader(
        bootstrap, max_partition_fetch_bytes=4 << 20, fetch_max_bytes=32 << 20
    )
    await consumer.start()
    partitions = [
        TopicPartition(t, p)
        for t, ps in (await partitions_of(bootstrap, topics)).items()
        for p in ps
    ]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends = await consumer.end_offsets(partitions)
    return consumer, ends


async def read_to_end(
    bootstrap: str,
    topics: list[str],
    *,
    identities: bool,
    timeout: float = 600.0,
    copy_to: str = "",
    on_record: Callable[[Any], object] | None = None,
    limit: int = 0,
) -> dict[str, Any]:
    """Read every record of ``topics`` up to their current end offsets (with ``limit``, the
    first fetches that hold that many: a sample, for a rate).

    With ``identities`` the result also holds ``counts``: (ce_source, ce_id) -> records.
    With ``copy_to`` (a database URL) every batch is parsed and COPYed into a fresh table.
    ``on_record`` is called with every record read (the fault run's audit decodes them).
    """
    sink = await RowSink.open(copy_to) if copy_to else None
    consumer, ends = await _reader(bootstrap, topics)
    remaining = {tp for tp, end in ends.items() if end > 0}
    counts: Counter[tuple[str, str]] = Counter()
    records = 0
    started, cpu_started = time.monotonic(), time.process_time()
    try:
        while remaining and time.monotonic() - started < timeout:
            if limit and records >= limit:
                remaining.clear()  # the sample is read
                break
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, items in batch.items():
                records += len(items)
                if sink is not None:
                    await sink.write(items)
                if on_record is not None:
                    for record in items:
                        on_record(record)
                if identities:
                    for record in items:
                        headers = dict(record.headers)
                        counts[
                            (
                                headers.get("ce_source", b"").decode(),
                                headers.get("ce_id", b"").decode(),
                            )
                        ] += 1
                if items and items[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        elapsed = time.monotonic() - started
        cpu = time.process_time() - cpu_started
    finally:
        await consumer.stop()
        if sink is not None:
            await sink.close()
    if remaining:
        raise RuntimeError(f"could not read to the end of {sorted(map(str, remaining))}")
    return {
        "records": records,
        "elapsed_s": round(elapsed, 3),
        "rate": rate(records, elapsed),
        # what one core given wholly to it would read: the bound of a process doing this work
        "cpu_s": round(cpu, 3),
        "cpu_rate": rate(records, cpu),
        "end_offsets": sum(ends.values()),
        "counts": counts,
    }


class RowSink:
    """One fresh table, one row per record (its identity, type and parsed data), by COPY."""

    COLUMNS = ("topic", "partition", "record_offset", "event_id", "event_type", "data")

    def __init__(self, conn: asyncpg.Connection, table: str) -> None:
        self.conn = conn
        self.table = table

    @classmethod
    async def open(cls, database_url: str) -> RowSink:
        conn = await asyncpg.connect(database_url)
        table = f"bench_copy_{uuid.uuid4().hex[:8]}"
        await conn.execute(
            f"CREATE TABLE {table} (topic text, partition int, record_offset bigint,"
            " event_id text, event_type text, data jsonb)"
        )
        return cls(conn, table)

    async def write(self, records: list[Any]) -> None:
        rows = []
        for record in records:
            headers = dict(record.headers)
            data = json.loads(record.value)
            rows.append(
                (
                    record.topic,
                    record.partition,
                    record.offset,
                    headers.get("ce_id", b"").decode(),
                    headers.get("ce_type", b"").decode(),
                    json.dumps(data),
                )
            )
        await self.conn.copy_records_to_table(self.table, records=rows, columns=self.COLUMNS)

    async def close(self) -> None:
        await self.conn.execute(f"DROP TABLE {self.table}")
        await self.conn.close()


async def roundtrip(
    bootstrap: str, topic: str, rate_per_s: float, seconds: float
) -> dict[str, Any]:
    """Send one record every ``1/rate`` s and time it until a consumer has it in hand (sent
    at once, without a linger, as the outbox relay sends)."""
    await ensure_topics(bootstrap, [topic])
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=100
    )
    producer = idempotent_producer(bootstrap)
    await consumer.start()
    await producer.start()
    latencies: list[float] = []
    try:
        await _until_assigned(consumer)
        count = int(rate_per_s * seconds)
        receiving = asyncio.create_task(_receive(consumer, latencies, count))
        started = time.monotonic()
        for index in range(count):
            await asyncio.sleep(max(0.0, started + index / rate_per_s - time.monotonic()))
            sent = str(time.monotonic()).encode()
            await producer.send(topic, sent, key=str(index % 64).encode())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiving, 10)
    finally:
        await producer.stop()
        await consumer.stop()
    return {"rate": rate_per_s, "sent": count, "received": len(latencies), **summarise(latencies)}


async def _until_assigned(consumer: AIOKafkaConsumer) -> None:
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    await consumer.seek_to_end()


async def _receive(consumer: AIOKafkaConsumer, latencies: list[float], count: int) -> None:
    while len(latencies) < count:
        batch = await consumer.getmany(timeout_ms=100)
        now = time.monotonic()
        for records in batch.values():
            latencies += [(now - float(r.value)) * 1000 for r in records]


async def partitions_of(bootstrap: str, topics: list[str]) -> dict[str, list[int]]:
    """The partitions of each topic that exists."""
    found: dict[str, list[int]] = {}
    for tp in await kafka.partitions_of(bootstrap, topics):
        found.setdefault(tp.topic, []).append(tp.partition)
    return found


async def partition_ends(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    """Each partition's end offset (the offset its next record gets)."""
    reader = assigned_reader(bootstrap)
    await reader.start()
    try:
        return await reader.end_offsets(await kafka.partitions_of(bootstrap, topics))
    finally:
        await reader.stop()


async def end_offsets(bootstrap: str, topics: list[str]) -> int:
    return sum((await partition_ends(bootstrap, topics)).values())


def _traced(validate: Callable[[Any], Event | None]) -> Callable[[Any], None]:
    """Each record validated and traced as the dashboard's consumer does: its consume span
    (``start_consume_span``, the dashboard's for records its handlers buffer) and its
    end-to-end latency (``record_end_to_end_latency``, from the event's time: the dashboard
    first looks for the outbox's acceptance header, which loaded records lack)."""
    for name in [name for name in os.environ if name.startswith("OTEL_EXPORTER_OTLP")]:
        del os.environ[name]  # exported nowhere, as the bench's services are (bench.stack)
    telemetry = setup_telemetry("bench-traced-floor", "0", "test")
    tracer, metrics = telemetry.tracer("teamnl.inbox"), telemetry.metrics
    settle_collector()  # as every service process does (a span per record allocates much)

    def traced(record: Any) -> None:
        event = validate(record)
        if event is None:
            return
        with start_consume_span(tracer, record, FLOOR_GROUP, event.type):
            pass
        seconds = (datetime.now(UTC) - event.time).total_seconds()
        metrics.record_end_to_end_latency(seconds, topic=record.topic, event_type=event.type)

    return traced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["produce", "trickle", "consume", "roundtrip"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--run-id", default="baseline")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--topic", action="append", default=[])
    parser.add_argument("--copy-to", default="", help="consume: COPY the rows to this database")
    parser.add_argument(
        "--validate", action="store_true", help="consume: read each record through the contract"
    )
    parser.add_argument(
        "--trace", action="store_true", help="consume --validate: trace each record as well"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="roundtrip, trickle: per s")
    parser.add_argument("--seconds", type=float, default=10.0, help="roundtrip, trickle: how long")
    parser.add_argument(
        "--history-every", type=int, default=0, help="produce: one event in n a year earlier"
    )
    parser.add_argument(
        "--chain-share", type=float, default=0.0, help="produce: this share in dependent chains"
    )
    args = parser.parse_args()
    if args.action == "produce":
        topic = args.topic[0] if args.topic else None
        result = asyncio.run(
            produce(
                args.bootstrap,
                args.prefix,
                args.run_id,
                args.count,
                topic,
                history_every=args.history_every,
                chain_share=args.chain_share,
            )
        )
    elif args.action == "trickle":
        count = round(args.rate * args.seconds)
        result = asyncio.run(
            produce(args.bootstrap, args.prefix, args.run_id, count, rate_per_s=args.rate)
        )
    elif args.action == "roundtrip":
        result = asyncio.run(roundtrip(args.bootstrap, args.topic[0], args.rate, args.seconds))
    elif args.validate:
        invalid = Counter[str]()

        def validate(record: Any) -> Event | None:
            try:
                return parse_kafka(record.headers, record.value)
            except InvalidEvent:
                invalid["invalid"] += 1
                return None

        # the traced floor on uvloop, as the dashboard runs (a few per cent faster than
        # asyncio's loop); the validating one stays on asyncio's, comparable across runs
        run = uvloop.run if args.trace else asyncio.run
        result = run(
            read_to_end(
                args.bootstrap,
                args.topic,
                identities=False,
                on_record=_traced(validate) if args.trace else validate,
                limit=args.count,
            )
        )
        result.pop("counts")
        result["invalid"] = invalid["invalid"]
    else:
        result = asyncio.run(
            read_to_end(
                args.bootstrap, args.topic, identities=False, copy_to=args.copy_to, limit=args.count
            )
        )
        result.pop("counts")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
