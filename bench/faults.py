"""``make faults``: count what was sent and what arrived while the stack is broken on purpose.

    python -m bench.faults --size smoke|full

A load generator (its own process) offers a known number of events at a steady rate to the
three initiative services, retrying an unanswered event with the *same* (source, id) until
it is acknowledged (202, or 200 for a replay). Meanwhile, one at a time: kill -9 and restart
each initiative service and the dashboard; stop and restart the Kafka broker; restart
PostgreSQL. Then, after the pipeline drained, it asserts:

- every acknowledged event is in Kafka exactly once per (source, id) (topics read to the end);
- the dashboard applied every acknowledged event exactly once (its inbox and its ``events``
  projection each hold every one, once);
- nothing valid is in the dead-letter topic;
- no client saw a 5xx other than 503 with Retry-After.

It prints the counts and exits non-zero when an assertion fails. :func:`run_faults` is the
same as a function (for a pytest wrapper). It always uses a private Kafka + PostgreSQL,
since it stops them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.harness import LoadgenProcess, log, read_acks, targets, wait_until
from bench.kafka_io import read_to_end
from bench.loadgen import LoadConfig
from bench.stack import ALL_SERVICES, BenchStack, private_infra, start_infra

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class FaultSize:
    name: str
    rate: float  # events/s offered over the three services
    events: int
    settle: float  # seconds between two faults
    kafka_down: float  # seconds the broker stays stopped
    kill_down: float  # seconds a killed service stays dead
    drain_timeout: float


FAULT_SIZES = {
    "smoke": FaultSize(
        "smoke", rate=20, events=2_000, settle=6, kafka_down=8, kill_down=2, drain_timeout=240
    ),
    "full": FaultSize(
        "full", rate=60, events=20_000, settle=20, kafka_down=30, kill_down=5, drain_timeout=1200
    ),
}


@dataclass
class FaultReport:
    size: str
    counts: dict[str, Any] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def text(self) -> str:
        lines = [f"faults ({self.size}): {'PASSED' if self.ok else 'FAILED'}", "", "faults:"]
        lines += [
            f"  {f['fault']:<28} {f['seconds']:>6.1f}s  at acked={f['acked_at_start']}"
            for f in self.faults
        ]
        lines += ["", "counts:"]
        lines += [f"  {k:<34} {v}" for k, v in self.counts.items()]
        lines += ["", *[f"FAIL: {f}" for f in self.failures]]
        return "\n".join(lines)


class FaultRun:
    def __init__(self, stack: BenchStack, size: FaultSize) -> None:
        self.stack = stack
        self.size = size
        self.report = FaultReport(size.name)

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
            concurrency=32,
            retry_seconds=size.drain_timeout,
            acks=acks_path,
            timeout=20,
        )
        load = LoadgenProcess.start(config, self.stack.workdir, "faults")
        try:
            time.sleep(size.settle)
            for service in ALL_SERVICES:
                self._fault(f"kill -9 {service}", load, lambda s=service: self._kill(s))
            self._fault("Kafka stop + start", load, self._kafka)
            self._fault("PostgreSQL restart", load, self._postgres)
            log("faults: all injected; waiting for the load generator")
            result = load.wait(timeout=size.drain_timeout + size.events / size.rate + 60)
        finally:
            if load.running():
                load.process.kill()
        self._audit(result, read_acks(acks_path))
        return self.report

    # -- faults ---------------------------------------------------------------------------------
    def _fault(self, name: str, load: LoadgenProcess, action: Any) -> None:
        acked = load.last_progress.get("events_acked", 0)
        log(f"fault: {name} (acked so far {acked})")
        started = time.monotonic()
        action()
        self.report.faults.append(
            {"fault": name, "seconds": time.monotonic() - started, "acked_at_start": acked}
        )
        time.sleep(self.size.settle)

    def _kill(self, service: str) -> None:
        self.stack.services[service].kill9()
        time.sleep(self.size.kill_down)
        self.stack.restart(service)

    def _kafka(self) -> None:
        self.stack.infra.kafka.stop()
        time.sleep(self.size.kafka_down)
        start_infra(self.stack.infra)

    def _postgres(self) -> None:
        self.stack.infra.postgres.restart()

    # -- the audit ----------------------------------------------------------------------------
    def _audit(self, result: dict[str, Any], acks: list[tuple[str, str, int, float]]) -> None:
        acked = {(source, event_id) for source, event_id, _, _ in acks}
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
        projected = self._wait_dashboard(acked)
        self._check(acked, in_kafka, projected, result)

    def _kafka_counts(self) -> Counter[tuple[str, str]]:
        read = asyncio.run(read_to_end(self.stack.bootstrap, self.stack.topics(), identities=True))
        counts: Counter[tuple[str, str]] = read["counts"]
        return Counter({k: v for k, v in counts.items() if k[1].startswith("f-")})

    def _wait_kafka(self, acked: set[tuple[str, str]]) -> Counter[tuple[str, str]]:
        found: Counter[tuple[str, str]] = Counter()

        def complete() -> bool:
            nonlocal found
            found = self._kafka_counts()
            return acked <= found.keys()

        wait_until(complete, self.size.drain_timeout, 2.0)
        return found

    def _wait_dashboard(self, acked: set[tuple[str, str]]) -> dict[str, Any]:
        counts: dict[str, Any] = {}

        def complete() -> bool:
            nonlocal counts
            counts = asyncio.run(_dashboard_audit(self.stack.database_url("dashboard")))
            return len(counts["inbox"]) >= len(acked)

        wait_until(complete, self.size.drain_timeout, 2.0)
        counts["deadletter_topic"] = asyncio.run(_deadletters(self.stack))
        return counts

    def _check(
        self,
        acked: set[tuple[str, str]],
        kafka: Counter[tuple[str, str]],
        dashboard: dict[str, Any],
        result: dict[str, Any],
    ) -> None:
        c, fail = self.report.counts, self.report.failures
        missing = acked - kafka.keys()
        duplicated = {k: n for k, n in kafka.items() if n > 1}
        unacked = kafka.keys() - acked
        c["in Kafka: distinct (source, id)"] = len(kafka)
        c["in Kafka: records"] = sum(kafka.values())
        c["in Kafka: acknowledged but missing"] = len(missing)
        c["in Kafka: more than once"] = len(duplicated)
        c["in Kafka: never acknowledged"] = len(unacked)
        inbox, events = dashboard["inbox"], dashboard["events"]
        c["dashboard inbox rows"] = len(inbox)
        c["dashboard events projection rows"] = len(events)
        c["dashboard: acknowledged not applied"] = len(acked - inbox)
        c["dashboard: dead_letters table rows"] = dashboard["dead_letters"]
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
        if acked - inbox or len(events) != len(inbox) or inbox != events:
            fail.append(
                f"dashboard applied {len(inbox)} (events projection {len(events)}) of "
                f"{len(acked)} acknowledged events"
            )
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


async def _dashboard_audit(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        inbox = await conn.fetch(
            "SELECT event_source, event_id FROM proj.inbox WHERE event_id LIKE 'f-%'"
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


async def _deadletters(stack: BenchStack) -> dict[str, int]:
    read = await read_to_end(stack.bootstrap, [stack.deadletter_topic()], identities=True)
    ours = sum(n for (_, event_id), n in read["counts"].items() if event_id.startswith("f-"))
    return {"records": read["records"], "ours": ours}


def run_faults(size: str = "smoke", *, keep: bool = False) -> FaultReport:
    """Start a private stack, run the fault scenario, stop the stack; returns the report."""
    chosen = FAULT_SIZES[size]
    stack = BenchStack(private_infra(), True, RESULTS / "runs")
    stack.workdir = RESULTS / "runs" / f"faults-{stack.run_id}"
    started = time.monotonic()
    log(f"faults {size}: run {stack.run_id} ({stack.bootstrap})")
    run = FaultRun(stack, chosen)
    report = run.report
    try:
        stack.up()
        run.run()
    except Exception as error:  # noqa: BLE001 - reported as a failure with its counts
        report.failures.append(f"the run itself failed: {error!r}")
    finally:
        report.counts["elapsed (s)"] = round(time.monotonic() - started, 1)
        _write(report, stack)
        if not keep:
            stack.down()
    return report


def _write(report: FaultReport, stack: BenchStack) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "size": report.size,
        "run_id": stack.run_id,
        "ok": report.ok,
        "counts": report.counts,
        "faults": report.faults,
        "failures": report.failures,
    }
    (RESULTS / "faults-latest.json").write_text(json.dumps(data, indent=1, default=str))
    (RESULTS / "faults-latest.md").write_text(
        f"# Fault injection ({report.size})\n\n```\n{report.text()}\n```\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(FAULT_SIZES), default="smoke")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    report = run_faults(args.size, keep=args.keep)
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
