"""The worker's one agent: case events and repartitioned citizen events, one hop where it can.

The agent reads two topics, ``advisering.case-events`` and the worker's
repartition topic, and owns the citizens table. When both topics and the
table's changelog have the same partition count, Faust's assignor gives a
worker the same partition numbers of all three (they are co-partitioned).

A case event is validated, dead-lettered or fanned out to its parties (the
pure :func:`advisering.worker.steps.intake`). A party's copy is processed
right here when its pseudonym's partition is the one the event was read from
and this worker owns that partition of the table (in the current
assignment): the edge keys an event by its first party's pseudonym with the
worker's partitioner (murmur2), so that is every first party on a
co-partitioned input. Only the other copies (another party of a multi-party
event, events keyed otherwise) travel through the repartition topic, as one
bundle per partition (:mod:`advisering.worker.bundle`), and are processed by
the partition's owner when read back.

One agent, not two: two agents would race on one citizen's state. Per batch:
every record to send (repartition bundles, notifications, audit, dead
letters) is acknowledged by Kafka first, then the new states are written
(changelog, then store), and only then are the batch's events acked so their
offsets can be committed. A worker killed in between redoes the batch: the
same notification ids, and the states' memory of processed events makes the
replay harmless.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import faust
import orjson

from advisering import metrics
from advisering.engine.overview import CitizenState
from advisering.events import Vocabulary
from advisering.grants import GrantCheck
from advisering.http.sources_reload import ReloadingSources
from advisering.log import get_logger
from advisering.rulebook.watch import MatcherHolder
from advisering.settings import Settings
from advisering.worker import bundle, faust_door, steps, tally
from advisering.worker.sending import BatchSender, Record, SendFailed, partition_for

log = get_logger(__name__)

# The partitions of the citizens table this worker owns now (the current assignment).
OwnedPartitions = Callable[[], Collection[int]]
# Returns once this worker may write its states (its group membership is confirmed);
# raises faust_door.MembershipLost when it may not.
Fence = Callable[[], Awaitable[None]]
# The events of a batch to process now, in order: per input partition in offset order,
# none left out (faust_door.PartitionOrder); the others are read again.
Admit = Callable[[Sequence[Any]], list[Any]]

_DIRECT = metrics.CITIZEN_EVENTS_ROUTED.labels("direct")
_REPARTITIONED = metrics.CITIZEN_EVENTS_ROUTED.labels("repartitioned")
_LATENCY = metrics.NOTIFICATION_LATENCY_SECONDS


class Position(Protocol):
    """Where a record was read: all the worker reads of a Faust message (dead letters, logs)."""

    topic: str
    partition: int
    offset: int
    timestamp: float  # the record's timestamp, in seconds


# One citizen event handled in a batch: (pseudonym or None for a record that could not
# be unpacked, its message, its payload, what to send for it).
Handled = tuple[bytes | None, Position, bytes | None, steps.Outbox]


def encode_state(state: CitizenState) -> bytes:
    """A citizen's state as its changelog record holds it."""
    return orjson.dumps(state.to_json())


@dataclass(frozen=True, slots=True)
class BatchDone:
    """What one batch did; the agent yields it (tests and benchmarks read it)."""

    direct: int  # citizen events processed where they were read from case-events
    repartitioned: int  # citizen events sent to the repartition topic
    arrived: int  # citizen events read from the repartition topic and processed
    notified: int  # notifications sent


@dataclass
class Batch:
    """One batch in the making: intake's records, the copies to move, the states touched."""

    now: str  # the batch's time: notifications' ``created``, dead letters' ``received``
    intake: list[Record] = field(default_factory=list)
    moving: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    touched: dict[bytes, tuple[CitizenState, Any]] = field(default_factory=dict)
    handled: list[Handled] = field(default_factory=list)
    direct: int = 0
    arrived: int = 0


class CitizenAgent:
    """The agent's body: take a batch, run the pure steps, send, save, then ack.

    Events come in batches (``stream.take_events``) and every batch's records
    go out together (:mod:`advisering.worker.sending`): Faust's per-record
    send costs more than the worker's own work.
    """

    def __init__(self, app: faust.App, settings: Settings, vocabulary: Vocabulary,
                 holder: MatcherHolder, citizens: Any, names: dict[str, str],
                 owned_partitions: OwnedPartitions | None = None,
                 fence: Fence | None = None, admit: Admit | None = None) -> None:
        self.app = app
        self.vocabulary = vocabulary
        self.holder = holder
        self.citizens = citizens
        self.names = names
        self.partitions = settings.worker_partitions  # the repartition topic's and the table's
        self.batch_max = settings.worker_batch_max
        self.batch_seconds = settings.worker_batch_seconds
        self.limits = steps.state_limits(settings)
        self.max_state_bytes = settings.citizen_max_state_bytes
        self.sender = BatchSender(self._kafka_producer)
        self.sources = ReloadingSources(settings.sources_file, vocabulary, required=True,
                                        interval=settings.sources_reload_seconds)
        self.owned_partitions = owned_partitions or self._assigned_partitions
        self.fence = fence or self._confirm_membership
        self.admit = admit or faust_door.PartitionOrder(app).admit
        self.lease_fresh = settings.worker_session_timeout / 2
        self.lease_patience = settings.worker_producer_timeout

    def _kafka_producer(self) -> Any:
        """Faust's aiokafka producer (looked up late: the app starts it before the agents)."""
        return faust_door.aiokafka_producer(self.app)

    def _assigned_partitions(self) -> Collection[int]:
        """The repartition topic's partitions actively assigned to this worker (Faust's API).

        They are the table's partitions this worker owns: the table's
        changelog is assigned with the topic it is filled from. Read from the
        assignor, which every member knows for itself (the consumer's topic
        metadata is complete only on the group's leader).
        """
        topic = self.names["citizen_events"]
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    async def _confirm_membership(self) -> None:
        """Faust's consumer's group membership, confirmed within half a session (the lease)."""
        await faust_door.confirm_membership(self.app, fresh=self.lease_fresh,
                                            patience=self.lease_patience)

    def records(self, outbox: steps.Outbox) -> list[Record]:
        """The outbox as records to send: citizen events, notifications, audit, dead letters."""
        names = self.names
        return [(names[role], None, key, value)
                for role, pairs in (("citizen_events", outbox.citizen_events),
                                    ("notifications", outbox.notifications),
                                    ("audit", outbox.audit),
                                    ("dead_letters", outbox.dead_letters))
                for key, value in pairs]

    async def send(self, out: list[Record]) -> dict[tuple[str, int], int]:
        """Send or stop the worker: its events stay uncommitted and are redone at restart.

        Returns the last offset written per (topic, partition).
        """
        try:
            return await self.sender.send(out)
        except SendFailed as exc:
            log.error("send_failed", error=str(exc))
            await self.app.crash(exc)
            raise

    async def hold_partitions(self) -> None:
        """Write states only as the partitions' owner, or stop the worker (exit 70).

        A worker paused past its session timeout has lost its partitions
        without knowing it; its states would overwrite the new owner's in the
        changelog (:mod:`advisering.worker.faust_door.membership`). Stopping
        leaves the batch uncommitted: its notifications were sent (the same
        ids again when redone) and the owner redoes it.
        """
        try:
            await self.fence()
        except faust_door.MembershipLost as exc:
            log.error("membership_lost", error=str(exc))
            await self.app.crash(exc)
            raise

    async def process(self, stream: Any) -> Any:
        """Both topics' events, batch by batch; yields a :class:`BatchDone` per batch."""
        repartition_topic = self.names["citizen_events"]
        async for taken in stream.take_events(self.batch_max, within=self.batch_seconds):
            events = self.admit(taken)
            batch = Batch(tally.now_iso())
            owned = self.owned_partitions()
            grants = self.sources.current().grants  # reloaded when the file changed
            for event in events:
                if event.message.topic == repartition_topic:
                    self.correlate_record(event, batch)
                else:
                    self.intake_record(event, batch, grants, owned)
            metrics.BATCH_EVENTS.labels("citizens").observe(len(events))
            moved = [(repartition_topic, partition, None, record)
                     for partition, pairs in batch.moving.items()
                     for record in bundle.pack_within(pairs)]
            repartitioned = sum(len(pairs) for pairs in batch.moving.values())
            _DIRECT.inc(batch.direct)
            _REPARTITIONED.inc(repartitioned)
            out, encoded, notified = self.outcome(batch)
            # Notifications before state: were the state written first and the
            # worker killed in between, the replayed events would count as seen
            # and their notifications would be lost. This way a replay re-sends
            # them under the same ids (at-least-once, idempotent downstream).
            await self.send(batch.intake + moved + out)
            self.observe_latency(batch)
            if batch.touched:
                await self.hold_partitions()
            await self.save(batch.touched, encoded)
            yield BatchDone(batch.direct, repartitioned, batch.arrived, notified)

    def observe_latency(self, batch: Batch) -> None:
        """Publication to acknowledged notification, for the batch's one-hop case events."""
        now = time.time()
        case_events = self.names["case_events"]
        for _, message, _, box in batch.handled:
            if box.notifications and message.topic == case_events and message.timestamp:
                seconds = max(0.0, now - message.timestamp)
                for _ in box.notifications:
                    _LATENCY.observe(seconds)

    def intake_record(self, event: Any, batch: Batch, grants: GrantCheck,
                      owned: Collection[int]) -> None:
        """Validate one case event; process its copies that belong here, move the others.

        A copy belongs here when its citizen's partition is the one the event
        was read from and that partition of the table is ``owned`` by this worker.
        """
        message = event.message
        box = steps.intake(event.value, self.vocabulary, grants=grants, topic=message.topic,
                           partition=message.partition, offset=message.offset, now=batch.now)
        tally.record(box.counts)
        copies, box.citizen_events = box.citizen_events, []
        batch.intake += self.records(box)
        for citizen, payload in copies:
            partition = partition_for(citizen, self.partitions, 0)
            if partition == message.partition and partition in owned:
                faust_door.set_current_event(event)
                batch.handled.append((citizen, message, payload,
                                      self.correlate_one(message, citizen, payload, batch)))
                batch.direct += 1
            else:
                batch.moving.setdefault(partition, []).append((citizen, payload))

    def correlate_record(self, event: Any, batch: Batch) -> None:
        """Every citizen event of one repartition record, in order."""
        message = event.message
        try:
            pairs = bundle.unpack(event.value)
        except ValueError as exc:
            batch.handled.append((None, message, event.value,
                                  self.failed(message, event.value, exc, batch.now)))
            return
        faust_door.set_current_event(event)
        batch.handled += [(citizen, message, payload,
                           self.correlate_one(message, citizen, payload, batch))
                          for citizen, payload in pairs]
        batch.arrived += len(pairs)

    def correlate_one(self, message: Position, citizen: bytes, payload: bytes,
                      batch: Batch) -> steps.Outbox:
        """One citizen event against the batch's newest state of its citizen."""
        touched = batch.touched
        before = touched[citizen][0] if citizen in touched else self.citizens.data.get(citizen)
        began = time.perf_counter()
        try:
            state, outbox = steps.correlate(
                citizen.decode(errors="replace"), payload, before, self.holder.matcher,
                self.limits, topic=message.topic, partition=message.partition,
                offset=message.offset, max_depth=self.vocabulary.max_depth, now=batch.now)
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the bus: dead-letter, go on
            return self.failed(message, payload, exc, batch.now)
        tally.record(outbox.counts, time.perf_counter() - began)
        # Unchanged (a re-delivered or refused event): nothing to write.
        if state is not before and (before is not None or not state.is_empty()):
            touched[citizen] = (state, faust_door.get_current_event())
        return outbox

    def outcome(self, batch: Batch) -> tuple[list[Record], dict[bytes, bytes | None], int]:
        """What the batch's citizen events send, the encoded new states and the notifications.

        Defence in depth behind the engine's limits: a state the changelog
        would refuse stays as it was, and what its events caused is not sent.
        """
        touched = batch.touched
        encoded = {key: None if state.is_empty() else encode_state(state)
                   for key, (state, _) in touched.items()}
        too_large = steps.too_large(encoded, self.max_state_bytes)
        for key in too_large:
            del touched[key]
            del encoded[key]
        out: list[Record] = []
        notified = 0
        for citizen, message, payload, box in batch.handled:
            if citizen is not None and citizen in too_large:
                letter = steps.state_size_letter(
                    payload, citizen, self.max_state_bytes, topic=message.topic,
                    partition=message.partition, offset=message.offset, now=batch.now)
                tally.record(letter.counts)
                out += self.records(letter)
                continue
            notified += len(box.notifications)
            out += self.records(box)
        return out, encoded, notified

    async def save(self, touched: dict[bytes, tuple[CitizenState, Any]],
                   encoded: dict[bytes, bytes | None]) -> None:
        """Write the batch's new states: changelog records first (one batch), then the store.

        The table's own ``__setitem__`` would send one changelog record per
        write through Faust's producer buffer (a produce request each); here
        they go out with the batch. Recovery reads them as Faust's own.
        """
        citizens = self.citizens
        records: list[Record] = [
            faust_door.changelog_record(citizens, event.message.partition, key, encoded[key])
            for key, (_, event) in touched.items()]
        written = await self.send(records) if records else {}
        faust_door.store_states(
            citizens, [(key, None if state.is_empty() else state, event)
                       for key, (state, event) in touched.items()], written)

    @staticmethod
    def failed(message: Position, payload: bytes | None, exc: Exception,
               now: str) -> steps.Outbox:
        """A dead letter for what the engine could not process (a bug): kept, never dropped."""
        # No traceback: its frames and messages could hold event data.
        log.error("event_processing_failed", topic=message.topic,
                  partition=message.partition, offset=message.offset,
                  error=type(exc).__name__)
        outbox = steps.processing_failure(
            payload, exc, topic=message.topic, partition=message.partition,
            offset=message.offset, now=now)
        tally.record(outbox.counts)
        return outbox
