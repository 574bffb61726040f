"""Resident memory of processes, read from ``/proc/<pid>/status`` (VmRSS)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def rss_kib(pid: int) -> int | None:
    """VmRSS of one process in KiB; None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return 0  # a zombie or kernel thread has no VmRSS line


def children(pid: int) -> list[int]:
    """Direct children (Linux ``/proc/<pid>/task/*/children``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every live descendant of a process (children, their children, ...)."""
    found, pending, seen = [], children(pid), {pid}
    while pending:
        child = pending.pop()
        if child in seen:
            continue
        seen.add(child)
        found.append(child)
        pending += children(child)
    return found


def tree_rss_kib(pid: int) -> int | None:
    """VmRSS of a process and all its descendants (uvicorn workers, ...), in KiB."""
    own = rss_kib(pid)
    if own is None:
        return None
    return own + sum(rss_kib(child) or 0 for child in descendants(pid))


def mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used (``/proc/<pid>/stat``); None when gone.

    On a machine shared with other work, throughput swings with the CPU share a process
    gets; the CPU it spends per event does not, so the bench reports both."""
    return None if pid is None else _stat_cpu(pid, reaped=False)


def tree_cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds of a process, of its children it has reaped (``cutime``/``cstime``, e.g.
    PostgreSQL backends that ended) and of its live descendants; None when it is gone."""
    own = None if pid is None else _stat_cpu(pid, reaped=True)
    if pid is None or own is None:
        return None
    return own + sum(_stat_cpu(child, reaped=True) or 0.0 for child in descendants(pid))


def _stat_cpu(pid: int, *, reaped: bool) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> tuple[float, float]:
    """CPU seconds all cores spent not idle since boot (``/proc/stat``; idle and iowait
    excluded), and the part of them stolen: time a virtual machine's cores were ready to run
    but the host ran another guest (a busy host)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    steal = values[7] if len(values) > 7 else 0
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values[:8]) - idle) / tick, steal / tick


class CpuMeter:
    """CPU seconds each named process tree (and the machine) spent between enter and exit."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.seconds: dict[str, float] = {}
        self.machine = 0.0
        self.steal = 0.0
        self.wall = 0.0

    def __enter__(self) -> CpuMeter:
        self._before = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine, self._steal = machine_busy_seconds()
        self._started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self._started
        machine, steal = machine_busy_seconds()
        self.machine, self.steal = machine - self._machine, steal - self._steal
        for name, pid in self.pids.items():
            before, after = self._before[name], tree_cpu_seconds(pid)
            if before is not None and after is not None:
                self.seconds[name] = after - before

    def per_event(self, events: int, **reported: float) -> dict[str, Any]:
        """CPU milliseconds per event by process (``reported``: CPU seconds a process measured
        itself, e.g. the load generator), the time the host stole as ``steal``, the rest of
        the machine as ``other``, and the cores busy on average."""
        if events <= 0 or self.wall <= 0:
            return {}
        self.seconds.update(reported)
        known = sum(self.seconds.values())
        ms = {name: round(s * 1000 / events, 3) for name, s in self.seconds.items()}
        ms["steal"] = round(self.steal * 1000 / events, 3)
        ms["other"] = round(max(self.machine - known - self.steal, 0.0) * 1000 / events, 3)
        return {
            "cpu_ms_per_event": ms,
            "machine_cpu_ms_per_event": round(self.machine * 1000 / events, 3),
            "cores_busy": round(self.machine / self.wall, 2),
            "cores": os.cpu_count(),
        }
