"""The worker's watchdog: a crash or an overlong stop ends the process with the right code."""

from __future__ import annotations

import signal
from typing import Any

import faust
import pytest

from advisering.settings import Settings
from advisering.worker.lifecycle import EXIT_CRASHED, EXIT_OK, Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app() -> faust.App:
    return faust.App("advisering-watchdog-test", broker="kafka://127.0.0.1:1",
                     store="memory://")


def watchdog(app: faust.App, ready: list[bool] | None = None,
             **limits: Any) -> tuple[Watchdog, Clock, list[str], list[int]]:
    clock = Clock()
    stopped: list[str] = []
    exits: list[int] = []
    state = ready if ready is not None else [True]
    settings = Settings(**{"worker_shutdown_grace": 20.0, "worker_crash_stop_timeout": 5.0,
                           "worker_crash_exit_delay": 0.0, **limits})
    dog = Watchdog(app, settings, lambda: stopped.append("watcher"), clock=clock,
                   hard_exit=exits.append, ready=lambda: state[0])
    return dog, clock, stopped, exits


def test_a_worker_unready_past_the_recovery_timeout_exits_70(app: faust.App) -> None:
    """Unready (a recovery that never ends) for worker_recovery_timeout: exit 70 at once."""
    ready = [False]
    dog, clock, _, _ = watchdog(app, ready, worker_recovery_timeout=120.0)
    clock.now += 119.0
    assert dog.check() is None
    clock.now += 1.5
    assert dog.check() == EXIT_CRASHED


def test_a_worker_that_becomes_ready_between_rebalances_is_left_alone(app: faust.App) -> None:
    """Unready spells each shorter than the timeout, with ready time between, never exit."""
    ready = [False]
    dog, clock, _, _ = watchdog(app, ready, worker_recovery_timeout=120.0)
    for _ in range(5):
        ready[0] = False
        clock.now += 100.0
        assert dog.check() is None
        ready[0] = True
        assert dog.check() is None
        clock.now += 1.0


def test_a_fresh_app_that_never_joined_counts_as_unready(app: faust.App) -> None:
    """The default readiness is Faust's: an app that never recovered its table is unready."""
    dog = Watchdog(app, Settings(worker_recovery_timeout=10.0), lambda: None,
                   clock=Clock(), hard_exit=lambda _code: None)
    assert dog._ready() is False  # noqa: SLF001


def test_a_healthy_worker_is_left_alone(app: faust.App) -> None:
    """No crash, no signal: no exit however long it runs."""
    dog, clock, _, _ = watchdog(app)
    clock.now += 10_000
    assert dog.check() is None


async def test_a_crash_whose_stop_hangs_is_ended_with_70_after_the_bound(app: faust.App) -> None:
    """Crashed and not stopped within worker_crash_stop_timeout: forced exit 70, threads stopped."""
    dog, clock, stopped, exits = watchdog(app)
    await app.crash(RuntimeError("refused"))
    assert dog.check() is None  # noticed now; the graceful stop gets its time
    clock.now += 4.9
    assert dog.check() is None
    clock.now += 0.2
    code = dog.check()
    assert code == EXIT_CRASHED
    dog.force_exit(code)
    assert stopped == ["watcher"]
    assert exits == [EXIT_CRASHED]


async def test_the_crash_exit_delay_postpones_the_exit_but_not_a_signal(app: faust.App) -> None:
    """With a long crash-exit delay the worker stays; SIGTERM still ends it within the grace."""
    dog, clock, _, _ = watchdog(app, worker_crash_exit_delay=3600.0)
    await app.crash(RuntimeError("refused"))
    dog.check()
    clock.now += 600
    assert dog.check() is None
    dog.on_signal(signal.SIGTERM)
    clock.now += 19.9
    assert dog.check() is None
    clock.now += 0.2
    assert dog.check() == EXIT_CRASHED


def test_a_stop_signal_that_outlives_the_grace_exits_128_plus_the_signal(app: faust.App) -> None:
    """SIGTERM and a stop that hangs: exit 143 once worker_shutdown_grace passed."""
    dog, clock, _, _ = watchdog(app, worker_shutdown_grace=7.0)
    dog.on_signal(signal.SIGTERM)
    dog.on_signal(signal.SIGINT)  # a second signal does not restart the grace
    clock.now += 6.9
    assert dog.check() is None
    clock.now += 0.2
    assert dog.check() == 128 + signal.SIGTERM


def test_a_clean_stop_finishes_with_0_and_stops_the_threads_once(app: faust.App) -> None:
    """After Faust's worker returned, finish() stops the threads and says 0."""
    dog, _, stopped, _ = watchdog(app)
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert dog.finish() == EXIT_OK
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    dog.stop_threads()
    assert stopped == ["watcher"]


async def test_finish_after_a_crash_says_70(app: faust.App) -> None:
    """A crashed worker whose stop finished leaves with 70."""
    dog, _, stopped, _ = watchdog(app)
    await app.crash(RuntimeError("refused"))
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert dog.finish() == EXIT_CRASHED
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert stopped == ["watcher"]
