"""The bus under test: a three-node cluster, one `serve`, two supervised workers.

The harness plays the supervisor a deployment has (systemd, Kubernetes): a
worker that exits, for whatever reason and with whatever code, is started
again in its place, and each exit is recorded with its code. A worker exits
70 when a send stalls past ``ADVISERING_WORKER_PRODUCER_TIMEOUT`` (the whole
cluster away); it is then the supervisor's restart that redoes the batch.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from advisering.dev.cluster_faults import ClusterFaults
from advisering.dev.demo import write_demo_sources
from advisering.dev.kafka_cluster import LocalCluster
from advisering.kafka.topics import load_vocabulary
from advisering.settings import Settings
from tests.chaos.workload import MAX_OPEN_CASES
from tests.integration.bus import (
    ROOT,
    WorkerProcess,
    bus_env,
    run_cli,
    scratch_broker_env,
    terminate,
)

WAIT = 120.0  # seconds any one start may take on a busy two-core machine
SESSION_TIMEOUT = 6.0  # the workers' session timeout (the setting's minimum): a short zombie
RECOVERY_TIMEOUT = 45.0  # unready this long, a worker exits 70 and is started again


@dataclass(frozen=True)
class Ports:
    """Where this run listens: brokers on cluster..cluster+2 (controllers +100), serve on serve."""

    cluster: int
    serve: int

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.cluster + index}" for index in range(3))


@dataclass
class Exit:
    """A worker's exit as its supervisor saw it."""

    slot: str
    code: int
    at: float


class Supervised:
    """Two workers in one group; any that exits is started again in its place."""

    def __init__(self, env: dict[str, str], run_dir: Path, app_id: str,
                 slots: tuple[str, ...] = ("a", "b")) -> None:
        self.workers: dict[str, WorkerProcess] = {}
        for slot in slots:
            log_dir = run_dir / f"worker-{slot}"
            log_dir.mkdir(parents=True, exist_ok=True)
            self.workers[slot] = WorkerProcess(env, log_dir / "worker.log", app_id=app_id)
        self.exits: list[Exit] = []
        self.restarts = 0
        self.failures: list[str] = []  # restarts that did not come up (retried)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="chaos-supervisor", daemon=True)

    def start(self) -> None:
        for worker in self.workers.values():
            assert worker.process is None
            worker.start(WAIT)
        self._thread.start()

    def pid(self, slot: str) -> int:
        process = self.workers[slot].process
        assert process is not None
        return process.pid

    def _watch(self) -> None:
        while not self._done.wait(0.5):
            for slot, worker in self.workers.items():
                process = worker.process
                if process is None or process.poll() is None:
                    continue
                self.exits.append(Exit(slot, process.returncode, time.monotonic()))
                try:
                    worker.start(WAIT)
                except AssertionError as exc:  # exited again at once, or slow: next round
                    self.failures.append(f"{slot}: {str(exc)[:300]}")
                self.restarts += 1

    def wait_restarted(self, slot: str, pid: int, timeout: float = WAIT) -> None:
        """Wait until the supervisor replaced the process ``pid`` of ``slot`` by a ready one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            worker = self.workers[slot]
            if worker.process is not None and worker.process.pid != pid \
                    and worker.readiness() == 200:
                return
            time.sleep(0.5)
        raise AssertionError(f"worker {slot} not restarted within {timeout:.0f}s:\n"
                             f"{self.workers[slot].log_tail()}")

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=WAIT)
        for worker in self.workers.values():
            if worker.process is not None and worker.process.poll() is None:
                os.kill(worker.process.pid, signal.SIGCONT)  # a paused one cannot stop
            worker.stop()


@dataclass
class Serve:
    """`advisering serve` (ingest and inbox) on a fixed port, restartable in place."""

    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    exit_codes: list[int] = field(default_factory=list)

    def start(self, timeout: float = WAIT) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "advisering.cli", "serve"],
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz",
                                            timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"serve not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
            self.exit_codes.append(self.process.returncode)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@dataclass
class System:
    """Everything one chaos run starts, with the settings the oracle must share."""

    ports: Ports
    run_dir: Path
    settings: Settings  # the workers' pseudonym key, rules, topics and state limits
    cluster_env: dict[str, str]
    env: dict[str, str]
    keys: dict[str, str]
    app_id: str
    inbox_group: str
    faults: ClusterFaults
    serve: Serve
    workers: Supervised

    @property
    def bootstrap(self) -> str:
        return self.ports.bootstrap

    @property
    def inbox_db(self) -> Path:
        return Path(self.env["ADVISERING_INBOX_DB"])

    def start_cluster(self) -> None:
        started = run_cli(self.cluster_env, "kafka", "start", "--brokers", "3", "--fresh",
                          timeout=300)
        assert started.returncode == 0, started.stdout + started.stderr
        # The production topic values (replication 3, min ISR 2): no override on a cluster.
        applied = run_cli(self.env, "topics", "apply", timeout=180)
        assert applied.returncode == 0, applied.stdout + applied.stderr

    def start(self) -> None:
        self.start_cluster()
        self.serve.start()
        self.workers.start()

    def stop(self) -> None:
        self.workers.stop()
        self.serve.stop()
        run_cli(self.cluster_env, "kafka", "stop", timeout=180)


def build_system(ports: Ports, run_dir: Path, producer_timeout: float = 60.0) -> System:
    """The processes of one run (not started yet), all state inside ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    sources = run_dir / "sources.yaml"
    keys = write_demo_sources(sources, load_vocabulary(ROOT / "topics"))
    app_id, inbox_group = "chaos-worker", "chaos-inbox"
    env = bus_env(ports.bootstrap,
                  ADVISERING_SOURCES_FILE=str(sources),
                  ADVISERING_WORKER_REPLICATION_FACTOR="3",
                  ADVISERING_WORKER_SESSION_TIMEOUT=str(SESSION_TIMEOUT),
                  ADVISERING_WORKER_PRODUCER_TIMEOUT=str(producer_timeout),
                  # a recovery that hangs ends the worker (exit 70) and its restart
                  ADVISERING_WORKER_RECOVERY_TIMEOUT=str(RECOVERY_TIMEOUT),
                  ADVISERING_WORKER_COMMIT_HOLE_SECONDS="5",
                  ADVISERING_CITIZEN_MAX_OPEN_CASES=str(MAX_OPEN_CASES),
                  ADVISERING_SERVE_PORT=str(ports.serve),
                  ADVISERING_TOKEN_SECRET=secrets.token_hex(32),
                  ADVISERING_INBOX_DB=str(run_dir / "inbox.sqlite3"),
                  ADVISERING_INBOX_GROUP=inbox_group)
    cluster_env = scratch_broker_env(ports.cluster, run_dir / "cluster")
    cluster_settings = Settings(bootstrap_servers=ports.bootstrap, kafka_port=ports.cluster,
                                kafka_state_dir=run_dir / "cluster")
    settings = Settings(pseudonym_key=env["ADVISERING_PSEUDONYM_KEY"],
                        rules_dir=ROOT / "rules", topics_dir=ROOT / "topics",
                        bootstrap_servers=ports.bootstrap,
                        citizen_max_open_cases=MAX_OPEN_CASES)
    return System(ports, run_dir, settings, cluster_env, env, keys, app_id, inbox_group,
                  ClusterFaults(LocalCluster(cluster_settings)),
                  Serve(env, ports.serve, run_dir / "serve.log"),
                  Supervised(env, run_dir, app_id))
