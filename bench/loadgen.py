"""The load generator: a separate process, so its CPU is not the measured service's.

``python -m bench.loadgen CONFIG.json``: reads a :class:`LoadConfig` (JSON), prints one
progress line per second (``{"progress": {...}}``) on stdout, writes the result JSON to
``config.out`` and, when ``config.acks`` is set, one JSON line per event with its final
status and the wall-clock time of its acknowledgement (for end-to-end latency and the
fault audit). The rate it offers and the rate it achieved are both in the result.

Shapes: ``rate == 0`` is closed loop (``concurrency`` clients, each sending its next
request when the previous one answered); ``rate > 0`` is open loop (requests are due at a
fixed rate; latency counts from the due time, so a slow server cannot hide its queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bench.events import BenchEvent, make_event
from bench.rawhttp import RawClient, RawResponse, TransportError
from bench.stats import rate, summarise

SINGLE_PATH = "/v1/events"
BATCH_PATH = "/v1/events:batch"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
Response = httpx.Response | RawResponse
ACCEPTED = (200, 202)  # 200: an idempotent replay of an event already accepted


@dataclass
class Target:
    service: str
    url: str
    api_key: str = ""


@dataclass
class LoadConfig:
    targets: list[Target]
    out: str
    mode: str = "single"  # single | batch | get
    run_id: str = "bench"
    start_index: int = 0
    count: int = 0  # events (single/batch) or requests (get); 0: until `duration`
    duration: float = 10.0  # seconds, an upper bound in every mode
    rate: float = 0.0  # events/s offered (requests/s for get); 0: closed loop
    concurrency: int = 32
    batch_size: int = 100
    paths: list[str] = field(default_factory=list)  # for get
    headers: dict[str, str] = field(default_factory=dict)  # for get (e.g. a session cookie)
    retry_seconds: float = 0.0  # >0: retry transport errors, 429 and 503 for that long
    acks: str = ""
    timeout: float = 30.0
    client: str = "raw"  # raw (bench.rawhttp) | httpx
    max_prepared: int = 2_000_000

    @classmethod
    def load(cls, path: str) -> LoadConfig:
        raw = json.loads(Path(path).read_text())
        raw["targets"] = [Target(**t) for t in raw["targets"]]
        return cls(**raw)

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))


@dataclass
class Unit:
    """One request: its target, body and the events in it."""

    target: Target
    events: list[BenchEvent]
    body: bytes
    path: str


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    event_statuses: Counter[str] = field(default_factory=Counter)
    bad_5xx: list[dict[str, Any]] = field(default_factory=list)
    service_ms: list[float] = field(default_factory=list)
    response_ms: list[float] = field(default_factory=list)
    requests: int = 0
    events_sent: int = 0
    events_acked: int = 0
    retries: int = 0
    gave_up: int = 0
    acks: list[tuple[str, str, int, float, int]] = field(default_factory=list)


def prepare(config: LoadConfig) -> Iterator[Unit]:
    """The requests, rendered lazily as the clients take them (a run of a million events
    once held every body in memory: 1.5 GB); rendering one costs microseconds, a small
    share of the load generator's CPU, which the result reports (``loadgen_cpu_s``)."""
    per_request = config.batch_size if config.mode == "batch" else 1
    total = config.count or int(
        min(config.max_prepared, (config.rate or 20_000) * config.duration * 1.05 + 1)
    )
    if config.mode == "get":
        for i in range(total):
            target = config.targets[i % len(config.targets)]
            yield Unit(target, [], b"", config.paths[i % len(config.paths)])
        return
    next_index = {t.service: config.start_index for t in config.targets}
    made = units = 0
    while made < total:
        target = config.targets[units % len(config.targets)]
        units += 1
        n = min(per_request, total - made)
        first = next_index[target.service]
        batch = [make_event(target.service, config.run_id, first + k) for k in range(n)]
        next_index[target.service] += n
        made += n
        if config.mode == "batch":
            body = json.dumps([e.structured() for e in batch], separators=(",", ":")).encode()
            yield Unit(target, batch, body, BATCH_PATH)
        else:
            yield Unit(target, batch, batch[0].body(), SINGLE_PATH)


class Runner:
    def __init__(self, config: LoadConfig, units: Iterator[Unit]) -> None:
        self.config = config
        self.units = units
        self.tally = Tally()
        self.started = 0.0
        self.deadline = 0.0
        self.next_unit = 0

    async def run(self) -> dict[str, Any]:
        async with _client(self.config) as client:
            self.client = client
            self.started = time.monotonic()
            self.cpu_started = time.process_time()
            self.deadline = self.started + self.config.duration
            reporter = asyncio.create_task(self._report())
            if self.config.rate > 0:
                await self._open_loop()
            else:
                await asyncio.gather(
                    *(self._closed_worker() for _ in range(self.config.concurrency))
                )
            elapsed = time.monotonic() - self.started
            reporter.cancel()
        return self._result(elapsed)

    # -- shapes -----------------------------------------------------------------------------
    async def _closed_worker(self) -> None:
        while time.monotonic() < self.deadline:
            unit = next(self.units, None)
            if unit is None:
                return
            self.next_unit += 1
            await self._send(unit, time.monotonic())

    async def _open_loop(self) -> None:
        per_unit = self.config.batch_size if self.config.mode == "batch" else 1
        interval = per_unit / self.config.rate
        gate = asyncio.Semaphore(self.config.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        for index, unit in enumerate(self.units):
            due = self.started + index * interval
            if due >= self.deadline:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await gate.acquire()  # at most `concurrency` in flight: late sends show as lag
            task = asyncio.create_task(self._send(unit, due))
            task.add_done_callback(lambda _t: gate.release())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            self.next_unit = index + 1
        if tasks:
            await asyncio.gather(*tasks)

    # -- one request, with retries when asked -----------------------------------------------
    async def _send(self, unit: Unit, due: float) -> None:
        give_up_at = time.monotonic() + self.config.retry_seconds
        self.tally.events_sent += len(unit.events)
        while True:
            status, retry_after = await self._attempt(unit, due)
            retryable = status in (0, 429, 503)
            if not retryable or self.config.retry_seconds <= 0 or time.monotonic() > give_up_at:
                break
            self.tally.retries += 1
            await asyncio.sleep(min(retry_after or 0.2, 2.0))
        if retryable and self.config.retry_seconds > 0:
            self.tally.gave_up += len(unit.events) or 1

    async def _attempt(self, unit: Unit, due: float) -> tuple[int, float]:
        sent = time.monotonic()
        try:
            response = await self._request(unit)
        except (httpx.HTTPError, TransportError) as error:
            self.tally.statuses[f"transport:{type(error).__name__}"] += 1
            self.tally.requests += 1
            self._record_events(unit, [0] * len(unit.events))
            return 0, 0.2
        now = time.monotonic()
        self.tally.requests += 1
        self.tally.statuses[str(response.status_code)] += 1
        self.tally.service_ms.append((now - sent) * 1000)
        self.tally.response_ms.append((now - due) * 1000)
        if response.status_code >= 500:
            self._note_5xx(response)
        self._record_events(unit, self._event_statuses(unit, response))
        return response.status_code, _retry_after(response)

    async def _request(self, unit: Unit) -> Response:
        url = unit.target.url + unit.path
        if self.config.mode == "get":
            return await self.client.request("GET", url, headers=self.config.headers)
        content_type = BATCH if self.config.mode == "batch" else STRUCTURED
        return await self.client.request(
            "POST",
            url,
            content=unit.body,
            headers={
                "content-type": content_type,
                "authorization": f"Bearer {unit.target.api_key}",
            },
        )

    def _event_statuses(self, unit: Unit, response: Response) -> list[int]:
        if self.config.mode != "batch" or response.status_code >= 300:
            return [response.status_code] * len(unit.events)
        return batch_statuses(response, len(unit.events))

    def _record_events(self, unit: Unit, statuses: list[int]) -> None:
        wall = time.time()
        for event, status in zip(unit.events, statuses, strict=True):
            self.tally.event_statuses[str(status)] += 1
            if status in ACCEPTED:
                self.tally.events_acked += 1
                if self.config.acks:
                    self.tally.acks.append(
                        (event.source, event.id, status, wall, self.tally.requests)
                    )

    def _note_5xx(self, response: Response) -> None:
        if response.status_code == 503 and response.headers.get("retry-after"):
            return
        if len(self.tally.bad_5xx) < 50:
            self.tally.bad_5xx.append(
                {
                    "status": response.status_code,
                    "retry_after": response.headers.get("retry-after"),
                    "body": response.text[:300],
                    "at": time.time(),
                }
            )

    # -- reporting --------------------------------------------------------------------------
    async def _report(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            print(
                json.dumps(
                    {
                        "progress": {
                            "elapsed": round(time.monotonic() - self.started, 2),
                            "requests": self.tally.requests,
                            "events_acked": self.tally.events_acked,
                            "statuses": dict(self.tally.statuses),
                        }
                    }
                ),
                flush=True,
            )

    def _result(self, elapsed: float) -> dict[str, Any]:
        t = self.tally
        per_unit = self.config.batch_size if self.config.mode == "batch" else 1
        offered = self.config.rate or None
        return {
            "mode": self.config.mode,
            "concurrency": self.config.concurrency,
            "elapsed_s": round(elapsed, 3),
            "loadgen_cpu_s": round(time.process_time() - self.cpu_started, 3),
            "offered_rate": offered,
            "achieved_rate": rate(
                t.events_acked if self.config.mode != "get" else t.requests, elapsed
            ),
            "sent_rate": rate(t.events_sent if self.config.mode != "get" else t.requests, elapsed),
            "request_rate": rate(t.requests, elapsed),
            "events_per_request": per_unit,
            "requests": t.requests,
            "events_sent": t.events_sent,
            "events_acked": t.events_acked,
            "retries": t.retries,
            "gave_up": t.gave_up,
            "statuses": dict(t.statuses),
            "event_statuses": dict(t.event_statuses),
            "bad_5xx": t.bad_5xx,
            "service_ms": summarise(t.service_ms),
            "response_ms": summarise(t.response_ms),
        }


def batch_statuses(response: Response, n: int) -> list[int]:
    """Per-event statuses of a batch answer (a list, or ``{"results": [...]}``)."""
    try:
        body = response.json()
    except ValueError:
        return [response.status_code] * n
    items = body.get("results", body.get("items")) if isinstance(body, dict) else body
    if not isinstance(items, list) or len(items) != n:
        return [response.status_code] * n
    return [
        int(item.get("status", response.status_code))
        if isinstance(item, dict)
        else response.status_code
        for item in items
    ]


@contextlib.asynccontextmanager
async def _client(config: LoadConfig) -> AsyncIterator[Any]:
    if config.client == "httpx":
        limits = httpx.Limits(
            max_connections=config.concurrency, max_keepalive_connections=config.concurrency
        )
        async with httpx.AsyncClient(limits=limits, timeout=config.timeout) as client:
            yield client
        return
    client = RawClient(config.concurrency, config.timeout)
    try:
        yield client
    finally:
        await client.aclose()


def _retry_after(response: Response) -> float:
    try:
        return float(response.headers.get("retry-after", "0"))
    except ValueError:
        return 0.0


def write_acks(path: str, acks: list[tuple[str, str, int, float, int]]) -> None:
    with open(path, "w") as handle:
        for source, event_id, status, wall, _ in acks:
            handle.write(f'["{source}","{event_id}",{status},{wall:.6f}]\n')


def main(config_path: str) -> None:
    config = LoadConfig.load(config_path)
    runner = Runner(config, prepare(config))
    # On uvloop, as the services run: against the no-op app (64 clients, then 1,000 requests
    # a second), it spent 0.13-0.14 and 0.25-0.29 ms of CPU per request this way, 0.16 and
    # 0.32-0.34 on asyncio's own loop with `wait_for` (a task per request) for its timeout;
    # in the bench's open-loop steps 0.16-0.46 against 0.19-0.67. Against nlib with 64
    # clients it spends as much either way (0.16-0.17: it mostly waits), and nlib answered
    # 885-1,028 ev/s with it, 910-1,017 with the old one (seven rounds each, interleaved).
    result = uvloop.run(runner.run())
    if config.acks:
        write_acks(config.acks, runner.tally.acks)
    Path(config.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
