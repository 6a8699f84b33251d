"""A commit landing during the rebalance's seek: the partition keeps committing (no broker).

The offset books below are Faust's own: ``Consumer.ack``, ``_new_offset``,
``_should_commit``, ``_add_gap``, ``_commit_offsets`` and ``perform_seek`` run
unchanged on a stand-in that holds only the books, with the worker's own
delivery (``faust_door._deliver``) and the door's fix installed as the worker
installs it. The broker's answer to the seek is held back, as a slow OffsetFetch
round trip on a loaded host is, while a commit lands.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from weakref import WeakSet

import faust
from faust.transport.consumer import Consumer
from faust.types import TP
from faust.types.tuples import Message
from intervaltree import IntervalTree
from structlog.testing import capture_logs

from advisering.dev.demo import demo_grants
from advisering.http.sources import add_source
from advisering.settings import Settings
from advisering.testing import load_matcher_and_vocabulary
from advisering.worker import faust_door
from advisering.worker.app import create_app

ROOT = Path(__file__).resolve().parents[2]

TP3 = TP("advisering.case-events", 3)
C = 3443  # the broker's committed offset when the generation starts


class Books:
    """A consumer's offset books, with Faust's own methods over them."""

    ack = Consumer.ack
    _new_offset = Consumer._new_offset  # noqa: SLF001
    _should_commit = Consumer._should_commit  # noqa: SLF001
    _add_gap = Consumer._add_gap  # noqa: SLF001
    _commit_offsets = Consumer._commit_offsets  # noqa: SLF001
    perform_seek = Consumer.perform_seek
    seek = Consumer.seek
    in_transaction = False
    flow_active = True

    def __init__(self, broker_committed: int | None) -> None:
        self._acked: defaultdict[TP, list[int]] = defaultdict(list)
        self._acked_index: defaultdict[TP, set[int]] = defaultdict(set)
        self._gap: defaultdict[TP, IntervalTree] = defaultdict(IntervalTree)
        self._read_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._unacked_messages: WeakSet[Any] = WeakSet()
        self._n_acked = 0
        self._waiting_for_ack = None
        self._paused_partitions: set[TP] = set()
        self.seeks: list[tuple[TP, int]] = []
        self.broker_committed: int | None = broker_committed
        self.log_start = 0  # the partition's first offset
        self.broker_answers = asyncio.Event()  # the OffsetFetch round trip is slow
        self.log = SimpleNamespace(dev=_ignore, info=_ignore)
        self.app = SimpleNamespace(
            consumer_generation_id=1,
            topics=SimpleNamespace(acks_enabled_for=lambda _topic: True),
            producer=SimpleNamespace(flush=_nothing),
            tables=SimpleNamespace(on_commit=_ignore),
            monitor=SimpleNamespace(on_tp_commit=_ignore))
        self.app.consumer = self
        # what the drain loop reads besides the books
        self._stopped = asyncio.Event()
        self._commit_every: int | None = None
        self.should_stop = False
        self.suspend_flow = asyncio.Event()
        self.consumer_stopped_errors = (RuntimeError,)
        self.diag = SimpleNamespace(set_flag=_ignore, unset_flag=_ignore)
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=False))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def assignment(self) -> set[TP]:
        return {TP3}

    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]:
        return dict.fromkeys(partitions, self.log_start)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        answer = self.broker_committed  # this partition's answer, read first
        await self.broker_answers.wait()  # the other partitions' round trips
        return {TP3: answer}

    async def _seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        self.broker_committed = offsets[TP3]
        return True

    async def callback(self, message: Message) -> None:
        """The conductor with an agent that processes and acks at once."""
        self.ack(message)

    async def commit_due(self) -> bool:
        """What Faust's commit does for the partition: its new offset, if it moved on."""
        offset = self._new_offset(TP3)
        if offset is None or not self._should_commit(TP3, offset):
            return False
        return await self._commit_offsets({TP3: offset})


async def _nothing() -> None:
    return None


def _ignore(*_args: object) -> None:
    return None


def with_the_fix(books: Books) -> Books:
    """Install the door's fix on the books as the worker installs it on its consumer."""
    faust_door.keep_commits_across_seeks(SimpleNamespace(consumer=books))  # type: ignore[arg-type]
    return books


async def fetched(first: int, end: int) -> AsyncIterator[tuple[TP, Message]]:
    for offset in range(first, end):
        yield TP3, Message(TP3.topic, TP3.partition, offset, 0.0, 0, {}, b"k", b"v", None, tp=TP3)


async def commit_lands_during_the_seek(books: Books) -> None:
    """C..C+9 processed; the seek reads C for the partition; C+10 is committed; C.. is re-read.

    aiokafka seeks each partition as soon as the broker answered for it, and
    Faust writes its books only after the last partition's answer: the re-read
    meanwhile is measured against the read offset of before the seek.
    """
    await faust_door.consumer._deliver(books, fetched(C, C + 10))  # noqa: SLF001
    seek = asyncio.ensure_future(books.perform_seek())
    await asyncio.sleep(0)  # the partition's answer (C) is read, its position set back to C
    assert await books.commit_due()  # a commit of C+10 lands
    await faust_door.consumer._deliver(books, fetched(C, C + 20))  # noqa: SLF001
    books.broker_answers.set()  # the other partitions' answers; Faust writes its books
    await seek


async def test_a_commit_during_the_seek_does_not_stop_the_partitions_commits() -> None:
    """After a commit landed during the seek, the partition commits everything processed since."""
    books = with_the_fix(Books(C))
    await commit_lands_during_the_seek(books)
    assert await books.commit_due()
    assert books.broker_committed == C + 20


async def test_without_the_fix_faust_stops_committing_the_partition() -> None:
    """Faust's own books, after the same interleaving, never commit the partition again."""
    books = Books(C)
    await commit_lands_during_the_seek(books)
    assert not await books.commit_due()
    assert books.broker_committed == C + 10


async def test_a_seek_with_no_commit_in_flight_writes_the_brokers_offsets() -> None:
    """With no commit during the seek, the books hold the broker's offset, as Faust's do."""
    books = with_the_fix(Books(C))
    books.broker_answers.set()
    await books.perform_seek()
    assert books._committed_offset[TP3] == C  # noqa: SLF001
    assert books._read_offset[TP3] == C  # noqa: SLF001


def test_a_landed_commit_only_moves_assigned_partitions_forward() -> None:
    """A remembered commit never moves a partition backwards, nor one no longer assigned."""
    books = Books(C)
    other = TP("advisering.case-events", 4)
    books._committed_offset[TP3] = C + 50  # noqa: SLF001 (a later owner committed further)
    faust_door.restore_landed_commits(books, {TP3: C + 10, other: C})
    assert books._committed_offset[TP3] == C + 50  # noqa: SLF001
    assert books._committed_offset[other] is None  # noqa: SLF001


def repair_of(books: Books) -> faust_door.HoleRepair:
    """The worker's hole repair over the books, as the worker's timer holds it."""
    return faust_door.HoleRepair(books.app)  # type: ignore[arg-type]


async def test_a_hole_seen_twice_is_read_again_and_the_partition_commits() -> None:
    """A hole in Faust's books, seen in two checks, is re-read from the committed offset."""
    books = Books(C)
    await commit_lands_during_the_seek(books)  # Faust's books without the seek fix: a hole
    repair = repair_of(books)
    assert repair.check() == []  # seen once: records may still be queued for the agent
    assert [hole.committed for hole in repair.check()] == [C]
    assert books.seeks == []  # the seek waits for the drain loop, between two batches
    with capture_logs() as logs:
        await faust_door.consumer.seek_requested_repairs(books)
    assert books.seeks == [(TP3, C)]
    assert [(e["event"], e["offset"]) for e in logs] == [("commit_hole_sought", C)]
    assert books._read_offset[TP3] == C  # noqa: SLF001
    await faust_door.consumer._deliver(books, fetched(C, C + 20))  # noqa: SLF001
    assert await books.commit_due()
    assert books.broker_committed == C + 20
    assert faust_door.commit_holes(books) == []


async def test_a_record_still_with_the_agent_is_no_hole() -> None:
    """A record past the committed offset that the agent holds unacked is awaited, no hole."""
    books = Books(C)
    await commit_lands_during_the_seek(books)
    held = Message(TP3.topic, TP3.partition, C + 3, 0.0, 0, {}, b"k", b"v", None, tp=TP3)
    books._unacked_messages.add(held)  # noqa: SLF001
    assert faust_door.commit_holes(books) == []


async def test_a_record_still_queued_for_the_agent_is_no_hole() -> None:
    """A record the drain loop delivered that waits in the agent's queue is awaited, no hole."""
    books = Books(C)
    await commit_lands_during_the_seek(books)
    queue: list[Message] = []

    async def enqueue(message: Message) -> None:
        queue.append(message)

    books.callback = enqueue  # type: ignore[method-assign]
    books._read_offset[TP3] = None  # noqa: SLF001 (delivered again after a seek)
    await faust_door.consumer._deliver(books, fetched(C, C + 2))  # noqa: SLF001
    assert faust_door.commit_holes(books) == []
    queue.clear()  # taken, processed elsewhere and dropped without an ack
    assert [hole.committed for hole in faust_door.commit_holes(books)] == [C]


async def test_a_hole_is_only_repaired_when_seen_twice_in_one_generation() -> None:
    """A rebalance between two checks, or a stopped flow, repairs nothing."""
    books = Books(C)
    await commit_lands_during_the_seek(books)
    repair = repair_of(books)
    assert repair.check() == []
    books.app.consumer_generation_id = 2
    assert repair.check() == []
    books.flow_active = False
    assert repair.check() == []
    await faust_door.consumer.seek_requested_repairs(books)
    assert books.seeks == []


async def test_a_requested_repair_is_dropped_when_the_hole_moved_meanwhile() -> None:
    """A rebalance or a commit between the request and the drain loop's turn cancels the seek."""
    books = Books(C)
    await commit_lands_during_the_seek(books)
    repair = repair_of(books)
    repair.check()
    assert repair.check() != []
    books._committed_offset[TP3] = C + 20  # noqa: SLF001 (committed meanwhile)
    with capture_logs() as logs:
        await faust_door.consumer.seek_requested_repairs(books)
    assert books.seeks == []
    assert [(e["event"], e["requested"], e["committed"]) for e in logs] == [
        ("commit_hole_seek_dropped", C, C + 20)]


async def test_the_drain_loop_seeks_a_requested_repair_before_it_fetches() -> None:
    """The drain loop performs a requested repair at its turn, outside any delivery."""
    books = Books(C)
    await commit_lands_during_the_seek(books)
    repair = repair_of(books)
    repair.check()
    repair.check()
    order: list[str] = []

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ARG001
        order.append(f"fetch after {len(books.seeks)} seek(s)")
        books._stopped.set()  # noqa: SLF001
        for _ in ():
            yield _

    books.getmany = getmany  # type: ignore[attr-defined]
    await faust_door.drain_in_batches(books, books)
    assert order == ["fetch after 1 seek(s)"]


async def test_books_that_can_commit_have_no_hole() -> None:
    """Acked offsets starting at the committed one, or books behind it, are no hole."""
    books = with_the_fix(Books(C))
    await commit_lands_during_the_seek(books)
    assert faust_door.commit_holes(books) == []
    assert faust_door.commit_holes(Books(C)) == []


def test_the_consumer_holds_what_the_hole_repair_reads() -> None:
    """A fresh Faust consumer has every book the hole check and the seek fix read."""
    app = faust.App("advisering-hole-test", broker="kafka://127.0.0.1:1", store="memory://")
    consumer: Any = app.consumer
    for name in ("_committed_offset", "_read_offset", "_acked", "_gap", "_unacked_messages",
                 "_paused_partitions", "flow_active", "seek", "perform_seek", "_commit"):
        assert hasattr(consumer, name), name
    assert callable(Consumer.seek)


def test_faust_seek_is_the_one_the_fix_was_read_against() -> None:
    """A Faust whose perform_seek changed fails here: keep_commits_across_seeks must be re-read."""
    source = inspect.getsource(Consumer.perform_seek)
    assert hashlib.sha256(source.encode()).hexdigest() == faust_door.PERFORM_SEEK_SHA256


def test_the_worker_consumer_gets_the_fix(tmp_path: Path) -> None:
    """The worker's app commits and seeks through the door's wrappers."""
    sources = tmp_path / "sources.yaml"
    add_source(sources, "momentum", demo_grants()["momentum"])
    settings = Settings(bootstrap_servers="127.0.0.1:1", pseudonym_key="k" * 32,
                        rules_dir=ROOT / "rules", topics_dir=ROOT / "topics",
                        worker_data_dir=tmp_path / "worker", sources_file=sources)
    matcher, vocabulary = load_matcher_and_vocabulary(settings)
    consumer: Any = create_app(settings, matcher, vocabulary).app.consumer
    assert consumer.perform_seek.__name__ == "seek_not_behind_commits"
    assert consumer._commit.__name__ == "commit_and_remember"  # noqa: SLF001


def with_both_fixes(books: Books) -> Books:
    """The seek fix and the hold on commits from an unknown start, as the worker installs them."""
    app: Any = SimpleNamespace(consumer=with_the_fix(books))
    faust_door.commit_from_known_start(app)
    return books


async def acks_from_a_retained_position(books: Books) -> None:
    """A rebalance forgot the books; aiokafka kept the position 66 records ahead; acks arrive."""
    await faust_door.consumer._deliver(books, fetched(C + 66, C + 70))  # noqa: SLF001


async def test_faust_commits_past_unread_records_when_its_books_forgot_the_start() -> None:
    """Faust's own books, with no committed offset, commit the acks past 66 unread records."""
    books = Books(C)
    await acks_from_a_retained_position(books)
    assert await books.commit_due()
    assert books.broker_committed == C + 70  # C..C+65 never processed


async def test_no_commit_until_the_books_know_where_the_partition_starts() -> None:
    """With the hold, the commit waits for the seek; the hole below is then read again."""
    books = with_both_fixes(Books(C))
    await acks_from_a_retained_position(books)
    assert not await books.commit_due()
    books.broker_answers.set()
    await books.perform_seek()  # the books learn C; the acks above the hole stay
    assert not await books.commit_due()
    repair = repair_of(books)
    repair.check()
    assert [hole.committed for hole in repair.check()] == [C]
    await faust_door.consumer.seek_requested_repairs(books)
    await faust_door.consumer._deliver(books, fetched(C, C + 70))  # noqa: SLF001
    assert await books.commit_due()
    assert books.broker_committed == C + 70


async def test_a_partition_never_committed_starts_at_its_first_offset() -> None:
    """A partition the group never committed: after the seek its books start at its first offset."""
    books = with_both_fixes(Books(None))
    books.log_start = 17
    await faust_door.consumer._deliver(books, fetched(17, 20))  # noqa: SLF001
    assert not await books.commit_due()
    books.broker_answers.set()
    await books.perform_seek()
    assert books._committed_offset[TP3] == 17  # noqa: SLF001
    assert await books.commit_due()
    assert books.broker_committed == 20
