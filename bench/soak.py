"""``make soak``: a bounded run at a steady rate; each process's memory at start and end.

    python -m bench.soak --size smoke|full [--rate R] [--seconds S]

The start figure is taken after a warm-up (a tenth of the run, at least 10 s), so that
first-use allocations (pools, caches, imports) are not counted as growth. Growth beyond
10 % for any service fails the run. The series (every 5 s) is in ``soak-latest.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import LoadgenProcess, interrupt_on_sigterm, log, targets
from bench.loadgen import LoadConfig
from bench.report import provenance, provenance_line
from bench.stack import BenchStack, private_infra

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = {"smoke": (20.0, 90.0), "full": (50.0, 1800.0)}  # (events/s, seconds)
MAX_GROWTH = 0.10


def soak(stack: BenchStack, rate: float, seconds: float) -> dict[str, Any]:
    at_rest = stack.rss_mib()
    config = LoadConfig(
        targets=targets(stack),
        out="",
        mode="single",
        run_id="k",
        rate=rate,
        duration=seconds,
        concurrency=32,
    )
    load = LoadgenProcess.start(config, stack.workdir, "soak")
    started = time.monotonic()
    warmup = max(10.0, seconds / 10)
    series: list[dict[str, Any]] = []
    start: dict[str, float | None] = {}
    while load.running():
        elapsed = time.monotonic() - started
        sample = stack.rss_mib()
        series.append({"t": round(elapsed, 1), **sample})
        if not start and elapsed >= warmup:
            start = sample
        time.sleep(5)
    result = load.wait(timeout=60)
    end = stack.rss_mib()
    growth = {
        name: (end[name] - value) / value if value and end.get(name) else None
        for name, value in start.items()
    }
    failed = [n for n, g in growth.items() if g is None or g > MAX_GROWTH]
    return {
        "rate": rate,
        "seconds": seconds,
        "at_rest_mib": at_rest,
        "start_mib": start,
        "end_mib": end,
        "growth": growth,
        "failed": failed,
        "series": series,
        "offered_rate": result["offered_rate"],
        "achieved_rate": result["achieved_rate"],
        "statuses": result["statuses"],
        "events_acked": result["events_acked"],
    }


def text(r: dict[str, Any]) -> str:
    lines = [
        provenance_line(r),
        f"soak: {r['seconds']:g}s at {r['offered_rate']:g} ev/s offered, "
        f"{r['achieved_rate']:.1f} achieved, statuses {r['statuses']}",
        f"{'service':<12} {'at rest':>9} {'start':>9} {'end':>9} {'growth':>8}",
    ]
    for name, start in r["start_mib"].items():
        growth = r["growth"].get(name)
        lines.append(
            f"{name:<12} {r['at_rest_mib'].get(name) or 0:>9.1f} {start or 0:>9.1f} "
            f"{r['end_mib'].get(name) or 0:>9.1f} "
            f"{'-' if growth is None else f'{growth * 100:+.1f}%':>8}"
        )
    lines.append("PASSED" if not r["failed"] else f"FAILED (growth > 10 %): {r['failed']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="smoke")
    parser.add_argument("--rate", type=float)
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args(argv)
    rate, seconds = SIZES[args.size]
    rate, seconds = args.rate or rate, min(args.seconds or seconds, 4 * 3600)
    overridden = " (rate/seconds overridden)" if args.rate or args.seconds else ""
    made_at = provenance(args.size + overridden)
    stack = BenchStack(private_infra(), True, RESULTS / "runs")
    stack.workdir = RESULTS / "runs" / f"soak-{stack.run_id}"
    log(f"soak: {seconds:g}s at {rate:g} ev/s, run {stack.run_id}")
    interrupt_on_sigterm()
    try:
        stack.up()
        time.sleep(3)
        result = {**made_at, **soak(stack, rate, seconds)}
    finally:
        stack.down()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak-latest.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "soak-latest.md").write_text(f"# Soak\n\n```\n{text(result)}\n```\n")
    print(text(result))
    return 0 if not result["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
