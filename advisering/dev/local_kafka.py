"""A real single-node Apache Kafka (KRaft) for development, the demo and the tests.

Kafka's jars come from the shared cache (:mod:`advisering.dev.kafka_jvm`), so
only the first start needs the network. The broker runs as a combined broker
and controller on 127.0.0.1 and is managed through a pid file in its state
directory. The three-node cluster is :mod:`advisering.dev.kafka_cluster`.
It listens in PLAINTEXT, so its readiness check connects with
``KafkaConnection.plaintext``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from advisering.dev.kafka_jvm import (
    KAFKA_VERSION,
    LocalKafkaError,
    alive,
    ensure_libs,
    find_java,
    java_command,
    java_major_version,
    libs_dir_of,
    log4j_properties,
    new_cluster_id,
    port_in_use,
    read_live_pid,
    tail_lines,
    terminate,
)
from advisering.kafka.clients import broker_answers
from advisering.kafka.connection import KafkaConnection
from advisering.log import get_logger
from advisering.settings import Settings

log = get_logger(__name__)

__all__ = ["KAFKA_VERSION", "BrokerStatus", "LocalKafka", "LocalKafkaError", "StartResult",
           "find_java", "java_major_version", "new_cluster_id", "server_properties"]


@dataclass(frozen=True)
class BrokerStatus:
    """Whether the local broker runs, and where to find it and its log."""

    running: bool
    pid: int | None
    bootstrap: str
    log_file: Path


@dataclass(frozen=True)
class StartResult:
    """What `kafka start` did: the message for the person and how long it took."""

    started: bool
    status: BrokerStatus
    seconds: float
    message: str


class LocalKafka:
    """Starts, stops and reports on the local development broker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.kafka_port
        self.controller_port = settings.kafka_port + 1
        self.state_dir = settings.broker_state_dir
        self.libs_dir = libs_dir_of(settings.kafka_cache_dir)
        self.data_dir = self.state_dir / "data"
        self.log_dir = self.state_dir / "logs"
        self.pid_file = self.state_dir / "broker.pid"
        self.log_file = self.log_dir / "server.log"
        self.stdout_file = self.log_dir / "stdout.log"

    # -- public verbs -------------------------------------------------------

    def status(self) -> BrokerStatus:
        """The broker as it is now (running only if its recorded pid is alive)."""
        pid = self._live_pid()
        return BrokerStatus(
            running=pid is not None,
            pid=pid,
            bootstrap=self.settings.local_bootstrap,
            log_file=self.log_file,
        )

    def start(self, *, fresh: bool = False) -> StartResult:
        """Start the broker unless it runs; `fresh` restarts it on empty data.

        Does nothing when the settings point at another broker.
        """
        began = time.monotonic()
        if not self.settings.uses_local_broker():
            return StartResult(
                started=False,
                status=self.status(),
                seconds=0.0,
                message=(
                    f"ADVISERING_BOOTSTRAP_SERVERS points at {self.settings.bootstrap_servers}; "
                    "not starting a local broker."
                ),
            )
        current = self.status()
        if current.running and not fresh:
            return StartResult(
                started=False,
                status=current,
                seconds=0.0,
                message=f"Kafka is already running at {current.bootstrap} (pid {current.pid}).",
            )
        if current.running and fresh:
            self.stop()
        if port_in_use(self.port) or port_in_use(self.controller_port):
            raise LocalKafkaError(
                f"Port {self.port} or {self.controller_port} on 127.0.0.1 is in use by another "
                "process. Stop it, or choose another port with ADVISERING_KAFKA_PORT."
            )
        java = find_java()
        ensure_libs(self.libs_dir)
        if fresh and self.data_dir.exists():
            shutil.rmtree(self.data_dir)
            log.info("kafka_data_wiped", data_dir=str(self.data_dir))
        self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(java)
        pid = self._launch(java)
        self._wait_until_ready(pid)
        seconds = time.monotonic() - began
        log.info("kafka_started", bootstrap=self.settings.local_bootstrap, pid=pid,
                 seconds=round(seconds, 2))
        return StartResult(
            started=True,
            status=self.status(),
            seconds=seconds,
            message=f"Kafka {KAFKA_VERSION} is running at {self.settings.local_bootstrap}.",
        )

    def stop(self, timeout: float = 60.0) -> bool:
        """Shut the broker down gracefully; returns False when none was running."""
        pid = self._live_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        terminate([pid], timeout)
        self.pid_file.unlink(missing_ok=True)
        log.info("kafka_stopped", pid=pid)
        return True

    def last_log_lines(self, count: int = 25) -> str:
        """The tail of the broker's logs, for an error message when it did not start."""
        return tail_lines((self.log_file, self.stdout_file), count)

    # -- steps ----------------------------------------------------------------

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "server.properties").write_text(
            server_properties(self.port, self.controller_port, self.data_dir)
        )
        (self.state_dir / "log4j2.properties").write_text(log4j_properties(self.log_file))

    def _java_command(self, java: str, main: str, *args: str) -> list[str]:
        return java_command(java, self.settings.kafka_heap, self.state_dir / "log4j2.properties",
                            self.libs_dir, main, *args)

    def _format_storage(self, java: str) -> None:
        cluster_id = new_cluster_id()
        command = self._java_command(
            java, "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id,
            "-c", str(self.state_dir / "server.properties"),
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(
                f"Formatting the KRaft storage in {self.data_dir} failed "
                f"(exit {result.returncode}); try --fresh.\n{result.stdout}{result.stderr}"
            )
        log.info("kafka_storage_formatted", data_dir=str(self.data_dir))

    def _launch(self, java: str) -> int:
        command = self._java_command(
            java, "kafka.Kafka", str(self.state_dir / "server.properties")
        )
        with self.stdout_file.open("ab") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.state_dir,
            )
        self.pid_file.write_text(str(process.pid))
        return process.pid

    def _wait_until_ready(self, pid: int) -> None:
        deadline = time.monotonic() + self.settings.kafka_start_timeout
        while time.monotonic() < deadline:
            if not alive(pid):
                self.pid_file.unlink(missing_ok=True)
                if "Address already in use" in self.last_log_lines(200):
                    raise LocalKafkaError(
                        f"Port {self.port} or {self.controller_port} on 127.0.0.1 was taken by "
                        "another process while Kafka started. Stop it, or choose another port "
                        "with ADVISERING_KAFKA_PORT."
                    )
                raise LocalKafkaError(
                    f"The Kafka broker exited during start-up. Its log ({self.log_file}) "
                    f"ends with:\n{self.last_log_lines()}"
                )
            if broker_answers(KafkaConnection.plaintext(self.settings.local_bootstrap),
                              timeout=2.0):
                return
            time.sleep(0.3)
        raise LocalKafkaError(
            f"The Kafka broker did not answer within {self.settings.kafka_start_timeout:.0f}s "
            f"(pid {pid} still runs). Its log ({self.log_file}) ends with:\n"
            f"{self.last_log_lines()}"
        )

    def _live_pid(self) -> int | None:
        return read_live_pid(self.pid_file, self.state_dir)


def server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    """Broker settings for one combined node that Faust is happy with."""
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={data_dir}",
        "num.partitions=1",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=10",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        # Faust creates its own internal topics; ours come from `topics apply`.
        "auto.create.topics.enable=false",
        "log.cleaner.dedupe.buffer.size=33554432",
        "log.segment.bytes=67108864",
        "",
    ])
