"""The one door to faust's, mode's and aiokafka's insides.

Whatever advisering needs from these libraries beyond their documented
surface is reached through this module, so that a new library version that
moves it breaks one file and its test (``tests/unit/test_faust_door.py``),
not the worker in production. Today that is:

* whether the app crashed, and why (``mode.Service.crashed`` /
  ``crash_reason``, set synchronously by ``Service.crash``);
* the readiness facts (``App.rebalancing``, ``App.in_recovery``,
  ``TableManager.recovery.completed``);
* a hook on the worker's stop signals. mode's ``Worker`` handles SIGTERM and
  SIGINT with ``loop.add_signal_handler`` (asyncio writes the signal number
  to its wake-up fd and calls mode's handler in the loop). After a crash,
  mode's own stop may hang and a second signal then does nothing, so the
  worker also needs to hear of the signal outside the loop: the Python-level
  handler asyncio installs (a no-op) is replaced by one that tells the
  watchdog; the C-level handler still writes to the wake-up fd, so mode's
  loop handler still runs;
* Faust's aiokafka producer (``Producer._ensure_producer``).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import faust
from faust.worker import Worker

#: The signals mode's worker stops on.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def crashed(app: faust.App) -> bool:
    """True from the moment ``app.crash(...)`` was called (mode's crashed event is set)."""
    return bool(app.crashed)


def crash_reason(app: faust.App) -> BaseException | None:
    """The exception the app crashed with, if it did."""
    reason = app.crash_reason
    return reason if isinstance(reason, BaseException) else None


def readiness(app: faust.App) -> tuple[bool, bool, bool]:
    """(rebalancing, recovering, recovered) of the app's consumer and tables."""
    recovering = bool(getattr(app, "in_recovery", False))
    recovery = getattr(app.tables, "recovery", None)
    recovered = recovery is not None and recovery.completed.is_set()
    return bool(app.rebalancing), recovering, recovered


def aiokafka_producer(app: faust.App) -> Any:
    """Faust's aiokafka producer (started by the app before the agents)."""
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


SignalCallback = Callable[[int], None]


def worker_class(on_signal: SignalCallback) -> type[Worker]:
    """A Faust ``Worker`` that also tells ``on_signal`` of every SIGTERM/SIGINT.

    ``on_signal`` runs in the main thread (a Python signal handler) and must
    only record the signal; mode's own handler then stops the worker in the
    loop as before.
    """

    class SignalledWorker(Worker):
        def install_signal_handlers(self) -> None:
            super().install_signal_handlers()
            for signum in STOP_SIGNALS:
                signal.signal(signum, _chained(on_signal))

    return SignalledWorker


def _chained(on_signal: SignalCallback) -> Callable[[int, Any], None]:
    def handler(signum: int, _frame: Any) -> None:
        on_signal(signum)

    return handler
