"""The thread that polls a Kafka client: one loop for the producer, the inbox and the watcher.

confluent-kafka calls delivery callbacks and hands out records only when
polled, so each long-lived client has a daemon thread calling one ``step``
until it is stopped. A step is expected to handle its own errors; should one
escape anyway, the thread logs it, ends, and :attr:`PollThread.alive` says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from advisering.log import get_logger

log = get_logger(__name__)


class PollThread:
    """A named daemon thread calling ``step`` until :meth:`stop`; ``on_end`` runs as it ends."""

    def __init__(self, name: str, step: Callable[[], object], *,
                 on_end: Callable[[], None] | None = None) -> None:
        self.name = name
        self._step = step
        self._on_end = on_end
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def alive(self) -> bool:
        """True while the thread runs (False before start and after it ended)."""
        return self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()

    def pause(self, seconds: float) -> None:
        """Wait between steps (a back-off), returning early when stopped."""
        self._stopped.wait(seconds)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end and wait for it; safe to call twice and from the thread."""
        self._stopped.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                self._step()
        except BaseException as exc:  # noqa: BLE001 - a step handles its errors; log why the thread ends
            log.critical("poll_thread_ended", thread=self.name, error=type(exc).__name__)
        finally:
            if self._on_end is not None:
                self._on_end()
