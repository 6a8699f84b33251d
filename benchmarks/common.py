"""What the benchmarks share: child processes, /proc readings, profiles, results.

Imported as ``common`` by the scripts beside it: Python puts a script's own
directory first on ``sys.path``, so ``.venv/bin/python benchmarks/pipeline.py``
finds this module without a package.
"""

from __future__ import annotations

import abc
import datetime as dt
import io
import os
import platform
import pstats
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import orjson

from advisering.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PROFILED = ROOT / "benchmarks" / "profiled.py"
PROFILE_START = signal.SIGRTMIN  # see benchmarks/profiled.py
PROFILE_STOP = signal.SIGRTMIN + 1
TICK = os.sysconf("SC_CLK_TCK")
IDLE = "idle (epoll wait)"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------
# /proc
# ---------------------------------------------------------------------------

def stat_cpu_seconds(path: Path) -> float | None:
    """User + system CPU seconds from a /proc .../stat file (None when it is gone)."""
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def broker_pid(bootstrap: str) -> int | None:
    """The pid of the local broker started by `advisering kafka start` on this port."""
    host, _, port = bootstrap.partition(",")[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        return None
    pid_file = Settings(kafka_port=int(port)).broker_state_dir / "broker.pid"
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------

def child_env(variables: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without its ADVISERING_* settings, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISERING_")}
    env.update(variables or {})
    return env


def advisering_env(bootstrap: str, pseudonym_key: str,
                   variables: dict[str, str]) -> dict[str, str]:
    """The environment of an `advisering` command against ``bootstrap``, quiet, JSON logs."""
    return child_env({
        "ADVISERING_BOOTSTRAP_SERVERS": bootstrap,
        "ADVISERING_PSEUDONYM_KEY": pseudonym_key,
        "ADVISERING_RULES_DIR": str(ROOT / "rules"),
        "ADVISERING_TOPICS_DIR": str(ROOT / "topics"),
        "ADVISERING_LOG_FORMAT": "json",
        "ADVISERING_LOG_LEVEL": "WARNING",
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


# ---------------------------------------------------------------------------
# Profiles (cProfile files) by category
# ---------------------------------------------------------------------------

Needles = tuple[tuple[str, str], ...]


def categorise(filename: str, function: str, by_file: Needles, by_builtin: Needles) -> str:
    """The category of a profiled function: the first needle found in its file or name."""
    if filename == "~":
        if "epoll" in function or "select" in function:
            return IDLE
        for needle, name in by_builtin:
            if needle in function:
                return name
        return "builtins"
    for needle, name in by_file:
        if needle in filename:
            return name
    return "other python"


@dataclass(frozen=True)
class ProfileRead:
    raw: dict[Any, Any]
    by_category: Counter[str]  # tottime seconds
    total: float
    busy: float  # total but the idle waits
    top_tottime: str
    cumulative_selected: str


def read_profile(path: Path, by_file: Needles, by_builtin: Needles, top: int,
                 selected: str) -> ProfileRead:
    """Tottime by category, the ``top`` rows by tottime and the ``selected`` by cumulative."""
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_category: Counter[str] = Counter()
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        by_category[categorise(filename, function, by_file, by_builtin)] += tottime
    total = sum(by_category.values())
    busy = total - by_category.get(IDLE, 0.0)
    out = io.StringIO()
    pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(top)
    cumulative = io.StringIO()
    pstats.Stats(str(path), stream=cumulative).sort_stats("cumulative").print_stats(selected)
    return ProfileRead(raw, by_category, total, busy, out.getvalue(), cumulative.getvalue())


def share_of_busy(name: str, seconds: float, busy: float) -> float | None:
    return round(seconds / busy, 3) if name != IDLE else None


def share_cell(row: dict[str, Any]) -> str:
    return f"{row['share_of_busy']:6.1%}" if row["share_of_busy"] is not None else "     -"


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------

def run_info(script: str, **host: Any) -> dict[str, Any]:
    """When, the command line and the host of this run (``host``: more about the host)."""
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", script, *sys.argv[1:]]),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "platform": platform.platform(), **host},
    }


def write_results(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
