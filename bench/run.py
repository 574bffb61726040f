"""``make bench``: start a private stack, measure every figure against its baseline in the
same run, print one table and write ``bench/results/latest.md`` (+ ``latest.json``).

    python -m bench.run --size smoke|full [--infra private|shared] [--keep]

Phases (in this order, because later ones load the topics and the dashboard):
1. single-event ingestion vs a no-op FastAPI endpoint (untraced, and traced as the
   services' requests are) and a durable INSERT (closed loop, keep-alive clients; the four
   in turn, `SINGLE_ROUNDS` rounds each), and again with nlib
   restarted with OpenTelemetry off (`TELEMETRY_OFF`); then nlib and the
   durable INSERT with one client sending one event after another (`ONE_CLIENT_SHARE`);
2. batch ingestion vs a bare aiokafka producer (acks=all, idempotent), same events (the
   machine's CPU while it sends: the least one record put into Kafka costs);
3. end-to-end latency 202 -> projection commit at a fixed rate; then the highest rate the
   pipeline sustains with p99 < 1 s (a ramp, each step ``ramp_seconds`` long);
4. the dashboard with ``projected_events`` loaded straight into Kafka (fast loader),
   ``chain_share`` of them in dependent chains (``bench.chains``: missions held with their
   follow-ups and converted leads, Global Stars calls with their proposals, Werkplaats
   projects with their milestones, joins and ends), every one projected, none a dead letter:
   overview page and JSON API latency (p50/p95), then the page again while a trickle of
   ``PROJECTING_RATE`` ev/s is projected (its commits keep emptying the overview cache);
   the live projection is measured again with a worker process, and with the dashboard
   restarted with OpenTelemetry off;
5. projection rebuild vs a bare aiokafka consumer reading the same topics;
6. resident memory of every service at rest, under load and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import chains, groups, report
from bench.durable_app import DATABASE_URL_ENV as DURABLE_URL_ENV
from bench.harness import (
    CommitObserver,
    MemorySampler,
    dashboard_counts,
    findings_by_rule,
    group_backlog,
    interrupt_on_sigterm,
    log,
    projected_types,
    read_acks,
    run_loadgen,
    targets,
    wait_projected,
    wait_until,
)
from bench.hops import KafkaObserver, PushObserver, breakdown
from bench.kafka_io import end_offsets
from bench.loadgen import LoadConfig, Target
from bench.pgstats import ServerLog, Statements
from bench.procmem import CpuMeter, cpu_seconds
from bench.profile import REBUILD_SECONDS, Profiler, shares_of
from bench.profile import RESULTS as PROFILES
from bench.sizes import PHASES, SIZES, BenchSize
from bench.stack import (
    BIN,
    INITIATIVES,
    BenchStack,
    ServiceProcess,
    exported_nowhere,
    private_infra,
)
from bench.stats import ratio, summarise

RESULTS = Path(__file__).resolve().parent / "results"
KAFKA_IO = [str(BIN / "python"), "-m", "bench.kafka_io"]
WORKER_JOIN_SECONDS = 10.0  # an extra consumer joins the group and is given partitions
PROJECTING_RATE = 200.0  # ev/s projected while the overview page is measured again
HISTORY_EVERY = 10  # one loaded event in ten dated a year earlier (kafka_io --history-every)
PROJECTING_MARGIN_SECONDS = 5.0  # the trickle runs this much longer on each side of the load
PROFILE_EVENTS = 50_000  # loaded into Kafka for the projection's flame graph
VALIDATED_SAMPLE = 400_000  # records the validating bare consumer reads (a rate: a sample)
COPY_SAMPLE = 1_000_000
"""Records the bare consumer that parses and COPYs reads (the floor of a rebuild's writes):
a sample as well; the two million records of a full run took it 80-93 s."""
TRACED_SAMPLE = 100_000
"""Records the bare consumer that validates and traces each reads (the floor of a live
projection): a sample too, read at about a third of the validating consumer's rate (about
13 s; the full run is within 3 minutes of its 30)."""
ONE_CLIENT_SHARE = 0.5
"""The one-client passes of the single POST take this share of ``single_seconds``: a partner's
system sending what it has one event at a time waits for each answer, so its rate is one
over the latency of a lone request (no other request shares its transaction)."""
SINGLE_ROUNDS = 3
"""The single POST and its three baselines are loaded in turn, ``single_seconds`` split into this
many rounds each (the first of each round moving on), and each reports its median round. They
used to run one after the other, a minute apart, and the host's speed drifts over minutes:
from one full run to the next the durable INSERT's rate moved +14% while the no-op's moved
-12%. Turns of a few seconds give the four the same host."""
TELEMETRY_OFF = {"OTEL_SDK_DISABLED": "true"}
"""OpenTelemetry's own switch: no spans and no metrics. A figure measured again with a service
restarted with it tells what the service's telemetry (every request and event traced and
measured) costs that figure, in the same run."""


class Bench:
    def __init__(
        self,
        stack: BenchStack,
        size: BenchSize,
        *,
        profile: bool = False,
        statements: Statements | None = None,
    ) -> None:
        self.stack = stack
        self.profile = profile
        self.statements = statements
        self.size = size
        self.workdir = stack.workdir
        self.results: dict[str, Any] = {"size": size.name, "run_id": stack.run_id}
        self.sampler = MemorySampler(stack)
        self._session: str | None = None
        self._closed_passes = 0

    def run_phase(self, phase: str) -> None:
        """One phase; with ``--pg-stats``, its statements that took the most time kept too."""
        if self.statements is not None:
            self.statements.reset()
        started = time.monotonic()
        getattr(self, phase)()
        self.results.setdefault("phase_s", {})[phase] = round(time.monotonic() - started, 1)
        if self.statements is not None:
            self.results.setdefault("pg_statements", {})[phase] = self.statements.top()

    def _statements_apart(self, label: str) -> None:
        """With ``--pg-stats``: the statements since the last reset kept under `label`, and
        the counts reset (the phase's own entry then holds what follows)."""
        if self.statements is not None:
            self.results.setdefault("pg_statements", {})[label] = self.statements.top()
            self.statements.reset()

    # -- 1 ------------------------------------------------------------------------------------
    def single(self) -> None:
        size = self.size
        seconds = size.single_seconds / SINGLE_ROUNDS
        log(
            "1. single-event: no-op FastAPI (untraced, then traced as the services are), one"
            f" durable INSERT per request and nlib, in turn: {SINGLE_ROUNDS} rounds of"
            f" {seconds:g}s each"
        )
        durable_env = {DURABLE_URL_ENV: self.stack.database_url("nlib")}
        nlib = targets(self.stack, ("nlib",))[0]
        with (
            self._served("noop", "bench.noop_app:served", 9, {}) as noop_app,
            self._served("noop-traced", "bench.noop_app:traced", 10, {}) as traced_app,
            self._served("durable", "bench.durable_app:app", 8, durable_env) as durable_app,
        ):
            sides = {
                "noop": (Target("nlib", noop_app.url, "none"), noop_app.pid),
                "noop_traced": (Target("nlib", traced_app.url, "none"), traced_app.pid),
                "durable": (Target("nlib", durable_app.url, "none"), durable_app.pid),
                "nlib": (nlib, self.stack.services["nlib"].pid),
            }
            rounds: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
            for number in range(SINGLE_ROUNDS):
                order = rotated(list(sides), number)
                log(f"1. single-event: round {number + 1} of {SINGLE_ROUNDS}: {', '.join(order)}")
                for side in order:
                    target, pid = sides[side]
                    label = f"single-{side}-{number + 1}"
                    rounds[side].append(self._closed(target, label, pid, seconds=seconds))
            noop, noop_traced, durable, pipeline = (median_round(rounds[s]) for s in sides)
            for result, app in (
                (noop, noop_app),
                (noop_traced, traced_app),
                (durable, durable_app),
            ):
                kib = app.rss_kib()
                result["rss_mib"] = kib and round(kib / 1024, 1)
            log("1. single-event: the durable INSERT, one client")
            durable["one_client"] = self._closed(
                sides["durable"][0], "single-durable-one-client", durable_app.pid, one_client=True
            )
        self._profile_pass(
            "nlib",
            "single",
            lambda: self._closed(nlib, "profile-single", seconds=self.size.profile_seconds),
        )
        log("1. single-event: nlib again, restarted with OpenTelemetry off")
        with self._restarted("nlib", TELEMETRY_OFF) as restarted:
            telemetry_off = self._closed(nlib, "single-nlib-telemetry-off", restarted.pid)
        log("1. single-event: nlib, one client")
        nlib_pid = self.stack.services["nlib"].pid  # restarted as it was, above
        one_client = self._closed(nlib, "single-nlib-one-client", nlib_pid, one_client=True)
        self.results["single"] = {
            "baseline": noop,
            "traced": noop_traced,
            "durable": durable,
            "pipeline": pipeline,
            "telemetry_off": telemetry_off,
            "one_client": one_client,
            "ratio": ratio(pipeline["achieved_rate"], noop["achieved_rate"]),
            "ratio_durable": ratio(pipeline["achieved_rate"], durable["achieved_rate"]),
            "ratio_traced": ratio(pipeline["achieved_rate"], noop_traced["achieved_rate"]),
        }

    @contextlib.contextmanager
    def _restarted(self, name: str, env: dict[str, str]) -> Iterator[ServiceProcess]:
        """The stack's service `name` restarted with `env` added to its environment, and
        restarted as it was afterwards."""
        service = self.stack.services[name]
        usual = service.env
        service.stop()
        service.env = {**usual, **env}
        try:
            service.start()
            service.wait_ready()
            yield service
        finally:
            service.stop()
            service.env = usual
            service.start()
            service.wait_ready()

    @contextlib.contextmanager
    def _served(
        self, name: str, app: str, port_offset: int, env: dict[str, str]
    ) -> Iterator[ServiceProcess]:
        """A baseline app served (uvicorn, one process, as the services) while the block runs;
        it is loaded exactly as the service is."""
        port = self.stack.base_port + port_offset
        argv = [str(BIN / "python"), "-m", "uvicorn", app, "--factory", "--port", str(port)]
        argv += ["--no-access-log", "--log-level", "warning"]
        process = ServiceProcess(
            name,
            argv,
            {**exported_nowhere(os.environ), "PYTHONPATH": str(RESULTS.parent.parent), **env},
            port,
            self.workdir / f"{name}.log",
        )
        process.start()
        try:
            process.wait_ready()
            yield process
        finally:
            process.stop()

    def _profile_pass(self, service: str, label: str, work: Callable[[], object]) -> None:
        """With ``--profile``: `service`'s flame graph under `label`'s load, recorded while
        `work` repeats that load for the size's ``profile_seconds`` (or :data:`PROFILE_EVENTS`),
        after the measured figure; what `work` measures is dropped. No figure is measured
        while py-spy samples (see :mod:`bench.profile`)."""
        if not self.profile:
            return
        log(f"   flame graph: {service} under {label.replace('-', ' ')}")
        with Profiler(self.stack, service, label, enabled=True):
            work()

    def _closed(
        self,
        target: Target,
        label: str,
        pid: int | None = None,
        *,
        seconds: float | None = None,
        one_client: bool = False,
    ) -> dict[str, Any]:
        """Single POSTs in a closed loop for `seconds` (default: the size's ``single_seconds``)
        by the size's ``single_concurrency`` clients, or by one (`one_client`, for
        ``ONE_CLIENT_SHARE`` of that by default)."""
        duration = self.size.single_seconds * (ONE_CLIENT_SHARE if one_client else 1.0)
        # Each pass its own events: one sending ids another pass sent to the same service
        # would be answered as replays (200, nothing written), not accepted.
        self._closed_passes += 1
        config = LoadConfig(
            targets=[target],
            out="",
            mode="single",
            run_id=f"s{self._closed_passes}",
            duration=seconds or duration,
            concurrency=1 if one_client else self.size.single_concurrency,
        )
        cpu_before = cpu_seconds(pid)
        pids = self.stack.cpu_pids()
        if pid is not None and pid not in pids.values():
            pids["baseline"] = pid  # a baseline app the bench started itself
        sizes = self._group_sizes()
        with CpuMeter(pids) as meter:
            result = run_loadgen(config, self.workdir, label, self.sampler)
        cpu_after = cpu_seconds(pid)
        result["groups"] = groups.between(sizes, self._group_sizes())
        result["loadavg"] = os.getloadavg()
        result["cpu"] = meter.per_event(result["events_acked"], loadgen=result["loadgen_cpu_s"])
        if cpu_before is not None and cpu_after is not None and result["events_acked"]:
            result["server_cpu_ms_per_event"] = (
                (cpu_after - cpu_before) * 1000 / result["events_acked"]
            )
        return result

    # -- 2 ------------------------------------------------------------------------------------
    def batch(self) -> None:
        size = self.size
        log(f"2. batch: bare aiokafka producer, {size.batch_events} events")
        baseline = _json_process(
            [
                str(BIN / "python"),
                "-m",
                "bench.kafka_io",
                "produce",
                "--bootstrap",
                self.stack.bootstrap,
                "--run-id",
                "bb",
                "--count",
                str(size.batch_events),
                "--topic",
                f"{self.stack.prefix}baseline.events",
            ]
        )
        log(f"2. batch: {size.batch_events} events in batches of {size.batch_size}")
        topics = self.stack.topics()
        before = asyncio.run(end_offsets(self.stack.bootstrap, topics))
        config = LoadConfig(
            targets=targets(self.stack),
            out="",
            mode="batch",
            run_id="b",
            count=size.batch_events,
            duration=size.drain_timeout,
            batch_size=size.batch_size,
            concurrency=size.batch_concurrency,
        )

        def in_kafka() -> int:
            return asyncio.run(end_offsets(self.stack.bootstrap, topics)) - before

        # The whole machine, from the first request until every accepted event is in Kafka:
        # the services accept and relay, the dashboard projects meanwhile, on the same cores.
        with CpuMeter(self.stack.cpu_pids()) as meter:
            started = time.monotonic()
            accepted = run_loadgen(config, self.workdir, "batch", self.sampler)
            acked = accepted["events_acked"]
            deadline = time.monotonic() + size.drain_timeout
            while in_kafka() < acked and time.monotonic() < deadline:
                time.sleep(0.1)
            to_kafka_s = time.monotonic() - started
        reached = in_kafka()
        pipeline = {
            **accepted,
            "in_kafka": reached,
            "to_kafka_s": round(to_kafka_s, 3),
            "to_kafka_rate": reached / to_kafka_s,
            "loadavg": os.getloadavg(),
            "cpu": meter.per_event(reached, loadgen=accepted["loadgen_cpu_s"]),
        }
        self.results["batch"] = {
            "baseline": baseline,
            "pipeline": pipeline,
            "ratio_accept": ratio(accepted["achieved_rate"], baseline["rate"]),
            "ratio_to_kafka": ratio(pipeline["to_kafka_rate"], baseline["rate"]),
        }
        again = dataclasses.replace(config, run_id="bp", duration=self.size.profile_seconds)
        self._profile_pass(
            "nlib", "batch", lambda: run_loadgen(again, self.workdir, "profile-batch")
        )

    # -- 3 ------------------------------------------------------------------------------------
    def latency(self) -> None:
        size = self.size
        self._drain()
        log(
            f"3. end-to-end latency at {size.latency_rate:g} events/s for {size.latency_seconds:g}s"
        )
        fixed = self._latency_step("lat", size.latency_rate, size.latency_seconds)
        log(f"3. baseline: bare Kafka producer -> consumer round trip at {size.latency_rate:g}/s")
        kafka_roundtrip = _json_process(
            [
                *KAFKA_IO,
                "roundtrip",
                "--bootstrap",
                self.stack.bootstrap,
                "--topic",
                f"{self.stack.prefix}baseline.roundtrip",
                "--rate",
                str(size.latency_rate),
                "--seconds",
                str(min(size.latency_seconds, 20)),
            ]
        )
        # The ramp's first step waits until these loads are projected. The dashboard's flame
        # graph shows the slowest hop; nlib's, one of the three services that spend most of
        # the machine's CPU per event at this rate (each about as much as nlib).
        again = self._open_loop("lp", size.latency_rate, size.profile_seconds)
        self._profile_pass(
            "dashboard", "latency", lambda: run_loadgen(again, self.workdir, "profile-latency")
        )
        services = self._open_loop("lps", size.latency_rate, size.profile_seconds)
        self._profile_pass(
            "nlib",
            "latency",
            lambda: run_loadgen(services, self.workdir, "profile-latency-nlib"),
        )
        ramp = []
        for step, offered in enumerate(size.ramp_rates()):
            self._drain()
            log(f"3. sustained rate: {offered:g} events/s for {size.ramp_seconds:g}s")
            result = self._latency_step(f"ramp{step}", offered, size.ramp_seconds, hops=False)
            ramp.append(result)
            if not result["sustained"]:
                break

        def between(offered: float) -> dict[str, Any]:
            self._drain()
            log(f"3. sustained rate, between two steps: {offered:g} events/s")
            label = f"ramp-between{offered:g}"
            return self._latency_step(label, offered, size.ramp_seconds, hops=False)

        ramp += refine(ramp, size.ramp_refinements, between)
        passed = [r["offered_rate"] for r in ramp if r["sustained"]]
        self.results["latency"] = {
            "fixed": fixed,
            "kafka_roundtrip": kafka_roundtrip,
            "ramp": ramp,
            "max_sustained_rate": max(passed) if passed else None,
        }

    def _open_loop(self, run_id: str, offered: float, seconds: float) -> LoadConfig:
        """Single POSTs to the three services at `offered` ev/s for `seconds`."""
        return LoadConfig(
            targets=targets(self.stack),
            out="",
            mode="single",
            run_id=run_id,
            duration=seconds,
            rate=offered,
            concurrency=64,
        )

    def _latency_step(
        self, label: str, offered: float, seconds: float, *, hops: bool = True
    ) -> dict[str, Any]:
        """Single POSTs at `offered` ev/s for `seconds`: the end-to-end latency of each and,
        with `hops`, where it went. Without (the ramp, whose hops the report does not show),
        no :class:`KafkaObserver` reads the topics beside the dashboard: on the same cores it
        took CPU from the rate the step measures. At 1,139 ev/s offered, three rounds each,
        the step achieved 949, 1,089 and 1,102 ev/s with it, 1,096, 1,137 and 1,138 without;
        the rest of the machine (the bench's own process) spent 0.13-0.14 ms of CPU per event
        with it against 0.05, the broker 0.13-0.31 against 0.09-0.15."""
        acks_path = str(self.workdir / f"acks-{label}.jsonl")
        config = dataclasses.replace(self._open_loop(label, offered, seconds), acks=acks_path)
        kafka_observer = KafkaObserver(self.stack.bootstrap, self.stack.topics()) if hops else None
        with (
            CommitObserver(self.stack.database_url("dashboard")) as observer,
            kafka_observer or contextlib.nullcontext(),
            PushObserver(self.stack.services["dashboard"].url, self._cookie()) as push,
        ):
            server_log = ServerLog(self.stack.infra.postgres.log_file)
            server_log.mark()
            sizes = self._group_sizes()
            with CpuMeter(self.stack.cpu_pids()) as meter:
                result = run_loadgen(config, self.workdir, label, self.sampler)
                acks = read_acks(acks_path)
                missing = observer.wait_for({a[1] for a in acks}, timeout=self.size.drain_timeout)
            group_sizes = groups.between(sizes, self._group_sizes())
            latencies = [(observer.seen[a[1]] - a[3]) * 1000 for a in acks if a[1] in observer.seen]
            time.sleep(1)  # the last announcements and records reach their observers
        e2e = summarise(latencies)
        # From the request's send, not its scheduled time: once the offered rate is not
        # reached, the load generator's backlog is in `http_ms`, not in a hop.
        hops_ms = {"accept (request sent -> 202)": result["service_ms"]}
        if kafka_observer is not None:
            hops_ms.update(breakdown(acks, kafka_observer.seen, observer.seen, push.seen))
        non_accepted = sum(
            n for status, n in result["statuses"].items() if status not in ("200", "202")
        )
        sustained = (
            result["achieved_rate"] >= 0.97 * offered
            and not missing
            and non_accepted == 0
            and e2e["p99"] < 1000
        )
        return {
            "offered_rate": offered,
            "achieved_rate": result["achieved_rate"],
            "acked": len(acks),
            "projected": len(acks) - len(missing),
            "not_projected": len(missing),
            "non_accepted": non_accepted,
            "e2e_ms": e2e,
            "http_ms": result["response_ms"],
            "hops_ms": hops_ms,
            "sustained": sustained,
            "groups": group_sizes,
            "loadavg": os.getloadavg(),
            "cpu": meter.per_event(len(acks), loadgen=result["loadgen_cpu_s"]),
            "pg_log": server_log.since(),
        }

    def _group_sizes(self) -> dict[str, groups.Histogram]:
        """The group-size histograms of the services that take events, read now from their
        ``/metrics`` with the run's token."""
        services = self.stack.services
        urls = {name: services[name].url for name in INITIATIVES if name in services}
        return groups.scrape(urls, self.stack.metrics_token)

    def _cookie(self) -> str:
        if self._session is None:
            self._session = _session_cookie(self.stack)
        return self._session

    def _drain(self) -> None:
        """Wait until the dashboard has applied everything in the topics (between steps)."""
        topics = self.stack.topics()
        target = asyncio.run(end_offsets(self.stack.bootstrap, topics))
        wait_projected(self.stack, "%", target, self.size.drain_timeout)

    # -- 4 ------------------------------------------------------------------------------------
    def dashboard(self) -> None:
        size = self.size
        log(
            f"4. loading {size.projected_events} events straight into Kafka, a share of"
            f" {size.chain_share:g} in dependent chains"
        )
        before = dashboard_counts(self.stack)["applied_total"]
        with self.sampler:
            projected = self._timed_projection(
                "m", size.projected_events, self.stack.cpu_pids(), history_every=HISTORY_EVERY
            )
        self.results["memory"]["projecting"] = dict(self.sampler.peak)
        projected |= {"applied_before": before}
        self._profile_pass("dashboard", "projection", self._project_more)
        projected_with_worker = self._projection_with_a_worker()
        projected_without_telemetry = self._projection_without_telemetry()
        log(f"4. dashboard overview page and JSON API, {size.get_seconds:g}s each")
        pages = {}
        for label, path in (("overview_page", "/"), ("overview_api", "/api/v1/overview")):
            pages[label] = self._get_load(label, path)
            graph = label.replace("_", "-")
            self._profile_pass(
                "dashboard",
                graph,
                lambda g=graph, p=path: self._get_load(g, p, self.size.profile_seconds),
            )
        log(f"4. overview page again while {PROJECTING_RATE:g} ev/s are projected")
        pages["overview_page_projecting"] = self._page_while_projecting()
        self.results["dashboard"] = {
            "projection": projected,
            "projection_with_worker": projected_with_worker,
            "projection_telemetry_off": projected_without_telemetry,
            **pages,
            "findings": findings_by_rule(self.stack),
        }

    def _project_more(self) -> None:
        """:data:`PROFILE_EVENTS` more events loaded into Kafka, until projected."""
        count = min(PROFILE_EVENTS, self.size.projected_events)
        self._load_kafka("pp", count)
        wait_projected(self.stack, "pp-%", count, self.size.drain_timeout)

    def _projection_with_a_worker(self) -> dict[str, Any]:
        """The live projection again, with one more consumer of the group in its own process
        (``python -m teamnl_dashboard.worker``, as README's scaling out describes): Kafka
        splits the partitions between the web app's consumer and the worker's."""
        count = self.size.projected_events // 4
        env = self.stack.services["dashboard"].env
        log_path = self.workdir / "dashboard-worker.log"
        with log_path.open("ab") as worker_log:
            worker = subprocess.Popen(
                [str(BIN / "python"), "-m", "teamnl_dashboard.worker"],
                env=env,
                stdout=worker_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            time.sleep(WORKER_JOIN_SECONDS)  # the group rebalances: the worker takes its share
            log(f"4. loading {count} more events with an extra consumer process")
            pids = {**self.stack.cpu_pids(), "worker": worker.pid}
            projected = self._timed_projection("w", count, pids)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        return projected | {"processes": 2}

    def _projection_without_telemetry(self) -> dict[str, Any]:
        """The live projection again, one dashboard process restarted with OpenTelemetry off
        (`TELEMETRY_OFF`): what tracing each event and measuring its latency cost it. The
        dashboard is restarted as it was before the overview figures."""
        count = self.size.projected_events // 4
        log(f"4. loading {count} more events, the dashboard restarted with OpenTelemetry off")
        with self._restarted("dashboard", TELEMETRY_OFF):
            return self._timed_projection("t", count, self.stack.cpu_pids())

    def _load_kafka(self, run_id: str, count: int, history_every: int = 0) -> dict[str, Any]:
        """`count` events written straight into the stack's topics by the bare producer."""
        return _json_process(
            [*KAFKA_IO, "produce", "--bootstrap", self.stack.bootstrap, "--run-id", run_id]
            + ["--prefix", self.stack.prefix, "--count", str(count)]
            + ["--history-every", str(history_every)]
            + ["--chain-share", str(self.size.chain_share)]
        )

    def _timed_projection(
        self, run_id: str, count: int, pids: dict[str, int | None], history_every: int = 0
    ) -> dict[str, Any]:
        """Load `count` events straight into Kafka, then time the projection of the backlog:
        the records the dashboard's group had not committed when the load ended. The rate
        and the CPU per event are over the backlog alone; what the dashboard projected while
        the loader ran (sharing the cores with it, untimed) is reported apart, with the rate
        counted from the load's start, the lower bound."""
        started = time.monotonic()
        load = self._load_kafka(run_id, count, history_every)
        backlog = asyncio.run(
            group_backlog(self.stack.bootstrap, self.stack.dashboard_group(), self.stack.topics())
        )
        loaded_after = time.monotonic() - started
        with CpuMeter(pids) as meter:
            ok, seconds, counts = wait_projected(
                self.stack, f"{run_id}-%", count, self.size.drain_timeout
            )
        log(f"4. {backlog:,} of {count:,} left when the load ended, projected in {seconds:.1f} s")
        from_start = counts["applied"] / (loaded_after + seconds)
        chained = projected_types(self.stack, chains.id_prefix(run_id) + "%")
        self._check_projected(run_id, count, counts, load["chains"], chained)
        return {
            "loaded": load,
            "projected": counts["applied"],
            "complete": ok,
            "backlog": backlog,
            "seconds": round(seconds, 1),
            # kept up with the loader: nothing left to time, the lower bound stands for it
            "rate": backlog / seconds if backlog else from_start,
            "projected_during_load": max(count - backlog, 0),
            "rate_from_load_start": from_start,
            "applied_total": counts["applied_total"],
            "dead_letters": counts["dead_letters"],
            "chains_projected": chained,
            "cpu": meter.per_event(backlog),
        }

    def _check_projected(
        self,
        run_id: str,
        count: int,
        counts: dict[str, int],
        loaded: dict[str, int],
        projected: dict[str, int],
    ) -> None:
        """Every event of the load `run_id` projected, its chains' events of each type among
        them, and no dead letter: else a problem, which the report names and which fails the
        run (its figures would time a load other than the one it names)."""
        problems = []
        if counts["applied"] != count:
            problems.append(f"{counts['applied']:,} of {count:,} events projected")
        if projected != loaded:
            problems.append(f"chain events loaded {loaded}, projected {projected}")
        if counts["dead_letters"]:
            problems.append(f"{counts['dead_letters']:,} dead letters")
        for problem in problems:
            self._problem(f"load {run_id}: {problem}")

    def _problem(self, problem: str) -> None:
        """What makes the run fail: named in the report and the log, exit status 1."""
        log(f"PROBLEM: {problem}")
        self.results.setdefault("problems", []).append(problem)

    def _get_load(self, label: str, path: str, seconds: float | None = None) -> dict[str, Any]:
        """GET `path` in a closed loop for `seconds` (default: the size's ``get_seconds``),
        with the CPU per request."""
        config = LoadConfig(
            targets=[Target("dashboard", self.stack.services["dashboard"].url)],
            out="",
            mode="get",
            duration=seconds or self.size.get_seconds,
            concurrency=self.size.get_concurrency,
            paths=[path],
            headers={"cookie": self._cookie()},
        )
        with CpuMeter(self.stack.cpu_pids()) as meter:
            result = run_loadgen(config, self.workdir, label, self.sampler)
        served = sum(result["statuses"].values())
        result["cpu"] = meter.per_event(served, loadgen=result["loadgen_cpu_s"])
        return result

    def _page_while_projecting(self) -> dict[str, Any]:
        """The overview page while a bare producer trickles events into Kafka: every
        projection commit empties the dashboard's overview cache, so this is the page's
        figure with the dashboard at work (the idle figure is nearly all cache hits). The
        CPU per request includes the projection's."""
        seconds = self.size.get_seconds
        profiling = self.size.profile_seconds if self.profile else 0.0  # its flame graph's pass
        trickle = _started_process(
            [
                *KAFKA_IO,
                "trickle",
                "--bootstrap",
                self.stack.bootstrap,
                "--run-id",
                "tr",
                "--prefix",
                self.stack.prefix,
                "--rate",
                str(PROJECTING_RATE),
                "--seconds",
                str(seconds + PROJECTING_MARGIN_SECONDS * 2 + profiling),
            ],
            self.workdir / "trickle.log",
        )
        wait_until(
            lambda: dashboard_counts(self.stack, "tr-%")["applied"] > 0,
            PROJECTING_MARGIN_SECONDS * 10,
        )
        before, started = dashboard_counts(self.stack, "tr-%")["applied"], time.monotonic()
        self._statements_apart("dashboard, up to the overview page while projecting")
        result = self._get_load("overview_page_projecting", "/")
        self._statements_apart("dashboard, the overview page while projecting")
        projected = dashboard_counts(self.stack, "tr-%")["applied"] - before
        elapsed = time.monotonic() - started
        self._profile_pass(  # the trickle goes on for as long
            "dashboard",
            "overview-page-projecting",
            lambda: self._get_load("overview-page-projecting", "/", self.size.profile_seconds),
        )
        result["projecting"] = {
            "offered_rate": PROJECTING_RATE,
            "rate": projected / elapsed,
            "loaded": _json_result(trickle, timeout=seconds * 2 + 60),
        }
        return result

    # -- 5 ------------------------------------------------------------------------------------
    def rebuild(self) -> None:
        topics = self.stack.topics()
        log("5. rebuild: bare aiokafka consumer over the same topics (read only)")
        read = [*KAFKA_IO, "consume", "--bootstrap", self.stack.bootstrap]
        read += [arg for t in topics for arg in ("--topic", t)]
        bare_read = _json_process(read)
        log(f"5. rebuild: bare consumer that parses {COPY_SAMPLE} records and COPYs their rows")
        copy = ["--copy-to", self.stack.database_url("dashboard"), "--count", str(COPY_SAMPLE)]
        baseline = _json_process([*read, *copy])
        log(f"5. rebuild: bare consumer that reads {VALIDATED_SAMPLE} records through the contract")
        validated = _json_process([*read, "--validate", "--count", str(VALIDATED_SAMPLE)])
        log(f"5. rebuild: the same, tracing each of {TRACED_SAMPLE} records as well")
        traced = _json_process([*read, "--validate", "--trace", "--count", str(TRACED_SAMPLE)])
        log("5. rebuild: python -m teamnl_dashboard.rebuild")
        process = self.stack.services["dashboard"]
        started = time.monotonic()
        argv = [str(BIN / "python"), "-m", "teamnl_dashboard.rebuild"]
        children_before = _children_cpu_seconds()
        with CpuMeter(self.stack.cpu_pids()) as meter:
            done = subprocess.Popen(
                argv, env=process.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            # its flame graph: the first REBUILD_SECONDS of this very run (see bench.profile)
            with Profiler(
                self.stack,
                "dashboard",
                "rebuild",
                enabled=self.profile,
                pid=done.pid,
                seconds=REBUILD_SECONDS,
                subprocesses=True,
            ):
                try:
                    stdout, stderr = done.communicate(timeout=self.size.drain_timeout * 2)
                except subprocess.TimeoutExpired:
                    done.kill()
                    raise
                wall = time.monotonic() - started
                rebuild_cpu = _children_cpu_seconds() - children_before  # py-spy not waited yet
        (self.workdir / "rebuild.log").write_text(stdout + stderr)
        match = re.search(
            r"done: (\d+) records, (\d+) applied, (\d+) dead letters, "
            r"([\d.]+)s",
            stdout,
        )
        if match is None or done.returncode != 0:
            self.results["rebuild"] = {"error": (stdout + stderr)[-1500:]}
            return
        records, applied, dead, seconds = match.groups()
        if int(dead):
            self._problem(f"rebuild: {dead} dead letters")
        phases = re.search(r"; phases (\{.*\})", stdout)
        pipeline = {
            "records": int(records),
            "applied": int(applied),
            "dead_letters": int(dead),
            "seconds": float(seconds),
            "wall_s": round(wall, 2),
            "rate": int(records) / float(seconds),
            "phases_s": json.loads(phases.group(1)) if phases else {},
            # the whole process's (its start-up included) per record; `rebuild` is its tree
            "cpu": meter.per_event(int(records), rebuild=rebuild_cpu),
        }
        self.results["rebuild"] = {
            "baseline": baseline,
            "bare_read": bare_read,
            "bare_validate": validated,
            "bare_traced": traced,
            "pipeline": pipeline,
            "ratio": ratio(pipeline["rate"], baseline["rate"]),
        }

    # -- 6 ------------------------------------------------------------------------------------
    def memory_at_rest(self, key: str) -> None:
        time.sleep(3)
        self.results.setdefault("memory", {})[key] = self.stack.rss_mib()


def rotated(items: list[str], turn: int) -> list[str]:
    """`items` starting from the `turn`-th (round-robin): each goes first in its turn."""
    start = turn % len(items)
    return items[start:] + items[:start]


def median_round(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate, whole (its latencies and CPU are of the same seconds),
    with every round's rate beside it (``round_rates``)."""
    ordered = sorted(results, key=lambda result: result["achieved_rate"])
    median = dict(ordered[(len(ordered) - 1) // 2])
    median["round_rates"] = [result["achieved_rate"] for result in results]
    return median


def refine(
    climbed: list[dict[str, Any]], steps: int, run: Callable[[float], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Up to `steps` more steps between the highest rate the ramp sustained and the first it
    did not (`climbed`, in the order run), each at the geometric middle of the two rates
    still apart (a bisection). The climb alone gives the highest rate sustained to within a
    step (1.5x in full); two steps more give it to within 11%. Each result is marked
    ``between``; none when the climb never broke, or broke at its first step."""
    passed = [step["offered_rate"] for step in climbed if step["sustained"]]
    failed = [step["offered_rate"] for step in climbed if not step["sustained"]]
    if not passed or not failed:
        return []
    low, high = max(passed), min(failed)
    found: list[dict[str, Any]] = []
    for _ in range(steps):
        offered = round(math.sqrt(low * high))
        if not low < offered < high:
            break
        result = {**run(offered), "between": True}
        found.append(result)
        if result["sustained"]:
            low = offered
        else:
            high = offered
    return found


def _children_cpu_seconds() -> float:
    """User + system CPU of this process's children that have ended (and been waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def results_folder(size: str, workdir: Path, given: Path | None) -> Path:
    """Where a run writes its report: `given`, else bench/results/ for the full size (the
    committed report) and the run's own folder for a smaller size."""
    if given is not None:
        return given
    return RESULTS if size == "full" else workdir


def _json_process(argv: list[str]) -> dict[str, Any]:
    return _json_result(_started_process(argv), timeout=3600)


def _started_process(argv: list[str], log_file: Path | None = None) -> subprocess.Popen[str]:
    """A bench tool started in the background; :func:`_json_result` reads its answer. One
    that runs while the bench does other things writes its stderr to `log_file` (a pipe
    nobody reads would fill and stop it)."""
    env = {**os.environ, "PYTHONPATH": str(RESULTS.parent.parent)}
    with contextlib.ExitStack() as files:
        stderr = files.enter_context(log_file.open("w")) if log_file else subprocess.PIPE
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)


def _json_result(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The JSON result a bench tool prints on its last stdout line, once it has ended."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, process.args, stdout, stderr)
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def _session_cookie(stack: BenchStack) -> str:
    """A member's session cookie, made with the dashboard's own auth functions."""
    from teamnl_dashboard.auth import members, sessions
    from teamnl_dashboard.auth.config import SESSION_COOKIE
    from teamnl_dashboard.settings import DashboardSettings
    from teamnl_shared.db import create_pool

    async def make() -> str:
        pool = await create_pool(stack.database_url("dashboard"), max_size=2)
        try:
            member = await members.create_member(
                pool, f"bench-{stack.run_id}@example.org", "bench-password-" + stack.run_id * 2
            )
            secret = DashboardSettings(database_url="x").session_secret
            token, _ = await sessions.start(pool, secret, member)
        finally:
            await pool.close()
        return f"{SESSION_COOKIE}={token}"

    cookie = asyncio.run(make())
    response = httpx.get(
        stack.services["dashboard"].url + "/api/v1/overview", headers={"cookie": cookie}, timeout=30
    )
    if response.status_code != 200:
        raise RuntimeError(f"dashboard session refused: {response.status_code} {response.text}")
    return cookie


def _profiles_since(moment: float) -> dict[str, Any]:
    """What each flame graph this run wrote says, by part (see :func:`bench.profile.shares_of`)."""
    written = sorted(p for p in PROFILES.glob("profile-*.svg") if p.stat().st_mtime >= moment)
    return {p.name: shares_of(p) for p in written}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="smoke")
    parser.add_argument("--infra", choices=["private", "shared"], default="private")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the stack and data running (a private stack's next run removes the data)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where latest.md and latest.json go (default: bench/results/ for the full size,"
        " the run's own folder bench/results/runs/<run>/ for a smaller one, so that a smoke"
        " run leaves the committed full-size report as it is)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record py-spy flame graphs of nlib under single-POST and batch load, of nlib and"
        " the dashboard under the end-to-end load, and of the dashboard while it projects,"
        " serves the overview and rebuilds (bench/results/profile-*.svg)",
    )
    parser.add_argument(
        "--only",
        default=",".join(PHASES),
        help="comma-separated phases to run, in their usual order (default: all of"
        f" {', '.join(PHASES)}); for working on one figure, the report then holds only those",
    )
    parser.add_argument(
        "--pg-stats",
        action="store_true",
        help="PostgreSQL loads pg_stat_statements (its server restarted for it): per phase, the"
        " statements that took the most time, in the report (private infrastructure only)",
    )
    parser.add_argument(
        "--events",
        type=int,
        help="events loaded into Kafka for the dashboard and rebuild figures (default: the size's)",
    )
    parser.add_argument(
        "--chain-share",
        type=float,
        help="the share of those events in dependent chains, 0 to 1 (default: the size's)",
    )
    args = parser.parse_args(argv)
    phases = [phase for phase in args.only.split(",") if phase]
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    size = SIZES[args.size]
    if args.events:
        size = dataclasses.replace(size, projected_events=args.events)
    if args.chain_share is not None:
        if not 0 <= args.chain_share <= 1:
            parser.error("--chain-share is a share, from 0 to 1")
        size = dataclasses.replace(size, chain_share=args.chain_share)
    from teamnl_suite.infra import Infrastructure

    if args.pg_stats and args.infra != "private":
        parser.error("--pg-stats needs --infra private (its PostgreSQL is restarted)")
    private = args.infra == "private"
    infra = private_infra(statements=args.pg_stats) if private else Infrastructure.from_env()
    stack = BenchStack(infra, private, RESULTS / "runs")
    stack.workdir = RESULTS / "runs" / stack.run_id
    started, started_at = time.monotonic(), time.time()
    log(f"bench {size.name}: run {stack.run_id}, infra {args.infra} ({stack.bootstrap})")
    statements = Statements(infra.admin_database_url(), stack.run_id) if args.pg_stats else None
    bench = Bench(stack, size, profile=args.profile, statements=statements)
    interrupt_on_sigterm()
    try:
        if statements is not None:
            infra.down()  # a server running without the library starts again with it
        bench.results["startup_s"] = stack.up()
        if statements is not None:
            statements.start()
        bench.memory_at_rest("at_rest")
        with bench.sampler:
            for phase in ("single", "batch", "latency"):
                if phase in phases:
                    bench.run_phase(phase)
        bench.results.setdefault("memory", {})["under_load"] = dict(bench.sampler.peak)
        for phase in ("dashboard", "rebuild"):
            if phase in phases:
                bench.run_phase(phase)
        bench.memory_at_rest("end")
    finally:
        try:  # what was measured is written, and the stack stopped, whatever fails here
            try:
                if args.profile:
                    bench.results["profiles"] = _profiles_since(started_at)
            finally:
                bench.results["elapsed_s"] = round(time.monotonic() - started, 1)
                out = results_folder(size.name, stack.workdir, args.out)
                report.write(bench.results, out, stack)
                log(f"results: {out / 'latest.md'}")
        finally:
            if not args.keep:
                stack.down()
    print(report.table(bench.results))
    return 1 if bench.results.get("problems") else 0


if __name__ == "__main__":
    sys.exit(main())
