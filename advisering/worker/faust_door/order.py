"""Each input partition's records reach the engine in offset order, none left out.

Why: the engine's notifications depend on the order of a citizen's events
(an admission before or after a home-care case opened), and Faust 0.15.3
can leave records of a partition out while later ones are processed. Its
stream silently skips a record fetched under an earlier generation or while
the flow was stopped (``Stream._py_aiter``: ``skipped_value``), and a
rebalance can resume a partition past records fetched and dropped. The
records left out were processed later, when a rebalance or the hole repair
read them again: the chaos test saw a partition processed from 244 straight
to 326, and 245..325 seven seconds later, which turned a citizen's hospital
admission and home-care case around and sent a notification a fault-free
run does not send; in another run they were never processed.

:class:`PartitionOrder` stands between the agent's batches and the engine.
It knows, per input partition and generation, the next offset due: the
books' committed offset at first, then one past each record admitted. A
record beyond it is held back: marked done without an ack, so Faust's books
keep the hole and nothing commits past it, and the partition is read again
from the offset due, by the drain loop between two fetched batches
(:func:`seek_rereads`). Only when the same partition jumps to the same
record again is the offset gap real (a transaction marker, a compacted or
expired record), and the record is admitted.

Not the same work as the drain loop's jump re-read (``consumer._deliver``): that
one keeps Faust from marking the skipped offsets as a gap, done in its books,
which would let a commit pass the hole this class leaves; this one catches
the records Faust's stream drops after delivery, which the loop never sees.

faust-streaming 0.15.3: ``Message.acked``, ``Consumer._unacked_messages``,
``Consumer._committed_offset``; the seek is Faust's ``Consumer.seek``.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import faust
from faust.types import TP

from advisering import metrics
from advisering.log import get_logger

log = get_logger(__name__)

#: Per consumer, the partitions to read again at the drain loop's next turn:
#: (generation, offset due).
_REREADS: weakref.WeakKeyDictionary[Any, dict[TP, tuple[int, int]]] = (
    weakref.WeakKeyDictionary())


class PartitionOrder:
    """Admits each input partition's records in offset order; holds back what comes early."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.generation: int | None = None
        self.due: dict[TP, int] = {}  # the next offset to admit, per partition
        self.jumped: dict[TP, int] = {}  # the record a partition jumped to when read again

    def admit(self, events: Sequence[Any]) -> list[Any]:
        """The events to process now, in their order; the others are held back for a re-read."""
        generation = int(self.app.consumer_generation_id)
        if generation != self.generation:
            self.generation, self.due, self.jumped = generation, {}, {}
        consumer: Any = self.app.consumer
        acks_enabled_for = self.app.topics.acks_enabled_for
        admitted = []
        for event in events:
            message = event.message
            if not acks_enabled_for(message.topic) or self._in_order(consumer, message):
                admitted.append(event)
            else:
                self._hold_back(consumer, message)
        return admitted

    def _in_order(self, consumer: Any, message: Any) -> bool:
        tp, offset = message.tp, message.offset
        due = self.due.get(tp)
        if due is None:
            due = consumer._committed_offset.get(tp)
        if due is not None and offset > due and self.jumped.get(tp) != offset:
            return False
        if due is not None and offset > due:
            log.warning("offsets_gap_accepted", topic=tp.topic, partition=tp.partition,
                        due=due, offset=offset)
            metrics.OFFSET_JUMPS.labels("gap_accepted").inc()
        self.jumped.pop(tp, None)
        self.due[tp] = max(offset + 1, due or 0)
        return True

    def _hold_back(self, consumer: Any, message: Any) -> None:
        """Leave ``message`` out of the books (done, never acked) and ask for a re-read."""
        tp = message.tp
        due = self.due.get(tp)
        if due is None:
            due = consumer._committed_offset.get(tp)
        message.acked = True  # Faust's ack is a no-op now: the offset stays a hole
        consumer._unacked_messages.discard(message)
        requested = _REREADS.setdefault(consumer, {})
        if tp not in requested:
            requested[tp] = (int(self.generation or 0), int(due))
            self.jumped[tp] = message.offset
            log.warning("offsets_jumped_read_again", topic=tp.topic, partition=tp.partition,
                        due=due, offset=message.offset)
            metrics.OFFSET_JUMPS.labels("read_again").inc()


def due_seeks(consumer: Any, requested: dict[TP, tuple[int, int]] | None) -> list[tuple[TP, int]]:
    """Take the requested seeks out: (partition, offset) of those still in the same generation.

    A request from an earlier generation, or for a partition no longer
    assigned, is dropped: that rebalance's own seek moved the partition.
    """
    if not requested:
        return []
    taken = dict(requested)
    requested.clear()
    generation = consumer.app.consumer_generation_id
    assigned = consumer.assignment()
    return [(tp, offset) for tp, (seen_generation, offset) in taken.items()
            if seen_generation == generation and tp in assigned]


async def seek_rereads(consumer: Any) -> None:
    """In the drain loop: read each partition :class:`PartitionOrder` held back again."""
    for tp, due in due_seeks(consumer, _REREADS.get(consumer)):
        await consumer.seek(tp, due)
