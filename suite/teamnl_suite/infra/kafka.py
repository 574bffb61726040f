"""A single-node Apache Kafka (KRaft, broker + controller) run as a local java process.

The jars are the official ``org.apache.kafka:kafka_2.13`` artifacts, resolved from Maven
Central by Maven into a cache folder outside the repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from teamnl_shared.kafka import ping

from .config import KAFKA_VERSION, InfraConfig
from .process import exclusive_lock, read_pid, terminate

MAIN_CLASS = "kafka.Kafka"

LOG4J2_YAML = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Logger:
      - name: kafka.log.LogCleaner
        level: WARN
      - name: org.apache.kafka.storage
        level: WARN
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
"""


def jvm_options(cores: int | None = None) -> list[str]:
    """The broker's garbage collector: on two cores or fewer the serial one, which the JVM
    itself takes on a machine it does not count as a server (fewer than two cores). G1, its
    choice from two cores, runs concurrent threads beside the application's; on the bench
    machine (two cores, every service beside the broker) the serial collector cost the
    broker 12% less CPU per event at 1,000 ev/s end to end (0.23-0.26 against 0.26-0.30 ms,
    five rounds each), and the end-to-end p50 fell from 72-96 to 62-71 ms."""
    cores = cores if cores is not None else os.cpu_count() or 1
    return ["-XX:+UseSerialGC"] if cores <= 2 else []


class KafkaError(RuntimeError):
    pass


def resolve_jars(config: InfraConfig) -> Path:
    """Resolve Kafka's jars with Maven once; later calls reuse the cache. The cache is one
    per machine, shared by every state folder (the tests', each bench slot's): two first
    starts at once both copied into its partial folder, and one failed ("Failed to copy
    full contents"), so it is resolved under a lock of its own."""
    libs = config.kafka_libs
    jar = libs / f"kafka_2.13-{KAFKA_VERSION}.jar"
    if jar.exists():
        return libs
    if shutil.which("mvn") is None:
        raise KafkaError("Maven (mvn) fetches Apache Kafka's jars: apt-get install maven")
    with exclusive_lock(libs.with_name(".libs.lock")):
        if not jar.exists():  # resolved by another start while this one waited
            _copy_jars(libs)
    return libs


def _copy_jars(libs: Path) -> None:
    pom = resources.files("teamnl_suite.infra").joinpath("kafka-pom.xml")
    with resources.as_file(pom) as pom_path:
        tmp = libs.with_name("libs.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom_path),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
                f"-Dkafka.version={KAFKA_VERSION}",
            ],
            check=True,
        )
        tmp.replace(libs)


def server_properties(config: InfraConfig) -> str:
    host, port, ctrl = config.host, config.kafka_port, config.kafka_controller_port
    listeners = f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctrl}"
    advertised = f"PLAINTEXT://{host}:{port}"
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if config.kafka_proxied_listener is not None:
        listen_port, advertised_port = config.kafka_proxied_listener
        listeners += f",PROXIED://{host}:{listen_port}"
        advertised += f",PROXIED://{host}:{advertised_port}"
        protocols += ",PROXIED:PLAINTEXT"
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{host}:{ctrl}",
            f"listeners={listeners}",
            f"advertised.listeners={advertised}",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={protocols}",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={config.kafka_dir / 'data'}",
            "num.partitions=6",
            "default.replication.factor=1",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "",
        ]
    )


class LocalKafka:
    def __init__(self, config: InfraConfig) -> None:
        self.config = config
        self.dir = config.kafka_dir
        self.pid_file = self.dir / "kafka.pid"
        self.log_file = self.dir / "kafka.log"

    def pid(self) -> int | None:
        return read_pid(self.pid_file, MAIN_CLASS)

    def start(self, timeout: float = 90.0) -> None:
        with exclusive_lock(self.dir / ".lock"):
            if self.pid() is None:
                self._spawn(resolve_jars(self.config))
        wait_ready(self.config.kafka_bootstrap, timeout, self._log_tail)

    def stop(self) -> None:
        with exclusive_lock(self.dir / ".lock"):
            pid = self.pid()
            if pid is not None:
                terminate(pid)
            self.pid_file.unlink(missing_ok=True)

    def _spawn(self, libs: Path) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        props = self.dir / "server.properties"
        props.write_text(server_properties(self.config))
        log4j = self.dir / "log4j2.yaml"
        log4j.write_text(LOG4J2_YAML)
        java = [
            "java",
            "-Xms256m",
            "-Xmx768m",
            *jvm_options(),
            f"-Dlog4j2.configurationFile={log4j}",
        ]
        classpath = ["-cp", f"{libs}/*"]
        if not (self.dir / "data" / "meta.properties").exists():
            cluster_id = _cluster_id()
            subprocess.run(
                [
                    *java,
                    *classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                    "--ignore-formatted",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [*java, *classpath, MAIN_CLASS, str(props)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
        except FileNotFoundError:
            return "(no log)"


def _cluster_id() -> str:
    """A new cluster id: 16 random bytes in URL-safe base64 without padding, as Kafka's own
    (``Uuid.randomUuid``), and like those never starting with "-": the storage tool would
    read such an id as an option, and a first start failed so one time in 64."""
    import base64

    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def wait_ready(bootstrap: str, timeout: float, log_tail: object = None) -> None:
    deadline = time.monotonic() + timeout
    with _refusals_expected():
        while time.monotonic() < deadline:
            # Ready for consumer groups too: the first group on a new broker would otherwise
            # wait for the offsets topic to be created (the first test's, say).
            if asyncio.run(ping(bootstrap, groups=True)):
                return
            time.sleep(0.5)
    tail = log_tail() if callable(log_tail) else ""
    raise KafkaError(f"Kafka at {bootstrap} not ready after {timeout:.0f}s\n{tail}")


@contextlib.contextmanager
def _refusals_expected() -> Iterator[None]:
    """aiokafka logs every refused connection as an error ("Unable connect to ..."): while a
    broker starts, its port refuses a few times by design, and ``make run`` printed a dozen
    such lines before every start. The wait reports its own failure, with the broker's log."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
