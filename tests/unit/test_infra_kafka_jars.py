"""Kafka's jars are resolved once per machine, into a cache every state folder shares (the
tests', each bench slot's). Two first starts at once both had Maven copy into the cache's
partial folder, and one failed ("Failed to copy full contents"). Maven is the edge here: a
stand-in on PATH that copies slowly and counts its runs."""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from teamnl_suite.infra import kafka
from teamnl_suite.infra.config import KAFKA_VERSION, InfraConfig

FAKE_MVN = """#!/bin/sh
echo run >> "{runs}"
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}";; esac
done
mkdir -p "$out"
sleep 0.5
[ -e "$out/kafka_2.13-{version}.jar" ] && exit 1  # another run copies into the same folder
touch "$out/kafka_2.13-{version}.jar"
"""


def test_two_first_starts_at_once_resolve_the_jars_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN.format(runs=runs, version=KAFKA_VERSION))
    mvn.chmod(mvn.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = replace(InfraConfig.from_env(), cache_dir=tmp_path / "cache")
    results: list[Path | BaseException] = []

    def start() -> None:
        try:
            results.append(kafka.resolve_jars(config))
        except BaseException as error:  # noqa: BLE001 - the test reports it
            results.append(error)

    starts = [threading.Thread(target=start) for _ in range(2)]
    for thread in starts:
        thread.start()
    for thread in starts:
        thread.join()

    assert results == [config.kafka_libs, config.kafka_libs]
    assert (config.kafka_libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists()
    assert runs.read_text().splitlines() == ["run"]
