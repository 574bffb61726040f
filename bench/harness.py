"""What every run needs around the stack: load generator processes, memory sampling, the
projection-commit observer and the dashboard's counts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import asyncpg

from bench.kafka_io import partition_ends
from bench.loadgen import LoadConfig, Target
from bench.stack import INITIATIVES, BenchStack
from teamnl_shared.kafka import admin_client

LIVE_INBOX = "proj.events"  # a network event's inbox row in the dashboard's live projections
NOTIFY_CHANNEL = "bench_inbox"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def interrupt_on_sigterm() -> None:
    """SIGTERM (``kill``, a CI job's timeout) ends the run as Ctrl-C does: what was measured
    is written and the stack stopped. Python's default ends the process at once, leaving
    the services (each in a session of its own) and a private PostgreSQL and Kafka running."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, interrupt)


def targets(stack: BenchStack, services: tuple[str, ...] = INITIATIVES) -> list[Target]:
    return [Target(s, stack.services[s].url, stack.keys[s]) for s in services]


# -- the load generator, as its own process ---------------------------------------------------
@dataclass
class LoadgenProcess:
    config: LoadConfig
    process: subprocess.Popen[str]
    last_progress: dict[str, Any] = field(default_factory=dict)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, config: LoadConfig, workdir: Path, label: str) -> LoadgenProcess:
        config_path = workdir / f"loadgen-{label}.json"
        config.out = str(workdir / f"loadgen-{label}.result.json")
        config.dump(config_path)
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", str(config_path)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=_repo_root(),
            env={**os.environ, "PYTHONPATH": str(_repo_root())},
        )
        started = cls(config, process)
        started._reader = threading.Thread(target=started._read, daemon=True)
        started._reader.start()
        return started

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "progress" in message:
                self.last_progress = message["progress"]

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> dict[str, Any]:
        try:
            self.process.wait(timeout=timeout)
        except BaseException:  # a timeout, or the run interrupted (Ctrl-C, SIGTERM)
            self.process.kill()
            self.process.wait()
            raise
        if self.process.returncode != 0:
            raise RuntimeError(f"load generator failed ({self.process.returncode})")
        result: dict[str, Any] = json.loads(Path(self.config.out).read_text())
        return result


def run_loadgen(
    config: LoadConfig, workdir: Path, label: str, sampler: MemorySampler | None = None
) -> dict[str, Any]:
    process = LoadgenProcess.start(config, workdir, label)
    if sampler is not None:
        sampler.extra["loadgen"] = process.pid
    try:
        return process.wait(timeout=config.duration + 300)
    finally:
        if sampler is not None:
            sampler.extra.pop("loadgen", None)


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# -- resident memory while something runs -----------------------------------------------------
class MemorySampler:
    """Samples every service's VmRSS (with descendants) in a thread; keeps the maximum."""

    def __init__(self, stack: BenchStack, interval: float = 0.5) -> None:
        self.stack = stack
        self.interval = interval
        self.peak: dict[str, float] = {}
        self.extra: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> MemorySampler:
        self.peak = {}
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        from bench.procmem import tree_rss_kib

        while not self._stop.wait(self.interval):
            samples = dict(self.stack.rss_mib())
            for name, pid in list(self.extra.items()):
                kib = tree_rss_kib(pid)
                samples[name] = None if kib is None else round(kib / 1024, 1)
            for name, value in samples.items():
                if value is not None:
                    self.peak[name] = max(self.peak.get(name, 0.0), value)


# -- observers running beside a measurement ----------------------------------------------------
class ThreadObserver:
    """Runs `_run` on its own event loop in a thread between __enter__ and __exit__;
    `_run` sets `_ready` once it observes, and ends when `_stop` is set."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as error:  # noqa: BLE001 - reported by __enter__ or ignored late
            self._error = error
            self._ready.set()

    async def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(30) or self._error:
            raise RuntimeError(f"{type(self).__name__} did not start: {self._error!r}")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


# -- when did each event's projection commit? ---------------------------------------------------
class CommitObserver(ThreadObserver):
    """LISTENs to a per-row trigger on the live inbox (of network events, as the bench's
    are: their ``events`` rows); NOTIFY arrives at commit.

    The trigger exists only while the observer runs, in the run's own database.
    """

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.database_url = database_url

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.database_url)
        try:
            await conn.execute(
                "CREATE OR REPLACE FUNCTION public.bench_inbox_notify() RETURNS trigger"
                " LANGUAGE plpgsql AS $$ BEGIN"
                f" PERFORM pg_notify('{NOTIFY_CHANNEL}', NEW.event_id); RETURN NULL; END $$;"
                f" DROP TRIGGER IF EXISTS bench_inbox_notify ON {LIVE_INBOX};"
                f" CREATE TRIGGER bench_inbox_notify AFTER INSERT ON {LIVE_INBOX}"
                " FOR EACH ROW EXECUTE FUNCTION public.bench_inbox_notify();"
            )
            await conn.add_listener(NOTIFY_CHANNEL, self._notified)
            self._ready.set()
            await asyncio.to_thread(self._stop.wait)
            await conn.execute(f"DROP TRIGGER IF EXISTS bench_inbox_notify ON {LIVE_INBOX}")
        finally:
            await conn.close()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.seen.setdefault(payload, time.time())

    def wait_for(self, ids: set[str], timeout: float) -> set[str]:
        """Wait until every id was seen; returns those still missing at the timeout."""
        deadline = time.monotonic() + timeout
        missing = ids - self.seen.keys()
        while missing and time.monotonic() < deadline:
            time.sleep(0.2)
            missing = ids - self.seen.keys()
        return missing


def read_acks(path: str) -> list[tuple[str, str, int, float]]:
    with open(path) as handle:
        return [tuple(json.loads(line)) for line in handle if line.strip()]  # type: ignore[misc]


# -- the dashboard's counts -----------------------------------------------------------------
async def _dashboard_counts(url: str, like: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        applied = await conn.fetchval(
            "SELECT (SELECT count(*) FROM proj.events WHERE event_id LIKE $1)"
            " + (SELECT count(*) FROM proj.inbox WHERE event_id LIKE $1)",
            like,
        )
        dead = await conn.fetchval("SELECT count(*) FROM proj.dead_letters")
        total = await conn.fetchval(
            "SELECT (SELECT count(*) FROM proj.events) + (SELECT count(*) FROM proj.inbox)"
        )
    finally:
        await conn.close()
    return {"applied": int(applied), "applied_total": int(total), "dead_letters": int(dead)}


def dashboard_counts(stack: BenchStack, like: str = "%") -> dict[str, int]:
    return asyncio.run(_dashboard_counts(stack.database_url("dashboard"), like))


async def _grouped(url: str, query: str, *args: object) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {name: int(count) for name, count in await conn.fetch(query, *args)}
    finally:
        await conn.close()


def projected_types(stack: BenchStack, like: str) -> dict[str, int]:
    """The events matching `like` the dashboard projected, counted by type."""
    query = (
        "SELECT type, count(*) FROM proj.events WHERE event_id LIKE $1 GROUP BY type ORDER BY type"
    )
    return asyncio.run(_grouped(stack.database_url("dashboard"), query, like))


def findings_by_rule(stack: BenchStack) -> dict[str, int]:
    """The dashboard's findings whose situation holds, counted by rule."""
    query = "SELECT rule, count(*) FROM findings WHERE condition_holds GROUP BY rule ORDER BY rule"
    return asyncio.run(_grouped(stack.database_url("dashboard"), query))


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def wait_projected(
    stack: BenchStack, like: str, expected: int, timeout: float
) -> tuple[bool, float, dict[str, int]]:
    """Wait until the dashboard's consumer group has committed every record its topics hold
    now (the load is written), then count once that its inbox holds ``expected`` events
    matching ``like``; the seconds are those until the group caught up.

    The wait reads Kafka's offsets, not the inbox: a count over the inbox is a scan of every
    event projected, and polled four times a second over a million it took more of the
    machine than the projection it waited for."""
    started = time.monotonic()
    caught_up = asyncio.run(
        group_caught_up(stack.bootstrap, stack.dashboard_group(), stack.topics(), timeout)
    )
    seconds = time.monotonic() - started
    counts = dashboard_counts(stack, like)
    return caught_up and counts["applied"] >= expected, seconds, counts


def _behind(ends: dict[Any, int], committed: dict[Any, Any]) -> dict[Any, int]:
    """Records each partition holds that the group has not committed (partitions not behind
    left out)."""
    lag = {tp: end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()}
    return {tp: n for tp, n in lag.items() if n > 0}


async def group_backlog(bootstrap: str, group: str, topics: list[str]) -> int:
    """How many records `topics` hold now that `group` has not committed yet: what is left
    to project when a load ends (the dashboard commits its offsets after each batch's
    transaction, so what it committed is what it applied, to one batch)."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        ends = await partition_ends(bootstrap, topics)
        return sum(_behind(ends, await admin.list_consumer_group_offsets(group)).values())
    finally:
        await admin.close()


async def group_caught_up(
    bootstrap: str, group: str, topics: list[str], timeout: float, interval: float = 0.1
) -> bool:
    """Whether `group` commits, within `timeout`, every record `topics` hold when called."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        ends = {tp: end for tp, end in (await partition_ends(bootstrap, topics)).items() if end > 0}
        deadline = time.monotonic() + timeout
        while True:
            if not _behind(ends, await admin.list_consumer_group_offsets(group)):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval)
    finally:
        await admin.close()
