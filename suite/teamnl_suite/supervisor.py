"""Runs the four services as child processes and keeps them running.

Crash policy (the same for ``teamnl run`` and ``teamnl up``):

- a service that exits on its own is reported loudly (its exit code, in red) and restarted
  after a backoff that doubles from 1 s up to 30 s;
- a run of at least 60 s counts as healthy and resets the backoff;
- after 5 crashes in a row, each within 60 s of its start, the service is given up on (a
  broken configuration, a port in use): the whole suite stops and the run exits with 1.

Stopping (Ctrl-C, SIGTERM, ``teamnl down``) sends SIGTERM to every service at once, waits
for their graceful shutdown (the outbox relay flushes), and SIGKILLs what is left after
``stop_timeout``. Each child gets its own session, so Ctrl-C reaches only the supervisor
(which then stops them in order), and is asked by the kernel to exit should the supervisor
die without stopping it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import pidfile
from .config import SERVICES, ServiceSpec, SuiteConfig, script_path

PR_SET_PDEATHSIG = 1
LINE_LIMIT = 4 * 1024 * 1024  # one log line (a JSON traceback) may be long


class LogSink(Protocol):
    def line(self, service: str, text: str) -> None:
        """One line the service wrote on stdout or stderr."""

    def notice(self, service: str, text: str, *, error: bool = False) -> None:
        """Something the supervisor says about the service (started, crashed, ...)."""


@dataclass(frozen=True)
class CrashPolicy:
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    healthy_after: float = 60.0
    give_up_after: int = 5

    def backoff(self, crashes: int) -> float:
        return float(min(self.max_backoff, self.initial_backoff * 2.0 ** max(0, crashes - 1)))


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM when the supervisor dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Supervisor:
    config: SuiteConfig
    sink: LogSink
    policy: CrashPolicy = field(default_factory=CrashPolicy)
    stop_timeout: float = 45.0
    services: tuple[ServiceSpec, ...] = SERVICES
    gave_up: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pid_dir(self) -> Path:
        return self.config.state_dir / "pids"

    def pid_file(self, service: str) -> Path:
        return self.pid_dir / f"{service}.pid"

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> int:
        """Run until stopped; 0 after a requested stop, 1 when a service was given up on."""
        await asyncio.gather(*(self._keep(spec) for spec in self.services))
        return 1 if self.gave_up else 0

    async def _keep(self, spec: ServiceSpec) -> None:
        crashes = 0
        while not self.stopping:
            started = time.monotonic()
            code = await self._run_once(spec)
            if code is None:  # stopped on request
                return
            crashes = 0 if time.monotonic() - started >= self.policy.healthy_after else crashes + 1
            self.sink.notice(spec.name, f"CRASHED: {how_it_ended(code)}", error=True)
            if crashes >= self.policy.give_up_after:
                self.sink.notice(
                    spec.name,
                    f"gave up after {crashes} crashes in a row; stopping the suite",
                    error=True,
                )
                self.gave_up.append(spec.name)
                self.stop()
                return
            delay = self.policy.backoff(crashes)
            self.sink.notice(
                spec.name,
                f"restarting in {delay:.0f} s (crash {crashes} of {self.policy.give_up_after})",
                error=True,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def _run_once(self, spec: ServiceSpec) -> int | None:
        """Start the service and wait: its exit code, or None when it was stopped."""
        process = await asyncio.create_subprocess_exec(
            script_path(spec.script),
            env=self.config.service_env(spec.name),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            limit=LINE_LIMIT,
        )
        pidfile.write(self.pid_file(spec.name), process.pid)
        endpoint = self.config.endpoint(spec.name)
        self.sink.notice(spec.name, f"started (pid {process.pid}) on {endpoint.url}")
        pump = asyncio.create_task(self._pump(spec.name, process))
        exited = asyncio.create_task(process.wait())
        stopping = asyncio.create_task(self._stop.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not exited.done():
            await self._terminate(spec.name, process, exited)
        await pump
        pidfile.remove(self.pid_file(spec.name), process.pid)
        return None if self.stopping else process.returncode

    async def _terminate(
        self, name: str, process: asyncio.subprocess.Process, exited: asyncio.Task[int]
    ) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(exited), self.stop_timeout)
        except TimeoutError:
            self.sink.notice(
                name, f"no exit {self.stop_timeout:.0f} s after SIGTERM: SIGKILL", error=True
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await exited
        code = process.returncode
        self.sink.notice(name, f"stopped ({how_it_ended(code)})", error=code is None or code > 0)

    async def _pump(self, name: str, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            self.sink.line(name, line.decode(errors="replace").rstrip("\r\n"))


def how_it_ended(returncode: int | None) -> str:
    """ "exited with code 3", or the signal that ended the process: "ended by SIGTERM" (what
    uvicorn does after its graceful shutdown: it raises the signal it handled again)."""
    if returncode is not None and returncode < 0:
        with contextlib.suppress(ValueError):
            return f"ended by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


def install_signal_handlers(
    supervisor: Supervisor, on_signal: Callable[[signal.Signals], None] | None = None
) -> None:
    """SIGINT and SIGTERM stop the supervisor (once; a second Ctrl-C is ignored meanwhile)."""
    loop = asyncio.get_running_loop()

    def handle(signum: signal.Signals) -> None:
        if on_signal is not None and not supervisor.stopping:
            on_signal(signum)
        supervisor.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handle, signum)
