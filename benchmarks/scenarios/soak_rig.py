"""What the soak runs on: a three-node cluster, `advisering serve`, two workers in one group.

Everything here is started by the benchmark and stopped by :meth:`Rig.close`
(on a normal end, on an error and on Ctrl-C/SIGTERM). The serve and worker
processes also get SIGTERM should the benchmark itself die (Linux prctl); the
Kafka JVMs run in sessions of their own (they must survive a terminal's
Ctrl-C until the benchmark stops them in order), so a benchmark killed with
SIGKILL leaves them running: the command that stops them is printed at start.
Nothing is ever restarted: a process that exits is reported by the sampler.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import ROOT, log
from harness.children import Subprocess, advisering_env

from advisering.dev.kafka_cluster import LocalCluster
from advisering.dev.sim_publish import load_api_keys, register_sources
from advisering.http.processes import die_with_parent
from advisering.kafka.topics import default_vocabulary
from advisering.rulebook.signing import dev_key_env
from advisering.settings import Settings
from scenarios.ingest_server import Server


class Worker(Subprocess):
    """An `advisering worker` that gets SIGTERM when the benchmark dies."""

    def start(self) -> None:
        with self.log_path.open("ab") as handle:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=handle,
                                            stderr=subprocess.STDOUT, cwd=ROOT,
                                            preexec_fn=die_with_parent)  # noqa: PLW1509

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


def cluster_bootstrap(port: int) -> str:
    return ",".join(f"127.0.0.1:{port + index}" for index in range(3))


@dataclass
class Rig:
    """The processes under test, their settings and where their files are."""

    workdir: Path
    kafka_port: int
    serve_port: int
    app_id: str = field(default_factory=lambda: f"soak-{secrets.token_hex(4)}")
    pseudonym_key: str = field(default_factory=lambda: secrets.token_hex(32))
    token_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    cluster: LocalCluster | None = None
    serve: Server | None = None
    workers: list[Worker] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return cluster_bootstrap(self.kafka_port)

    @property
    def inbox_db(self) -> Path:
        return self.workdir / "inbox.sqlite3"

    @property
    def sources_file(self) -> Path:
        return self.workdir / "sources.yaml"

    def env(self, **variables: str) -> dict[str, str]:
        return advisering_env(self.bootstrap, self.pseudonym_key,
                              {"ADVISERING_SOURCES_FILE": str(self.sources_file),
                               **dev_key_env(self.workdir / "rules-keys"), **variables})

    def start_cluster(self) -> None:
        settings = Settings(kafka_port=self.kafka_port, kafka_state_dir=self.workdir / "cluster",
                            bootstrap_servers=self.bootstrap)
        self.cluster = LocalCluster(settings)
        log(f"starting the 3-node cluster at {self.bootstrap} (state in {self.workdir}/cluster);"
            f" should this benchmark be killed with SIGKILL, stop it with\n    "
            f"ADVISERING_KAFKA_PORT={self.kafka_port} ADVISERING_KAFKA_STATE_DIR="
            f"{self.workdir}/cluster {sys.executable} -m advisering.cli kafka stop")
        started = self.cluster.start(fresh=True)
        log(f"  {started.message} ({started.seconds:.0f}s)")

    def apply_topics(self) -> None:
        """`advisering topics apply` as declared: replication factor 3, min ISR 2."""
        done = subprocess.run([sys.executable, "-m", "advisering.cli", "topics", "apply"],
                              env=self.env(), cwd=ROOT, capture_output=True, text=True,
                              timeout=180, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"topics apply failed:\n{done.stdout}{done.stderr}")

    def register_sources(self) -> None:
        """The simulator's source systems with their grants; their API keys for the poster."""
        keys_file = self.workdir / "api-keys.yaml"
        register_sources(self.sources_file, keys_file, default_vocabulary(ROOT / "topics"),
                         dt.timedelta(hours=1))
        self.keys = load_api_keys(keys_file)

    def start_serve(self, timeout: float) -> None:
        env = self.env(ADVISERING_SERVE_PORT=str(self.serve_port),
                       ADVISERING_TOKEN_SECRET=self.token_secret,
                       ADVISERING_INBOX_DB=str(self.inbox_db),
                       ADVISERING_INBOX_GROUP=f"{self.app_id}-inbox")
        self.serve = Server(env=env, port=self.serve_port, log_path=self.workdir / "serve.log")
        self.serve.start()
        took = self.serve.wait_ready(timeout)
        log(f"  serve pid {self.serve.pid} ready on port {self.serve_port} after {took:.1f}s")

    def start_workers(self, count: int, extra_env: dict[str, str]) -> None:
        """``count`` workers in one group (one app id), web ports after serve's."""
        for number in range(1, count + 1):
            port = self.serve_port + number
            env = self.env(ADVISERING_WORKER_APP_ID=self.app_id,
                           ADVISERING_WORKER_WEB_PORT=str(port),
                           ADVISERING_WORKER_DATA_DIR=str(self.workdir / f"worker-{number}"),
                           **extra_env)
            worker = Worker(f"worker-{number}", [sys.executable, "-m", "advisering.cli",
                                                 "worker"], env,
                            self.workdir / f"worker-{number}.log", port)
            worker.start()
            self.workers.append(worker)

    def broker_pids(self) -> dict[str, int | None]:
        if self.cluster is None:
            return {}
        return {f"broker-{status.node.node_id}": status.pid for status in self.cluster.status()}

    def close(self, keep_data: bool) -> None:
        """Stop everything this rig started: workers together, then serve, then the cluster."""
        for worker in self.workers:  # all at once: one stopped first rebalances the other
            if worker.process is not None and worker.process.poll() is None:
                worker.process.terminate()
        for worker in self.workers:
            worker.stop()
        if self.serve is not None:
            self.serve.stop()
        if self.cluster is not None:
            began = time.monotonic()
            stopped = self.cluster.stop()
            log(f"  cluster stopped ({stopped} node(s) ran; {time.monotonic() - began:.0f}s)")
            if not keep_data:
                for node in self.cluster.nodes:
                    shutil.rmtree(node.data_dir, ignore_errors=True)
