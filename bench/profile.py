"""py-spy flame graphs of a service while the bench loads it (``bench.run --profile``).

py-spy samples the service process from outside (no code change), so the profile shows
where a request's CPU goes under the same load the figure is measured with. Its own CPU
is not small on this two-core machine, and it is taken from the processes being measured:
while the overview page was loaded during a projection, processes outside the stack
(py-spy, mostly) used 1.57 ms of CPU per request with it and 0.68 ms in a run without it.
So no figure is measured while py-spy samples: each flame graph is
recorded in a short pass of its own, after the measured one, under the same load (see
``bench.run.Bench._profile_pass``), except the rebuild's, which samples the first
:data:`REBUILD_SECONDS` of the measured rebuild (a second rebuild would take minutes).
The SVG goes to ``bench/results/profile-<service>-<label>.svg``.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.stack import BIN, BenchStack

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLES_PER_SECOND = 67  # enough for a smoke-size run, small SVGs (an odd rate avoids aliasing)
REBUILD_SECONDS = 30  # of the measured rebuild's replay (about an eighth of it, full size)
_RATE = ("--rate", str(SAMPLES_PER_SECOND))


class Profiler:
    """py-spy recording `pid` (by default the stack's `service`) while the ``with`` block
    runs, or for its first `seconds` only; with `subprocesses`, their children too."""

    def __init__(
        self,
        stack: BenchStack,
        service: str,
        label: str,
        *,
        enabled: bool,
        pid: int | None = None,
        seconds: int | None = None,
        subprocesses: bool = False,
    ) -> None:
        self.stack = stack
        self.output = RESULTS / f"profile-{service}-{label}.svg"
        self.enabled = enabled
        self.pid = pid if pid is not None else stack.services[service].pid
        self.seconds = seconds
        self.subprocesses = subprocesses
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        if self.enabled and self.pid is not None:
            argv = [str(BIN / "py-spy"), "record", "--pid", str(self.pid), "--output"]
            argv += [str(self.output), *_RATE, "--nonblocking"]
            if self.seconds is not None:
                argv += ["--duration", str(self.seconds)]
            if self.subprocesses:
                argv.append("--subprocesses")
            log = (self.stack.workdir / f"py-spy-{self.output.stem}.log").open("wb")
            self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # py-spy writes the flame graph on SIGINT
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()


# -- what a flame graph says, in a table ------------------------------------------------------
_FRAME = re.compile(
    r"<title>(?P<title>[^<]*) \([\d,]+ samples?, [\d.]+%\)</title>"
    r'<rect [^>]*y="(?P<y>\d+)"[^>]*fg:x="(?P<x>\d+)" fg:w="(?P<w>\d+)"'
)

# The first match names the part a frame's own samples belong to (by the file py-spy shows).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("PostgreSQL client (asyncpg)", ("asyncpg",)),
    ("Kafka client (aiokafka)", ("aiokafka", "kafka/")),
    (
        "OpenTelemetry (spans, metrics, context)",
        ("opentelemetry", "metrics/", "trace/", "telemetry", "instrumentation", "context/"),
    ),
    ("validation (pydantic)", ("pydantic",)),
    ("JSON, CloudEvents", ("json/", "cloudevents", "orjson")),
    ("HTTP (uvicorn, starlette, fastapi)", ("uvicorn", "starlette", "fastapi", "h11", "httptools")),
    ("event loop, sockets", ("asyncio/", "selectors", "socket", "ssl")),
    ("teamnl code", ("teamnl_",)),
)
OTHER = "other (stdlib, logging, ...)"


def shares_of(svg: Path) -> dict[str, Any]:
    """The share of a profile's samples spent *in* each part (a frame's own samples, i.e.
    not in the frames it called), largest first, with the sample count."""
    # py-spy may name a frame it misread with bytes that are not UTF-8 (seen once: a
    # frame of 1 sample in 529); such a name is kept, replaced, as its own part
    text = svg.read_bytes().decode("utf-8", errors="replace")
    frames = [(m["title"], int(m["y"]), int(m["x"]), int(m["w"])) for m in _FRAME.finditer(text)]
    if not frames:
        return {"samples": 0, "shares": {}}
    by_level: dict[int, list[tuple[int, int]]] = {}
    for _, y, x, w in frames:
        by_level.setdefault(y, []).append((x, w))
    step = _level_step(sorted(by_level))
    own: dict[str, int] = {}
    for title, y, x, w in frames:
        below = by_level.get(y + step, [])
        called = sum(cw for cx, cw in below if x <= cx < x + w)
        part = _category(title)
        own[part] = own.get(part, 0) + max(w - called, 0)
    total = sum(own.values())
    shares = {part: round(n / total, 3) for part, n in sorted(own.items(), key=lambda i: -i[1])}
    return {"samples": total, "shares": shares}


def _level_step(levels: list[int]) -> int:
    gaps = [b - a for a, b in zip(levels, levels[1:], strict=False) if b > a]
    return min(gaps) if gaps else 16


def _category(title: str) -> str:
    where = title.rsplit("(", 1)[-1]
    for part, markers in CATEGORIES:
        if any(marker in where for marker in markers):
            return part
    return OTHER
