"""What the local broker and the local cluster share: Java, Kafka's jars, and their processes.

Kafka is obtained as Maven artifacts (the POM shipped beside this module) into
one cache directory, so only the first start needs the network, and a single
node and every node of a cluster run from the same jars. The processes are
found again through pid files; these helpers check that a recorded pid is
still the Kafka process it was (pids are recycled) and stop it gracefully.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path

from advisering.log import get_logger

log = get_logger(__name__)

KAFKA_VERSION = "4.4.0"
MIN_JAVA = 17
POM_NAME = "kafka-pom.xml"


class LocalKafkaError(RuntimeError):
    """A problem the user can act on; the message says what to do."""


def libs_dir_of(cache_dir: Path) -> Path:
    """Where the jars of :data:`KAFKA_VERSION` live in the cache directory."""
    return cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"


def ensure_libs(libs_dir: Path) -> None:
    """Fetch Kafka's jars into ``libs_dir`` with Maven, unless a complete copy is there."""
    marker = libs_dir / ".complete"
    if marker.exists():
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError(
            "Maven (mvn) is not installed; it is needed once to fetch Apache Kafka. "
            "Install it, for example: apt-get install maven"
        )
    if libs_dir.exists():
        shutil.rmtree(libs_dir)
    libs_dir.mkdir(parents=True)
    pom = libs_dir.parent / POM_NAME
    pom.write_bytes(resources.files("advisering.dev").joinpath(POM_NAME).read_bytes())
    log.info("kafka_fetching", version=KAFKA_VERSION, into=str(libs_dir))
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(pom), f"-Dkafka.version={KAFKA_VERSION}",
         "dependency:copy-dependencies", "-DincludeScope=runtime",
         f"-DoutputDirectory={libs_dir}"],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise LocalKafkaError(
            f"Maven could not fetch Apache Kafka {KAFKA_VERSION} (exit {result.returncode}). "
            f"Check the network access to Maven Central.\n{tail}"
        )
    marker.write_text(KAFKA_VERSION)


def java_command(java: str, heap: str, log4j_file: Path, libs_dir: Path, main: str,
                 *args: str) -> list[str]:
    """The command line running one of Kafka's main classes with a fixed heap."""
    return [
        java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j_file}",
        "-cp", str(libs_dir / "*"), main, *args,
    ]


def new_cluster_id() -> str:
    """A Kafka Uuid (cluster or directory id): base64url of a random UUID, never "-" first.

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


def process_state(pid: int) -> str | None:
    """The process's state letter from /proc (``R``, ``S``, ``T`` stopped, ...), None if gone.

    A zombie (our own child, not yet reaped) counts as gone. Without /proc
    (not Linux) a process that exists reports ``?``.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "?"
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"
    state = stat.rsplit(")", 1)[-1].split()[0]
    return None if state == "Z" else state


def alive(pid: int) -> bool:
    """True while the process exists (a stopped one too), False once gone or a zombie."""
    return process_state(pid) is not None


def is_kafka_process(pid: int, marker: Path) -> bool:
    """Guard against a recycled pid: the process must be java running Kafka with ``marker``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True  # no /proc (not Linux): trust the pid file
    return "kafka.Kafka" in cmdline and str(marker) in cmdline


def read_live_pid(pid_file: Path, marker: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that process is alive and is our Kafka."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not alive(pid) or not is_kafka_process(pid, marker):
        return None
    return pid


def terminate(pids: Iterable[int], timeout: float,
              give_up: Callable[[list[int]], bool] | None = None) -> None:
    """SIGTERM the processes (and SIGCONT a paused one), wait, SIGKILL any still there.

    All get the signal at once. The wait ends after ``timeout`` seconds, or
    earlier when ``give_up`` (called with the pids still alive) says that
    waiting longer is pointless.
    """
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)  # a stopped process handles SIGTERM once continued
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left or (give_up is not None and give_up(left)):
            break
        time.sleep(0.2)
    for pid in pids:
        if alive(pid):
            log.warning("kafka_stop_forced", pid=pid, timeout=timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.1)


def port_in_use(port: int) -> bool:
    """True when something on 127.0.0.1 accepts connections on ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def tail_lines(paths: Iterable[Path], count: int = 25) -> str:
    """The last ``count`` lines of the given log files, for an error message."""
    lines: list[str] = []
    for path in paths:
        if path.exists():
            lines.extend(path.read_text(errors="replace").splitlines()[-count:])
    return "\n".join(lines[-count:])
