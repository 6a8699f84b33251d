"""The door's part over Faust's offset books: what a commit may take as done.

faust-streaming 0.15.3 commits a partition from its committed offset up to
the first hole in the offsets its agents acked (``Consumer._new_offset``),
and the books that says where a partition starts are rewritten at every
rebalance. Two things here keep a commit from running ahead of the records
processed: :func:`keep_commits_across_seeks` (a seek never sets the books
behind a commit that landed during it) and :func:`commit_from_known_start`
(no commit while the books do not know where the partition starts). Part of
:mod:`advisering.worker.faust_door`; tested by ``tests/unit/test_commit_across_seek.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from faust.types import TP

#: sha256 of ``inspect.getsource(faust.transport.consumer.Consumer.perform_seek)`` as read
#: for :func:`keep_commits_across_seeks`, which corrects what that seek writes.
PERFORM_SEEK_SHA256 = "0e8c130ff4b0afd82c0be9c5fd831316e10febc62c94032833911096e156d7c6"

def keep_commits_across_seeks(app: faust.App) -> None:
    """Never let the rebalance's seek set a partition's books behind a commit that landed.

    faust-streaming 0.15.3: Recovery resumes delivery before it calls
    ``Consumer.perform_seek``, whose ``seek_to_committed`` asks the broker for
    each partition's committed offset in turn (aiokafka 0.14,
    ``AIOKafkaConsumer.seek_to_committed``), then writes what it got into
    ``_committed_offset`` and ``_read_offset``. A commit of this worker that
    lands in between is lost from the books: ``_new_offset`` dropped its acked
    offsets, the seek puts the committed offset back before them, and the
    re-read records below the read offset are not delivered again. The head
    of the acked offsets then stays more than one past the committed offset,
    and ``_new_offset`` never commits the partition again (one partition's lag
    stuck while its records are processed; docs/operators.md). Every offset a
    commit acknowledged was processed, and a later owner only commits further,
    so after the seek the books start at the later of the broker's answer and
    this worker's own last successful commit.
    """
    consumer: Any = app.consumer
    landed: dict[TP, int] = {}
    commit, seek = consumer._commit, consumer.perform_seek

    async def commit_and_remember(offsets: Mapping[TP, int]) -> bool:
        did_commit = bool(await commit(offsets))
        if did_commit:
            for tp, offset in offsets.items():
                landed[tp] = max(offset, landed.get(tp, offset))
        return did_commit

    async def seek_not_behind_commits() -> None:
        await seek()
        restore_landed_commits(consumer, landed)
        await start_never_committed(consumer)

    consumer._commit = commit_and_remember
    consumer.perform_seek = seek_not_behind_commits


def restore_landed_commits(consumer: Any, landed: Mapping[TP, int]) -> None:
    """Move each assigned partition's committed and read offsets up to its landed commit."""
    assigned = consumer.assignment()
    committed_offsets, read_offsets = consumer._committed_offset, consumer._read_offset
    for tp, offset in landed.items():
        committed = committed_offsets[tp]
        if tp in assigned and (committed is None or committed < offset):
            committed_offsets[tp] = offset
            read = read_offsets[tp]
            read_offsets[tp] = offset if read is None else max(read, offset)


def commit_from_known_start(app: faust.App) -> None:
    """Commit a partition only once Faust's books know its committed offset.

    faust-streaming 0.15.3: a rebalance forgets each partition's committed
    offset (``on_partitions_revoked``), and Recovery resumes the flow before
    ``perform_seek`` writes it back. Meanwhile aiokafka 0.14 keeps a retained
    partition's position, which may be past records fetched and dropped in
    the rebalance, and ``_new_offset`` with no committed offset commits the
    first run of acked offsets, whatever lies below it. The chaos test lost
    66 records so: committed 182, then 249, 182..247 never processed. Here
    the commit waits until the committed offset is known again; what was
    acked stays in the books, and a hole below it is read again
    (:class:`~advisering.worker.faust_door.consumer.HoleRepair`). A
    partition the group never committed starts at its first offset (the
    worker resets to the earliest), which :func:`keep_commits_across_seeks`
    writes into the books after the seek.
    """
    consumer: Any = app.consumer
    new_offset = consumer._new_offset

    def new_offset_from_known_start(tp: TP) -> int | None:
        if consumer._committed_offset.get(tp) is None:
            return None
        offset: int | None = new_offset(tp)
        return offset

    consumer._new_offset = new_offset_from_known_start


async def start_never_committed(consumer: Any) -> None:
    """Write the first offset as committed for each assigned partition the group never committed."""
    committed = consumer._committed_offset
    unknown = [tp for tp in consumer.assignment() if committed.get(tp) is None]
    if unknown:
        for tp, offset in (await consumer.earliest_offsets(*unknown)).items():
            if committed.get(tp) is None and offset is not None:
                committed[tp] = offset
