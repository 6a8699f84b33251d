"""Running the real worker and publisher against the test broker, for integration tests."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from advisering.dev.demo import write_demo_sources
from advisering.kafka.topics import CASE_EVENTS, citizen_topic_name, load_vocabulary
from advisering.rulebook.signing import dev_key_env
from advisering.testing import kafka_at, wait_until_idle
from tests.conftest import STATE_DIR
from tests.isolation import inherited

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@cache
def demo_sources_file() -> Path:
    """One sources file per test session: the demo's source systems with their real grants.

    The worker refuses to start without a sources file, and refuses events of
    sources it does not know; the tests publish the demo's and simulator's sources.
    """
    path = Path(tempfile.mkdtemp(prefix="sources-", dir=STATE_DIR)) / "sources.yaml"
    write_demo_sources(path, load_vocabulary(ROOT / "topics"))
    return path


@cache
def rules_key_env() -> dict[str, str]:
    """One rule-signing key pair per test session (both settings), in its state directory.

    Workers refuse to start without verify keys and `rules deploy` without the
    signing key; every process of a session shares the pair, so the sets one
    test deploys are accepted by the workers another starts.
    """
    return dev_key_env(Path(tempfile.mkdtemp(prefix="rules-keys-", dir=STATE_DIR)))


def bus_env(bootstrap: str, **extra: str) -> dict[str, str]:
    """Environment for advisering processes: the test broker, a fresh pseudonym key, the
    demo's sources (ADVISERING_SOURCES_FILE) unless ``extra`` names another file, the
    session's rule-signing keys, and the test session's state directory
    (tests/isolation.py), never the user's cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISERING_")}
    env.update(inherited())
    env.update({
        "ADVISERING_BOOTSTRAP_SERVERS": bootstrap,
        "ADVISERING_PSEUDONYM_KEY": secrets.token_hex(32),
        "ADVISERING_RULES_DIR": str(ROOT / "rules"),
        "ADVISERING_TOPICS_DIR": str(ROOT / "topics"),
        "ADVISERING_LOG_FORMAT": "json",
        "ADVISERING_WORKER_REPLICATION_FACTOR": "1",
        "ADVISERING_WORKER_COMMIT_INTERVAL": "0.5",
        "ADVISERING_WORKER_SESSION_TIMEOUT": "6",
        "ADVISERING_SOURCES_FILE": str(demo_sources_file()),
        **rules_key_env(),
    })
    env.update(extra)
    return env


def scratch_broker_env(port: int, state_dir: Path) -> dict[str, str]:
    """Environment for a second local broker on ``port`` with its own state directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISERING_")}
    env["ADVISERING_KAFKA_PORT"] = str(port)
    env["ADVISERING_KAFKA_STATE_DIR"] = str(state_dir)
    if "ADVISERING_KAFKA_CACHE_DIR" in os.environ:
        env["ADVISERING_KAFKA_CACHE_DIR"] = os.environ["ADVISERING_KAFKA_CACHE_DIR"]
    return env


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "advisering.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)


def write_jsonl(path: Path, events: list[Any]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    return path


@dataclass
class WorkerProcess:
    """An `advisering worker` subprocess with its own app id, web port and data dir."""

    env: dict[str, str]
    log_path: Path
    app_id: str = field(default_factory=lambda: f"worker-test-{uuid.uuid4().hex[:8]}")
    web_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        env = dict(self.env, ADVISERING_WORKER_APP_ID=self.app_id,
                   ADVISERING_WORKER_WEB_PORT=str(self.web_port),
                   ADVISERING_WORKER_DATA_DIR=str(self.log_path.parent / f"{self.app_id}-data"))
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "advisering.cli", "worker"], env=env, stdout=log,
                stderr=subprocess.STDOUT, cwd=ROOT,
            )
        self.wait_ready(timeout)

    def readiness(self) -> int | None:
        return self.page_status("/readyz")

    def page_status(self, path: str) -> int | None:
        """The HTTP status of one of the worker's pages, or None when nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}",
                                        timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited:\n{self.log_tail()}")
            if self.readiness() == 200:
                return
            time.sleep(0.5)
        raise AssertionError(f"worker not ready within {timeout}s:\n{self.log_tail()}")

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return bytes(response.read()).decode()

    def wait_idle(self, bootstrap: str, timeout: float = 120.0) -> None:
        """Wait until the worker's group committed everything; on timeout, show its log."""
        try:
            wait_until_idle(kafka_at(bootstrap), self.app_id,
                            [CASE_EVENTS, citizen_topic_name(self.app_id)], timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\nworker log:\n{self.log_tail()}") from exc

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a subprocess and wait for it; SIGKILL it if it outlives 30 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
