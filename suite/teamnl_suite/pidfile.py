"""Pid files that cannot point at the wrong process.

A pid file holds the pid and the process's start time (``/proc/<pid>/stat``, field 22). It
is believed only while a process with that pid *and* that start time exists, so a stale
file (the process died, or its pid was reused) is ignored and removed.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot; None when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    state, started = fields[0], fields[19]
    return None if state in ("Z", "X") else started


def write(path: Path, pid: int) -> None:
    started = start_time(pid)
    if started is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(f"{pid} {started}\n")
    temporary.replace(path)


def read(path: Path) -> int | None:
    """The live process recorded in ``path``, or None (a stale file is removed)."""
    try:
        pid_text, started = path.read_text().split()
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        path.unlink(missing_ok=True)
        return None
    if start_time(pid) != started:
        path.unlink(missing_ok=True)
        return None
    return pid


def remove(path: Path, pid: int) -> None:
    """Remove ``path`` only if it still names ``pid`` (a restarted process wrote its own)."""
    try:
        if int(path.read_text().split()[0]) == pid:
            path.unlink(missing_ok=True)
    except (FileNotFoundError, ValueError, IndexError):
        return


def alive(pid: int) -> bool:
    return start_time(pid) is not None


def stop(path: Path, timeout: float) -> int | None:
    """SIGTERM the process of ``path``, wait up to ``timeout`` s, then SIGKILL. Idempotent.

    Returns the pid that was stopped, or None when nothing was running.
    """
    pid = read(path)
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return pid
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    path.unlink(missing_ok=True)
    return pid
