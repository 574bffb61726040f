"""Helpers for tests (imported as ``support``)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import secrets
import signal
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from teamnl_shared.contract.registry import spec_for

BUDGET = "nl.teamnl.nlib.budget.spent.v1"

SESSION_TOPICS = f"test.{uuid.uuid4().hex[:8]}."
"""The start of the name of every topic this pytest run creates (``topic_prefix``): the
run deletes its topics at its end (conftest), so the test broker does not gather them."""


METRICS_TOKEN = "test-metrics-token-of-forty-characters-00"
"""The token the tests' processes are given (TEAMNL_METRICS_TOKEN) and their scrapes send."""
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a child process to take)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminated(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """Stop a test's child process with SIGTERM (SIGKILL after `timeout` s); its exit code."""
    process.terminate()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def topic_prefix() -> str:
    """A fresh topic prefix of this run: ``test.<run>.<8 hex>.``."""
    return f"{SESSION_TOPICS}{uuid.uuid4().hex[:8]}."


def structured(event_type: str = BUDGET, **attributes: Any) -> dict[str, Any]:
    """A structured CloudEvent of `event_type` with its catalogue example as data."""
    return {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/partners/acme",
        "type": event_type,
        "data": spec_for(event_type).example,
        **attributes,
    }


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 30.0, interval: float = 0.1
) -> None:
    """Wait until ``check`` holds; fail with a clear message when it never does."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {check.__qualname__}")


_PR_SET_PDEATHSIG = 1


def dies_with_parent() -> None:
    """``preexec_fn`` of a test's child process: Linux kills it when the test run ends,
    however it ends (a ``pytest`` killed mid-test runs no ``finally``); elsewhere (no
    ``prctl``) the tests' own clean-up is all there is."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is not None and prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def log_copies(monkeypatch: pytest.MonkeyPatch, sent: list[tuple[str, str | None]]) -> None:
    """Note each ``COPY`` of rows (asyncpg's ``copy_records_to_table``, which its query
    loggers do not see) in `sent`: ``("COPY <table>", None)``, or the name of the error the
    server refused it with. The copy itself still goes to the server."""
    copy_records = asyncpg.Connection.copy_records_to_table

    async def copy_logged(self: asyncpg.Connection, table: str, **kwargs: Any) -> str:
        try:
            done: str = await copy_records(self, table, **kwargs)
        except asyncpg.PostgresError as error:
            sent.append((f"COPY {table}", type(error).__name__))
            raise
        sent.append((f"COPY {table}", None))
        return done

    monkeypatch.setattr(asyncpg.Connection, "copy_records_to_table", copy_logged)


@contextlib.asynccontextmanager
async def login_role(
    admin: asyncpg.Connection, database_url: str, prefix: str
) -> AsyncIterator[str]:
    """A role of its own (``<prefix>_<hex>``, not a superuser) that may log in and create
    schemas in `database_url`'s database: the URL that logs in as it. `admin` drops it, and
    what it owns or was granted, afterwards."""
    role, password = f"{prefix}_{secrets.token_hex(4)}", secrets.token_hex(16)
    parts = urlsplit(database_url)
    await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        await admin.execute(f"GRANT CREATE ON DATABASE {parts.path.lstrip('/')} TO {role}")
        netloc = f"{role}:{password}@{parts.hostname}:{parts.port}"
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
