"""The door's part over Faust's consumer: its drain loop and its offset books.

faust-streaming 0.15.3 commits a partition up to the first hole in the
offsets its agents acked (``Consumer._new_offset``). Three things here keep
those books honest around rebalances, and one repairs them when they are
not: :func:`drain_in_batches` (the drain loop, guarded per fetched batch),
:func:`keep_commits_across_seeks` (a seek never sets the books behind a
commit that landed during it) and :class:`HoleRepair` (a partition whose
commits stopped at a hole no record in flight can fill is read again from
its committed offset; the engine drops the re-read events as duplicates).
Part of :mod:`advisering.worker.faust_door`; its tests are
``tests/unit/test_faust_door.py`` and ``tests/unit/test_commit_across_seek.py``.
"""

from __future__ import annotations

import asyncio
import types
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.transport.consumer import CONSUMER_FETCHING
from faust.types import TP

from advisering import metrics
from advisering.log import get_logger
from advisering.worker.faust_door.order import due_seeks, seek_rereads

log = get_logger(__name__)

#: sha256 of ``inspect.getsource(faust.transport.consumer.Consumer._drain_messages)`` as
#: read for :func:`drain_in_batches`: a Faust whose loop changed fails the door's test,
#: and the replacement must be read against the new loop again.
DRAIN_MESSAGES_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"

#: sha256 of ``inspect.getsource(faust.transport.consumer.Consumer.getmany)`` as read for
#: :func:`dropped_spans`, which repeats which fetched records that method drops.
GETMANY_SHA256 = "4b168d84882a70d6e3e2f9804430a63b92f8fd117d3187cbb4aeb54305bda34e"


def deliver_fetched_batches(app: faust.App) -> None:
    """Make the app's consumer guard against rebalances per fetched batch, not per record.

    faust-streaming 0.15.3, ``Consumer._drain_messages``, wraps every record
    in ``wait_first(callback(message), suspend_flow.wait())`` (four tasks, so
    that a rebalance can abandon a blocked delivery): about half of Faust's
    CPU per record here (benchmarks/pipeline.py). :func:`drain_in_batches`
    guards each fetched batch instead; a rebalance still cancels a blocked
    delivery, and what was not delivered is fetched again after it.
    """
    consumer: Any = app.consumer
    consumer._drain_messages = types.MethodType(drain_in_batches, consumer)


async def drain_in_batches(consumer: Any, fetcher: Any) -> None:
    """faust-streaming 0.15.3's ``Consumer._drain_messages``, guarded per fetched batch.

    Outside the guard, as in the original: waiting for a stopped flow (a
    guard firing at once would spin), the commit every N acks (cancelled
    half-way, it would forget acked offsets it had not committed) and the
    fetch itself. A fetch runs in Faust's consumer thread (mode's
    ``call_thread``); cancelling its caller only cancels the promise, so an
    abandoned fetch goes on in the thread, takes the next records of every
    partition (Faust's active set is empty after a revoke) and hands them to
    nobody. The changelog records recovery had just sought to went that way,
    and its table recovery waited for them forever (docs/operators.md).
    What a fetch returns that Faust's ``getmany`` then drops is put back
    (:func:`put_back_dropped_fetches`).
    """
    consumer_stopped = consumer._stopped.is_set
    fetcher_stopped = fetcher._stopped.is_set
    diag = consumer.diag
    try:
        while not (consumer_stopped() or fetcher_stopped()):
            if not consumer.flow_active:
                await consumer.wait(consumer.can_resume_flow)
                continue
            await seek_requested_repairs(consumer)  # between batches: no delivery under way
            await seek_rereads(consumer)
            commit_every = consumer._commit_every
            if commit_every is not None and consumer._n_acked >= commit_every:
                consumer._n_acked = 0
                await consumer.commit()
            diag.set_flag(CONSUMER_FETCHING)
            fetched = consumer.getmany(timeout=1.0)
            first = await _first(fetched)  # the fetch: a rebalance must not abandon it
            await consumer.sleep(0)
            if first is not None and not consumer.should_stop:
                await consumer.wait_first(_deliver(consumer, _chain(first, fetched)),
                                          consumer.suspend_flow.wait())
            diag.unset_flag(CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            return
        raise
    finally:
        diag.unset_flag(CONSUMER_FETCHING)


async def _first(fetched: AsyncIterator[Any]) -> Any:
    """The first (partition, record) of a fetch, or None; awaits the fetch itself."""
    try:
        return await fetched.__anext__()
    except StopAsyncIteration:
        return None


async def _chain(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for pair in rest:
        yield pair


def put_back_dropped_fetches(app: faust.App) -> None:
    """Move a partition back to the first record a fetch returned that ``getmany`` will drop.

    faust-streaming 0.15.3, ``Consumer.getmany``: records fetched while the
    flow is stopped (a rebalance began meanwhile), or of a partition neither
    active nor buffered, are dropped, and only a seek to the *committed*
    offsets follows, which never moves a changelog partition (nothing is
    committed there). aiokafka's position has passed them, so nothing reads
    them again, and a table recovery waits for them forever. The wrapper
    around ``_getmany`` (the fetch in Faust's consumer thread) seeks such a
    partition back, in that thread, unless something moved it since. The
    worst case is a record read twice, which recovery and the engine skip.
    """
    consumer: Any = app.consumer
    fetch = consumer._getmany

    async def fetch_putting_back(active_partitions: Any, timeout: float) -> Any:
        records = await fetch(active_partitions, timeout)
        if records:
            dropped = dropped_spans(consumer, active_partitions, records)
            if dropped:
                thread = consumer._thread
                await thread.call_thread(seek_back, thread._ensure_consumer(), dropped)
        return records

    consumer._getmany = fetch_putting_back


def dropped_spans(consumer: Any, active: Any,
                  records: Mapping[TP, Any]) -> dict[TP, tuple[int, int]]:
    """(first, last) offset per partition of the records ``getmany`` will not deliver."""
    if consumer.flow_active:
        if active is None:
            return {}
        keep = set(active) | set(consumer._buffered_partitions)
        records = {tp: rs for tp, rs in records.items() if tp not in keep}
    return {tp: (rs[0].offset, rs[-1].offset) for tp, rs in records.items() if rs}


async def seek_back(kafka: Any, spans: Mapping[TP, tuple[int, int]]) -> None:
    """In the consumer thread: back to the first dropped record, unless the position moved.

    aiokafka 0.14's ``position`` returns at once for a partition with a valid
    position; one without (a reset pending) is left to whoever reset it.
    """
    assigned = kafka.assignment()
    for tp, (first, last) in spans.items():
        partition = TopicPartition(tp.topic, tp.partition)
        if partition not in assigned:
            continue
        try:
            position = await asyncio.wait_for(kafka.position(partition), 0.05)
        except TimeoutError:
            continue
        if position > last:
            kafka.seek(partition, first)


#: The records each consumer's drain loop handed over, while something holds them:
#: Faust tracks a record (``_unacked_messages``) only once a stream takes it from
#: the channel's queue, and a record still queued is no hole (:func:`commit_holes`).
_DELIVERED: weakref.WeakKeyDictionary[Any, weakref.WeakSet[Any]] = weakref.WeakKeyDictionary()


def delivered_records(consumer: Any) -> weakref.WeakSet[Any]:
    """The records :func:`drain_in_batches` delivered that are still referenced somewhere."""
    delivered = _DELIVERED.get(consumer)
    if delivered is None:
        delivered = _DELIVERED[consumer] = weakref.WeakSet()
    return delivered


#: Per consumer and partition, the last jump read again: (offset jumped to, read before it).
_JUMPS: weakref.WeakKeyDictionary[Any, dict[TP, tuple[int, int]]] = (
    weakref.WeakKeyDictionary())


async def _deliver(consumer: Any, fetched: Any) -> None:
    """Hand each fetched record to the conductor; a jump in the offsets is read again first.

    Faust's loop marks the offsets between the last record read and a later
    one as a gap, which its books count as done: right for a compacted topic
    or a transaction's marker, but a record skipped by a fetch that was
    dropped (a rebalance, a seek that did not happen) would be committed
    unread, lost without a trace; the chaos test lost 66 so. A jump is
    therefore read again once from the record after the last one read
    (:func:`jumped_back`); only when the same partition jumps to the same
    offset again are the records in between really absent, and the gap goes
    into the books.
    """
    callback = consumer.callback
    track = delivered_records(consumer).add
    read_offsets = consumer._read_offset
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    held: set[TP] = set()  # read again from an earlier offset: this fetch's rest is stale
    since_yield = 0
    async for tp, message in fetched:
        since_yield += 1
        if since_yield > 100:  # let the loop breathe, as the original does
            await asyncio.sleep(0)
            since_yield = 0
        offset = message.offset
        read = read_offsets[tp]
        if tp in held or (read is not None and offset < read):
            continue  # read before (the original logs it at dev level and drops it)
        if offset - (read or 0) > 1 and read and acks_enabled_for(message.topic):
            since = await jumped_back(consumer, tp, read, offset)
            if since is None:
                held.add(tp)
                continue
            # Faust's own loop passes ``offset`` as the end, and its gap includes it: this
            # record would count as done before the agent acks it.
            await consumer._add_gap(tp, since + 1, offset - 1)
        track(message)
        await callback(message)
        read_offsets[tp] = offset


async def jumped_back(consumer: Any, tp: TP, read: int, offset: int) -> int | None:
    """Seek ``tp`` back after a jump from ``read`` to ``offset``, unless it jumped there before.

    None when sought back; else the read offset the first of the two jumps
    started from, where the gap begins.
    """
    jumps = _JUMPS.setdefault(consumer, {})
    before = jumps.pop(tp, None)
    if before is not None and before[0] == offset:
        log.warning("offsets_gap_accepted", topic=tp.topic, partition=tp.partition,
                    read=before[1], offset=offset)
        metrics.OFFSET_JUMPS.labels("gap_accepted").inc()
        return min(before[1], read)
    jumps[tp] = (offset, read)
    log.warning("offsets_jumped_read_again", topic=tp.topic, partition=tp.partition,
                read=read, offset=offset)
    metrics.OFFSET_JUMPS.labels("read_again").inc()
    await consumer.seek(tp, read + 1)
    return None


@dataclass(frozen=True)
class CommitHole:
    """A partition whose committed offset Faust's books can no longer move."""

    tp: TP
    committed: int
    read: int  # the furthest offset read or acked
    first_done: int | None = None  # the lowest offset acked or skipped (a gap), if any


def commit_holes(consumer: Any) -> list[CommitHole]:
    """The assigned partitions read past their committed offset that cannot commit again.

    Faust commits when the lowest acked offset (or gap) is at most one past
    the committed one (``_new_offset``). A partition is stuck when nothing
    acked or skipped starts there and no record between the committed offset
    and the furthest one read or acked is still unacked with the agent or in
    its queue (``_unacked_messages``, :func:`delivered_records`). The read
    offset alone does not tell: a seek sets it back to the committed offset
    while acks above it stay in the books. Records
    still queued for the agent are not tracked yet, so a hole is acted on
    only when it is seen twice (:class:`HoleRepair`).
    """
    if not consumer.flow_active:
        return []
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    held = [*consumer._unacked_messages, *delivered_records(consumer)]
    in_flight = [(m.tp, m.offset) for m in held if not m.acked]
    holes = []
    for tp in consumer.assignment():
        committed = consumer._committed_offset.get(tp)
        acked = consumer._acked.get(tp)
        furthest = max(consumer._read_offset.get(tp) or -1, max(acked) if acked else -1)
        if (committed is None or furthest <= committed
                or tp in consumer._paused_partitions or not acks_enabled_for(tp.topic)):
            continue
        done = [min(acked)] if acked else []
        gaps = consumer._gap.get(tp)
        if gaps:
            done.append(min(interval.begin for interval in gaps))
        if done and min(done) - committed <= 1:
            continue
        if any(t == tp and committed <= offset <= furthest for t, offset in in_flight):
            continue
        holes.append(CommitHole(tp, committed, furthest, min(done) if done else None))
    return holes


class HoleRepair:
    """Reads a partition again from its committed offset when its commits stopped at a hole.

    Seen in the same generation at the same committed offset in two checks
    running, the hole is no record in flight. The drain loop then seeks the
    partition back between two fetched batches (:func:`seek_requested_repairs`):
    a seek while a fetched batch is still being delivered would make the
    batch's next record look like a jump, and Faust would mark the records
    in between as a gap, done, although they may still wait for the agent.
    The records are delivered again and their acks fill the books; what was
    processed already comes back as a duplicate, which the engine drops.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.seen: dict[TP, tuple[int, int]] = {}

    def check(self) -> list[CommitHole]:
        """Ask the drain loop to seek back each partition stuck at the hole it had before."""
        consumer: Any = self.app.consumer
        generation = int(self.app.consumer_generation_id)
        holes = commit_holes(consumer)
        stuck = [h for h in holes if self.seen.get(h.tp) == (generation, h.committed)]
        self.seen = {h.tp: (generation, h.committed) for h in holes if h not in stuck}
        requested = _REPAIRS.setdefault(consumer, {})
        for hole in stuck:
            requested[hole.tp] = (generation, hole.committed)
        return stuck


#: Per consumer, the partitions to seek back at the drain loop's next turn:
#: (generation, committed offset) as the hole was seen.
_REPAIRS: weakref.WeakKeyDictionary[Any, dict[TP, tuple[int, int]]] = (
    weakref.WeakKeyDictionary())


async def seek_requested_repairs(consumer: Any) -> None:
    """Seek back the partitions :class:`HoleRepair` asked for, if their hole is unchanged."""
    for tp, committed in due_seeks(consumer, _REPAIRS.get(consumer)):
        now = consumer._committed_offset.get(tp)
        if now == committed:
            await consumer.seek(tp, committed)
            log.info("commit_hole_sought", topic=tp.topic, partition=tp.partition,
                     offset=committed)
        else:  # committed meanwhile, or a rebalance forgot the books: nothing to repair
            log.info("commit_hole_seek_dropped", topic=tp.topic, partition=tp.partition,
                     requested=committed, committed=now)


def input_lag(consumer: Any, topics: Mapping[str, str]) -> dict[str, int]:
    """Records behind per input (``topics``: topic name to role) in this worker's partitions.

    faust-streaming 0.15.3: the end is ``Consumer.highwater`` (aiokafka's, as
    last fetched), the start the books' ``_committed_offset``; a partition
    where either is not known yet counts nothing, and so does every input
    before the consumer has started.
    """
    lag = dict.fromkeys(topics.values(), 0)
    try:
        assigned = consumer.assignment()
    except Exception:  # noqa: BLE001 - no consumer thread yet: nothing is behind
        return lag
    for tp in assigned:
        role = topics.get(tp.topic)
        committed = consumer._committed_offset.get(tp)
        end = consumer.highwater(tp) if role is not None else None
        if role is not None and committed is not None and end is not None:
            lag[role] += max(0, end - committed)
    return lag
