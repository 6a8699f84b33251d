"""`advisering serve` as the ingest benchmark's subprocess, always stopped afterwards.

The child gets SIGTERM when the benchmark dies, even by SIGKILL (Linux
prctl), and SIGTERM to the benchmark acts as Ctrl-C, so the finally blocks
stop the server.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ROOT, log
from harness.children import PROFILE_START, ChildProcess, advisering_env, python_argv, running
from harness.procfs import listening_sockets
from prometheus_client.parser import text_string_to_metric_families

from advisering.http.processes import die_with_parent

# Runs `advisering serve` with another GIL switch interval (a variant, see --switch-interval).
SWITCH_INTERVAL_BOOT = (
    "import runpy, sys; sys.setswitchinterval(float(sys.argv.pop(1))); "
    "runpy.run_module('advisering.cli', run_name='__main__', alter_sys=True)"
)


def _terminate(signum: int, _frame: Any) -> None:
    """SIGTERM as Ctrl-C, so that the finally blocks stop the server."""
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_signals() -> None:
    """SIGTERM (and SIGINT when ignored, as in the background) stop the benchmark cleanly."""
    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background
        signal.signal(signal.SIGINT, _terminate)


@dataclass
class Server(ChildProcess):
    """`advisering serve` in a subprocess (optionally under benchmarks/profiled.py)."""

    env: dict[str, str]
    port: int
    log_path: Path
    profile_to: Path | None = None
    switch_interval: float | None = None  # sys.setswitchinterval in the server
    process: subprocess.Popen[bytes] | None = None
    processes: int = 1  # ADVISERING_SERVE_PROCESSES: a parent and its children when > 1

    @property
    def label(self) -> str:
        return "the server"

    @property
    def http_port(self) -> int:
        return self.port

    def start(self) -> None:
        args = ["-m", "advisering.cli", "serve"]
        if self.switch_interval is not None:
            args = ["-c", SWITCH_INTERVAL_BOOT, str(self.switch_interval), "serve"]
        env = dict(self.env, ADVISERING_SERVE_PROCESSES=str(self.processes))
        with self.log_path.open("ab") as handle:
            self.process = subprocess.Popen(python_argv(self.profile_to, *args), env=env,
                                            stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT,
                                            preexec_fn=die_with_parent)  # noqa: PLW1509

    def wait_ready(self, timeout: float) -> float:
        """Seconds until /readyz answered 200 and every process listens on the port."""
        began = time.monotonic()
        super().wait_ready(timeout)
        while listening_sockets(self.port) < self.processes:
            if time.monotonic() - began > timeout:
                raise TimeoutError(f"{self.label}: not all {self.processes} processes listen "
                                   f"on {self.port} after {timeout}s:\n{self.log_tail()}")
            self.check_alive()
            time.sleep(0.2)
        return time.monotonic() - began

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def produce_seconds(self) -> tuple[float, float]:
        """(sum, count) of advisering_ingest_produce_seconds from /metrics."""
        answer = self.get("/metrics")
        if answer is None or answer[0] != 200:
            return 0.0, 0.0
        total = count = 0.0
        for family in text_string_to_metric_families(answer[1].decode()):
            if family.name != "advisering_ingest_produce_seconds":
                continue
            for sample in family.samples:
                if sample.name.endswith("_sum"):
                    total = sample.value
                elif sample.name.endswith("_count"):
                    count = sample.value
        return total, count

    def profile(self, on: bool, timeout: float = 60.0) -> None:
        if on:
            if self.profile_to is not None and self.process is not None:
                self.process.send_signal(PROFILE_START)
            return
        self.write_profile(timeout, poll=0.3)


@contextmanager
def serving(server: Server, ready_timeout: float) -> Iterator[Server]:
    """``server`` started and ready (or the reason why not), stopped on the way out."""
    with running(server):
        took = server.wait_ready(ready_timeout)
        log(f"  server pid {server.pid} ({server.processes} process"
            f"{'es' if server.processes > 1 else ''}) ready on port {server.port} "
            f"after {took:.1f}s")
        yield server


def server_env(bootstrap: str, pseudonym_key: str, sources_file: Path, port: int,
               max_events: int) -> dict[str, str]:
    return advisering_env(bootstrap, pseudonym_key, {
        "ADVISERING_SOURCES_FILE": str(sources_file),
        "ADVISERING_SERVE_PORT": str(port),
        "ADVISERING_INGEST_MAX_EVENTS": str(max_events),
    })
