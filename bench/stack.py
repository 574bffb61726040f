"""The stack a benchmark run starts for itself, and stops again.

- Infrastructure: by default a *private* Kafka + PostgreSQL on their own ports and state
  folder (``teamnl-bench``), so a run never disturbs (nor is disturbed by) the developers'
  instance, and the fault run may stop its broker. ``--infra shared`` uses
  ``Infrastructure.from_env()`` instead.
- Per run: a topic prefix ``bench.<run>.``, one database per service ``bench_<run>_<svc>``,
  and an API key per initiative service (issued with the ingestion kit's functions).
- Services: the four console scripts as separate processes, with the suite's environment
  conventions (``<SVC>_PORT``, ``<SVC>_DATABASE_URL``, ``TEAMNL_TOPIC_PREFIX``, ...), so each
  can be killed with SIGKILL and restarted on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import chains, events
from bench.procmem import tree_rss_kib
from teamnl_shared.db import create_pool
from teamnl_shared.ingestion.keys import create_key, ensure_key_store
from teamnl_shared.kafka import delete_topics_containing, delete_topics_where, ensure_topics
from teamnl_shared.telemetry.scrape import TOKEN_VARIABLE
from teamnl_suite.infra import InfraConfig, Infrastructure
from teamnl_suite.infra.config import _default_state_dir
from teamnl_suite.infra.postgres import create_databases, database_names, drop_databases

INITIATIVES = events.SERVICES
ALL_SERVICES = (*INITIATIVES, "dashboard")
SCRIPTS = {
    "nlib": "teamnl-nlib",
    "tinl": "teamnl-tinl",
    "werkplaats": "teamnl-werkplaats",
    "dashboard": "teamnl-dashboard",
}
ENV_PREFIX = {
    "nlib": "NLIB_",
    "tinl": "TINL_",
    "werkplaats": "WERKPLAATS_",
    "dashboard": "DASHBOARD_",
}
PORT_OFFSET = {"dashboard": 0, "nlib": 1, "tinl": 2, "werkplaats": 3}
BIN = Path(sys.executable).parent


def exported_nowhere(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the OTLP exporters' variables: a bench process's telemetry is recorded
    (spans made, metrics kept) but exported nowhere, so a run does not depend on a collector."""
    return {k: v for k, v in env.items() if not k.startswith("OTEL_EXPORTER_OTLP")}


def bench_slot() -> int:
    """``TEAMNL_BENCH_SLOT`` (0 by default) shifts every port and the state folder of a
    private bench stack, so two bench, fault or soak runs can share one machine."""
    return int(os.environ.get("TEAMNL_BENCH_SLOT", "0"))


def private_infra(
    kafka_port: int | None = None,
    postgres_port: int | None = None,
    *,
    kafka_proxy: bool = False,
    statements: bool = False,
) -> Infrastructure:
    """``kafka_proxy``: the broker gets a second listener (port + 2) advertised as port + 3,
    where the fault run's TCP proxy listens (see :func:`kafka_proxy_ports`). ``statements``:
    PostgreSQL loads pg_stat_statements (see :class:`bench.pgstats.Statements`). PostgreSQL
    logs each autovacuum and autoanalyze of 250 ms or more (checkpoints it logs by default),
    so that a stalled step can be read against them (:class:`bench.pgstats.ServerLog`)."""
    slot = bench_slot()
    kafka_port = kafka_port or 29092 + 10 * slot
    # below Linux's ephemeral range (32768-60999): a client connection's source port there
    # made a fresh bench PostgreSQL fail to listen ("Address already in use") on a CI run
    postgres_port = postgres_port or 25532 + 10 * slot
    base = InfraConfig.from_env()
    state = _default_state_dir().with_name("teamnl-bench" if slot == 0 else f"teamnl-bench-{slot}")
    return Infrastructure(
        InfraConfig(
            state_dir=state,
            cache_dir=base.cache_dir,
            host="127.0.0.1",
            kafka_port=kafka_port,
            kafka_controller_port=kafka_port + 1,
            postgres_port=postgres_port,
            external_kafka=None,
            external_database_url=None,
            kafka_proxied_listener=kafka_proxy_ports(kafka_port) if kafka_proxy else None,
            postgres_settings=(
                "log_autovacuum_min_duration=250",  # ms: the ones a stall could be
                *(("shared_preload_libraries=pg_stat_statements",) if statements else ()),
            ),
        )
    )


def kafka_proxy_ports(kafka_port: int) -> tuple[int, int]:
    """(the broker's second listener, the port it advertises there: the proxy's)."""
    return kafka_port + 2, kafka_port + 3


@dataclass
class ServiceProcess:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Seconds until ``/readyz`` (``/healthz`` where there is none) answered 200."""
        started = time.monotonic()
        deadline = started + timeout
        path = "/readyz"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                status = httpx.get(self.url + path, timeout=2.0).status_code
                if status == 200:
                    return time.monotonic() - started
                if status == 404:
                    path = "/healthz"
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def rss_kib(self) -> int | None:
        pid = self.pid
        return tree_rss_kib(pid) if pid else None

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@dataclass
class BenchStack:
    infra: Infrastructure
    private: bool
    workdir: Path
    base_port: int = field(default_factory=lambda: 18100 + 20 * bench_slot())
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    service_env: dict[str, str] = field(default_factory=dict)
    env_of: dict[str, dict[str, str]] = field(default_factory=dict)  # per service, applied last
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    metrics_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    """What the run's services are given as TEAMNL_METRICS_TOKEN, and its scrapes send."""

    @property
    def prefix(self) -> str:
        return f"bench.{self.run_id}."

    @property
    def bootstrap(self) -> str:
        return self.infra.kafka_bootstrap

    def database(self, service: str) -> str:
        return f"bench_{self.run_id}_{service}"

    def database_url(self, service: str) -> str:
        return self.infra.database_url(self.database(service))

    def topics(self) -> list[str]:
        """The topics the bench writes: the services' and those of the dashboard's chains."""
        return events.topics(self.prefix, chains.TYPES)

    def dashboard_group(self) -> str:
        """The dashboard's consumer group (prefixed like its topics)."""
        return f"{self.prefix}iso-dashboard"

    def deadletter_topic(self) -> str:
        return f"teamnl.deadletter.{self.dashboard_group()}"

    # -- lifecycle ----------------------------------------------------------------------------
    def up(self, services: tuple[str, ...] = ALL_SERVICES) -> dict[str, float]:
        """Infrastructure, databases, topics, the services; returns start-up seconds each."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.infra.up()  # quiet while Kafka boots (teamnl_suite.infra.kafka.wait_ready)
        asyncio.run(self._prepare())
        ready: dict[str, float] = {}
        for name in services:
            process = self._process(name)
            self.services[name] = process
            process.start()
        for name in services:
            ready[name] = round(self.services[name].wait_ready(), 2)
        asyncio.run(self._issue_keys([s for s in services if s in INITIATIVES]))
        return ready

    def down(self, *, drop: bool = True, stop_infra: bool | None = None) -> None:
        for process in self.services.values():
            process.stop()
        if drop:
            with contextlib.suppress(Exception):
                asyncio.run(self._drop())
        if stop_infra if stop_infra is not None else self.private:
            self.infra.down()

    def restart(self, name: str) -> float:
        process = self.services[name]
        process.start()
        return process.wait_ready()

    def cpu_pids(self) -> dict[str, int | None]:
        """The processes whose CPU the bench accounts per event: the services, the broker,
        the PostgreSQL postmaster (its backends are its children)."""
        pids = {name: process.pid for name, process in self.services.items()}
        pids["kafka"] = self.infra.kafka.pid()
        pids["postgres"] = _postmaster_pid(self.infra.postgres.data)
        return pids

    def rss_mib(self) -> dict[str, float | None]:
        found = {name: p.rss_kib() for name, p in self.services.items()}
        return {name: None if kib is None else round(kib / 1024, 1) for name, kib in found.items()}

    # -- internals ----------------------------------------------------------------------------
    def _process(self, name: str) -> ServiceProcess:
        prefix = ENV_PREFIX[name]
        port = self.base_port + PORT_OFFSET[name]
        env = exported_nowhere(os.environ)
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "TEAMNL_TOPIC_PREFIX": self.prefix,
                "TEAMNL_ENVIRONMENT": "development",
                f"{prefix}PORT": str(port),
                f"{prefix}HOST": "127.0.0.1",
                f"{prefix}DATABASE_URL": self.database_url(name),
                f"{prefix}LOG_LEVEL": "WARNING",
                TOKEN_VARIABLE: self.metrics_token,
            }
        )
        if name in INITIATIVES:
            # The benchmark measures the pipeline, not the per-partner rate limit.
            env[f"{prefix}RATE_LIMIT_PER_SECOND"] = "1000000"
            env[f"{prefix}RATE_LIMIT_BURST"] = "1000000"
        env.update({k.replace("{P}", prefix): v for k, v in self.service_env.items()})
        env.update(self.env_of.get(name, {}))
        return ServiceProcess(
            name, [str(BIN / SCRIPTS[name])], env, port, self.workdir / f"{name}.log"
        )

    async def _prepare(self) -> None:
        if self.private:
            await purge_other_runs(self.bootstrap, self.infra.admin_database_url(), self.run_id)
        names = [self.database(s) for s in ALL_SERVICES]
        await create_databases(self.infra.admin_database_url(), names)
        await ensure_topics(self.bootstrap, self.topics())

    async def _issue_keys(self, services: list[str]) -> None:
        for service in services:
            pool = await create_pool(self.database_url(service), max_size=2)
            try:
                await ensure_key_store(pool)
                issued = await create_key(pool, service=service, partner=events.partner_of(service))
                self.keys[service] = issued.key
            finally:
                await pool.close()

    async def _drop(self) -> None:
        await drop_databases(
            self.infra.admin_database_url(), [self.database(s) for s in ALL_SERVICES]
        )
        await delete_topics_containing(self.bootstrap, self.prefix)


# a run's topics start with its prefix ``bench.<run>.`` (dead-letter topics hold it after
# ``teamnl.deadletter.``); its databases are ``bench_<run>_<service>``
_RUN_TOPIC = re.compile(r"(?:^|\.)bench\.([0-9a-f]{8})\.")
_RUN_DATABASE = re.compile(r"^bench_([0-9a-f]{8})_")


async def purge_other_runs(
    bootstrap: str, admin_url: str, run_id: str
) -> tuple[list[str], list[str]]:
    """Delete the topics and databases of every bench run but ``run_id``; returns their names.

    Only for a private stack, whose broker and server are the bench's alone: a run stopped
    before its clean-up (killed, crashed, or ``--keep``) leaves its topics behind, and a broker
    reads every log it holds again when it starts. After a ``kill -9`` it also recovers them:
    with 666 such partitions, the fault run's broker was not back within 90 s (a CI run)."""

    def doomed(name: str) -> bool:
        found = _RUN_TOPIC.search(name)
        return found is not None and found.group(1) != run_id

    topics = await delete_topics_where(bootstrap, doomed)
    databases = [
        name
        for name in sorted(await database_names(admin_url))
        if (found := _RUN_DATABASE.match(name)) and found.group(1) != run_id
    ]
    await drop_databases(admin_url, databases)
    return topics, databases


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
