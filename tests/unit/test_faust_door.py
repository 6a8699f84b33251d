"""The door to faust, mode and aiokafka insides: these fail when a new version moves them."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from faust.serializers import codecs
from faust.types import TP

from advisering.engine.overview import CitizenState
from advisering.settings import Settings
from advisering.worker import app as worker_app
from advisering.worker import faust_door


@pytest.fixture
def app() -> faust.App:
    return faust.App("advisering-door-test", broker="kafka://127.0.0.1:1", store="memory://")


@dataclass
class Message:
    topic: str
    partition: int


@dataclass
class Event:
    """What the door reads of a Faust event: its message's partition."""

    message: Message


def citizens_table(app: faust.App) -> Any:
    """The worker's citizens table, built as the worker builds it."""
    return worker_app.citizens_table(app, Settings(worker_partitions=4))


@pytest.mark.parametrize("private", faust_door.PRIVATE_NAMES, ids=lambda p: p.name)
def test_every_private_name_the_door_relies_on_still_exists(
        private: faust_door.PrivateName) -> None:
    """Each private name of PRIVATE_NAMES still exists where the door reads it."""
    found: Any = importlib.import_module(private.module)
    for part in private.name.split("."):
        assert hasattr(found, part), (
            f"{private.module}.{private.name} is gone (read from {private.read_from}; "
            f"used by {private.why}): re-read the library and fix advisering/worker/faust_door/")
        found = getattr(found, part)


def test_the_aiokafka_producer_has_the_public_batch_api_the_sender_uses() -> None:
    """AIOKafkaProducer still offers partitions_for, create_batch and send_batch."""
    for name in ("partitions_for", "create_batch", "send_batch"):
        assert callable(getattr(AIOKafkaProducer, name))


async def test_the_event_set_current_is_what_faust_reads_as_current() -> None:
    """set_current_event makes the event current for Faust's own current_event()."""
    event = Event(Message("t", 3))
    faust_door.set_current_event(event)
    assert faust.current_event() is event
    assert faust_door.get_current_event() is event


def test_the_table_and_its_store_use_the_serializers_given(app: faust.App) -> None:
    """After use_table_serializers, the table and the store it creates use raw/citizen-state."""
    table = citizens_table(app)
    assert (table.key_serializer, table.value_serializer) == ("raw", "citizen-state")
    assert (table.data.key_serializer, table.data.value_serializer) == ("raw", "citizen-state")
    topic = table.changelog_topic
    assert (topic.key_serializer, topic.value_serializer) == ("raw", "citizen-state")


def test_a_changelog_record_is_read_back_by_fausts_codecs(app: faust.App) -> None:
    """changelog_record goes to the changelog topic; Faust's codecs decode key and value."""
    table = citizens_table(app)
    state = CitizenState.from_json({})
    topic, partition, key, value = faust_door.changelog_record(
        table, 2, b"ps1-x", worker_app.encode_state(state))
    assert topic == table.changelog_topic.get_topic_name() == "advisering-worker-citizens-changelog"
    assert partition == 2
    assert codecs.loads(table.changelog_topic.key_serializer, key) == b"ps1-x"
    assert codecs.loads(table.changelog_topic.value_serializer, value or b"") == state
    assert orjson.loads(value or b"") == state.to_json()


def test_states_land_in_the_partitions_rocksdb_with_the_persisted_offset(
        tmp_path: Path) -> None:
    """store_states writes into the event's partition's RocksDB and remembers the offset."""
    app = faust.App("advisering-door-rocks", broker="kafka://127.0.0.1:1",
                    store="rocksdb://", datadir=str(tmp_path))
    table = citizens_table(app)
    changelog = table.changelog_topic.get_topic_name()
    state = CitizenState.from_json({})
    faust_door.store_states(table, [(b"ps1-a", state, Event(Message("r", 1))),
                                    (b"ps1-b", state, Event(Message("r", 1)))],
                            {(changelog, 1): 41})
    store = table.data
    assert store[b"ps1-a"] == state
    assert store.persisted_offset(TP(changelog, 1)) == 41
    assert store.persisted_offset(TP(changelog, 0)) is None
    faust_door.store_states(table, [(b"ps1-a", None, Event(Message("r", 1)))], {})
    assert b"ps1-a" not in store
    assert store[b"ps1-b"] == state


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


def test_readiness_read_from_another_thread_creates_no_faust_service(app: faust.App) -> None:
    """The watchdog thread's readiness check leaves the Recovery for Faust to create in its loop."""
    seen: list[tuple[bool, bool, bool]] = []
    thread = threading.Thread(target=lambda: seen.append(faust_door.readiness(app)))
    thread.start()
    thread.join(10)
    assert seen == [(False, False, False)]
    assert app.tables._recovery is None  # type: ignore[attr-defined]  # noqa: SLF001


def test_mode_worker_still_has_the_public_hook_the_door_overrides() -> None:
    """mode's Worker still installs its signal handlers by install_signal_handlers."""
    assert callable(faust_door.Worker.install_signal_handlers)


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


def test_faust_drain_loop_is_the_one_drain_in_batches_was_read_from() -> None:
    """A Faust whose drain loop changed fails here: drain_in_batches must be re-read against it."""
    from faust.transport.consumer import Consumer  # noqa: PLC0415

    source = inspect.getsource(Consumer._drain_messages)  # noqa: SLF001
    assert hashlib.sha256(source.encode()).hexdigest() == faust_door.DRAIN_MESSAGES_SHA256


def test_the_consumer_holds_what_drain_in_batches_reads(app: faust.App) -> None:
    """The consumer's own attributes the replacement loop reads exist on a fresh consumer."""
    faust_door.deliver_fetched_batches(app)
    consumer: Any = app.consumer
    for name in ("_read_offset", "_commit_every", "_n_acked", "_stopped", "suspend_flow",
                 "callback", "diag", "getmany", "consumer_stopped_errors"):
        assert hasattr(consumer, name), name
    assert consumer._drain_messages.__func__ is faust_door.drain_in_batches  # noqa: SLF001


@dataclass(eq=False)
class Fetched:
    """A record as the fetch loop sees it."""

    topic: str
    offset: int


class FakeConsumer:
    """The parts of a Faust consumer the delivery reads; records what it was handed."""

    def __init__(self, records: list[tuple[TP, Fetched]]) -> None:
        self.records = records
        self.delivered: list[int] = []
        self.gaps: list[tuple[int, int]] = []
        self.seeks: list[tuple[TP, int]] = []
        self._read_offset: dict[TP, int | None] = {TP("t", 0): 4}
        self._commit_every = None
        self._n_acked = 0
        self.app = self
        self.topics = self

    def acks_enabled_for(self, _topic: str) -> bool:
        return True

    async def callback(self, message: Fetched) -> None:
        self.delivered.append(message.offset)

    async def _add_gap(self, _tp: TP, start: int, end: int) -> None:
        self.gaps.append((start, end))

    async def seek(self, tp: TP, offset: int) -> None:
        """Faust's seek: the partition is read from ``offset`` and the read offset says so."""
        self.seeks.append((tp, offset))
        self._read_offset[tp] = offset

    async def fetched(self) -> Any:
        for pair in self.records:
            yield pair


async def test_delivery_skips_what_was_read_and_reads_a_jump_again() -> None:
    """Records before the read offset are dropped; a jump is sought back, not marked done."""
    tp = TP("t", 0)
    consumer = FakeConsumer([(tp, Fetched("t", n)) for n in (3, 5, 9, 10)])
    await faust_door.consumer._deliver(consumer, consumer.fetched())  # noqa: SLF001
    assert consumer.delivered == [5]  # 9 jumped over 6..8: it and the rest of the fetch wait
    assert consumer.gaps == []
    assert consumer.seeks == [(tp, 6)]
    assert consumer._read_offset[tp] == 6  # noqa: SLF001  # as Faust's seek sets it


async def test_the_same_jump_twice_is_a_real_gap() -> None:
    """Read again and the same offset follows: the records in between are absent, a gap."""
    tp = TP("t", 0)
    consumer = FakeConsumer([(tp, Fetched("t", n)) for n in (5, 9)])
    await faust_door.consumer._deliver(consumer, consumer.fetched())  # noqa: SLF001
    consumer.records = [(tp, Fetched("t", 9))]  # read again from 6: a marker, compaction
    await faust_door.consumer._deliver(consumer, consumer.fetched())  # noqa: SLF001
    assert consumer.delivered == [5, 9]
    assert consumer.seeks == [(tp, 6)]
    assert consumer.gaps == [(6, 8)]  # from the record after the first jump's read, up to 9
    assert consumer._read_offset[tp] == 9  # noqa: SLF001


class LoopConsumer:
    """The parts of a Faust consumer the drain loop reads; counts fetches and commits."""

    consumer_stopped_errors = (RuntimeError,)

    def __init__(self) -> None:
        self._stopped = asyncio.Event()
        self.can_resume_flow = asyncio.Event()
        self.suspend_flow = asyncio.Event()
        self.flow_active = False
        self._commit_every: int | None = 10
        self._n_acked = 0
        self.should_stop = False
        self.fetches = 0
        self.commits: list[int] = []
        self._read_offset: dict[TP, int | None] = {}
        self.diag = self
        self.transport = self
        self.app = self
        self.topics = self

    def acks_enabled_for(self, _topic: str) -> bool:
        return True

    async def callback(self, _message: Any) -> None: ...

    def set_flag(self, _flag: str) -> None: ...

    def unset_flag(self, _flag: str) -> None: ...

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def commit(self) -> None:
        self.commits.append(self.fetches)

    async def wait_first(self, *coros: Any) -> None:
        tasks = [asyncio.ensure_future(c) for c in coros]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def getmany(self, timeout: float) -> Any:
        self.fetches += 1
        await asyncio.sleep(0.01)
        if False:  # an async generator that yields nothing
            yield None


async def test_drain_loop_waits_for_a_stopped_flow_and_commits_outside_delivery() -> None:
    """A stopped flow is awaited, not spun through; the commit-every commit runs between fetches."""
    consumer = LoopConsumer()
    fetcher = LoopConsumer()
    loop = asyncio.ensure_future(faust_door.drain_in_batches(consumer, fetcher))
    await asyncio.sleep(0.1)
    assert consumer.fetches == 0  # the flow is stopped: no fetch, no busy loop
    consumer._n_acked = 10  # noqa: SLF001
    consumer.flow_active = True
    consumer.can_resume_flow.set()
    await asyncio.sleep(0.1)
    consumer._stopped.set()  # noqa: SLF001
    await asyncio.wait_for(loop, 5)
    assert consumer.fetches > 0
    assert consumer.commits == [0]  # once, before the first fetch of the resumed flow
    assert consumer._n_acked == 0  # noqa: SLF001


async def test_the_drain_loop_can_be_dumped_while_it_fetches() -> None:
    """mode's task dump (SIGUSR1) reads the loop's frames mid-fetch without crashing the worker."""
    from mode.utils.tracebacks import format_task_stack  # noqa: PLC0415

    consumer = LoopConsumer()
    consumer.flow_active = True
    loop = asyncio.ensure_future(faust_door.drain_in_batches(consumer, LoopConsumer()))
    await asyncio.sleep(0.005)  # inside the fetch
    assert "drain_in_batches" in format_task_stack(loop)
    consumer._stopped.set()  # noqa: SLF001
    await asyncio.wait_for(loop, 5)


class LagConsumer:
    """What the lag reads of a Faust consumer: its partitions, books and fetched ends."""

    def __init__(self, committed: dict[TP, int | None], ends: dict[TP, int | None]) -> None:
        self._committed_offset = committed
        self.ends = ends

    def assignment(self) -> set[TP]:
        return set(self.ends)

    def highwater(self, tp: TP) -> int | None:
        return self.ends[tp]


def test_input_lag_sums_end_minus_committed_per_input() -> None:
    """Lag per input is the partitions' end minus their committed offset; unknowns count 0."""
    a0, a1, b0, other = TP("a", 0), TP("a", 1), TP("b", 0), TP("changelog", 0)
    consumer = LagConsumer({a0: 10, a1: 5, b0: None, other: 0},
                           {a0: 25, a1: 5, b0: 99, other: 1000})
    assert faust_door.input_lag(consumer, {"a": "case_events", "b": "citizen_events"}) == {
        "case_events": 15, "citizen_events": 0}


def test_input_lag_is_zero_before_the_consumer_started() -> None:
    """Scraped before Faust's consumer thread runs, every input shows 0, not an error."""

    class NotStarted:
        def assignment(self) -> set[TP]:
            raise RuntimeError("Consumer thread not yet started")

    assert faust_door.input_lag(NotStarted(), {"a": "case_events"}) == {"case_events": 0}
