"""The one table, and the results file the README links to (``bench/results/latest.md``)."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from bench import pgstats
from bench.profile import REBUILD_SECONDS
from bench.sizes import PHASES
from bench.stats import ratio
from teamnl_suite.infra.config import KAFKA_VERSION

PACKAGES = ("fastapi", "uvicorn", "starlette", "pydantic", "aiokafka", "asyncpg", "httpx")
RSS_BUDGET_MB = 150  # the budget per service, in MB (10**6 bytes); RSS is read in MiB
MB, MIB = 10**6, 2**20


def machine(stack: Any = None) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {
        "python": platform.python_version(),
        "kafka": KAFKA_VERSION,
        "postgresql": _postgres_version(),
    }
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "-"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "versions": versions,
        "commit": _commit(),
        "infra": getattr(stack, "bootstrap", None),
        "at": datetime.now(UTC).isoformat(),
    }


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return math.nan


def _postgres_version() -> str:
    from teamnl_suite.infra.postgres import find_bindir

    bindir = find_bindir()
    if bindir is None:
        return "-"
    done = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    found = re.search(r"\d+\.\d+", done.stdout)
    return found.group(0) if found else "-"


def provenance(size: str) -> dict[str, Any]:
    """What a results file was produced at: the commit, whether the working tree had
    changes (outside bench/results/, which the run itself writes) and the size."""
    root = Path(__file__).resolve().parent.parent
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False, cwd=root
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", ".", ":(exclude)bench/results"],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
    ).stdout.strip()
    return {
        "commit": commit or "unknown",
        "dirty": bool(changed),
        "size": size,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def provenance_line(p: dict[str, Any]) -> str:
    dirty = " + uncommitted changes" if p["dirty"] else ""
    return f"commit {p['commit'][:12]}{dirty}, size {p['size']}, at {p['at']}"


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    # What the run wrote itself (results, flame graphs) does not make the code uncommitted.
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", ".", ":(exclude)bench/results"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return done.stdout.strip() + ("+uncommitted" if dirty else "")


# -- formatting ---------------------------------------------------------------------------------
def _n(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(value: Any) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3g}x"


def _ms(summary: dict[str, float], *qs: str, digits: int = 0) -> str:
    return " / ".join(_n(summary.get(q), digits) for q in qs) + " ms"


def _one_client_rows(single: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """nlib and the durable INSERT with one client sending one event after another: its
    rate is one over the latency of a request that shares its transaction with none."""
    one = single.get("one_client")
    if not one:
        return []
    alone = (single.get("durable") or {}).get("one_client")
    baseline, against = "-", "-"
    if alone:
        baseline = (
            f"one durable INSERT per request, one client {_n(alone['achieved_rate'])} ev/s, "
            f"p50/p99 {_ms(alone['service_ms'], 'p50', 'p99', digits=1)};"
            f" {_cpu_ms(alone, 'baseline')}"
        )
        against = _ratio(ratio(one["achieved_rate"], alone["achieved_rate"]))
    return [
        (
            "1. single-event POST, one client sending one event after another (nlib)",
            f"{_n(one['achieved_rate'])} ev/s, p50/p99"
            f" {_ms(one['service_ms'], 'p50', 'p99', digits=1)}{_per_commit(one)};"
            f" {_cpu_ms(one)}",
            baseline,
            against,
            f"closed loop, one client -> {_n(one['achieved_rate'])} ev/s",
        )
    ]


def _rounds(result: dict[str, Any]) -> str:
    """The rate of each round a figure was loaded in turn with its baselines (the figure is
    the median round's); "" for a figure measured in one go."""
    rates = result.get("round_rates") or []
    if len(rates) < 2:
        return ""
    return f" (median of rounds at {' / '.join(_n(rate) for rate in rates)} ev/s)"


def _per_commit(result: dict[str, Any]) -> str:
    """ ", N events per commit": the requests each group-commit transaction carried on average
    (every service that committed; read from their ``teamnl.ingestion.group.size``), or ""
    when the result has none (a baseline, a service with OpenTelemetry off)."""
    together = (result.get("groups") or {}).get("all")
    if not together:
        return ""
    return f", {together['mean']:.1f} events per commit"


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(figure, pipeline, baseline, ratio, offered -> achieved)."""
    out: list[tuple[str, str, str, str, str]] = []
    if "single" in r:
        s, p = r["single"], r["single"]["pipeline"]
        label = f"1. single-event POST, {p['concurrency']} keep-alive clients (nlib)"
        measured = (
            f"{_n(p['achieved_rate'])} ev/s, p50/p99 {_ms(p['service_ms'], 'p50', 'p99')}"
            + _per_commit(p)
            + _rounds(p)
        )
        achieved = f"closed loop -> {_n(p['achieved_rate'])} ev/s"
        for key, ratio_key, name in (
            ("baseline", "ratio", "no-op FastAPI"),
            ("traced", "ratio_traced", "no-op FastAPI traced as the services are"),
            ("durable", "ratio_durable", "one durable INSERT per request"),
        ):
            if key in s:
                b = s[key]
                baseline = (
                    f"{name} {_n(b['achieved_rate'])} ev/s,"
                    f" p50/p99 {_ms(b['service_ms'], 'p50', 'p99')}" + _rounds(b)
                )
                out.append((label, measured, baseline, _ratio(s[ratio_key]), achieved))
        off = s.get("telemetry_off")
        if off:
            out.append(
                (
                    "1. single-event POST, nlib restarted with OpenTelemetry off"
                    " (`OTEL_SDK_DISABLED=true`): nlib's CPU per event",
                    f"{_n(off['achieved_rate'])} ev/s, p50/p99"
                    f" {_ms(off['service_ms'], 'p50', 'p99')}; {_cpu_ms(off)}",
                    f"with it (above): {_cpu_ms(p)}",
                    _ratio(telemetry_share(p, off)),
                    f"closed loop -> {_n(off['achieved_rate'])} ev/s",
                )
            )
        out += _one_client_rows(s)
    if "batch" in r:
        s, b, p = r["batch"], r["batch"]["baseline"], r["batch"]["pipeline"]
        label = f"2. batch POST ({p['events_per_request']}/request, {p['events_sent']:,} events)"
        out.append(
            (
                label + ": 202 accepted",
                f"{_n(p['achieved_rate'])} ev/s",
                f"bare producer acks=all {_n(b['rate'])} ev/s",
                _ratio(s["ratio_accept"]),
                f"closed loop -> {_n(p['achieved_rate'])} ev/s",
            )
        )
        out.append(
            (
                "2. batch: first request -> all in Kafka (relay)",
                f"{_n(p['to_kafka_rate'])} ev/s ({p['in_kafka']:,} in {p['to_kafka_s']} s)",
                f"bare producer {_n(b['rate'])} ev/s",
                _ratio(s["ratio_to_kafka"]),
                "",
            )
        )
    if "latency" in r:
        f = r["latency"]["fixed"]
        out.append(
            (
                "3. end-to-end 202 -> projection commit, p50/p95/p99",
                _ms(f["e2e_ms"], "p50", "p95", "p99")
                + f" ({f['projected']:,} events{_per_commit(f)})",
                "-",
                "-",
                f"{_n(f['offered_rate'])} -> {_n(f['achieved_rate'])} ev/s",
            )
        )
        for hop, summary in f.get("hops_ms", {}).items():
            out.append((f"3. hop: {hop}, p50/p99", _ms(summary, "p50", "p99"), "-", "-", ""))
        k = r["latency"].get("kafka_roundtrip")
        if k:
            out.append(
                (
                    "3. baseline: bare Kafka producer -> consumer, p50/p95/p99",
                    "-",
                    _ms(k, "p50", "p95", "p99") + f" ({k['received']:,} records)",
                    "-",
                    f"{_n(k['rate'])} rec/s",
                )
            )
        for step in r["latency"]["ramp"]:
            verdict = "sustained" if step["sustained"] else "NOT sustained"
            out.append(
                (
                    f"3. ramp step {_n(step['offered_rate'])} ev/s{_between(step)}: {verdict}",
                    "p99 "
                    + _ms(step["e2e_ms"], "p99")
                    + f", {step['not_projected']} late, {step['non_accepted']} non-2xx"
                    + _per_commit(step),
                    "-",
                    "-",
                    f"{_n(step['offered_rate'])} -> {_n(step['achieved_rate'])} ev/s",
                )
            )
        out.append(
            (
                "3. highest rate sustained with p99 < 1 s",
                f"{_n(r['latency']['max_sustained_rate'])} ev/s",
                "-",
                "-",
                "",
            )
        )
    if "dashboard" in r:
        d = r["dashboard"]
        pr = d["projection"]
        done = "" if pr["complete"] else " INCOMPLETE at the time limit"
        out.append(
            (
                f"4. live projection of {pr['loaded']['events']:,} events loaded into Kafka"
                + _chained(pr),
                _projection_rate(pr) + done,
                f"loader (bare producer) {_n(pr['loaded']['rate'])} ev/s",
                "-",
                "",
            )
        )
        floor = _traced_floor(r)
        if floor:
            out.append(
                (
                    "4. live projection vs a bare consumer that validates and traces each record",
                    f"{_n(pr['rate'])} ev/s",
                    "bare consumer, contract validation + a consume span and the end-to-end"
                    f" latency per record (one process) {_n(floor['rate'])} ev/s",
                    _ratio(pr["rate"] / floor["rate"]),
                    "",
                )
            )
        again = (
            (
                "projection_with_worker",
                "web app + one `teamnl_dashboard.worker` process (one consumer group)",
                "one process (above)",
            ),
            (
                "projection_telemetry_off",
                "the dashboard restarted with OpenTelemetry off (`OTEL_SDK_DISABLED=true`)",
                "with it: the first live projection (above)",
            ),
        )
        for key, how, against in again:
            figure = d.get(key)
            if figure:
                done = "" if figure["complete"] else " INCOMPLETE at the time limit"
                out.append(
                    (
                        f"4. live projection of {figure['loaded']['events']:,} more events"
                        f"{_chained(figure)}, {how}",
                        _projection_rate(figure) + done,
                        against,
                        _ratio(worker_ratio(pr, figure)),
                        "",
                    )
                )
        for key, label in _overview_runs(d):
            g = d[key]
            out.append(
                (
                    f"5. {label}, {pr['applied_total']:,} events projected, p50/p95",
                    _ms(g["service_ms"], "p50", "p95") + f", {_n(g['achieved_rate'])} req/s"
                    f" ({g['concurrency']} clients)",
                    "-",
                    "-",
                    f"closed loop, statuses {g['statuses']}",
                )
            )
    if "rebuild" in r:
        rb = r["rebuild"]
        if "error" in rb:
            out.append(("4. projection rebuild", "FAILED", "-", "-", ""))
        else:
            p, b = rb["pipeline"], rb["baseline"]
            copying = "parse JSON + COPY rows" if "bare_read" in rb else ""
            out.append(
                (
                    f"4. projection rebuild ({p['records']:,} records)",
                    f"{_n(p['rate'])} ev/s ({p['seconds']} s"
                    + "".join(f"; {k} {v:g} s" for k, v in p.get("phases_s", {}).items())
                    + ")",
                    f"bare consumer {copying} ({b['records']:,} records) {_n(b['rate'])} ev/s",
                    _ratio(rb["ratio"]),
                    "",
                )
            )
            for key, against, baseline in (
                ("bare_read", "a read-only bare consumer", "bare consumer, read only"),
                (
                    "bare_validate",
                    "a bare consumer that validates each record",
                    "bare consumer, contract validation only (one process)",
                ),
            ):
                if key in rb:
                    other = rb[key]["rate"]
                    out.append(
                        (
                            f"4. projection rebuild vs {against}",
                            f"{_n(p['rate'])} ev/s",
                            f"{baseline} {_n(other)} ev/s",
                            _ratio(p["rate"] / other if other else math.nan),
                            "",
                        )
                    )
    out += _server_cpu(r)
    out += _loadgen_cpu(r)
    for service, values in _memory(r).items():
        out.append(
            (
                f"6. RSS {service}: at rest / under load / projecting / end",
                " / ".join(_n(v, 0) for v in values) + " MiB",
                "-",
                "-",
                "",
            )
        )
    return out


def _chained(projection: dict[str, Any]) -> str:
    """ " (N in dependent chains)" when the load held chains' events, else ""."""
    chained = sum((projection["loaded"].get("chains") or {}).values())
    return f" ({chained:,} in dependent chains)" if chained else ""


def load_section(r: dict[str, Any]) -> list[str]:
    """What the dashboard's first load held: its chains' events by type, loaded and
    projected; the dead letters after it; the findings the rules held after the phase."""
    d = r.get("dashboard")
    if not d:
        return []
    pr = d["projection"]
    loaded, projected = pr["loaded"].get("chains") or {}, pr.get("chains_projected") or {}
    lines = [
        "## The dashboard's load",
        "",
        f"{pr['loaded']['events']:,} events loaded into Kafka, {sum(loaded.values()):,} of them"
        " in dependent chains (`bench/chains.py`: missions planned and held with their"
        " follow-ups and converted leads, Global Stars calls opened with their proposals and"
        " closed, Werkplaats projects onboarded with their milestones and consortium joins,"
        " some graduated or stopped; dated over the years before the run and loaded in the"
        " order of their days, each chain's events in order on its key), the rest"
        " independent events."
        f" {pr['projected']:,} projected; dead letters after the load: {pr['dead_letters']:,}.",
        "",
    ]
    if loaded:
        lines += ["| chain event type | loaded | projected |", "|---|---|---|"]
        lines += [f"| `{t}` | {n:,} | {projected.get(t, 0):,} |" for t, n in loaded.items()]
        lines.append("")
    findings = d.get("findings") or {}
    if findings:
        held = ", ".join(f"{rule} {count:,}" for rule, count in findings.items())
        lines += [f"Findings held at the end of the phase, by rule: {held}.", ""]
    return lines


def problems_section(r: dict[str, Any]) -> list[str]:
    """What made the run fail (a load not projected whole, dead letters), first."""
    problems = r.get("problems") or []
    if not problems:
        return []
    return ["**The run failed:**", "", *(f"- {problem}" for problem in problems), ""]


def _overview_runs(d: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, label) of the dashboard's GET runs: the page and the API with the dashboard
    idle (the overview cache hits nearly always), and the page while it projects a trickle
    of events (each commit empties the cache) where the run measured it."""
    runs = [
        ("overview_page", "overview page /, idle"),
        ("overview_api", "JSON API /api/v1/overview, idle"),
    ]
    if "overview_page_projecting" in d:
        rate = _n(d["overview_page_projecting"]["projecting"]["rate"])
        runs.append(("overview_page_projecting", f"overview page / while projecting {rate} ev/s"))
    return runs


def _server_cpu(r: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """CPU the server process spent per single-event POST: steady on a shared machine, where
    the throughput depends on the CPU share each process gets."""
    single = r.get("single", {})
    mine = single.get("pipeline", {}).get("server_cpu_ms_per_event")
    out = []
    for key, label in (
        ("baseline", "no-op FastAPI"),
        ("traced", "no-op FastAPI, traced"),
        ("durable", "one durable INSERT"),
    ):
        theirs = single.get(key, {}).get("server_cpu_ms_per_event")
        if mine and theirs:
            out.append(
                (
                    "1. single-event POST: server CPU per event",
                    f"{mine:.2f} ms",
                    f"{label} {theirs:.2f} ms",
                    _ratio(theirs / mine),
                    "",
                )
            )
    return out


def _loadgen_cpu(r: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The load generator's own CPU (seconds busy per second of run: 1.0 is a full core)."""
    runs = {
        "single-event": r.get("single", {}).get("pipeline"),
        "batch": r.get("batch", {}).get("pipeline"),
    }
    out = []
    for label, run in runs.items():
        if run and run.get("loadgen_cpu_s") is not None and run.get("elapsed_s"):
            share = run["loadgen_cpu_s"] / run["elapsed_s"]
            out.append(
                (
                    f"6. loadgen CPU during {label}",
                    f"{share:.2f} cores ({run['loadgen_cpu_s']} s in {run['elapsed_s']} s)",
                    "-",
                    "-",
                    "",
                )
            )
    return out


def _memory(r: dict[str, Any]) -> dict[str, list[Any]]:
    memory = r.get("memory", {})
    phases = ("at_rest", "under_load", "projecting", "end")
    names = sorted({n for phase in phases for n in memory.get(phase, {})})
    return {n: [memory.get(phase, {}).get(n) for phase in phases] for n in names}


def table(r: dict[str, Any]) -> str:
    header = ("figure", "pipeline", "baseline (same run)", "ratio", "offered -> achieved")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(r)]
    return "\n".join(lines)


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return "\n".join(
        [
            f"# Benchmark results ({r['size']} size)",
            "",
            f"Run `{r['run_id']}` at {m['at']}, commit `{m['commit']}`, {r.get('elapsed_s')} s.",
            f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
            f"Linux {m['kernel']}. Load average at the end: {r.get('loadavg_end')}.",
            f"Versions: {versions}.",
            "",
            *problems_section(r),
            "Every baseline ran in the same run, on the same machine and the same private "
            "Kafka + PostgreSQL, just before or after its figure; the single POST and its two "
            "baselines in turn, a few seconds each, and each figure is its median round. "
            "The load generator is a "
            "separate process (`bench/loadgen.py`, raw HTTP/1.1 keep-alive client). "
            "Figure 3's hops are read by observers beside the pipeline, on the same cores "
            "(a listener to the dashboard's inbox commits, a reader of the topics, a browser's "
            "live stream); the ramp's steps, whose hops the report does not show, run without "
            "the reader of the topics, which took CPU from the rate they measure. The ramp climbs "
            "until a step is not sustained, then runs steps between the highest rate sustained "
            'and the lowest not (marked "between two steps"), halving the gap each time. '
            '"Events per commit" is how many single-event requests each group-commit '
            "transaction carried on average, over the figure's seconds: the services' own "
            "histogram (`teamnl.ingestion.group.size`, on their `/metrics`), read just before "
            "and just after.",
            "The dashboard figures load their events straight into Kafka with a bare producer "
            "(not through the HTTP ingestion), then wait until the dashboard projected them all; "
            "the projection's rate and CPU per event are those of the backlog the loader left "
            "(the records the dashboard's group had not committed when the load ended), timed "
            "from the load's end; what it projected while the loader ran is reported apart; "
            "one in ten is dated a year earlier, so that the overview's reading (this year as "
            "of today) holds part of them, as a deployment's reading does. "
            "The overview is then read idle (its cache, emptied by every projection commit, "
            "nearly always hits) and, for the page, again while a bare producer trickles "
            "events in (the commits keep emptying the cache; the CPU per request then includes "
            "the projection's); the page's target is met when both are.",
            "",
            table(r),
            "",
            *load_section(r),
            *targets_section(r),
            *cpu_section(r),
            *profile_section(r),
            *pgstats.section(r),
            "Raw figures: [`latest.json`](latest.json). Re-run: `make bench` (full size) or "
            "`make bench-smoke` (the CI size).",
            "",
        ]
    )


_CPU_ORDER = (
    "nlib",
    "tinl",
    "werkplaats",
    "dashboard",
    "worker",
    "rebuild",
    "baseline",
    "postgres",
    "kafka",
    "loadgen",
    "steal",
    "other",
)


def cpu_section(r: dict[str, Any]) -> list[str]:
    """CPU milliseconds per event by process (read from /proc around each run), and the rate
    the machine's cores could carry at that cost: the ceiling no code path can pass."""
    runs: list[tuple[str, dict[str, Any]]] = []
    single = r.get("single", {})
    for key, label in (
        ("pipeline", "1. single POST (nlib)"),
        ("telemetry_off", "1. single POST (nlib), OpenTelemetry off in nlib"),
        ("one_client", "1. single POST (nlib), one client"),
        ("baseline", "1. no-op FastAPI"),
        ("traced", "1. no-op FastAPI, traced as the services are"),
        ("durable", "1. durable INSERT"),
    ):
        if single.get(key, {}).get("cpu"):
            runs.append((label, single[key]["cpu"]))
    alone = single.get("durable", {}).get("one_client", {})
    if alone.get("cpu"):
        runs.append(("1. durable INSERT, one client", alone["cpu"]))
    producer = r.get("batch", {}).get("baseline", {})
    if producer.get("cpu"):
        runs.append(("2. bare producer, while it sends (per record)", producer["cpu"]))
    batch = r.get("batch", {}).get("pipeline", {})
    if batch.get("cpu"):
        runs.append(("2. batch POST, until all in Kafka", batch["cpu"]))
    latency = r.get("latency", {})
    if latency.get("fixed", {}).get("cpu"):
        runs.append(
            (
                f"3. end-to-end at {_n(latency['fixed']['offered_rate'])} ev/s",
                latency["fixed"]["cpu"],
            )
        )
    for step in latency.get("ramp", []):
        if step.get("cpu"):
            verdict = "sustained" if step["sustained"] else "not sustained"
            label = f"3. ramp {_n(step['offered_rate'])} ev/s{_between(step)} ({verdict})"
            runs.append((label, step["cpu"]))
    dashboard = r.get("dashboard", {})
    if dashboard.get("projection", {}).get("cpu"):
        runs.append(("4. live projection", dashboard["projection"]["cpu"]))
    if dashboard.get("projection_with_worker", {}).get("cpu"):
        runs.append(
            ("4. live projection, web app + worker", dashboard["projection_with_worker"]["cpu"])
        )
    if dashboard.get("projection_telemetry_off", {}).get("cpu"):
        runs.append(
            (
                "4. live projection, OpenTelemetry off in the dashboard",
                dashboard["projection_telemetry_off"]["cpu"],
            )
        )
    if r.get("rebuild", {}).get("pipeline", {}).get("cpu"):
        runs.append(("4. rebuild (the process and its start-up)", r["rebuild"]["pipeline"]["cpu"]))
    for key, label in _overview_runs(dashboard) if dashboard else []:
        if dashboard[key].get("cpu"):
            runs.append((f"5. {label} (per request)", dashboard[key]["cpu"]))
    if not runs:
        return []
    header = ("run", *_CPU_ORDER, "all", "cores busy", "ceiling")
    lines = [
        "## Where the CPU goes: milliseconds of CPU per accepted event (or request), by process",
        "",
        "Read from `/proc` around each run (a process with its children; `steal` is the time "
        "the host ran another guest while this machine's cores were ready to run, high on a "
        "busy host; `other` is the rest of the machine). `ceiling` is the machine's cores "
        "divided by the CPU one event costs all processes together: the rate this machine "
        "cannot pass at that cost, whatever the latency.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for label, cpu in runs:
        ms = cpu["cpu_ms_per_event"]
        total = cpu["machine_cpu_ms_per_event"]
        ceiling = cpu["cores"] * 1000 / total if total else math.nan
        cells = [_n(ms.get(name), 2) if name in ms else "-" for name in _CPU_ORDER]
        lines.append(
            "| "
            + " | ".join(
                [
                    label,
                    *cells,
                    _n(total, 2),
                    f"{cpu['cores_busy']:.2f} of {cpu['cores']}",
                    f"{_n(ceiling)} ev/s",
                ]
            )
            + " |"
        )
    return [*lines, ""]


def profile_section(r: dict[str, Any]) -> list[str]:
    """Each flame graph of the run, as shares of its samples by the part they were spent in."""
    profiles = r.get("profiles") or {}
    if not profiles:
        return []
    parts = sorted({part for p in profiles.values() for part in p["shares"]})
    header = ("profile", "samples", *parts)
    lines = [
        "## Inside each process (py-spy, `make bench` runs with `--profile`)",
        "",
        "Share of each flame graph's samples spent in each part itself (not in what it "
        "called). Flame graphs: `bench/results/profile-*.svg`. Each was recorded in a short "
        "pass of its own, after the figure it explains and under the same load, so that no "
        "figure is measured while py-spy takes CPU; the rebuild's samples the first "
        f"{REBUILD_SECONDS} s of the measured rebuild.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, p in profiles.items():
        shares = [f"{p['shares'][part]:.0%}" if part in p["shares"] else "-" for part in parts]
        link = f"[`{name}`]({name})"
        lines.append("| " + " | ".join([link, str(p["samples"]), *shares]) + " |")
    return [*lines, ""]


def write(r: dict[str, Any], out: Path, stack: Any = None) -> None:
    r["machine"] = machine(stack)
    r["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(r, indent=1, default=str))
    try:
        (out / "latest.md").write_text(markdown(r))
    except (KeyError, TypeError) as error:  # a phase failed: keep the JSON, say so
        (out / "latest.md").write_text(f"# Benchmark results\n\nIncomplete run: {error!r}\n")


# -- the targets, each met or with where its time goes --------------------------------
def _top_parts(r: dict[str, Any], profile: str, n: int = 3) -> str:
    shares = (r.get("profiles") or {}).get(profile, {}).get("shares", {})
    if not shares:
        return ""
    parts = ", ".join(f"{part} {share:.0%}" for part, share in list(shares.items())[:n])
    return f"`{profile}`: {parts}"


def _labelled(label: str, text: str) -> str:
    return f"{label}: {text}" if text else ""


def _server_log(step: dict[str, Any] | None) -> str:
    """What PostgreSQL's maintenance did during a step (a run before the log was read: "")."""
    if not step or "pg_log" not in step:
        return ""
    logged = step["pg_log"]
    if not logged:
        return "; PostgreSQL logged no checkpoint, autovacuum or autoanalyze meanwhile"
    return "; PostgreSQL logged meanwhile: " + "; ".join(f"`{line}`" for line in logged)


def _between(step: dict[str, Any]) -> str:
    """A ramp step run between two of the climb's (see ``bench.run.refine``)."""
    return " (between two steps)" if step.get("between") else ""


def _cpu_line(cpu: dict[str, Any] | None) -> str:
    if not cpu:
        return ""
    ms = cpu["cpu_ms_per_event"]
    biggest = sorted(ms.items(), key=lambda item: -item[1])[:4]
    total = cpu["machine_cpu_ms_per_event"]
    ceiling = cpu["cores"] * 1000 / total if total else math.nan
    named = ", ".join(f"{name} {value:.2f}" for name, value in biggest)
    return (
        f"{total:.2f} ms of CPU per event on the whole machine ({named}); "
        f"{cpu['cores_busy']:.2f} of {cpu['cores']} cores busy; ceiling {_n(ceiling)} ev/s"
    )


def _validation_floor(r: dict[str, Any], *, traced: bool = False) -> str:
    """What reading every record through the contract alone costs (one process); `traced`:
    and what tracing each as well costs (the floor of a live projection)."""
    valid = (r.get("rebuild") or {}).get("bare_validate")
    if not valid or not valid.get("rate"):
        return ""
    text = (
        "validating each record through the contract alone (CloudEvents SDK + pydantic, one"
        f" process, nothing written): {_per_record(valid)}"
    )
    floor = _traced_floor(r)
    if traced and floor:
        text += (
            "; validating and tracing each (its consume span and end-to-end latency, as the"
            f" dashboard does): {_per_record(floor)}"
        )
    return text


def _per_record(figure: dict[str, Any]) -> str:
    """A bare consumer's cost per record and the rate one core could give it."""
    most = floor_rate(figure)
    return f"{1000 / most:.3f} ms of CPU per record, at most {_n(most)} ev/s on one core"


def floor_rate(figure: dict[str, Any]) -> float:
    """What one process doing a bare consumer's work could reach with a core of its own:
    its records per second of CPU (its rate when that was not measured)."""
    return float(figure.get("cpu_rate") or figure["rate"])


def _traced_floor(r: dict[str, Any]) -> dict[str, Any] | None:
    """The bare consumer that validates and traces each record, if the run measured it."""
    traced = (r.get("rebuild") or {}).get("bare_traced")
    return traced if traced and traced.get("rate") else None


def _page_figure(page: dict[str, Any]) -> str:
    return (
        f"p95 {_n(page['service_ms']['p95'])} ms, {_n(page['achieved_rate'])} req/s"
        f" with {page['concurrency']} clients"
    )


def _why(*parts: str) -> str:
    """A target's "where the time goes": its non-empty parts, joined."""
    return "; ".join(part for part in parts if part.strip())


def _machine_ms(figure: dict[str, Any] | None) -> float | None:
    """CPU of the whole machine per event (or request) of a figure, ms; None if unmeasured."""
    cpu = (figure or {}).get("cpu") or {}
    value = cpu.get("machine_cpu_ms_per_event")
    return float(value) if value else None


def worker_ratio(one: dict[str, Any], two: dict[str, Any]) -> float:
    """The live projection with a worker against one process; NaN unless both were timed
    over a backlog (with none left, the rate is counted from the load's start, a lower bound:
    no ratio; runs before the backlog was measured have no ``backlog``)."""
    if one.get("backlog", 1) == 0 or two.get("backlog", 1) == 0:
        return math.nan
    return float(two["rate"] / one["rate"]) if one["rate"] else math.nan


def _process_ms(figure: dict[str, Any], process: str) -> float | None:
    """A process's CPU per event in a figure, ms (a single POST's server: its own measure)."""
    if process == "nlib" and figure.get("server_cpu_ms_per_event"):
        return float(figure["server_cpu_ms_per_event"])
    value = ((figure.get("cpu") or {}).get("cpu_ms_per_event") or {}).get(process)
    return float(value) if value else None


def _cpu_ms(figure: dict[str, Any], process: str = "nlib") -> str:
    ms = _process_ms(figure, process)
    return f"{process} {ms:.2f} ms of CPU per event" if ms is not None else "-"


def telemetry_share(on: dict[str, Any], off: dict[str, Any], process: str = "nlib") -> float:
    """`process`'s CPU per event with OpenTelemetry off against on (NaN unless both were
    measured): 0.7 means its telemetry took 30% of its CPU in that figure."""
    with_it, without = _process_ms(on, process), _process_ms(off, process)
    return without / with_it if with_it and without else math.nan


def _telemetry_part(on: dict[str, Any], off: dict[str, Any] | None, process: str) -> str:
    """The targets' "where the time goes": what OpenTelemetry took of `process`'s CPU."""
    if not off:
        return ""
    share = telemetry_share(on, off, process)
    if math.isnan(share):
        return ""
    return (
        f"OpenTelemetry (spans and metrics): {1 - share:.0%} of {process}'s CPU per event"
        f" ({_cpu_ms(on, process)} with it, {_process_ms(off, process):.2f} restarted with it"
        " off)"
    )


def _projection_rate(p: dict[str, Any]) -> str:
    """The live projection's rate and what it was timed over: the backlog the loader left
    (runs before this measure timed everything from the load's end: no ``backlog``)."""
    if "backlog" not in p:
        return f"{_n(p['rate'])} ev/s ({p['projected']:,} in {p['seconds']} s after the load)"
    if not p["backlog"]:
        return (
            f"{_n(p['rate'])} ev/s or more (kept up with the loader: counted from the load's start)"
        )
    return (
        f"{_n(p['rate'])} ev/s (the {p['backlog']:,} left when the load ended, in"
        f" {p['seconds']} s; {p['projected_during_load']:,} projected while it ran;"
        f" {_n(p['rate_from_load_start'])} ev/s counted from its start)"
    )


def projection_ms(r: dict[str, Any]) -> float | None:
    """The least CPU of the whole machine that projecting one event took in this run: the
    cheaper of the live projection's two ways (one process, web app + worker)."""
    dashboard = r.get("dashboard") or {}
    found = [
        ms
        for key in ("projection", "projection_with_worker")
        if (ms := _machine_ms(dashboard.get(key))) is not None
    ]
    return min(found) if found else None


def _request_floor(r: dict[str, Any]) -> tuple[str, float] | None:
    """The cheapest request an accepted event can come in by, whole machine, ms: the no-op
    endpoint traced as the services are (runs before it was measured: the untraced one)."""
    single = r.get("single") or {}
    for key, what in (("traced", "the traced no-op's"), ("baseline", "the no-op's")):
        ms = _machine_ms(single.get(key))
        if ms is not None:
            return what, ms
    return None


def _record_floor_ms(r: dict[str, Any]) -> float:
    """What putting one record into Kafka costs the machine at the least: the bare
    producer's CPU per record while it sends (0.0 in runs before it was measured)."""
    return _machine_ms((r.get("batch") or {}).get("baseline")) or 0.0


def accept_floor(r: dict[str, Any]) -> tuple[str, float] | None:
    """The least CPU of the whole machine an event accepted by a single POST can cost, from
    this run's baselines, and what it counts: its request, as cheap as the no-op endpoint's
    traced as every request is (server and load generator); its record put into Kafka as
    cheaply as the bare producer puts one (producer and broker); and its projection (the
    dashboard keeping up on the same cores). Storing it (shared transactions can make that
    cheaper than a durable INSERT per request), relaying it from the outbox, validating it
    and its spans beyond the request's come on top."""
    request = _request_floor(r)
    projection = projection_ms(r)
    if request is None or projection is None:
        return None
    (whose, request_ms), record_ms = request, _record_floor_ms(r)
    parts = [f"a request as cheap as {whose} ({request_ms:.2f} ms)"]
    if record_ms:
        parts.append(f"its record sent as the bare producer sends one ({record_ms:.3f} ms)")
    parts.append(f"the projection ({projection:.2f} ms)")
    total = request_ms + record_ms + projection
    return f"{_listed(parts)}: {total:.2f} ms of CPU per event", total


def _listed(parts: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return f"{', '.join(parts[:-1])} and {parts[-1]}" if len(parts) > 1 else parts[0]


def bound_text(what: str, bound_rate: float, target_rate: float, target: str = "the target") -> str:
    """'<what>: at most N ev/s, X of <target> (T ev/s): out of reach on this machine' (or
    'within reach')."""
    verdict = "out of reach on this machine" if bound_rate < target_rate else "within reach"
    return (
        f"{what}: at most {_n(bound_rate)} ev/s, {_ratio(bound_rate / target_rate)} of {target}"
        f" ({_n(target_rate)} ev/s): {verdict}"
    )


def _cores(r: dict[str, Any]) -> int:
    """The cores the run's CPU figures were read on."""
    for figure in (
        (r.get("single") or {}).get("durable"),
        (r.get("dashboard") or {}).get("projection"),
    ):
        cores = ((figure or {}).get("cpu") or {}).get("cores")
        if cores:
            return int(cores)
    return os.cpu_count() or 1


def bounds(r: dict[str, Any]) -> dict[str, str]:
    """Per target (by its `Target` key), the most this machine can give whatever the code,
    from this run's baselines (see `accept_floor`); a target above it cannot be met here
    with every process on the same two cores."""
    out: dict[str, str] = {}
    cores = _cores(r)
    accept = accept_floor(r)
    projection = projection_ms(r)
    single = r.get("single") or {}
    if accept and "durable" in single:
        what, floor = accept
        ceiling = cores * 1000 / floor
        durable_rate = single["durable"]["achieved_rate"]
        noop_rate = single["baseline"]["achieved_rate"]
        out["single"] = "; ".join(
            (
                bound_text(what, ceiling, durable_rate, "the durable INSERT's"),
                bound_text("the same", ceiling, 0.4 * noop_rate, "0.4x the no-op's"),
            )
        )
        out["highest"] = bound_text(what, ceiling, 3000)
        latency = (r.get("latency") or {}).get("fixed")
        if latency:
            busy = floor * latency["offered_rate"] / 1000
            out["end-to-end"] = (
                f"{what}: {busy:.2f} of {cores} cores busy at {_n(latency['offered_rate'])}"
                f" ev/s: {'out of reach on this machine' if busy >= cores else 'within reach'}"
            )
    batch = r.get("batch")
    valid = (r.get("rebuild") or {}).get("bare_validate")
    if batch and projection:
        validate_ms = 1000 / floor_rate(valid) if valid and valid.get("rate") else 0.0
        record_ms = _record_floor_ms(r)
        parts = [f"validating ({validate_ms:.3f} ms)"] if validate_ms else []
        if record_ms:
            parts.append(f"sending its record as the bare producer does ({record_ms:.3f} ms)")
        parts.append(f"projecting each accepted event ({projection:.2f} ms)")
        out["batch"] = bound_text(
            _listed(parts),
            cores * 1000 / (projection + validate_ms + record_ms),
            0.35 * batch["baseline"]["rate"],
        )
    if valid and valid.get("rate"):
        per_process = floor_rate(valid)
        # a live projection traces each record too (a rebuild does not): its floor if measured
        floor = _traced_floor(r)
        what, live = "validating each record alone", per_process
        if floor:
            what, live = "validating and tracing each record alone", floor_rate(floor)
        out["projection"] = bound_text(f"{what}, in one process", live, 10_000)
        out["projection-with-worker"] = bound_text(f"{what}, in two processes", 2 * live, 10_000)
        out["rebuild"] = bound_text(
            f"validating each record alone, in {cores} processes", cores * per_process, 30_000
        )
    return out


class Target(NamedTuple):
    """One target of issue 11 as the run measured it; `key` names its bound (`bounds`)."""

    key: str
    target: str
    measured: str
    met: bool | None
    why: str


def _targets(r: dict[str, Any]) -> list[Target]:
    """Each target the run measured."""
    out: list[Target] = []
    single = r.get("single")
    if single and "durable" in single:
        p = single["pipeline"]
        why = _why(
            _labelled("pipeline (accept, relay, project)", _cpu_line(p.get("cpu"))),
            _labelled("durable INSERT", _cpu_line(single["durable"].get("cpu"))),
            _telemetry_part(p, single.get("telemetry_off"), "nlib"),
            _top_parts(r, "profile-nlib-single.svg"),
        )
        out.append(
            Target(
                "single",
                "single POST >= 1.0x durable INSERT and >= 0.4x no-op",
                f"{_ratio(single['ratio_durable'])} and {_ratio(single['ratio'])}",
                single["ratio_durable"] >= 1.0 and single["ratio"] >= 0.4,
                why,
            )
        )
    batch = r.get("batch")
    if batch:
        out.append(
            Target(
                "batch",
                "batch accept >= 0.35x bare producer",
                _ratio(batch["ratio_accept"]),
                batch["ratio_accept"] >= 0.35,
                _why(
                    _cpu_line(batch["pipeline"].get("cpu")),
                    _top_parts(r, "profile-nlib-batch.svg", 4),
                ),
            )
        )
    latency = r.get("latency")
    if latency:
        fixed = latency["fixed"]
        hops = fixed.get("hops_ms", {})
        slowest = max(hops.items(), key=lambda item: item[1].get("p99", 0), default=None)
        hop = f"slowest hop at p99: {slowest[0]} {_n(slowest[1]['p99'])} ms; " if slowest else ""
        out.append(
            Target(
                "end-to-end",
                f"end-to-end p99 <= 100 ms at {_n(fixed['offered_rate'])} ev/s",
                f"p99 {_n(fixed['e2e_ms']['p99'])} ms, {_n(fixed['achieved_rate'])} ev/s achieved",
                fixed["e2e_ms"]["p99"] <= 100 and fixed["sustained"],
                _why(
                    hop + _cpu_line(fixed.get("cpu")),
                    _top_parts(r, "profile-nlib-latency.svg", 4),
                    _top_parts(r, "profile-dashboard-latency.svg", 4),
                ),
            )
        )
        failed = min(
            (s for s in latency["ramp"] if not s["sustained"]),
            key=lambda s: s["offered_rate"],
            default=None,
        )
        best = latency["max_sustained_rate"]
        out.append(
            Target(
                "highest",
                "highest rate sustained with p99 < 1 s (goal >= 3,000 ev/s)",
                f"{_n(best)} ev/s",
                best is not None and best >= 3000,
                (
                    f"lowest rate not sustained, {_n(failed['offered_rate'])} ev/s: "
                    if failed
                    else ""
                )
                + _cpu_line(failed.get("cpu") if failed else None)
                + _server_log(failed),
            )
        )
    dashboard = r.get("dashboard")
    if dashboard:
        projection = dashboard["projection"]
        out.append(
            Target(
                "projection",
                "live projection >= 10,000 ev/s: one dashboard process (the default)",
                f"{_n(projection['rate'])} ev/s",
                projection["rate"] >= 10_000,
                _why(
                    _cpu_line(projection.get("cpu")),
                    _validation_floor(r, traced=True),
                    _telemetry_part(
                        projection, dashboard.get("projection_telemetry_off"), "dashboard"
                    ),
                    _top_parts(r, "profile-dashboard-projection.svg", 4),
                ),
            )
        )
        worker = dashboard.get("projection_with_worker")
        if worker:
            out.append(
                Target(
                    "projection-with-worker",
                    "live projection >= 10,000 ev/s: the web app + one"
                    " `teamnl_dashboard.worker` process",
                    f"{_n(worker['rate'])} ev/s",
                    worker["rate"] >= 10_000,
                    _cpu_line(worker.get("cpu")),
                )
            )
        pages = [(key, label) for key, label in _overview_runs(dashboard) if "page" in key]
        out.append(
            Target(
                "overview-page",
                f"overview page p95 <= 100 ms ({_n(projection['applied_total'])} events), idle"
                " and while projecting",
                "; ".join(f"{label}: {_page_figure(dashboard[key])}" for key, label in pages),
                all(dashboard[key]["service_ms"]["p95"] <= 100 for key, _ in pages),
                _why(
                    *(
                        x
                        for key, label in pages
                        for x in (
                            _labelled(
                                f"{label}, per request", _cpu_line(dashboard[key].get("cpu"))
                            ),
                            _top_parts(r, f"profile-dashboard-{key.replace('_', '-')}.svg", 4),
                        )
                    )
                ),
            )
        )
    rebuild = r.get("rebuild")
    if rebuild and "pipeline" in rebuild:
        out.append(
            Target(
                "rebuild",
                "rebuild >= 30,000 ev/s",
                f"{_n(rebuild['pipeline']['rate'])} ev/s ({_ratio(rebuild['ratio'])} of the COPY"
                " baseline)",
                rebuild["pipeline"]["rate"] >= 30_000,
                _why(
                    _cpu_line(rebuild["pipeline"].get("cpu")),
                    _validation_floor(r),
                    _top_parts(r, "profile-dashboard-rebuild.svg", 4),
                ),
            )
        )
    duration = _duration(r)
    if duration is not None:
        out.append(duration)
    memory = _memory(r)
    services = {
        n: max(v for v in values if v is not None)
        for n, values in memory.items()
        if n != "loadgen" and any(values)
    }
    if services:
        worst = max(services.items(), key=lambda item: item[1])
        out.append(
            Target(
                "rss",
                f"each service <= {RSS_BUDGET_MB} MB RSS",
                f"largest: {worst[0]} {_n(worst[1])} MiB ({_n(worst[1] * MIB / MB)} MB)",
                worst[1] <= RSS_BUDGET_MB * MB / MIB,
                "",
            )
        )
    return out


BENCH_BUDGET_S = 30 * 60
"""The issue's bound on a full-size ``make bench``."""


def _duration(r: dict[str, Any]) -> Target | None:
    """The run's own length, for a full-size run of every phase (the issue's bound is on
    that run); where its time went, phase by phase, longest first."""
    phases = r.get("phase_s") or {}
    if r.get("size") != "full" or not r.get("elapsed_s") or set(phases) != set(PHASES):
        return None
    spent = sorted(phases.items(), key=lambda item: -item[1])
    rest = r["elapsed_s"] - sum(phases.values())
    return Target(
        "duration",
        f"`make bench` at full size within {BENCH_BUDGET_S // 60} minutes",
        f"{r['elapsed_s'] / 60:.1f} minutes ({_n(r['elapsed_s'])} s)",
        r["elapsed_s"] <= BENCH_BUDGET_S,
        ", ".join(f"{name} {_n(seconds)} s" for name, seconds in spent)
        + f", start-up and rest {_n(rest)} s",
    )


def targets_section(r: dict[str, Any]) -> list[str]:
    rows_ = _targets(r)
    if not rows_:
        return []
    lines = [
        "## The targets of issue 11",
        "",
        "Met or not, from this run; for a target missed, where its time goes (the CPU table "
        "and the flame graph summaries below). The bound is the most this machine can give, "
        "whatever the code, with every process on its two cores, from this run's baselines: "
        "an accepted event costs at least a no-op request traced as every request is (its "
        "server span and HTTP metrics), its record put into Kafka as cheaply as a bare "
        "producer puts one, and its projection (storing, relaying, validating it and its "
        "other spans come on top), a live projection at least the "
        "validation and the tracing of each record (its consume span and end-to-end latency, "
        "which every event must have), and a rebuild at least the validation of each record "
        "(it traces none). A target beyond its bound cannot be met here; "
        "one within it could, the bound being loose.",
        "",
        "| target | measured | met | bound on this machine | where the time goes |",
        "|---|---|---|---|---|",
    ]
    bound_of = bounds(r)
    for row in rows_:
        verdict = "yes" if row.met else "no"
        bound = bound_of.get(row.key, "-")
        lines.append(f"| {row.target} | {row.measured} | {verdict} | {bound} | {row.why or '-'} |")
    return [*lines, ""]
