"""Reading past a record aiokafka cannot decode.

aiokafka decodes each record's header names as UTF-8 while it unpacks a fetch, with no
option to leave them bytes. A record with one that is not (only another producer than the
relays can write one: they write fixed names, partners reach Kafka through the HTTP APIs)
makes every fetch of its partition raise :data:`UNDECODABLE`: the error names neither the
partition nor the offset, the fetch's records before it are dropped with the fetch (their
positions moved on all the same), and no record after it is ever returned.

A consumer that meets it goes back to where it had taken records up to, and reads on with
:func:`past_undecodable`: each partition's first such record is found by a reader of its own
(:func:`first_undecodable`), the records before it are fetched alone, up to it (a fetch is
unpacked as its records are returned, so the record is never reached), and the caller is
told of it (:class:`Undecodable`) and decides what to keep of it - a dead letter, a
checkpoint - before the reading goes on after it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from .kafka import assigned_reader

UNDECODABLE = UnicodeDecodeError
"""What aiokafka raises from a fetch holding a record it cannot unpack."""

PROBE_RECORDS = 500
"""Records a probe reads a fetch until a fetch fails; then one at a time from the last good
record (at most this many fetches more)."""


@dataclass(frozen=True)
class Fetched:
    """Records of one partition, all before its undecodable record."""

    tp: TopicPartition
    records: list[ConsumerRecord]


@dataclass(frozen=True)
class Undecodable:
    """The record at `offset` of `tp` cannot be decoded; the reading goes on after it once the
    caller asks for the next item."""

    tp: TopicPartition
    offset: int
    reason: str

    @property
    def past(self) -> int:
        return self.offset + 1


async def past_undecodable(
    consumer: AIOKafkaConsumer,
    bootstrap: str,
    starts: dict[TopicPartition, int],
    error: UnicodeDecodeError,
    ends: dict[TopicPartition, int] | None = None,
    max_records: int = PROBE_RECORDS,
) -> AsyncGenerator[Fetched | Undecodable, None]:
    """After a fetch failed with `error`: `consumer` reads each partition of `starts` again
    from there; in each, the records before its first undecodable one (before its end in
    `ends`; default the log's end now) come as :class:`Fetched`, at most `max_records` at a
    time, then the record itself as :class:`Undecodable`, and the partition is read on after
    it. Partitions without one are left at their start, for the caller's next fetch. A
    caller that rewinds a partition between two items (a failed apply) is read again from
    there."""
    for tp, start in starts.items():
        consumer.seek(tp, start)
    for tp, start in starts.items():
        end = None if ends is None else ends.get(tp, start)
        offset = await first_undecodable(bootstrap, tp, start, end)
        if offset is None:
            continue
        while (position := await consumer.position(tp)) < offset:
            fetched = await consumer.getmany(
                tp, timeout_ms=500, max_records=min(max_records, offset - position)
            )
            if records := fetched.get(tp):
                yield Fetched(tp, records)
        yield Undecodable(tp, offset, f"the record cannot be decoded: {error}")
        consumer.seek(tp, offset + 1)


async def committed_offsets(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """Each assigned partition's committed offset for the consumer's group (its first offset
    where the group has committed none)."""
    offsets = {}
    for tp in consumer.assignment():
        committed = await consumer.committed(tp)
        if committed is None:
            committed = (await consumer.beginning_offsets([tp]))[tp]
        offsets[tp] = committed
    return offsets


async def first_undecodable(
    bootstrap: str, tp: TopicPartition, start: int, end: int | None = None
) -> int | None:
    """The offset of the first record of `tp`, from `start` and before `end` (default: the
    log's end now), that aiokafka cannot decode; None if there is none. A reader of its own
    (no group) reads `PROBE_RECORDS` a fetch, then, once one fails, one record a fetch from
    the last good one: the record after it is the undecodable one. That takes a partition's
    offsets to follow each other (no compaction, no transactions: so are teamnl's topics);
    where they do not, an earlier offset than the record's may be named, and the consumer
    meets the record again and probes again from there."""
    if end is not None and start >= end:
        return None
    reader = assigned_reader(bootstrap)
    await reader.start()
    try:
        reader.assign([tp])
        if end is None:
            end = (await reader.end_offsets([tp]))[tp]
        reader.seek(tp, start)
        last_good, step = start - 1, PROBE_RECORDS
        while await reader.position(tp) < end:
            try:
                fetched = await reader.getmany(tp, timeout_ms=500, max_records=step)
            except UNDECODABLE:
                if step == 1:
                    return last_good + 1
                step = 1
                reader.seek(tp, last_good + 1)
                continue
            for record in fetched.get(tp, ()):
                last_good = record.offset
        return None
    finally:
        await reader.stop()
