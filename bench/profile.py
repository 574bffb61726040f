"""py-spy flame graphs of a service while the bench loads it (``bench.run --profile``).

py-spy samples the service process from outside (no code change, small overhead), so the
profile shows where a request's CPU goes under the same load the figure is measured with.
The SVG goes to ``bench/results/profile-<service>-<label>.svg``.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from types import TracebackType

from bench.stack import BIN, BenchStack

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLES_PER_SECOND = 67  # enough for a smoke-size run, small SVGs (an odd rate avoids aliasing)


def recorded(argv: list[str], service: str, label: str) -> list[str]:
    """`argv` run under py-spy (a process the bench starts itself, e.g. the rebuild)."""
    output = RESULTS / f"profile-{service}-{label}.svg"
    return [str(BIN / "py-spy"), "record", "--output", str(output), *_RATE, "--", *argv]


_RATE = ("--rate", str(SAMPLES_PER_SECOND))


class Profiler:
    def __init__(self, stack: BenchStack, service: str, label: str, *, enabled: bool) -> None:
        self.stack = stack
        self.service = service
        self.output = RESULTS / f"profile-{service}-{label}.svg"
        self.enabled = enabled
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        pid = self.stack.services[self.service].pid
        if self.enabled and pid is not None:
            argv = [str(BIN / "py-spy"), "record", "--pid", str(pid), "--output"]
            argv += [str(self.output), *_RATE, "--nonblocking"]
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
        self._process.send_signal(signal.SIGINT)  # py-spy writes the flame graph on SIGINT
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
