"""Each input partition's records reach the engine in offset order, none left out (no broker).

The books are Faust's own (``Consumer.ack``, ``_new_offset``, ``seek``) on the
stand-in of tests/unit/test_commit_across_seek.py; the messages are Faust's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from faust.types.tuples import Message

from advisering.worker import faust_door
from tests.unit.test_commit_across_seek import TP3, Books

C = 500  # the partition's committed offset


def books_at(committed: int | None = C) -> Books:
    books = Books(committed)
    books._committed_offset[TP3] = committed  # noqa: SLF001  (as perform_seek writes it)
    return books


def events(*offsets: int, tp: TP = TP3) -> list[Any]:
    """Events as the agent's stream hands them over: Faust messages, tracked as unacked."""
    return [SimpleNamespace(message=Message(tp.topic, tp.partition, offset, 0.0, 0, {}, b"k",
                                            b"v", None, tp=tp)) for offset in offsets]


def offsets(admitted: list[Any]) -> list[int]:
    return [event.message.offset for event in admitted]


def test_records_in_order_are_all_admitted() -> None:
    """From the committed offset on, one after another: everything is processed."""
    order = faust_door.PartitionOrder(books_at().app)  # type: ignore[arg-type]
    assert offsets(order.admit(events(C, C + 1, C + 2))) == [C, C + 1, C + 2]


async def test_a_jump_is_held_back_and_read_again_in_order() -> None:
    """Records after a gap wait; the partition is read again from the first record missing."""
    books = books_at()
    order = faust_door.PartitionOrder(books.app)  # type: ignore[arg-type]
    batch = events(C, C + 5, C + 6)
    assert offsets(order.admit(batch)) == [C]
    await faust_door.seek_rereads(books)
    assert books.seeks == [(TP3, C + 1)]
    assert books._read_offset[TP3] == C + 1  # noqa: SLF001  (Faust's seek: read again from there)
    assert offsets(order.admit(events(*range(C + 1, C + 7)))) == list(range(C + 1, C + 7))


async def test_a_held_record_stays_a_hole_in_faust_books() -> None:
    """A held-back record's ack is a no-op, so Faust never commits past the missing records."""
    books = books_at()
    order = faust_door.PartitionOrder(books.app)  # type: ignore[arg-type]
    batch = events(C, C + 5)
    for event in batch:
        books._unacked_messages.add(event.message)  # noqa: SLF001  (the stream tracked them)
    order.admit(batch)
    for event in batch:  # take_events acks every event of the batch afterwards
        books.ack(event.message)
    assert not books._unacked_messages  # noqa: SLF001  (nothing waits for the held one)
    assert await books.commit_due()
    assert books.broker_committed == C + 1  # up to the hole, not past it


async def test_the_same_jump_after_a_re_read_is_a_real_gap() -> None:
    """Read again, the partition jumps to the same record: the offsets between are absent."""
    books = books_at()
    order = faust_door.PartitionOrder(books.app)  # type: ignore[arg-type]
    assert order.admit(events(C + 3)) == []
    await faust_door.seek_rereads(books)
    assert books.seeks == [(TP3, C)]
    assert offsets(order.admit(events(C + 3, C + 4))) == [C + 3, C + 4]


def test_records_read_again_below_the_offset_due_are_admitted() -> None:
    """A re-delivered record (a duplicate the engine drops) never blocks the partition."""
    order = faust_door.PartitionOrder(books_at().app)  # type: ignore[arg-type]
    assert offsets(order.admit(events(C, C + 1, C - 3, C + 2))) == [C, C + 1, C - 3, C + 2]


def test_a_new_generation_starts_again_at_the_committed_offset() -> None:
    """After a rebalance the offset due is the books' committed one again."""
    books = books_at()
    order = faust_door.PartitionOrder(books.app)  # type: ignore[arg-type]
    assert offsets(order.admit(events(C, C + 1))) == [C, C + 1]
    books.app.consumer_generation_id = 2
    books._committed_offset[TP3] = C + 40  # noqa: SLF001
    assert order.admit(events(C + 42)) == []
    assert offsets(order.admit(events(C + 40))) == [C + 40]


async def test_a_re_read_requested_in_an_old_generation_is_dropped() -> None:
    """A rebalance between the hold and the drain loop's turn seeks nothing (its own seek does)."""
    books = books_at()
    order = faust_door.PartitionOrder(books.app)  # type: ignore[arg-type]
    order.admit(events(C + 5))
    books.app.consumer_generation_id = 2
    await faust_door.seek_rereads(books)
    assert books.seeks == []


def test_topics_without_acks_pass_untouched() -> None:
    """Records of a topic Faust does not commit (a changelog) are not ordered here."""
    books = books_at()
    books.app.topics.acks_enabled_for = lambda _topic: False
    order = faust_door.PartitionOrder(books.app)  # type: ignore[arg-type]
    assert offsets(order.admit(events(C + 9, C + 3))) == [C + 9, C + 3]


async def test_the_drain_loop_reads_a_held_partition_again_before_it_fetches() -> None:
    """The drain loop performs a requested re-read at its turn, outside any delivery."""
    books = books_at()
    faust_door.PartitionOrder(books.app).admit(events(C + 5))  # type: ignore[arg-type]
    fetched_after: list[int] = []

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ARG001
        fetched_after.append(len(books.seeks))
        books._stopped.set()  # noqa: SLF001
        for _ in ():
            yield _

    books.getmany = getmany  # type: ignore[attr-defined]
    await faust_door.drain_in_batches(books, books)
    assert fetched_after == [1] and books.seeks == [(TP3, C)]
