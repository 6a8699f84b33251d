"""The door to faust/mode internals still opens: these fail when a library version moves them."""

from __future__ import annotations

import asyncio
import os
import signal

import faust
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.worker import Worker

from advisering.worker import faust_door


@pytest.fixture
def app() -> faust.App:
    return faust.App("advisering-door-test", broker="kafka://127.0.0.1:1", store="memory://")


async def test_a_crash_is_seen_at_once_with_its_reason(app: faust.App) -> None:
    """After app.crash(exc), crashed() is True and crash_reason() is exc (mode's crash event)."""
    assert not faust_door.crashed(app)
    assert faust_door.crash_reason(app) is None
    reason = RuntimeError("refused")
    await app.crash(reason)
    assert faust_door.crashed(app)
    assert faust_door.crash_reason(app) is reason


def test_readiness_reads_rebalancing_recovery_and_its_completion(app: faust.App) -> None:
    """A fresh app is neither rebalancing nor recovering and has not recovered yet."""
    assert faust_door.readiness(app) == (False, False, False)
    app.tables.recovery.completed.set()
    assert faust_door.readiness(app) == (False, False, True)


def test_the_aiokafka_producer_door_exists() -> None:
    """Faust's aiokafka producer still hands out its AIOKafkaProducer by _ensure_producer."""
    assert callable(faust_aiokafka.Producer._ensure_producer)


def test_mode_worker_still_installs_loop_signal_handlers() -> None:
    """mode's Worker still has the public hook the door overrides and the handlers it calls."""
    assert callable(Worker.install_signal_handlers)
    assert callable(Worker._on_sigterm)
    assert callable(Worker._on_sigint)


async def test_a_stop_signal_reaches_the_hook_and_still_stops_the_worker(
    app: faust.App,
) -> None:
    """SIGTERM calls the door's hook (outside the loop) and mode's own handler (stop)."""
    heard: list[int] = []
    loop = asyncio.get_running_loop()
    saved = {signum: signal.getsignal(signum) for signum in faust_door.STOP_SIGNALS}
    worker = faust_door.worker_class(heard.append)(
        app, loop=loop, redirect_stdouts=False, override_logging=False, quiet=True)
    try:
        worker.install_signal_handlers()
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(50):
            await asyncio.sleep(0.05)
            if heard and worker.should_stop:
                break
    finally:
        for signum in (*faust_door.STOP_SIGNALS, signal.SIGUSR1, signal.SIGUSR2):
            loop.remove_signal_handler(signum)
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert heard == [signal.SIGTERM]
    assert worker.should_stop  # mode's handler ran in the loop and stopped the worker
