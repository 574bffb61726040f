"""The local infrastructure after a fault run's crashes: a SIGKILLed postmaster's lock files,
and the broker's second listener that routes clients through a TCP proxy; and the broker's
garbage collector by the machine's size."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

from teamnl_suite.infra import InfraConfig
from teamnl_suite.infra.kafka import jvm_options, server_properties
from teamnl_suite.infra.postgres import LocalPostgres


def config(tmp_path: Path) -> InfraConfig:
    return dataclasses.replace(InfraConfig.from_env(), state_dir=tmp_path, postgres_port=55999)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def lock_files(postgres: LocalPostgres) -> tuple[Path, Path]:
    postgres.data.mkdir(parents=True)
    postgres.run_dir.mkdir(parents=True)
    return postgres.data / "postmaster.pid", postgres.run_dir / ".s.PGSQL.55999.lock"


def test_lock_files_of_a_dead_postmaster_are_removed(tmp_path: Path) -> None:
    postgres = LocalPostgres(config(tmp_path))
    pid_file, socket_lock = lock_files(postgres)
    for lock in (pid_file, socket_lock):
        lock.write_text(f"{dead_pid()}\n/data\n")
    postgres._remove_stale_lock_files()
    assert not pid_file.exists()
    assert not socket_lock.exists()


def test_lock_files_of_a_live_postmaster_stay(tmp_path: Path) -> None:
    postgres = LocalPostgres(config(tmp_path))
    pid_file, socket_lock = lock_files(postgres)
    for lock in (pid_file, socket_lock):
        lock.write_text(f"{os.getpid()}\n/data\n")
    postgres._remove_stale_lock_files()
    assert pid_file.exists()
    assert socket_lock.exists()


def test_the_proxied_listener_advertises_the_proxy_port(tmp_path: Path) -> None:
    plain = config(tmp_path)
    proxied = dataclasses.replace(plain, kafka_port=29000, kafka_proxied_listener=(29002, 29003))
    lines = server_properties(proxied).splitlines()
    assert any(line.startswith("listeners=") and line.endswith(",PROXIED://127.0.0.1:29002")
               for line in lines)  # fmt: skip
    assert "advertised.listeners=PLAINTEXT://127.0.0.1:29000,PROXIED://127.0.0.1:29003" in lines
    assert any(line.endswith(",PROXIED:PLAINTEXT") for line in lines)
    assert "PROXIED" not in server_properties(plain)


def test_the_broker_collects_serially_on_two_cores_or_fewer() -> None:
    """G1 only on a machine with more cores than the bench's two (where its concurrent
    threads took CPU from the services beside the broker)."""
    assert jvm_options(1) == jvm_options(2) == ["-XX:+UseSerialGC"]
    assert jvm_options(4) == []
    assert jvm_options() == jvm_options(os.cpu_count())
