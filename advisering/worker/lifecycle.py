"""Crash means exit, SIGTERM means stop: the worker process's watchdog.

mode (under Faust) handles a crash by marking every service crashed and
then stopping them from the main loop; that stop can hang (a producer
flushing to a broker that refuses or is gone, a consumer waiting for a
commit), and a SIGTERM during it does nothing, as mode's signal handler only
calls the same ``stop()`` again. The process then lives on, processes
nothing and holds its web port. A supervisor cannot restart what does not
exit.

The :class:`Watchdog` is a plain thread, independent of the event loop. It
notices a crash (:func:`faust_door.crashed`) and a stop signal (told by the
worker's signal hook), lets the graceful stop run, and ends the process with
``os._exit`` when that does not finish in time:

* crash: exit :data:`EXIT_CRASHED` (70) once the rules watcher stopped and
  Faust's stop finished, at the latest ``worker_crash_exit_delay +
  worker_crash_stop_timeout`` seconds after the crash;
* SIGTERM/SIGINT: exit 0 after a clean stop, or ``128 + signal`` (143 for
  SIGTERM) when the stop did not finish within ``worker_shutdown_grace``
  (70 if the worker had crashed);
* unready (joining its group, rebalancing, recovering its table) for longer
  than ``worker_recovery_timeout``: exit 70 at once. Faust's table recovery
  can hang after a rebalance, waiting for changelog records that never come
  (docs/operators.md); the process then holds its partitions and processes
  nothing, which only a restart ends.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import faust

from advisering import metrics
from advisering.log import get_logger
from advisering.settings import Settings
from advisering.worker import faust_door

log = get_logger(__name__)

EXIT_OK = 0
#: The worker could not start (for example: Kafka unreachable at start-up).
EXIT_FAILED = 1
#: The Faust app crashed (EX_SOFTWARE): a supervisor restarts it.
EXIT_CRASHED = 70
SIGNAL_EXIT_BASE = 128
#: How long a forced exit waits for the worker's threads to stop.
THREADS_STOP_SECONDS = 2.0


@dataclass
class WorkerStatus:
    """What ``/readyz`` reports besides Faust's own state."""

    watcher_alive: Callable[[], bool] | None = None

    def watcher_up(self) -> bool:
        """True unless the rules watcher was started and has ended."""
        return self.watcher_alive is None or self.watcher_alive()


def tables_ready(app: faust.App) -> bool:
    """True once the app is in its group and its table recovered (not rebalancing)."""
    rebalancing, recovering, recovered = faust_door.readiness(app)
    return not rebalancing and not recovering and recovered


class Watchdog:
    """Watches one worker process for a crash, a stop that takes too long, or a stuck recovery."""

    def __init__(self, app: faust.App, settings: Settings, stop_threads: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic,
                 hard_exit: Callable[[int], None] = os._exit,
                 ready: Callable[[], bool] | None = None) -> None:
        self.app = app
        self.recovery_timeout = settings.worker_recovery_timeout
        self._ready = ready if ready is not None else lambda: tables_ready(app)
        self.grace = settings.worker_shutdown_grace
        self.crash_delay = settings.worker_crash_exit_delay
        self.crash_timeout = settings.worker_crash_stop_timeout
        self._stop_threads = stop_threads
        self._clock = clock
        self._hard_exit = hard_exit
        self.crashed_at: float | None = None
        self.signal_at: float | None = None
        self.signum = 0
        self.exit_by: tuple[float, int] | None = None
        self.unready_since: float | None = clock()
        self._wake = threading.Event()
        self._threads_stopped = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self) -> None:
        """Start the watchdog's thread."""
        self._thread.start()

    def on_signal(self, signum: int) -> None:
        """A stop signal arrived (called in a signal handler: only record it)."""
        if self.signal_at is None:
            self.signal_at = self._clock()
            self.signum = signum
        self._wake.set()

    def check(self) -> int | None:
        """Notice a crash; the exit code to force when a bound ran out, else None."""
        now = self._clock()
        if self.exit_by is not None:
            return self.exit_by[1] if now >= self.exit_by[0] else None
        if self.crashed_at is None and faust_door.crashed(self.app):
            self.crashed_at = now
            metrics.WORKER_CRASHED.set(1)
            reason = faust_door.crash_reason(self.app)
            log.critical("worker_crashed", reason=type(reason).__name__ if reason else None,
                         exit_code=EXIT_CRASHED)
        if self.crashed_at is not None and now >= (
                self.crashed_at + self.crash_delay + self.crash_timeout):
            return EXIT_CRASHED
        if self.signal_at is not None and now >= self.signal_at + self.grace:
            return EXIT_CRASHED if self.crashed_at is not None else SIGNAL_EXIT_BASE + self.signum
        if self.crashed_at is None and self.signal_at is None and self._unready_too_long(now):
            self.crashed_at = now
            metrics.WORKER_CRASHED.set(1)
            log.critical("worker_unready_too_long", seconds=self.recovery_timeout,
                         exit_code=EXIT_CRASHED)
            return EXIT_CRASHED
        return None

    def _unready_too_long(self, now: float) -> bool:
        """Unready without a break for longer than ``worker_recovery_timeout``."""
        if self._ready():
            self.unready_since = None
            return False
        if self.unready_since is None:
            self.unready_since = now
        return now >= self.unready_since + self.recovery_timeout

    def _run(self) -> None:
        while True:
            code = self.check()
            if code is not None:
                self.force_exit(code)
                return
            self._wake.wait(0.2)
            self._wake.clear()

    def force_exit(self, code: int) -> None:
        """The graceful stop did not finish in time: stop the threads (bounded), then exit."""
        log.error("worker_forced_exit", exit_code=code,
                  after="crash" if self.crashed_at is not None else "signal")
        stopper = threading.Thread(target=self.stop_threads, name="stop-threads", daemon=True)
        stopper.start()
        stopper.join(THREADS_STOP_SECONDS)
        sys.stderr.flush()
        self._hard_exit(code)

    def stop_threads(self) -> None:
        """Stop the worker's own threads (the rules watcher), once."""
        if self._threads_stopped.acquire(blocking=False):
            try:
                self._stop_threads()
            except Exception as exc:  # noqa: BLE001 - the process is exiting anyway
                log.error("worker_threads_stop_failed", error=type(exc).__name__)

    def finish(self) -> int:
        """In the main thread, after Faust's worker returned: stop threads, the exit code.

        A crashed worker waits out ``worker_crash_exit_delay`` (unless a stop
        signal comes first); the loop has closed, so the signal handlers are
        set again to hear of that signal.
        """
        self.check()
        for signum in faust_door.STOP_SIGNALS:
            signal.signal(signum, lambda number, _frame: self.on_signal(number))
        while (self.crashed_at is not None and self.signal_at is None
               and self._clock() < self.crashed_at + self.crash_delay):
            self._wake.wait(0.2)
            self._wake.clear()
        self.stop_threads()
        code = EXIT_CRASHED if self.crashed_at is not None else EXIT_OK
        # Should the interpreter's own shutdown hang (a thread that is not a
        # daemon), the watchdog still ends the process with this code.
        self.exit_by = (self._clock() + THREADS_STOP_SECONDS * 2, code)
        log.info("worker_stopped", exit_code=code)
        return code
