"""A real single-node Apache Kafka (KRaft) for development, the demo and the tests.

Kafka's jars come from the shared cache (:mod:`advisering.dev.kafka_jvm`), so
only the first start needs the network. The broker runs as a combined broker
and controller on 127.0.0.1 and is managed through a pid file in its state
directory. The three-node cluster is :mod:`advisering.dev.kafka_cluster`.
It listens in PLAINTEXT, so its readiness check connects with
``KafkaConnection.plaintext``; with ``secure`` (``kafka start --secure``) it
has two client listeners, SASL_SSL on the port and mutual TLS on the port
plus two, with the material and users of :mod:`advisering.dev.kafka_secure`,
and checks readiness as ``admin``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from advisering.dev import kafka_secure
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
    #: The client env files of a secure broker (``kafka start --secure``); None when plain.
    clients_dir: Path | None = None
    #: The secure broker's mutual-TLS listener (``SSL``); None when plain.
    mtls_bootstrap: str | None = None


@dataclass(frozen=True)
class StartResult:
    """What `kafka start` did: the message for the person and how long it took."""

    started: bool
    status: BrokerStatus
    seconds: float
    message: str


class LocalKafka:
    """Starts, stops and reports on the local development broker."""

    def __init__(self, settings: Settings, *, secure: bool = False) -> None:
        self.settings = settings
        self.secure = secure
        self.secure_files = kafka_secure.secure_files(settings.broker_state_dir)
        self.port = settings.kafka_port
        self.controller_port = settings.kafka_port + 1
        self.mtls_port = settings.kafka_port + kafka_secure.MTLS_PORT_OFFSET
        self.state_dir = settings.broker_state_dir
        self.libs_dir = libs_dir_of(settings.kafka_cache_dir)
        self.data_dir = self.state_dir / "data"
        self.log_dir = self.state_dir / "logs"
        self.pid_file = self.state_dir / "broker.pid"
        self.log_file = self.log_dir / "server.log"
        self.stdout_file = self.log_dir / "stdout.log"
        self.mode_file = self.state_dir / kafka_secure.MODE_FILE

    # -- public verbs -------------------------------------------------------

    def status(self) -> BrokerStatus:
        """The broker as it is now (running only if its recorded pid is alive)."""
        pid = self._live_pid()
        secure = self.formatted_mode() == "secure"
        return BrokerStatus(
            running=pid is not None,
            pid=pid,
            bootstrap=self.settings.local_bootstrap,
            log_file=self.log_file,
            clients_dir=self.secure_files.clients if secure else None,
            mtls_bootstrap=self.mtls_bootstrap if secure else None,
        )

    @property
    def mtls_bootstrap(self) -> str:
        """Where the secure broker's mutual-TLS listener is (port plus two)."""
        return f"127.0.0.1:{self.mtls_port}"

    def ports(self) -> tuple[int, ...]:
        """Every port this broker listens on: broker, controller, and mTLS when secure."""
        extra = (self.mtls_port,) if self.secure else ()
        return (self.port, self.controller_port, *extra)

    def formatted_mode(self) -> str | None:
        """``secure`` or ``plain``: how the data was formatted; None before the first start."""
        if self.mode_file.exists():
            return self.mode_file.read_text().strip()
        return "plain" if (self.data_dir / "meta.properties").exists() else None

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
        wanted = "secure" if self.secure else "plain"
        if not fresh and self.formatted_mode() not in (None, wanted):
            raise LocalKafkaError(
                f"The broker in {self.state_dir} was set up "
                f"{'with' if wanted == 'plain' else 'without'} --secure; stop it and start "
                f"again with --fresh to wipe its data, or use another ADVISERING_KAFKA_STATE_DIR."
            )
        if current.running and not fresh:
            return StartResult(
                started=False,
                status=current,
                seconds=0.0,
                message=f"Kafka is already running at {current.bootstrap} (pid {current.pid}).",
            )
        if current.running and fresh:
            self.stop()
        if any(port_in_use(port) for port in self.ports()):
            raise LocalKafkaError(
                f"A port of {self._port_list()} on 127.0.0.1 is in use by another "
                "process. Stop it, or choose another port with ADVISERING_KAFKA_PORT."
            )
        java = find_java()
        ensure_libs(self.libs_dir)
        if fresh and self.data_dir.exists():
            shutil.rmtree(self.data_dir)
            log.info("kafka_data_wiped", data_dir=str(self.data_dir))
        passwords = self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(java, passwords)
        pid = self._launch(java)
        self._wait_until_ready(pid)
        seconds = time.monotonic() - began
        log.info("kafka_started", bootstrap=self.settings.local_bootstrap, pid=pid,
                 seconds=round(seconds, 2), secure=self.secure)
        return StartResult(
            started=True,
            status=self.status(),
            seconds=seconds,
            message=(f"Kafka {KAFKA_VERSION} is running at {self.settings.local_bootstrap}"
                     f"{' (SASL_SSL, SCRAM-SHA-512, ACLs)' if self.secure else ''}"
                     f"{f'; mutual TLS (SSL) at {self.mtls_bootstrap}' if self.secure else ''}."),
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

    def _write_config(self) -> dict[str, str]:
        """Write server.properties (0600 when secure: it holds the broker's password).

        Returns the SCRAM passwords of a secure broker (empty when plain).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        properties = self.state_dir / "server.properties"
        passwords: dict[str, str] = {}
        if self.secure:
            files = self.secure_files
            passwords = kafka_secure.ensure_material(files)
            kafka_secure.write_env_files(files, self.settings.local_bootstrap, passwords,
                                         self.mtls_bootstrap)
            listeners = kafka_secure.secure_listener_properties(
                self.port, self.controller_port, self.mtls_port, files,
                passwords[kafka_secure.BROKER_USER])
            kafka_secure.write_private(properties, server_properties(
                self.port, self.controller_port, self.data_dir, listeners))
        else:
            properties.write_text(server_properties(self.port, self.controller_port,
                                                    self.data_dir))
        (self.state_dir / "log4j2.properties").write_text(log4j_properties(self.log_file))
        return passwords

    def _java_command(self, java: str, main: str, *args: str) -> list[str]:
        return java_command(java, self.settings.kafka_heap, self.state_dir / "log4j2.properties",
                            self.libs_dir, main, *args)

    def _format_storage(self, java: str, passwords: dict[str, str]) -> None:
        cluster_id = new_cluster_id()
        scram = kafka_secure.scram_format_args(passwords) if self.secure else []
        command = self._java_command(
            java, "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id,
            "-c", str(self.state_dir / "server.properties"), *scram,
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = result.stdout + result.stderr
            for password in passwords.values():  # the tool may echo its arguments
                output = output.replace(password, "***")
            raise LocalKafkaError(
                f"Formatting the KRaft storage in {self.data_dir} failed "
                f"(exit {result.returncode}); try --fresh.\n{output}"
            )
        self.mode_file.write_text("secure\n" if self.secure else "plain\n")
        log.info("kafka_storage_formatted", data_dir=str(self.data_dir), secure=self.secure)

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
                        f"A port of {self._port_list()} on 127.0.0.1 was taken by another "
                        "process while Kafka started. Stop it, or choose another port with "
                        "ADVISERING_KAFKA_PORT."
                    )
                raise LocalKafkaError(
                    f"The Kafka broker exited during start-up. Its log ({self.log_file}) "
                    f"ends with:\n{self.last_log_lines()}"
                )
            if broker_answers(self.connection(), timeout=2.0):
                return
            time.sleep(0.3)
        raise LocalKafkaError(
            f"The Kafka broker did not answer within {self.settings.kafka_start_timeout:.0f}s "
            f"(pid {pid} still runs). Its log ({self.log_file}) ends with:\n"
            f"{self.last_log_lines()}"
        )

    def connection(self) -> KafkaConnection:
        """How to reach this broker: plaintext, or as the super user ``admin`` when secure."""
        if self.secure:
            return kafka_secure.admin_connection(self.secure_files, self.settings.local_bootstrap)
        return KafkaConnection.plaintext(self.settings.local_bootstrap)

    def _port_list(self) -> str:
        return ", ".join(str(port) for port in self.ports())

    def _live_pid(self) -> int | None:
        return read_live_pid(self.pid_file, self.state_dir)


def server_properties(port: int, controller_port: int, data_dir: Path,
                      listeners: list[str] | None = None) -> str:
    """Broker settings for one combined node that Faust is happy with.

    ``listeners`` replaces the plaintext listener lines (the secure broker's,
    :func:`advisering.dev.kafka_secure.secure_listener_properties`).
    """
    plain = [
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    ]
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
        *(plain if listeners is None else listeners),
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
