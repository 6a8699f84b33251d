"""Benchmarked child processes: environments, start, readiness, profiles, stop."""

from __future__ import annotations

import abc
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar, TypeVar

from advisering.rulebook.signing import dev_key_env
from harness import ROOT, log
from harness.procfs import cpu_seconds

PROFILED = ROOT / "benchmarks" / "profiled.py"
PROFILE_START = signal.SIGRTMIN  # see benchmarks/profiled.py
PROFILE_STOP = signal.SIGRTMIN + 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(variables: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without its ADVISERING_* settings, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISERING_")}
    env.update(variables or {})
    return env


@cache
def rules_key_env() -> dict[str, str]:
    """A throwaway rule-signing key pair for this run: workers refuse to start without one."""
    return dev_key_env(Path(tempfile.mkdtemp(prefix="advisering-bench-rules-keys-")))


def advisering_env(bootstrap: str, pseudonym_key: str,
                   variables: dict[str, str]) -> dict[str, str]:
    """The environment of an `advisering` command against ``bootstrap``, quiet, JSON logs.

    The rule-signing keys are this run's own (:func:`rules_key_env`) unless
    ``variables`` names others (the soak keeps them in its work directory).
    """
    return child_env({
        "ADVISERING_BOOTSTRAP_SERVERS": bootstrap,
        "ADVISERING_PSEUDONYM_KEY": pseudonym_key,
        "ADVISERING_RULES_DIR": str(ROOT / "rules"),
        "ADVISERING_TOPICS_DIR": str(ROOT / "topics"),
        "ADVISERING_LOG_FORMAT": "json",
        "ADVISERING_LOG_LEVEL": "WARNING",
        **rules_key_env(),
        **variables,
    })


def python_argv(profile_to: Path | None, *args: str) -> list[str]:
    """This Python with ``args``; under benchmarks/profiled.py when ``profile_to`` is set."""
    if profile_to is None:
        return [sys.executable, *args]
    return [sys.executable, str(PROFILED), str(profile_to), *args]


class ChildProcess(abc.ABC):
    """A benchmarked process with a web port and a log file (subclasses are dataclasses)."""

    HTTP_TIMEOUT: ClassVar[float] = 5.0
    STOP_TIMEOUT: ClassVar[float] = 20.0

    process: subprocess.Popen[bytes] | None
    log_path: Path
    profile_to: Path | None

    @property
    @abc.abstractmethod
    def label(self) -> str:
        """What the messages call it."""

    @property
    @abc.abstractmethod
    def http_port(self) -> int:
        """The port its /metrics or /readyz answer on."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the process and wait until it is ready."""

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.label} exited ({self.process.returncode}):\n"
                               f"{self.log_tail()}")

    def get(self, path: str) -> tuple[int, bytes] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}",
                                        timeout=self.HTTP_TIMEOUT) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), b""
        except OSError:
            return None

    def wait_ready(self, timeout: float) -> float:
        """Seconds until /readyz answered 200."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            self.check_alive()
            answer = self.get("/readyz")
            if answer is not None and answer[0] == 200:
                return time.monotonic() - began
            time.sleep(0.2)
        raise TimeoutError(f"{self.label} was not ready within {timeout}s:\n{self.log_tail()}")

    def write_profile(self, timeout: float, poll: float) -> None:
        """Have the child under benchmarks/profiled.py write its profile; wait for the file."""
        if self.profile_to is None or self.process is None:
            return
        self.profile_to.unlink(missing_ok=True)
        self.process.send_signal(PROFILE_STOP)
        deadline = time.monotonic() + timeout
        size = -1
        while time.monotonic() < deadline:  # written when its size stops changing
            current = self.profile_to.stat().st_size if self.profile_to.exists() else -1
            if current > 0 and current == size:
                return
            size = current
            time.sleep(poll)
        raise TimeoutError(f"{self.label}: no profile written to {self.profile_to}")

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` (default STOP_TIMEOUT) seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        timeout = self.STOP_TIMEOUT if timeout is None else timeout
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"  {self.label} did not stop in {timeout}s: killing it")
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


Child = TypeVar("Child", bound=ChildProcess)


@contextmanager
def running(child: Child) -> Iterator[Child]:
    """``child`` started, and stopped on the way out."""
    child.start()
    try:
        yield child
    finally:
        child.stop()


@contextmanager
def cleanup(action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` on the way out (after the worker inside has stopped)."""
    try:
        yield
    finally:
        action()


@dataclass
class Subprocess(ChildProcess):
    """A Faust worker subprocess (the advisering worker or the passthrough)."""

    HTTP_TIMEOUT = 2.0
    STOP_TIMEOUT = 60.0

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    web_port: int
    profile_to: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    profiling: bool = False

    @property
    def label(self) -> str:
        return self.name

    @property
    def http_port(self) -> int:
        return self.web_port

    def start(self) -> None:
        with self.log_path.open("ab") as handle:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=handle,
                                            stderr=subprocess.STDOUT, cwd=ROOT)

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.process.pid) if self.process is not None else None

    def profile_start(self) -> None:
        if self.profile_to is not None and self.process is not None and not self.profiling:
            self.process.send_signal(PROFILE_START)
            self.profiling = True

    def profile_stop(self, timeout: float = 60.0) -> None:
        if self.profiling:
            self.profiling = False
            self.write_profile(timeout, poll=0.5)
