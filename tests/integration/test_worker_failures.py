"""Crash means exit, SIGTERM means stop: a real worker process against the real broker.

A genuine Kafka refusal: ``max.message.bytes`` of advisering.notifications is
lowered on the test broker so the worker's notification batches are refused
(MessageSizeTooLargeError), which makes the app crash; the config is
restored afterwards.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from advisering.dev.scenario import demo_scenario
from advisering.kafka.topics import NOTIFICATIONS
from tests.integration.bus import WorkerProcess, bus_env, run_cli, write_jsonl

EXIT_CRASHED = 70
GRACE = 8.0


@contextlib.contextmanager
def notifications_refused(bootstrap: str) -> Iterator[None]:
    """advisering.notifications refuses every batch while inside; the default comes back after."""
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def alter(operation: AlterConfigOpType, value: str | None) -> None:
        entry = ConfigEntry("max.message.bytes", value, incremental_operation=operation)
        resource = ConfigResource("topic", NOTIFICATIONS, incremental_configs=[entry])
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(30)

    alter(AlterConfigOpType.SET, "128")
    try:
        yield
    finally:
        alter(AlterConfigOpType.DELETE, None)


def publish_demo(worker: WorkerProcess, tmp_path: Path) -> None:
    events = [event for wave in demo_scenario() for event in wave]
    result = run_cli(worker.env, "publish", str(write_jsonl(tmp_path / "demo.jsonl", events)))
    assert result.returncode == 0, result.stdout + result.stderr


def health(worker: WorkerProcess) -> int | None:
    return worker.page_status("/healthz")


def wait_for_log(worker: WorkerProcess, text: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in worker.log_path.read_text(errors="replace"):
            return
        assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
        time.sleep(0.3)
    raise AssertionError(f"no {text!r} within {timeout}s:\n{worker.log_tail()}")


def port_is_free(port: int) -> bool:
    """Whether a new web server (SO_REUSEADDR, as aiohttp's) can listen on ``port``."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


def exit_code(worker: WorkerProcess, timeout: float) -> int | None:
    assert worker.process is not None
    try:
        return worker.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def test_a_refused_send_makes_the_worker_exit_non_zero(bootstrap: str, tmp_path: Path) -> None:
    """Kafka refuses the notifications: the app crashes and the process exits 70, port freed."""
    env = bus_env(bootstrap, ADVISERING_WORKER_CRASH_STOP_TIMEOUT="5")
    assert run_cli(env, "topics", "apply", "--replication-factor", "1").returncode == 0
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    try:
        with notifications_refused(bootstrap):
            publish_demo(worker, tmp_path)
            code = exit_code(worker, timeout=90)
        log = worker.log_tail(20_000)
        assert code == EXIT_CRASHED, log
        assert '"event": "send_failed"' in log
        assert '"event": "worker_crashed"' in log
        assert port_is_free(worker.web_port)
    finally:
        worker.stop()


def test_sigterm_stops_a_crashed_worker_within_its_grace(bootstrap: str, tmp_path: Path) -> None:
    """A crashed worker held alive (long crash-exit delay) fails /healthz and obeys SIGTERM."""
    env = bus_env(bootstrap, ADVISERING_WORKER_CRASH_EXIT_DELAY="3600",
                  ADVISERING_WORKER_SHUTDOWN_GRACE=str(GRACE))
    assert run_cli(env, "topics", "apply", "--replication-factor", "1").returncode == 0
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    assert worker.process is not None
    try:
        assert health(worker) == 200
        with notifications_refused(bootstrap):
            publish_demo(worker, tmp_path)
            wait_for_log(worker, '"event": "worker_crashed"')
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and health(worker) == 200:
            time.sleep(0.2)
        # Unhealthy to a liveness probe either way: 503 while Faust stops its services,
        # no answer once its web server has stopped (the process is still held alive).
        assert health(worker) in (503, None)
        assert exit_code(worker, timeout=3) is None  # the delay holds it; nothing else ends it
        worker.process.send_signal(signal.SIGTERM)
        code = exit_code(worker, timeout=GRACE + 5)  # the grace plus the process's teardown
        assert code == EXIT_CRASHED, worker.log_tail()
        assert port_is_free(worker.web_port)
    finally:
        worker.stop()


def test_sigterm_stops_a_healthy_worker_with_0_and_frees_its_port(
    bootstrap: str, tmp_path: Path,
) -> None:
    """A clean SIGTERM stop exits 0 and the next worker can take the web port."""
    env = bus_env(bootstrap, ADVISERING_WORKER_SHUTDOWN_GRACE=str(GRACE))
    assert run_cli(env, "topics", "apply", "--replication-factor", "1").returncode == 0
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    assert worker.process is not None
    try:
        worker.process.send_signal(signal.SIGTERM)
        code = exit_code(worker, timeout=GRACE + 5)
        assert code == 0, worker.log_tail()
        assert '"event": "worker_stopped"' in worker.log_tail()
        assert port_is_free(worker.web_port)
    finally:
        worker.stop()
