"""The relay against real Kafka and PostgreSQL: a record it can never publish is parked
(moved to ``outbox_parked`` with the reason, announced on the dead-letter topic) and the
rows behind it, of the same key and of others, are published in order; reconcile after a
crash saves its progress as it reads and starts from the oldest record kept."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from ingestion_helpers import headers_of, read_records
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from test_outbox_inbox import mission_event, start_relay

from inprocess import metric_total
from support import SCRAPE, eventually, free_port, terminated
from teamnl_shared.contract.envelope import Event
from teamnl_shared.outbox import OutboxRelay, _delete_found, _read_since, enqueue, parked_rows

pytestmark = pytest.mark.integration


async def write(pool: asyncpg.Pool, topic: str, events: list[Event]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            await enqueue(conn, event, topic=topic)


async def unpublished(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox"))


async def test_a_record_kafka_can_never_take_is_parked_and_the_rest_is_published_in_order(
    database_url: str, migrated_pool: asyncpg.Pool, make_topics, kafka_bootstrap: str
) -> None:
    topic, dead = await make_topics("parking", "deadletter", partitions=2)
    before = [mission_event(1, n) for n in range(3)]
    await write(migrated_pool, topic, before)
    # What an older version (without the size check at the door) let into the outbox: a
    # record twice the producer's max_request_size, then a row whose headers are garbage.
    await write(migrated_pool, topic, [mission_event(1, 3)])
    await migrated_pool.execute(
        "UPDATE outbox SET value = $1 WHERE event_id = '1-3'", b"x" * (2 * 1024 * 1024)
    )
    await write(migrated_pool, topic, [mission_event(2, 0)])
    await migrated_pool.execute(
        "UPDATE outbox SET headers = '{\"not\": \"pairs\"}' WHERE event_id = '2-0'"
    )
    after = [mission_event(key, n) for n in range(4, 8) for key in (1, 3)]
    await write(migrated_pool, topic, after)

    told: list[tuple[str, str]] = []
    relay = OutboxRelay(
        database_url,
        kafka_bootstrap,
        poll_interval=0.2,
        parked_topic=dead,
        service="nlib",
        on_parked=lambda t, reason, _source: told.append((t, reason)),
    )
    await relay_until_nothing_left(relay, migrated_pool)

    parked = {row.event_id: row for row in await parked_rows(migrated_pool)}
    assert set(parked) == {"1-3", "2-0"}
    assert parked["1-3"].reason.startswith("MessageSizeTooLargeError")
    assert parked["1-3"].size == 2 * 1024 * 1024
    assert parked["2-0"].reason.startswith("ValueError: headers are not")
    assert sorted(told) == [(topic, "MessageSizeTooLargeError"), (topic, "ValueError")]
    assert relay.parked_total == 2
    assert relay.published_total == len(before) + len(after)

    records = await read_records(kafka_bootstrap, topic, len(before) + len(after), partitions=2)
    ids = [headers_of(r)["ce_id"] for r in records]
    assert sorted(ids) == sorted(e.id for e in before + after), "every other row, once"
    for key in ("m-1", "m-3"):
        of_key = [json.loads(r.value)["leads"] for r in records if r.key == key.encode()]
        assert of_key == sorted(of_key), f"order of {key} kept around the parked row"

    notice_records = await read_records(kafka_bootstrap, dead, 2)
    assert all(headers_of(r) == {"teamnl_notice": "outbox-parked"} for r in notice_records)
    notices = [json.loads(r.value) for r in notice_records]
    assert sorted(n["ce_id"] for n in notices) == ["1-3", "2-0"]
    assert {n["service"] for n in notices} == {"nlib"}
    assert all("value" not in n and "data" not in n for n in notices), "no payload copied"


async def relay_until_nothing_left(relay: OutboxRelay, pool: asyncpg.Pool) -> None:
    async def nothing_left() -> bool:
        return await unpublished(pool) == 0

    task = asyncio.create_task(relay.run())
    try:
        await eventually(nothing_left)
    finally:
        await relay.stop()
        await task


async def _send_as_a_crashed_relay(bootstrap: str, topic: str, events: list[Event]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, e.data_json(), key=e.key.encode(), headers=e.to_kafka_headers()
            )
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def test_reconcile_keeps_its_progress_and_the_relay_resumes_without_resending(
    database_url: str, migrated_pool: asyncpg.Pool, make_topics, kafka_bootstrap: str
) -> None:
    """A reconcile that ends after its first chunk has deleted that chunk and advanced the
    checkpoint; the next session reads only the rest and sends nothing twice."""
    (topic,) = await make_topics("reconcile", partitions=1)
    events = [mission_event(i % 7, i) for i in range(3000)]
    await write(migrated_pool, topic, events)
    await _send_as_a_crashed_relay(kafka_bootstrap, topic, events)  # crash before deleting

    tp = TopicPartition(topic, 0)
    chunks = _read_since(kafka_bootstrap, {tp: 0}, asyncio.Event())
    found, positions = await anext(chunks)
    await chunks.aclose()  # the session ends here
    async with migrated_pool.acquire() as conn:
        deleted = await _delete_found(conn, found, positions)
    assert 0 < deleted < len(events), "a first chunk, not everything"
    checkpoint = await migrated_pool.fetchval("SELECT next_offset FROM outbox_checkpoints")
    assert checkpoint == deleted, "the checkpoint follows the rows deleted"
    assert await unpublished(migrated_pool) == len(events) - deleted

    relay = OutboxRelay(database_url, kafka_bootstrap, poll_interval=0.2)
    await relay_until_nothing_left(relay, migrated_pool)
    assert relay.published_total == 0, "every row was in Kafka already: nothing resent"
    assert await migrated_pool.fetchval("SELECT next_offset FROM outbox_checkpoints") == 3000


async def test_reconcile_reads_from_the_oldest_record_kept_when_the_checkpoint_is_gone(
    database_url: str, migrated_pool: asyncpg.Pool, make_topics, kafka_bootstrap: str
) -> None:
    """Retention deleted the records before the checkpoint: with ``earliest`` the relay reads
    what is left (and marks it), instead of jumping to the end and sending it again."""
    (topic,) = await make_topics("retention", partitions=1)
    gone = [mission_event(100, n) for n in range(5)]
    kept = [mission_event(200, n) for n in range(5)]
    await write(migrated_pool, topic, kept)  # only these are still unpublished
    await _send_as_a_crashed_relay(kafka_bootstrap, topic, gone + kept)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(len(gone))})
    finally:
        await admin.close()

    relay = OutboxRelay(database_url, kafka_bootstrap, poll_interval=0.2)
    await relay_until_nothing_left(relay, migrated_pool)
    assert relay.published_total == 0, "the kept records were found, not sent again"


async def test_the_relay_as_a_process_of_its_own_counts_and_announces_what_it_parks(
    database_url: str,
    migrated_pool: asyncpg.Pool,
    make_topics,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    """``python -m teamnl_shared.relay_main --service nlib`` relays as the service's own
    relay: a row it parks is counted in its metrics and announced on nlib's dead-letter
    topic (which it creates), each record it publishes has its publish span (sent over
    OTLP, as service ``nlib-relay``), its log lines are JSON. (It once set up no telemetry
    and no parking: a parked row was only moved aside, and the dashboard never heard of
    it.)"""
    (topic,) = await make_topics("relayed", partitions=2)
    prefix = topic.removesuffix("relayed")
    await write(migrated_pool, topic, [mission_event(1, 0)])
    await migrated_pool.execute(
        "UPDATE outbox SET value = $1 WHERE event_id = '1-0'", b"x" * (2 * 1024 * 1024)
    )
    behind = [mission_event(1, n) for n in range(1, 4)]
    await write(migrated_pool, topic, behind)
    port, log, otlp = free_port(), tmp_path / "relay.log", OtlpSink()
    relay = _relay_process(database_url, kafka_bootstrap, prefix, port, log, otlp.url)
    try:
        await eventually(lambda: _nothing_unpublished(migrated_pool), timeout=60)
        records = await read_records(kafka_bootstrap, topic, len(behind), partitions=2)
        assert sorted(headers_of(r)["ce_id"] for r in records) == sorted(e.id for e in behind)
        (notice,) = await read_records(
            kafka_bootstrap, f"{prefix}teamnl.deadletter.nlib", 1, partitions=1
        )
        assert json.loads(notice.value)["ce_id"] == "1-0"
        async with httpx.AsyncClient() as client:
            scraped = (await client.get(f"http://127.0.0.1:{port}/metrics", headers=SCRAPE)).text
        assert (
            metric_total(
                scraped,
                "teamnl_outbox_parked_total",
                service="nlib",
                reason="MessageSizeTooLargeError",
            )
            == 1
        ), scraped
    finally:
        terminated(relay)  # its telemetry flushed at exit
        otlp.close()
    sent = [span for service, span in otlp.spans if service == "nlib-relay"]
    assert {e.id for e in behind} <= {
        attribute.value.string_value
        for span in sent
        if span.name == f"send {topic}"
        for attribute in span.attributes
        if attribute.key == "messaging.message.id"
    }, sent
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    parked = [line for line in lines if "parked" in line["message"]]
    assert parked and all(line["service"] == "nlib-relay" for line in lines), lines
    assert relay.returncode == 0, log.with_suffix(".err").read_text()[-2000:]


def _relay_process(
    database_url: str, bootstrap: str, prefix: str, metrics_port: int, log: Path, otlp_url: str
) -> subprocess.Popen[bytes]:
    """nlib's relay alone, its JSON log lines in `log` (stderr beside it, ``.err``), its
    spans and metrics sent to `otlp_url`."""
    with log.open("wb") as out, log.with_suffix(".err").open("wb") as err:
        return start_relay(
            database_url,
            bootstrap,
            "--metrics-port",
            str(metrics_port),
            env={
                "TEAMNL_TOPIC_PREFIX": prefix,
                "TEAMNL_TOPIC_PARTITIONS": "1",  # the dead-letter topic it creates
                "NLIB_RELAY_POLL_INTERVAL": "0.2",
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url,
            },
            stdout=out,
            stderr=err,
        )


async def _nothing_unpublished(pool: asyncpg.Pool) -> bool:
    return await unpublished(pool) == 0


class OtlpSink:
    """An OTLP/HTTP endpoint on 127.0.0.1 (protobuf) that keeps the spans it is sent, each
    with its resource's ``service.name``, and takes (and drops) everything else."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []
        spans = self.spans

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    spans.extend(_spans_of(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _spans_of(body: bytes) -> Iterator[tuple[str, Any]]:
    """(``service.name``, span) of each span in an OTLP trace export."""
    for batch in ExportTraceServiceRequest.FromString(body).resource_spans:
        resource = {a.key: a.value.string_value for a in batch.resource.attributes}
        for scope in batch.scope_spans:
            for span in scope.spans:
                yield resource.get("service.name", ""), span
