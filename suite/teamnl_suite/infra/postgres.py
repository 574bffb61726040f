"""A PostgreSQL cluster of the project's own, from Debian's ``postgresql`` package.

``initdb`` and ``postgres`` refuse to run as root, so as root they run as the ``postgres``
system user. The cluster listens on 127.0.0.1 only, on its own port, with password
(scram-sha-256) authentication; the password is generated once and kept in the state
folder with mode 0600.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import asyncpg

from .config import SERVICE_DATABASES, InfraConfig
from .process import _alive, exclusive_lock

SUPERUSER = "teamnl"


class PostgresError(RuntimeError):
    pass


def find_bindir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return candidates[0].parent if candidates else None


def install_hint() -> str:
    return "apt-get update && apt-get install -y postgresql"


def ensure_installed() -> Path:
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    if os.geteuid() != 0:
        raise PostgresError(f"PostgreSQL is not installed. Run as root:\n    {install_hint()}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
        check=True,
        env=env,
    )
    bindir = find_bindir()
    if bindir is None:
        raise PostgresError("apt-get installed postgresql but no initdb was found")
    return bindir


class LocalPostgres:
    def __init__(self, config: InfraConfig) -> None:
        self.config = config
        self.dir = config.postgres_dir
        self.data = self.dir / "data"
        self.run_dir = self.dir / "run"
        self.log_file = self.dir / "postgres.log"
        self.password_file = config.state_dir / "postgres-password"

    # -- public ------------------------------------------------------------------------
    def start(self) -> None:
        with exclusive_lock(self.config.state_dir / ".postgres.lock"):
            bindir = ensure_installed()
            self._prepare_dirs()
            if not (self.data / "PG_VERSION").exists():
                self._initdb(bindir)
            self._remove_stale_lock_files()
            if not self.running(bindir):
                self._start_server(bindir)
        asyncio.run(self._create_databases())

    def stop(self) -> None:
        bindir = find_bindir()
        if bindir is None or not (self.data / "PG_VERSION").exists():
            return
        with exclusive_lock(self.config.state_dir / ".postgres.lock"):
            if self.running(bindir):
                self._pg_ctl(bindir, "stop", "-w", "-m", "fast")

    def restart(self) -> None:
        bindir = ensure_installed()
        self._pg_ctl(
            bindir,
            "restart",
            "-w",
            "-m",
            "fast",
            "-l",
            str(self.log_file),
            "-o",
            self._server_options(),
        )

    def running(self, bindir: Path | None = None) -> bool:
        bindir = bindir or find_bindir()
        if bindir is None or not (self.data / "PG_VERSION").exists():
            return False
        result = self._run([str(bindir / "pg_ctl"), "status", "-D", str(self.data)], check=False)
        return result.returncode == 0

    def password(self) -> str:
        if not self.password_file.exists():
            self.password_file.parent.mkdir(parents=True, exist_ok=True)
            self.password_file.touch(mode=0o600)
            self.password_file.write_text(secrets.token_urlsafe(24))
        return self.password_file.read_text().strip()

    def url(self, database: str = "postgres") -> str:
        return (
            f"postgresql://{SUPERUSER}:{self.password()}@{self.config.host}:"
            f"{self.config.postgres_port}/{database}"
        )

    # -- internals -----------------------------------------------------------------------
    def _remove_stale_lock_files(self) -> None:
        """After a crash (kill -9) the postmaster's lock files stay. PostgreSQL ignores them
        once that pid is gone, but not while the dead postmaster is a zombie nobody reaped
        yet: both pg_ctl and the postmaster then take it for a running server."""
        socket_lock = self.run_dir / f".s.PGSQL.{self.config.postgres_port}.lock"
        for lock_file in (self.data / "postmaster.pid", socket_lock):
            try:
                pid = int(lock_file.read_text().split()[0])
            except (FileNotFoundError, ValueError, IndexError):
                continue
            if not _alive(pid):
                lock_file.unlink(missing_ok=True)

    def _start_server(self, bindir: Path, attempts: int = 5) -> None:
        """``pg_ctl start``; retried, since after a crash the old server's backends may hold
        its shared memory for a moment (the new postmaster refuses to start until they exit)."""
        for attempt in range(attempts):
            try:
                self._pg_ctl(
                    bindir,
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(self.log_file),
                    "-o",
                    self._server_options(),
                )
                return
            except PostgresError:
                if attempt == attempts - 1:
                    raise
                time.sleep(1.0)

    def _server_options(self) -> str:
        options = (
            f"-p {self.config.postgres_port} -c listen_addresses={self.config.host} "
            f"-k {self.run_dir} -c max_connections=300 -c shared_buffers=128MB"
        )
        return options + "".join(f" -c {setting}" for setting in self.config.postgres_settings)

    def _prepare_dirs(self) -> None:
        for folder in (self.dir, self.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self.config.state_dir.chmod(0o755)
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.run_dir, "postgres", "postgres")
            self.dir.chmod(0o700)

    def _initdb(self, bindir: Path) -> None:
        pwfile = self.dir / ".initdb-pw"
        pwfile.write_text(self.password())
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _pg_ctl(self, bindir: Path, *args: str) -> None:
        self._run([str(bindir / "pg_ctl"), "-D", str(self.data), *args])

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[bytes]:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, check=False)
        if check and result.returncode != 0:
            raise PostgresError(
                f"{' '.join(argv)} failed ({result.returncode}):\n"
                f"{result.stdout.decode(errors='replace')}{result.stderr.decode(errors='replace')}"
                f"\n{self._log_tail()}"
            )
        return result

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
        except (FileNotFoundError, PermissionError):
            return ""

    async def _create_databases(self) -> None:
        await create_databases(self.url(), SERVICE_DATABASES)


async def database_names(admin_url: str) -> set[str]:
    conn = await asyncpg.connect(admin_url)
    try:
        return {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


DATABASE_COLLATION = "C"
"""How each database the project creates orders text. The server's own locale (C.UTF-8
here) orders by code point too, and so does ``C`` over UTF-8, so no order changes; but
PostgreSQL 15 compares text in a collation other than ``C`` through the C library's
``strcoll``, and sorts it without abbreviated keys, while in ``C`` it compares bytes. Every
key here is text (event ids, sources, topics): a rebuild of 400,000 events, two A/Bs on
fresh stacks, took PostgreSQL 9.4-9.6 s of CPU against 10.1-10.3, its indexes built in
1.67-1.85 s against 1.91-2.06. The character classes (``LC_CTYPE``) stay the server's."""


async def create_databases(admin_url: str, names: tuple[str, ...] | list[str]) -> None:
    """Create each database that does not exist yet (database-per-service), ordering text
    by :data:`DATABASE_COLLATION`."""
    existing = await database_names(admin_url)
    conn = await asyncpg.connect(admin_url)
    try:
        for name in names:
            if name not in existing:
                await conn.execute(
                    f'CREATE DATABASE "{name}" TEMPLATE template0'
                    f" LC_COLLATE '{DATABASE_COLLATION}'"
                )
    finally:
        await conn.close()


async def drop_databases(admin_url: str, names: list[str]) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
