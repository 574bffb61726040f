"""Resident memory of processes, read from ``/proc/<pid>/status`` (VmRSS)."""

from __future__ import annotations

import os
from pathlib import Path


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


def tree_rss_kib(pid: int) -> int | None:
    """VmRSS of a process and all its descendants (uvicorn workers, ...), in KiB."""
    own = rss_kib(pid)
    if own is None:
        return None
    total, pending, seen = own, children(pid), {pid}
    while pending:
        child = pending.pop()
        if child in seen:
            continue
        seen.add(child)
        total += rss_kib(child) or 0
        pending += children(child)
    return total


def mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used (``/proc/<pid>/stat``); None when gone.

    On a machine shared with other work, throughput swings with the CPU share a process
    gets; the CPU it spends per event does not, so the bench reports both."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
