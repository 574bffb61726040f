"""Bare aiokafka: the producer and consumer baselines, the fast loader, and the audit reader.

``python -m bench.kafka_io produce|consume|audit ...`` runs one of them as its own process
and prints a JSON result on its last stdout line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench import events
from bench.stats import rate
from teamnl_shared.kafka import ensure_topics, idempotent_producer

IN_FLIGHT = 20_000  # sends queued before awaiting the oldest: pipelined, memory bounded


async def produce(
    bootstrap: str, prefix: str, run_id: str, count: int, topic: str | None = None
) -> dict[str, Any]:
    """Write ``count`` events (round-robin over the services) with acks=all, idempotent.

    ``topic`` set: all into that one topic (the baseline); else each into its family topic
    under ``prefix`` (the fast loader for the million-event dashboard figure).
    """
    records = []
    for index in range(count):
        event = events.make_event(events.SERVICES[index % 3], run_id, index // 3)
        records.append((topic or event.topic(prefix), *event.kafka_record()))
    if topic:
        await ensure_topics(bootstrap, [topic])
    producer = idempotent_producer(bootstrap)
    await producer.start()
    try:
        started = time.monotonic()
        pending: list[asyncio.Future[Any]] = []
        for name, key, value, headers in records:
            pending.append(await producer.send(name, value, key=key, headers=headers))
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        elapsed = time.monotonic() - started
    finally:
        await producer.stop()
    return {"events": count, "elapsed_s": round(elapsed, 3), "rate": rate(count, elapsed)}


async def _reader(
    bootstrap: str, topics: list[str]
) -> tuple[AIOKafkaConsumer, dict[TopicPartition, int]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=32 << 20,
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
    on_record: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Read every record of ``topics`` up to their current end offsets.

    With ``identities`` the result also holds ``counts``: (ce_source, ce_id) -> records.
    ``on_record`` is called with every record read (the fault run's audit decodes them).
    """
    consumer, ends = await _reader(bootstrap, topics)
    remaining = {tp for tp, end in ends.items() if end > 0}
    counts: Counter[tuple[str, str]] = Counter()
    records = 0
    started = time.monotonic()
    try:
        while remaining and time.monotonic() - started < timeout:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, items in batch.items():
                records += len(items)
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
    finally:
        await consumer.stop()
    if remaining:
        raise RuntimeError(f"could not read to the end of {sorted(map(str, remaining))}")
    return {
        "records": records,
        "elapsed_s": round(elapsed, 3),
        "rate": rate(records, elapsed),
        "end_offsets": sum(ends.values()),
        "counts": counts,
    }


async def partitions_of(bootstrap: str, topics: list[str]) -> dict[str, list[int]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {
        d["topic"]: sorted(p["partition"] for p in d["partitions"])
        for d in described
        if not d.get("error_code")
    }


async def end_offsets(bootstrap: str, topics: list[str]) -> int:
    consumer, ends = await _reader(bootstrap, topics)
    await consumer.stop()
    return sum(ends.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["produce", "consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--run-id", default="baseline")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--topic", action="append", default=[])
    args = parser.parse_args()
    if args.action == "produce":
        topic = args.topic[0] if args.topic else None
        result = asyncio.run(produce(args.bootstrap, args.prefix, args.run_id, args.count, topic))
    else:
        result = asyncio.run(read_to_end(args.bootstrap, args.topic, identities=False))
        result.pop("counts")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
