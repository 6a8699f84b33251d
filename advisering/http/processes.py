"""`advisering serve` as several processes on one port (``ADVISERING_SERVE_PROCESSES`` > 1).

Why: one serve process is one event loop, so the HTTP ingest uses one core
however many the machine has; parsing, the CPR check, validation and
aiohttp's own work per request are Python on that loop.

How: this parent checks what it can (settings, a free port) and starts N
children, each `advisering serve` again with its index. Each child binds
the same host and port with ``SO_REUSEPORT``, so the kernel spreads new
connections over them (Linux: by a hash of the connection's addresses). The
parent serves nothing; it supervises:

- a child that exits without being asked (a crash, a kill, a failed start)
  makes the parent stop the others and exit non-zero (the child's own exit
  status when it gave one, else 70), so that the supervisor above (systemd,
  Kubernetes) restarts the whole set: there is never a serve running with
  fewer processes than configured;
- SIGTERM or SIGINT to the parent stops every child with SIGTERM (each
  finishes its requests and flushes its producer); a child still running
  after ``ADVISERING_SERVE_SHUTDOWN_GRACE`` is killed, and the parent then
  exits 128 + the signal's number, else 0.

The children run in a session of their own (a terminal's Ctrl-C reaches the
parent only, which stops them once) and get SIGTERM should the parent die
(Linux ``PR_SET_PDEATHSIG``): no child outlives its parent holding the port.

Metrics: every child counts into files in one directory (prometheus_client's
multiprocess mode), and ``/metrics`` in any child sums them, so whichever
process takes a scrape answers for all of them. The caseworker inbox (and
the delivery it runs) is refused with more than one process: it keeps its
state in one SQLite file and consumes the notifications in one consumer
group, and N copies of it against one file are not known to be safe.
Several inbox replicas are several serves (one process each) on one
PostgreSQL store (``advisering.inbox.postgres``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from advisering.log import get_logger
from advisering.settings import Settings

log = get_logger(__name__)

CRASH_EXIT = 70  # a child ended without being asked (as the worker's crash exit)
PR_SET_PDEATHSIG = 1
# Where prometheus_client's multiprocess mode keeps each process's values.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()  # looked up here, so that a new child only makes the system call


def die_with_parent() -> None:
    """In a new child, before it runs: SIGTERM when the parent dies (Linux prctl)."""
    prctl = getattr(_LIBC, "prctl", None)
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


class ServeSetupError(ValueError):
    """A setting or a port several serve processes cannot work with (the CLI's user error)."""


def check_supported(settings: Settings) -> None:
    """Refuse, before any child starts, what several processes cannot do."""
    if settings.token_secret is not None:
        raise ServeSetupError(
            f"ADVISERING_SERVE_PROCESSES={settings.serve_processes} runs the HTTP ingest "
            "only, but ADVISERING_TOKEN_SECRET turns on the caseworker inbox, which keeps "
            "its state in one SQLite file and must run as one process. Run the inbox in a "
            "serve of its own (ADVISERING_SERVE_PROCESSES=1, no ADVISERING_PSEUDONYM_KEY) "
            "and the ingest in another (no ADVISERING_TOKEN_SECRET); for several inbox "
            "replicas, run several such serves on one PostgreSQL store "
            "(ADVISERING_INBOX_DB=postgresql://...).")
    settings.pseudonym_key_bytes()  # the ingest needs the key: say so once, here


def check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on, before the children share it.

    SO_REUSEPORT would let a second set of processes of the same user join a
    port silently; a bind without it fails on any listener, whatever its options.
    """
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeSetupError(f"ADVISERING_SERVE_HOST {host!r} does not resolve: {exc}") from exc
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise ServeSetupError(f"cannot serve on {host}:{port}: {exc.strerror} (is another "
                                "serve running on that port?)") from exc


@dataclass
class _Signals:
    """SIGTERM/SIGINT remembered, and every signal (SIGCHLD too) waking a ``select``."""

    received: int | None = None
    _reader: socket.socket | None = None
    _writer: socket.socket | None = None
    _previous: dict[signal.Signals, object] = field(default_factory=dict)

    def fileno(self) -> int:
        assert self._reader is not None
        return self._reader.fileno()

    def drain(self) -> None:
        """Empty the wake-up socket (the bytes are signal numbers; the flag is what counts)."""
        assert self._reader is not None
        with contextlib.suppress(BlockingIOError):
            while self._reader.recv(512):
                pass

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Signals]:
        """The handlers and the wake-up socket, for as long as the parent supervises."""
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for stop in (signal.SIGTERM, signal.SIGINT):
            self._previous[stop] = signal.signal(stop, self._on_stop)
        # A handler of its own, so that a child's exit also writes to the socket.
        self._previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
        try:
            yield self
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            signal.set_wakeup_fd(previous_fd)
            self._reader.close()
            self._writer.close()


@dataclass
class Supervisor:
    """The parent: N `advisering serve` children on one port, stopped together."""

    settings: Settings
    metrics_dir: Path
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def command(self, index: int) -> list[str]:
        """A child's command line: this Python, `advisering serve` with its index."""
        return [sys.executable, "-m", "advisering.cli", "serve", "--as-process", str(index),
                "--metrics-dir", str(self.metrics_dir)]

    def start(self, index: int) -> subprocess.Popen[bytes]:
        """One child, in a session of its own, that dies with the parent."""
        env = dict(os.environ, **{METRICS_DIR_VARIABLE: str(self.metrics_dir)})
        child = subprocess.Popen(self.command(index), env=env, start_new_session=True,
                                 preexec_fn=die_with_parent)  # noqa: PLW1509 (no threads here)
        log.info("serve_process_started", process=index, pid=child.pid)
        return child

    def run(self) -> int:
        """Start the children, watch them, stop them; the parent's exit status."""
        signals = _Signals()
        with signals.installed():
            try:
                for index in range(self.settings.serve_processes):
                    if signals.received is not None:
                        break
                    self.children.append(self.start(index))
                return self._watch(signals)
            finally:
                self._kill_all()

    def _watch(self, signals: _Signals) -> int:
        while True:
            if signals.received is not None:
                return self._stop_on_request(signals)
            for index, child in enumerate(self.children):
                if child.poll() is not None:
                    return self._stop_after_exit(index, child, signals)
            select.select([signals], [], [])
            signals.drain()

    def _stop_on_request(self, signals: _Signals) -> int:
        signum = signals.received
        assert signum is not None
        log.info("serve_processes_stopping", signal=signal.Signals(signum).name)
        in_time = self._stop_all(signals)
        log.info("serve_processes_stopped", in_time=in_time)
        return 0 if in_time else 128 + signum

    def _stop_after_exit(self, index: int, child: subprocess.Popen[bytes],
                         signals: _Signals) -> int:
        code = child.returncode
        log.error("serve_process_exited", process=index, pid=child.pid, returncode=code,
                  action="stopping the other processes")
        self._stop_all(signals)
        return code if code > 0 else CRASH_EXIT

    def _stop_all(self, signals: _Signals) -> bool:
        """SIGTERM every running child and wait; True when all ended within the grace."""
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.serve_shutdown_grace
        while any(child.poll() is None for child in self.children):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            select.select([signals], [], [], left)
            signals.drain()
        return True

    def _kill_all(self) -> None:
        """SIGKILL whatever still runs (after the grace, or on the way out of an error)."""
        for child in self.children:
            if child.poll() is None:
                log.warning("serve_process_killed", pid=child.pid)
                child.kill()
            child.wait()


def run_processes(settings: Settings) -> int:
    """`advisering serve` with ``ADVISERING_SERVE_PROCESSES`` > 1: the supervising parent."""
    check_supported(settings)
    check_port_free(settings.serve_host, settings.serve_port)
    log.info("serve_processes_starting", processes=settings.serve_processes,
             host=settings.serve_host, port=settings.serve_port)
    with tempfile.TemporaryDirectory(prefix="advisering-serve-metrics-") as metrics_dir:
        return Supervisor(settings, Path(metrics_dir)).run()
