"""A bench run stopped by SIGTERM (``kill``, a CI job's timeout) stops what it started and
writes what it measured, as one stopped by Ctrl-C does."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from teamnl_suite.infra import Infrastructure

ROOT = Path(__file__).resolve().parents[2]
LOADED = "1. single-event: round 1 of"  # the baseline apps are up; the first load starts


def _children(pid: int) -> dict[int, str]:
    """The live processes whose parent is `pid`, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found[int(entry.name)] = cmdline
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for_line(log: Path, line: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if line in log.read_text(errors="replace"):
            return
        assert process.poll() is None, f"the bench ended early:\n{log.read_text()}"
        time.sleep(0.2)
    raise AssertionError(f"no {line!r} after {seconds:.0f} s:\n{log.read_text()}")


def test_a_bench_run_ended_by_sigterm_stops_its_processes_and_writes_its_report(
    infra: Infrastructure, tmp_path: Path
) -> None:
    log = tmp_path / "bench.log"
    out = tmp_path / "report"
    argv = [sys.executable, "-m", "bench.run", "--size", "smoke", "--infra", "shared"]
    argv += ["--only", "single", "--out", str(out)]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, env=dict(os.environ)
        )
    try:
        _wait_for_line(log, LOADED, process, seconds=180)
        time.sleep(1.0)  # the load generator runs
        started = _children(process.pid)
        names = " ".join(started.values())
        assert "teamnl-nlib" in names and "teamnl-dashboard" in names and "bench.loadgen" in names
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) != 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    still = {pid: cmdline for pid, cmdline in started.items() if _alive(pid)}
    for pid in still:  # not left to the next test's stack
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not still, f"left running: {still}"
    assert "signal SIGTERM" in log.read_text()
    assert (out / "latest.md").exists()
