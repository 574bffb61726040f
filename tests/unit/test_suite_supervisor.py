"""The suite's supervisor, with small fake services (real child processes, no mocks).

Proves: a crashing service is reported and restarted with backoff, then given up on (the
run fails); a stop request ends every child cleanly; pid files never name a dead process.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from teamnl_suite import pidfile
from teamnl_suite.client import ItemResult
from teamnl_suite.config import Endpoint, ServiceSpec, SuiteConfig
from teamnl_suite.output import readable
from teamnl_suite.supervisor import CrashPolicy, Supervisor


class RecordingSink:
    def __init__(self, awaited: str = "", count: int = 0) -> None:
        self.lines: list[tuple[str, str]] = []
        self.notices: list[tuple[str, str, bool]] = []
        self.awaited, self.count = awaited, count
        self.seen = asyncio.Event()  # set once `awaited` was written `count` times

    def line(self, service: str, text: str) -> None:
        self.lines.append((service, text))
        if sum(line == self.awaited for _, line in self.lines) >= self.count:
            self.seen.set()

    def notice(self, service: str, text: str, *, error: bool = False) -> None:
        self.notices.append((service, text, error))


def fake_service(bin_dir: Path, name: str, body: str) -> ServiceSpec:
    script = bin_dir / name
    script.write_text(f"#!{sys.executable}\n{body}\n")
    script.chmod(0o755)
    return ServiceSpec(name, name, f"{name.upper()}_", str(script), 1, "db", "red")


def config_for(tmp_path: Path, *specs: ServiceSpec) -> SuiteConfig:
    endpoints = {s.name: Endpoint(s, "127.0.0.1", 1, "postgresql://x@127.0.0.1/db") for s in specs}
    return SuiteConfig(tmp_path / "state", "127.0.0.1:1", endpoints, {})


QUICK = CrashPolicy(initial_backoff=0.01, max_backoff=0.05, healthy_after=60, give_up_after=3)


async def test_a_crashing_service_is_reported_restarted_and_finally_given_up_on(
    tmp_path: Path,
) -> None:
    crash = fake_service(tmp_path, "crasher", "print('boom', flush=True); raise SystemExit(3)")
    sink = RecordingSink()
    supervisor = Supervisor(config_for(tmp_path, crash), sink, QUICK, services=(crash,))

    code = await asyncio.wait_for(supervisor.run(), 30)

    assert code == 1 and supervisor.gave_up == ["crasher"]
    assert sink.lines.count(("crasher", "boom")) == 3
    crashes = [text for _, text, error in sink.notices if error and "CRASHED" in text]
    assert crashes == ["CRASHED: exited with code 3"] * 3
    assert any("gave up" in text for _, text, _ in sink.notices)
    assert not (supervisor.pid_dir / "crasher.pid").exists()


async def test_a_stop_request_ends_every_service_and_removes_its_pid_file(tmp_path: Path) -> None:
    body = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('bye', flush=True), sys.exit(0)))\n"
        "print('up', flush=True)\n"
        "while True: time.sleep(0.05)"
    )
    # as uvicorn ends: its shutdown done, it raises the signal it handled again
    again = body.replace(
        "sys.exit(0)",
        "signal.signal(signal.SIGTERM, signal.SIG_DFL), signal.raise_signal(signal.SIGTERM)",
    )
    services = (fake_service(tmp_path, "one", body), fake_service(tmp_path, "two", again))
    sink = RecordingSink(awaited="up", count=2)
    supervisor = Supervisor(config_for(tmp_path, *services), sink, QUICK, services=services)
    run = asyncio.create_task(supervisor.run())
    await asyncio.wait_for(sink.seen.wait(), 30)
    pids = [pidfile.read(supervisor.pid_file(s.name)) for s in services]
    assert all(pid is not None for pid in pids)

    supervisor.stop()
    assert await asyncio.wait_for(run, 30) == 0

    assert sorted(text for _, text in sink.lines) == ["bye", "bye", "up", "up"]
    assert not any(error for _, _, error in sink.notices)
    stopped = {name: text for name, text, _ in sink.notices if text.startswith("stopped")}
    assert stopped == {"one": "stopped (exited with code 0)", "two": "stopped (ended by SIGTERM)"}
    assert not any(pidfile.alive(pid) for pid in pids if pid is not None)
    assert not list(supervisor.pid_dir.glob("*.pid"))


def test_a_stale_pid_file_is_ignored_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    path.write_text(f"{child.pid} 12345\n")
    assert pidfile.read(path) is None
    assert not path.exists()
    assert pidfile.stop(path, timeout=1) is None


def test_a_pid_file_names_a_live_process_until_it_is_stopped(tmp_path: Path) -> None:
    path = tmp_path / "sleeper.pid"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pidfile.write(path, child.pid)
    assert pidfile.read(path) == child.pid
    assert pidfile.stop(path, timeout=5) == child.pid
    assert child.wait(5) == -signal.SIGTERM
    assert pidfile.read(path) is None


def test_the_backoff_doubles_up_to_its_limit() -> None:
    policy = CrashPolicy(initial_backoff=1, max_backoff=30)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]


def test_json_log_lines_are_shown_readably_and_other_lines_unchanged() -> None:
    line = (
        '{"timestamp": "2019-03-14T10:11:12.123Z", "level": "warning", "logger": "x", '
        '"message": "slow", "service": "nlib", "trace_id": "", "duration_ms": 12}'
    )
    assert readable(line).plain == "10:11:12 WARNING x: slow duration_ms=12"
    assert readable("Traceback (most recent call last):").plain.startswith("Traceback")


def test_a_batch_item_explains_why_it_was_refused() -> None:
    problem = {"detail": "x", "errors": [{"field": "data/tier", "reason": "not a tier"}]}
    assert ItemResult(3, 422, problem).reason() == "data/tier: not a tier"
    assert not ItemResult(3, 422, problem).ok and ItemResult(0, 200).ok
