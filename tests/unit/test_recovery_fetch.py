"""A rebalance in the middle of a fetch: the changelog records recovery seeks to still arrive.

Broker-free.

Faust's real ``Consumer.getmany``, ``_wait_next_records``, ``pause/resume_partitions`` and
``stop/resume_flow`` run on a stand-in; the consumer thread is a task that, like mode's
``call_thread``, keeps running when its caller is cancelled; "aiokafka" keeps a position per
partition and, like ``Fetcher.fetched_records``, drains every requested partition (all of
them when the set it is handed is empty) as soon as data arrives.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections import defaultdict
from typing import Any

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from advisering.worker import faust_door

STREAM = TP("case-events", 3)
CHANGELOG = TP("app-citizens-changelog", 3)


class Record:
    def __init__(self, tp: Any, offset: int) -> None:
        self.topic, self.partition, self.offset = tp.topic, tp.partition, offset


class Kafka:
    """The consumer thread's aiokafka: positions, log ends, one 'data arrived' signal."""

    def __init__(self) -> None:
        self.position: dict[Any, int] = {STREAM: 0, CHANGELOG: 0}
        self.end: dict[Any, int] = {STREAM: 0, CHANGELOG: 0}
        self.data = asyncio.Event()

    def assignment(self) -> set[Any]:
        return set(self.position)

    async def position_of(self, tp: Any) -> int:
        return self.position[TP(tp.topic, tp.partition)]

    def seek(self, tp: Any, offset: int) -> None:
        tp = TP(tp.topic, tp.partition)
        self.position[tp] = offset
        if offset < self.end[tp]:
            self.data.set()  # aiokafka fetches from there; the response wakes the waiters

    async def fetched_records(self, partitions: Any, timeout: float) -> dict[Any, list[Record]]:
        try:
            await asyncio.wait_for(self.data.wait(), timeout)
        except TimeoutError:
            return {}
        self.data.clear()
        drained = {}
        for tp, pos in self.position.items():
            if partitions and tp not in partitions:
                continue
            if pos < self.end[tp]:
                drained[tp] = [Record(tp, o) for o in range(pos, self.end[tp])]
                self.position[tp] = self.end[tp]
        return drained


class KafkaApi:
    """aiokafka's public calls seek_back uses."""

    def __init__(self, kafka: Kafka) -> None:
        self.kafka = kafka

    def assignment(self) -> set[Any]:
        from aiokafka import TopicPartition  # noqa: PLC0415

        return {TopicPartition(tp.topic, tp.partition) for tp in self.kafka.position}

    async def position(self, tp: Any) -> int:
        return await self.kafka.position_of(tp)

    def seek(self, tp: Any, offset: int) -> None:
        self.kafka.seek(tp, offset)


class Thread:
    def __init__(self, kafka: Kafka) -> None:
        self.kafka = kafka

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        return await fun(*args)

    def _ensure_consumer(self) -> KafkaApi:
        return KafkaApi(self.kafka)


class Log:
    def dev(self, *_a: Any) -> None: ...

    def warning(self, *_a: Any) -> None: ...


class Stand:
    """A Faust consumer with its real getmany / _wait_next_records / pause / resume / flow."""

    getmany = FaustConsumer.getmany
    _wait_next_records = FaustConsumer._wait_next_records  # noqa: SLF001
    _get_active_partitions = FaustConsumer._get_active_partitions  # noqa: SLF001
    pause_partitions = FaustConsumer.pause_partitions
    resume_partitions = FaustConsumer.resume_partitions
    stop_flow = FaustConsumer.stop_flow
    resume_flow = FaustConsumer.resume_flow
    consumer_stopped_errors = (RuntimeError,)

    def __init__(self) -> None:
        self.kafka = Kafka()
        self._thread = Thread(self.kafka)
        self.threads: list[asyncio.Task] = []
        self._stopped = asyncio.Event()
        self.can_resume_flow = asyncio.Event()
        self.suspend_flow = asyncio.Event()
        self.not_waiting_next_records = asyncio.Event()
        self.flow_active = True
        self._active_partitions = {STREAM}
        self._paused_partitions = {CHANGELOG}
        self._buffered_partitions: set[Any] = set()
        self._read_offset: Any = defaultdict(lambda: None)
        self._commit_every = None
        self._n_acked = 0
        self.should_stop = False
        self.client_only = False
        self.consumer_generation_id = 1
        self.scheduler = DefaultSchedulingStrategy()
        self.log = Log()
        self.diag = self.transport = self.app = self.topics = self.monitor = self.consumer = self
        self.delivered: list[tuple[Any, int]] = []

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        """ThreadDelegateConsumer._getmany via mode's call_thread: cancelling the caller cancels the
        promise only; the thread's fetch runs on and its records go nowhere."""
        promise = asyncio.get_running_loop().create_future()

        async def in_thread() -> None:
            records = await self.kafka.fetched_records(active_partitions, timeout)
            if not promise.done():
                promise.set_result(records)

        self.threads.append(asyncio.ensure_future(in_thread()))
        return await promise

    def _to_message(self, tp: Any, record: Record) -> Record:
        return record

    def highwater(self, tp: Any) -> int:
        return self.kafka.end[tp]

    def track_tp_end_offset(self, *_a: Any) -> None: ...

    async def perform_seek(self) -> None:
        """seek_to_committed: a changelog partition has no commit and is not moved."""

    def acks_enabled_for(self, topic: str) -> bool:
        return topic == STREAM.topic

    async def callback(self, message: Record) -> None:
        self.delivered.append((TP(message.topic, message.partition), message.offset))

    async def _add_gap(self, *_a: Any) -> None: ...

    def set_flag(self, _f: str) -> None: ...

    def unset_flag(self, _f: str) -> None: ...

    async def wait(self, event: asyncio.Event) -> None:
        await event.wait()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def commit(self) -> None: ...

    async def wait_first(self, *coros: Any) -> None:  # mode's Service.wait_first: cancels the rest
        tasks = [asyncio.ensure_future(c) for c in coros]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()


async def rebalance_then_recover(consumer: Stand, *, data_before_resume: bool) -> list[int]:
    """Gen 1 fetch in flight -> revoke -> recovery seeks the changelog to 0 and resumes it."""
    await asyncio.sleep(0.01)  # the drain loop is inside a fetch (nothing to read yet)
    # _on_partitions_revoked (app/base.py:1811-1814): flow stopped, everything paused
    consumer.stop_flow()
    consumer.pause_partitions({STREAM, CHANGELOG})
    await asyncio.sleep(0.01)
    # Recovery._restart_recovery: seek (recovery.py:433), changelog records arrive, resume (446-451)
    consumer.kafka.seek(CHANGELOG, 0)
    consumer.kafka.end[CHANGELOG] = 37  # the fetch response for the seeked position, below
    if data_before_resume:
        consumer.kafka.data.set()
        await asyncio.sleep(0.01)
    consumer.resume_partitions({CHANGELOG})
    consumer.resume_flow()
    if not data_before_resume:
        consumer.kafka.data.set()
    for _ in range(300):
        await asyncio.sleep(0.01)
        got = [o for tp, o in consumer.delivered if tp == CHANGELOG]
        if len(got) == 37:
            break
    return [o for tp, o in consumer.delivered if tp == CHANGELOG]


async def run(*, put_back: bool, data_before_resume: bool) -> list[int]:
    """The worker's drain loop over the stand-in, through one rebalance and recovery."""
    consumer = Stand()
    if put_back:
        faust_door.put_back_dropped_fetches(consumer)  # type: ignore[arg-type]
    loop = asyncio.ensure_future(faust_door.drain_in_batches(consumer, consumer))
    try:
        return await rebalance_then_recover(consumer, data_before_resume=data_before_resume)
    finally:
        consumer._stopped.set()  # noqa: SLF001
        for task in [loop, *consumer.threads]:
            task.cancel()
        await asyncio.gather(loop, *consumer.threads, return_exceptions=True)


@pytest.mark.parametrize("data_before_resume", [False, True])
async def test_the_changelog_records_recovery_seeks_to_reach_it(data_before_resume: bool) -> None:
    """A fetch in flight at the revoke neither eats nor drops the records recovery reads."""
    got = await run(put_back=True, data_before_resume=data_before_resume)
    assert got == list(range(37))


async def test_without_the_put_back_a_fetch_returning_in_a_stopped_flow_loses_them() -> None:
    """Faust's getmany drops what a fetch returns while the flow is stopped; aiokafka moved on."""
    got = await run(put_back=False, data_before_resume=True)
    assert got == []


def test_dropped_spans_are_what_faust_getmany_drops() -> None:
    """A stopped flow drops every partition; a running one what is neither active nor buffered."""
    consumer = Stand()
    records = {STREAM: [Record(STREAM, 5), Record(STREAM, 9)], CHANGELOG: [Record(CHANGELOG, 0)]}
    assert faust_door.consumer.dropped_spans(consumer, {STREAM}, records) == {CHANGELOG: (0, 0)}
    consumer._buffered_partitions.add(CHANGELOG)  # noqa: SLF001
    assert faust_door.consumer.dropped_spans(consumer, {STREAM}, records) == {}
    consumer.flow_active = False
    assert faust_door.consumer.dropped_spans(consumer, {STREAM}, records) == {
        STREAM: (5, 9), CHANGELOG: (0, 0)}


async def test_a_partition_moved_since_the_fetch_is_not_sought_back() -> None:
    """seek_back leaves a partition whose position is no longer past the dropped records."""
    kafka = Kafka()
    kafka.position[CHANGELOG] = 3  # recovery sought it back meanwhile
    kafka.position[STREAM] = 10
    await faust_door.consumer.seek_back(KafkaApi(kafka), {CHANGELOG: (0, 36), STREAM: (5, 9)})
    assert kafka.position == {STREAM: 5, CHANGELOG: 3}


def test_faust_getmany_is_the_one_dropped_spans_was_read_from() -> None:
    """A Faust whose getmany changed fails here: dropped_spans must be re-read against it."""
    source = inspect.getsource(FaustConsumer.getmany)
    assert hashlib.sha256(source.encode()).hexdigest() == faust_door.GETMANY_SHA256
