"""``make faults``: count what was sent and what arrived while the stack is broken on purpose.

    python -m bench.faults --size smoke|full

A load generator (its own process) offers a known number of events at a steady rate to the
three initiative services, retrying an unanswered event with the *same* (source, id) until
it is acknowledged (202, or 200 for a replay). Meanwhile the faults below, one after the
other (``full`` repeats the list until the load generator is done):

- crashes: kill -9 of a service, of the Kafka broker, of the PostgreSQL postmaster, each
  restarted after a while (PostgreSQL then runs its crash recovery);
- network cuts: every service reaches PostgreSQL through a TCP proxy of its own and Kafka
  through one shared proxy (:mod:`bench.tcp_proxy`); a cut blackholes a proxy (no byte
  moves, new connections hang) for some seconds, then lets the traffic through again. The
  broker advertises its own address, so a proxy on the bootstrap address alone would be
  bypassed after the first metadata answer: the private broker has a second listener that
  advertises the proxy's port, and the services bootstrap there (the audit reads Kafka
  directly);
- overlapping faults: a broker crash during a PostgreSQL cut, services crashed (and
  restarted) during a broker outage, a PostgreSQL crash during a Kafka cut.

After the pipeline drained it asserts, and attributes each anomaly (by its time) to a fault:

- every acknowledged event is in Kafka exactly once per (source, id) (topics read to the end);
- the dashboard applied every acknowledged event exactly once (its inbox rows hold every
  one, once, each a network event's ``events`` row: `teamnl_dashboard.projections.ledger`);
- its additive projections (running totals: events and activities per family, activities
  per month, budget spends and sums per family and year, TINL partner sets, the Werkplaats
  portfolio) equal a recomputation from the events read from Kafka ("wrong sums");
- nothing valid is in the dead-letter topic;
- no client saw a 5xx other than 503 with Retry-After.

It prints the counts and exits non-zero when an assertion fails. :func:`run_faults` is the
same as a function. It always uses a private Kafka + PostgreSQL, since it crashes them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench.harness import (
    LoadgenProcess,
    interrupt_on_sigterm,
    log,
    read_acks,
    targets,
    wait_until,
)
from bench.kafka_io import read_to_end
from bench.loadgen import LoadConfig
from bench.report import provenance, provenance_line
from bench.stack import (
    ALL_SERVICES,
    ENV_PREFIX,
    BenchStack,
    kafka_proxy_ports,
    private_infra,
)
from bench.tcp_proxy import ProxyThread
from teamnl_shared.contract.registry import spec_for
from teamnl_suite.infra.process import _alive

RESULTS = Path(__file__).resolve().parent / "results"
KAFKA_PROXY = "kafka"

# The bench event mix (bench/events.py): which types add to which running total.
ACTIVITY_TYPES = {
    "nl.teamnl.nlib.company.supported.v1",
    "nl.teamnl.tinl.activity.held.v1",
    "nl.teamnl.werkplaats.project.onboarded.v1",
}
TINL_ACTIVITY = "nl.teamnl.tinl.activity.held.v1"
TINL_KNOWLEDGE = "nl.teamnl.tinl.knowledge.shared.v1"
WP_ONBOARDED = "nl.teamnl.werkplaats.project.onboarded.v1"


@dataclass(frozen=True)
class FaultSize:
    name: str
    rate: float  # events/s offered over the three services
    events: int
    settle: float  # seconds between two faults
    outage: float  # seconds a crashed broker / database stays down
    kill_down: float  # seconds a killed service stays dead
    cut: float  # seconds a network cut lasts
    drain_timeout: float
    killed_services: tuple[str, ...]
    repeat: bool  # repeat the fault list until the load generator is done
    skip: tuple[str, ...] = ()  # faults left out (smoke: the overlaps crash the broker too)


FAULT_SIZES = {
    "smoke": FaultSize(
        "smoke",
        rate=24,
        events=3_000,
        settle=2,
        outage=3,
        kill_down=0.5,
        cut=5,
        drain_timeout=240,
        # the overlaps kill the dashboard and werkplaats, and crash the broker
        killed_services=("nlib",),
        repeat=False,
        skip=("kill -9 Kafka broker",),
    ),
    "full": FaultSize(
        "full",
        rate=110,
        events=100_000,
        settle=15,
        outage=20,
        kill_down=5,
        cut=25,
        drain_timeout=1800,
        killed_services=ALL_SERVICES,
        repeat=True,
    ),
}


@dataclass
class FaultReport:
    size: str
    provenance: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def text(self) -> str:
        lines = [
            f"faults ({self.size}): {'PASSED' if self.ok else 'FAILED'}",
            provenance_line(self.provenance) if self.provenance else "",
            "",
            f"  {'fault':<58} {'secs':>6} {'acked@':>7} {'lost':>5} {'dup':>4} {'5xx':>4}",
        ]
        for f in self.faults:
            lines.append(
                f"  {f['fault']:<58} {f['seconds']:>6.1f} {f['acked_at_start']:>7} "
                f"{f.get('lost', '-'):>5} {f.get('duplicated', '-'):>4} "
                f"{f.get('bad_5xx', '-'):>4}  {f.get('status', '')}"
            )
        lines += ["", "counts:"]
        lines += [f"  {k:<44} {v}" for k, v in self.counts.items()]
        lines += ["", *[f"note: {n}" for n in self.notes]]
        lines += [f"FAIL: {f}" for f in self.failures]
        return "\n".join(lines)


class FaultRun:
    def __init__(self, stack: BenchStack, size: FaultSize, proxies: ProxyThread) -> None:
        self.stack = stack
        self.size = size
        self.proxies = proxies
        self.report = FaultReport(size.name)
        self.kafka_records: dict[tuple[str, str], list[tuple[str, bytes, int]]] = {}

    # -- the scenario ---------------------------------------------------------------------------
    def scenario(self) -> list[tuple[str, Callable[[], None]]]:
        size = self.size
        kills: list[tuple[str, Callable[[], None]]] = [
            (f"kill -9 {s}", lambda s=s: self._kill_service(s)) for s in size.killed_services
        ]
        faults = [
            *kills,
            ("kill -9 Kafka broker", self._crash_kafka),
            ("kill -9 PostgreSQL postmaster", self._crash_postgres),
            ("cut nlib -> PostgreSQL", lambda: self._cut(["pg-nlib"], size.cut)),
            ("cut dashboard -> PostgreSQL", lambda: self._cut(["pg-dashboard"], size.cut)),
            ("cut services -> Kafka", lambda: self._cut([KAFKA_PROXY], size.cut)),
            ("cut tinl+werkplaats -> PG, kill -9 Kafka inside", self._kafka_crash_during_cut),
            ("kill -9 Kafka, kill -9 dashboard+werkplaats inside", self._kills_during_outage),
            ("cut services -> Kafka, kill -9 PostgreSQL inside", self._pg_crash_during_cut),
        ]
        return [(name, action) for name, action in faults if name not in size.skip]

    def run(self) -> FaultReport:
        size = self.size
        acks_path = str(self.stack.workdir / "acks-faults.jsonl")
        config = LoadConfig(
            targets=targets(self.stack),
            out="",
            mode="single",
            run_id="f",
            count=size.events,
            rate=size.rate,
            duration=size.events / size.rate + 5,
            concurrency=64,
            retry_seconds=size.drain_timeout,
            acks=acks_path,
            timeout=20,
        )
        load = LoadgenProcess.start(config, self.stack.workdir, "faults")
        try:
            time.sleep(size.settle)
            rounds = 0
            while True:
                for name, action in self.scenario():
                    if rounds and not load.running():
                        break  # a repeat round stops with the load: faults without it prove little
                    self._fault(name, load, action)
                rounds += 1
                if not size.repeat or not load.running():
                    break
            log("faults: all injected; waiting for the load generator")
            result = load.wait(timeout=size.drain_timeout + size.events / size.rate + 60)
        finally:
            if load.running():
                load.process.kill()
        self._audit(result, read_acks(acks_path))
        return self.report

    # -- faults ---------------------------------------------------------------------------------
    def _fault(self, name: str, load: LoadgenProcess, action: Callable[[], None]) -> None:
        acked = load.last_progress.get("events_acked", 0)
        log(f"fault: {name} (acked so far {acked})")
        entry: dict[str, Any] = {"fault": name, "at": time.time(), "acked_at_start": acked}
        started = time.monotonic()
        try:
            action()
        finally:
            entry["seconds"] = round(time.monotonic() - started, 1)
            self.report.faults.append(entry)
            self._revive_exited(entry)
        time.sleep(self.size.settle)

    def _revive_exited(self, entry: dict[str, Any]) -> None:
        """A service that exited by itself (not killed by us) is noted and started again."""
        for name, process in self.stack.services.items():
            if process.process is not None and process.process.poll() is not None:
                code = process.process.returncode
                self.report.notes.append(f"{name} exited by itself ({code}) in {entry['fault']}")
                entry["status"] = f"{name} exited ({code})"
                self.stack.restart(name)

    def _kill_service(self, service: str) -> None:
        self.stack.services[service].kill9()
        time.sleep(self.size.kill_down)
        self.stack.restart(service)

    def _crash_kafka(self) -> None:
        self._kill_kafka()
        time.sleep(self.size.outage)
        self._start_kafka()

    def _kill_kafka(self) -> None:
        pid = self.stack.infra.kafka.pid()
        if pid is None:
            raise RuntimeError("no Kafka broker process to kill")
        _sigkill(pid)

    def _start_kafka(self) -> None:
        self.stack.infra.up()

    def _crash_postgres(self) -> None:
        data = self.stack.infra.postgres.data
        pid = int((data / "postmaster.pid").read_text().split()[0])
        _sigkill(pid)
        time.sleep(self.size.outage)
        self.stack.infra.postgres.start()

    def _cut(self, proxies: list[str], seconds: float) -> None:
        for name in proxies:
            self.proxies.blackhole(name)
        try:
            time.sleep(seconds)
        finally:
            for name in proxies:
                self.proxies.restore(name)

    def _kafka_crash_during_cut(self) -> None:
        cut = ["pg-tinl", "pg-werkplaats"]
        for name in cut:
            self.proxies.blackhole(name)
        try:
            time.sleep(self.size.cut / 3)
            self._crash_kafka()
        finally:
            for name in cut:
                self.proxies.restore(name)

    def _kills_during_outage(self) -> None:
        self._kill_kafka()
        time.sleep(1)
        victims = ("dashboard", "werkplaats")
        for name in victims:
            self.stack.services[name].kill9()
        time.sleep(self.size.kill_down)
        for name in victims:  # they start while the broker is still down
            self.stack.services[name].start()
        time.sleep(self.size.outage)
        self._start_kafka()
        for name in victims:
            service = self.stack.services[name]
            if service.process is not None and service.process.poll() is not None:
                self.report.notes.append(f"{name} could not start while Kafka was down")
                service.start()
            service.wait_ready()

    def _pg_crash_during_cut(self) -> None:
        self.proxies.blackhole(KAFKA_PROXY)
        try:
            time.sleep(self.size.cut / 3)
            self._crash_postgres()
        finally:
            self.proxies.restore(KAFKA_PROXY)

    # -- the audit ----------------------------------------------------------------------------
    def _audit(self, result: dict[str, Any], acks: list[tuple[str, str, int, float]]) -> None:
        acked = {(source, event_id) for source, event_id, _, _ in acks}
        acked_at = {(source, event_id): at for source, event_id, _, at in acks}
        c = self.report.counts
        c["events offered (distinct)"] = self.size.events
        c["requests (incl. retries)"] = result["requests"]
        c["retries"] = result["retries"]
        c["acknowledged events (202 or 200 replay)"] = len(acked)
        c["  of which 202 / 200 replay"] = (
            f"{sum(1 for a in acks if a[2] == 202)} / {sum(1 for a in acks if a[2] == 200)}"
        )
        c["gave up (never acknowledged)"] = result["gave_up"]
        c["not acknowledged (final answer not 2xx)"] = self.size.events - len(acked)
        c["HTTP statuses by attempt"] = result["statuses"]
        c["offered -> achieved rate (ev/s)"] = (
            f"{result['offered_rate']} -> {result['achieved_rate']:.1f}"
        )
        log("audit: waiting until every acknowledged event is in Kafka and projected")
        in_kafka = self._wait_kafka(acked)
        projected = self._wait_dashboard(set(in_kafka))
        wrong = asyncio.run(self._wrong_sums())
        self._check(acked, in_kafka, projected, wrong, result)
        self._attribute(acked - in_kafka.keys(), acked_at, in_kafka, result)

    def _read_kafka(self) -> Counter[tuple[str, str]]:
        records: dict[tuple[str, str], list[tuple[str, bytes, int]]] = defaultdict(list)

        def keep(record: Any) -> None:
            headers = dict(record.headers)
            identity = (headers["ce_source"].decode(), headers["ce_id"].decode())
            if identity[1].startswith("f-"):
                kind = headers["ce_type"].decode()
                records[identity].append((kind, record.value, record.timestamp))

        asyncio.run(read_to_end(self.stack.bootstrap, self.stack.topics(), identities=False,
                                on_record=keep))  # fmt: skip
        self.kafka_records = records
        return Counter({k: len(v) for k, v in records.items()})

    def _wait_kafka(self, acked: set[tuple[str, str]]) -> Counter[tuple[str, str]]:
        found: Counter[tuple[str, str]] = Counter()

        def complete() -> bool:
            nonlocal found
            found = self._read_kafka()
            return acked <= found.keys()

        wait_until(complete, self.size.drain_timeout, 5.0)
        return found

    def _wait_dashboard(self, expected: set[tuple[str, str]]) -> dict[str, Any]:
        counts: dict[str, Any] = {}

        def complete() -> bool:
            nonlocal counts
            counts = asyncio.run(_dashboard_audit(self.stack.database_url("dashboard")))
            return expected <= counts["inbox"]

        wait_until(complete, self.size.drain_timeout, 2.0)
        counts["deadletter_topic"] = asyncio.run(_deadletters(self.stack))
        return counts

    async def _wrong_sums(self) -> list[str]:
        expected = expected_sums(records[0][:2] for records in self.kafka_records.values())
        actual = await _dashboard_sums(self.stack.database_url("dashboard"))
        self.report.counts["additive projections: totals checked"] = sum(
            len(v) for v in expected.values()
        )
        return wrong_sums(expected, actual)

    def _check(
        self,
        acked: set[tuple[str, str]],
        kafka: Counter[tuple[str, str]],
        dashboard: dict[str, Any],
        wrong_sums: list[str],
        result: dict[str, Any],
    ) -> None:
        c, fail = self.report.counts, self.report.failures
        missing = acked - kafka.keys()
        duplicated = {k: n for k, n in kafka.items() if n > 1}
        unacked = kafka.keys() - acked
        c["in Kafka: distinct (source, id)"] = len(kafka)
        c["in Kafka: records"] = sum(kafka.values())
        c["in Kafka: acknowledged but missing (lost)"] = len(missing)
        c["in Kafka: more than once (duplicated)"] = len(duplicated)
        c["in Kafka: never acknowledged"] = len(unacked)
        inbox, events = dashboard["inbox"], dashboard["events"]
        c["dashboard inbox rows"] = len(inbox)
        c["dashboard events projection rows"] = len(events)
        c["dashboard: in Kafka, not applied"] = len(kafka.keys() - inbox)
        c["dashboard: dead_letters table rows"] = dashboard["dead_letters"]
        c["wrong sums (additive projections)"] = len(wrong_sums)
        dlq = dashboard["deadletter_topic"]
        c["dead-letter topic records (all)"] = dlq["records"]
        c["dead-letter topic: valid events of this run"] = dlq["ours"]
        c["5xx other than 503 + Retry-After"] = len(result["bad_5xx"])
        if missing:
            fail.append(
                f"{len(missing)} acknowledged events are not in Kafka, e.g. {sorted(missing)[:3]}"
            )
        if duplicated:
            fail.append(
                f"{len(duplicated)} events are in Kafka more than once, "
                f"e.g. {sorted(duplicated.items())[:3]}"
            )
        if kafka.keys() - inbox or inbox != events:
            fail.append(
                f"dashboard applied {len(inbox)} (events projection {len(events)}) of "
                f"{len(kafka)} events in Kafka"
            )
        if wrong_sums:
            fail.append(f"{len(wrong_sums)} wrong sums: {wrong_sums[:5]}")
        if dlq["ours"]:
            fail.append(f"{dlq['ours']} valid events of this run are in the dead-letter topic")
        if result["bad_5xx"]:
            fail.append(
                f"clients saw {len(result['bad_5xx'])} 5xx other than 503 with "
                f"Retry-After, e.g. {result['bad_5xx'][:2]}"
            )
        if result["gave_up"]:
            fail.append(
                f"{result['gave_up']} events were never acknowledged within "
                f"{self.size.drain_timeout:g}s of retries"
            )

    def _attribute(
        self,
        missing: set[tuple[str, str]],
        acked_at: dict[tuple[str, str], float],
        kafka: Counter[tuple[str, str]],
        result: dict[str, Any],
    ) -> None:
        """Each anomaly counts against the fault whose window (its start up to the next
        fault's start) holds its time: a lost event's acknowledgement, a duplicate's second
        Kafka record, a bad 5xx's answer. Approximate: an effect may trail its cause."""
        faults = self.report.faults
        starts = [f["at"] for f in faults]

        def window(at: float) -> dict[str, Any] | None:
            index = sum(1 for s in starts if s <= at) - 1
            return faults[index] if index >= 0 else None

        tallies: dict[int, Counter[str]] = defaultdict(Counter)
        outside: Counter[str] = Counter()

        def count(at: float, what: str) -> None:
            found = window(at)
            (tallies[id(found)] if found else outside)[what] += 1

        for identity in missing:
            count(acked_at[identity], "lost")
        for identity, n in kafka.items():
            if n > 1:
                count(self.kafka_records[identity][1][2] / 1000, "duplicated")
        for bad in result["bad_5xx"]:
            count(bad["at"], "bad_5xx")
        for fault in faults:
            tally = tallies[id(fault)]
            fault.update({k: tally[k] for k in ("lost", "duplicated", "bad_5xx")})
            bad = sum(tally.values())
            fault["status"] = ("FAILED" if bad else "ok") + (
                f" ({fault['status']})" if fault.get("status") else ""
            )
        if outside:
            self.report.notes.append(f"before the first fault: {dict(outside)}")
        if self.report.counts.get("wrong sums (additive projections)"):
            self.report.notes.append("wrong sums are totals over the run (not per fault)")


Sums = dict[str, dict[Any, tuple[int, ...]]]  # total -> key -> (count, ...)


def expected_sums(events: Iterable[tuple[str, bytes]]) -> Sums:
    """The running totals recomputed from distinct events, each (type, data as JSON)."""
    sums: dict[str, dict[Any, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for kind, value in events:
        family = spec_for(kind).family
        sums["family_totals.events"][family][0] += 1
        if kind in ACTIVITY_TYPES:
            sums["family_totals.activities"][family][0] += 1
            sums["activity_months.n"][family][0] += 1
        if kind.endswith(".budget.spent.v1"):
            data = json.loads(value)
            spent = sums["budget_totals"][(family, data["year"])]
            spent[0] += 1
            spent[1] += data["amount_cents"]
        if kind == TINL_ACTIVITY:
            sums["tinl_partner_sets.activities"]["tinl"][0] += 1
        if kind == TINL_KNOWLEDGE:
            sums["tinl_partner_sets.knowledge"]["tinl"][0] += 1
        if kind == WP_ONBOARDED:
            sums["wp_portfolio.n"]["werkplaats"][0] += 1
            sums["wp_sdgs.n"]["werkplaats"][0] += len(json.loads(value)["sdgs"])
    return {
        total: {key: tuple(v) if total == "budget_totals" else (v[0],) for key, v in by.items()}
        for total, by in sums.items()
    }


def wrong_sums(expected: Sums, actual: Sums) -> list[str]:
    """Every total whose projected value differs from the recomputed one (a key missing on
    one side counts as zero there)."""
    wrong = []
    for total in sorted(expected.keys() | actual.keys()):
        want, have = expected.get(total, {}), actual.get(total, {})
        width = 2 if total == "budget_totals" else 1
        for key in sorted(want.keys() | have.keys(), key=str):
            if want.get(key, (0,) * width) != have.get(key, (0,) * width):
                wrong.append(
                    f"{total}[{key}]: projected {have.get(key)}, events say {want.get(key)}"
                )
    return wrong


def _sigkill(pid: int) -> None:
    """SIGKILL, then wait until the process is gone (a zombie counts as gone)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # the broker is our child: reap it
        time.sleep(0.05)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


async def _dashboard_audit(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        inbox = await conn.fetch(  # a network event's inbox row is its events row
            "SELECT source, event_id FROM proj.events WHERE event_id LIKE 'f-%'"
            " UNION ALL SELECT event_source, event_id FROM proj.inbox WHERE event_id LIKE 'f-%'"
        )
        events = await conn.fetch(
            "SELECT source, event_id FROM proj.events WHERE event_id LIKE 'f-%'"
        )
        dead = await conn.fetchval("SELECT count(*) FROM proj.dead_letters")
    finally:
        await conn.close()
    return {
        "inbox": {(r[0], r[1]) for r in inbox},
        "events": {(r[0], r[1]) for r in events},
        "dead_letters": int(dead),
    }


SUM_QUERIES = {
    "family_totals.events": "SELECT family, sum(events) FROM proj.family_totals GROUP BY 1"
    " HAVING sum(events) <> 0",
    "family_totals.activities": "SELECT family, sum(activities) FROM proj.family_totals"
    " GROUP BY 1 HAVING sum(activities) <> 0",
    "activity_months.n": "SELECT family, sum(n) FROM proj.activity_months GROUP BY 1"
    " HAVING sum(n) <> 0",
    "budget_totals": "SELECT family, year, sum(spends), sum(spent_cents) FROM proj.budget_totals"
    " GROUP BY 1, 2 HAVING sum(spends) <> 0 OR sum(spent_cents) <> 0",
    "tinl_partner_sets.activities": "SELECT 'tinl', sum(activities) FROM proj.tinl_partner_sets"
    " HAVING sum(activities) <> 0",
    "tinl_partner_sets.knowledge": "SELECT 'tinl', sum(knowledge) FROM proj.tinl_partner_sets"
    " HAVING sum(knowledge) <> 0",
    "wp_portfolio.n": "SELECT 'werkplaats', sum(n) FROM proj.wp_portfolio HAVING sum(n) <> 0",
    "wp_sdgs.n": "SELECT 'werkplaats', sum(n) FROM proj.wp_sdgs HAVING sum(n) <> 0",
}


async def _dashboard_sums(url: str) -> Sums:
    """The dashboard's running totals as its readers see them (the sum of the delta rows)."""
    conn = await asyncpg.connect(url)
    try:
        found: Sums = {}
        for total, query in SUM_QUERIES.items():
            rows = await conn.fetch(query)
            if total == "budget_totals":
                found[total] = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in rows}
            else:
                found[total] = {r[0]: (int(r[1]),) for r in rows}
    finally:
        await conn.close()
    return found


async def _deadletters(stack: BenchStack) -> dict[str, int]:
    read = await read_to_end(stack.bootstrap, [stack.deadletter_topic()], identities=True)
    ours = sum(n for (_, event_id), n in read["counts"].items() if event_id.startswith("f-"))
    return {"records": read["records"], "ours": ours}


# -- the stack behind proxies -----------------------------------------------------------------
def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def proxied_stack(proxies: ProxyThread) -> BenchStack:
    """A private stack whose services reach PostgreSQL (one proxy each) and Kafka (one
    proxy, on the port the broker's second listener advertises) through TCP proxies."""
    infra = private_infra(kafka_proxy=True)
    stack = BenchStack(infra, True, RESULTS / "runs")
    stack.workdir = RESULTS / "runs" / f"faults-{stack.run_id}"
    listener, advertised = kafka_proxy_ports(infra.config.kafka_port)
    proxies.add(KAFKA_PROXY, "127.0.0.1", listener, advertised)
    for service in ALL_SERVICES:
        proxy = proxies.add(f"pg-{service}", "127.0.0.1", infra.config.postgres_port)
        stack.env_of[service] = {
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{advertised}",
            f"{ENV_PREFIX[service]}DATABASE_URL": _through(
                infra.database_url(stack.database(service)), proxy.port
            ),
        }
    return stack


def run_faults(size: str = "smoke", *, keep: bool = False) -> FaultReport:
    """Start a private stack, run the fault scenario, stop the stack; returns the report."""
    chosen = FAULT_SIZES[size]
    proxies = ProxyThread()
    stack = proxied_stack(proxies)
    started = time.monotonic()
    log(f"faults {size}: run {stack.run_id} ({stack.bootstrap})")
    run = FaultRun(stack, chosen, proxies)
    report = run.report
    report.provenance = provenance(size)
    try:
        stack.infra.down()  # a broker left running without the proxied listener
        stack.up()
        run.run()
    except Exception as error:  # noqa: BLE001 - reported as a failure with its counts
        report.failures.append(f"the run itself failed: {error!r}")
    finally:
        report.counts["elapsed (s)"] = round(time.monotonic() - started, 1)
        for name, traffic in proxies.traffic().items():
            report.counts[f"through proxy {name}"] = traffic
        _write(report, stack)
        if not keep:
            stack.down()
        proxies.close()
    return report


def _write(report: FaultReport, stack: BenchStack) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        **report.provenance,
        "run_id": stack.run_id,
        "ok": report.ok,
        "counts": report.counts,
        "faults": report.faults,
        "failures": report.failures,
        "notes": report.notes,
    }
    markdown = f"# Fault injection ({report.size})\n\n```\n{report.text()}\n```\n"
    # faults-latest.* is the last run of any size; faults-<size>.* keeps each size's last run
    for name in ("faults-latest", f"faults-{report.size}"):
        (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, default=str))
        (RESULTS / f"{name}.md").write_text(markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(FAULT_SIZES), default="smoke")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the stack and data running (the next run removes the data)",
    )
    args = parser.parse_args(argv)
    interrupt_on_sigterm()
    report = run_faults(args.size, keep=args.keep)
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
