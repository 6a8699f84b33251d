"""A real single-node Apache Kafka (KRaft) for development, the demo and the tests.

Kafka is obtained as Maven artifacts (the POM shipped beside this module) into a
cache directory, so only the first start needs the network. The broker runs as
a combined broker and controller on 127.0.0.1 and is managed through a pid
file in its state directory.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from advisering.kafka.clients import broker_answers
from advisering.log import get_logger
from advisering.settings import Settings

log = get_logger(__name__)

KAFKA_VERSION = "4.4.0"
MIN_JAVA = 17
POM_NAME = "kafka-pom.xml"


class LocalKafkaError(RuntimeError):
    """A problem the user can act on; the message says what to do."""


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
        self.libs_dir = settings.kafka_cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"
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
        if _port_in_use(self.port) or _port_in_use(self.controller_port):
            raise LocalKafkaError(
                f"Port {self.port} or {self.controller_port} on 127.0.0.1 is in use by another "
                "process. Stop it, or choose another port with ADVISERING_KAFKA_PORT."
            )
        java = find_java()
        self._ensure_libs()
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
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.2)
        else:
            log.warning("kafka_stop_forced", pid=pid, timeout=timeout)
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        log.info("kafka_stopped", pid=pid)
        return True

    def last_log_lines(self, count: int = 25) -> str:
        """The tail of the broker's logs, for an error message when it did not start."""
        lines: list[str] = []
        for path in (self.log_file, self.stdout_file):
            if path.exists():
                lines.extend(path.read_text(errors="replace").splitlines()[-count:])
        return "\n".join(lines[-count:])

    # -- steps ----------------------------------------------------------------

    def _ensure_libs(self) -> None:
        marker = self.libs_dir / ".complete"
        if marker.exists():
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError(
                "Maven (mvn) is not installed; it is needed once to fetch Apache Kafka. "
                "Install it, for example: apt-get install maven"
            )
        if self.libs_dir.exists():
            shutil.rmtree(self.libs_dir)
        self.libs_dir.mkdir(parents=True)
        pom = self.libs_dir.parent / POM_NAME
        pom.write_bytes(resources.files("advisering.dev").joinpath(POM_NAME).read_bytes())
        log.info("kafka_fetching", version=KAFKA_VERSION, into=str(self.libs_dir))
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), f"-Dkafka.version={KAFKA_VERSION}",
             "dependency:copy-dependencies", "-DincludeScope=runtime",
             f"-DoutputDirectory={self.libs_dir}"],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise LocalKafkaError(
                f"Maven could not fetch Apache Kafka {KAFKA_VERSION} (exit {result.returncode}). "
                f"Check the network access to Maven Central.\n{tail}"
            )
        marker.write_text(KAFKA_VERSION)

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "server.properties").write_text(
            server_properties(self.port, self.controller_port, self.data_dir)
        )
        (self.state_dir / "log4j2.properties").write_text(log4j_properties(self.log_file))

    def _java_command(self, java: str, main: str, *args: str) -> list[str]:
        return [
            java, f"-Xmx{self.settings.kafka_heap}", f"-Xms{self.settings.kafka_heap}",
            "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.properties'}",
            "-cp", str(self.libs_dir / "*"), main, *args,
        ]

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
            if not _alive(pid):
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
            if broker_answers(self.settings.local_bootstrap, timeout=2.0):
                return
            time.sleep(0.3)
        raise LocalKafkaError(
            f"The Kafka broker did not answer within {self.settings.kafka_start_timeout:.0f}s "
            f"(pid {pid} still runs). Its log ({self.log_file}) ends with:\n"
            f"{self.last_log_lines()}"
        )

    def _live_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid) or not _is_our_broker(pid, self.state_dir):
            return None
        return pid


def new_cluster_id() -> str:
    """A KRaft cluster id: base64url of a random UUID, never starting with "-".

    The storage tool would read a leading "-" as an option (Kafka's own
    Uuid.randomUuid avoids it for the same reason); that is 1 id in 64.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def find_java() -> str:
    """The java binary (JAVA_HOME first), checked to be version 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise LocalKafkaError(
            f"Java {MIN_JAVA} or newer is needed to run Kafka and none was found. "
            "Install it, for example: apt-get install openjdk-17-jre-headless"
        )
    result = subprocess.run([candidate, "-version"], capture_output=True, text=True, check=False)
    version = java_major_version(result.stderr + result.stdout)
    if version is None or version < MIN_JAVA:
        raise LocalKafkaError(
            f"{candidate} is Java {version or 'of unknown version'}; Kafka needs Java "
            f"{MIN_JAVA} or newer. Install it and put it first on PATH or set JAVA_HOME."
        )
    return candidate


def java_major_version(text: str) -> int | None:
    """Parse the major version from ``java -version`` output (1.8 -> 8, 17.0.1 -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        return int(match.group(2))
    return major


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


def log4j_properties(log_file: Path) -> str:
    """log4j2 configuration writing the broker's own log to one file."""
    return "\n".join([
        "status = warn",
        "appender.file.type = File",
        "appender.file.name = FILE",
        f"appender.file.fileName = {log_file}",
        "appender.file.layout.type = PatternLayout",
        "appender.file.layout.pattern = [%d] %p %m (%c)%n",
        "rootLogger.level = INFO",
        "rootLogger.appenderRef.file.ref = FILE",
        "",
    ])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (our own, not yet reaped) counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_our_broker(pid: int, state_dir: Path) -> bool:
    """Guard against a recycled pid: the process must be java with our config."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True  # no /proc (not Linux): trust the pid file
    return "kafka.Kafka" in cmdline and str(state_dir) in cmdline


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
