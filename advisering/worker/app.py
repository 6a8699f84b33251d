"""The Faust app: two short agents around the pure steps.

``intake`` reads ``advisering.case-events``, dead-letters what is invalid and
routes each valid event's copies (one per party) to the partition of the
party's pseudonym on the repartition topic, one record per batch and
partition (:mod:`advisering.worker.bundle`). ``correlate`` keeps each
citizen's state in a table (memory store with a changelog topic, or RocksDB)
and sends notifications and audit records.

Both agents take events in batches (``stream.take_events``) and send a
batch's records as one Kafka batch per topic-partition
(:mod:`advisering.worker.sending`): Faust's per-record send and per-message
consumer machinery cost more than the worker's own work (benchmarks/pipeline.py).
Processing is at-least-once: a batch's events are acked (and can be
committed) only after Kafka acknowledged its records, correlate saves state
only after the notifications it caused were acknowledged, and deterministic
notification ids plus the state's memory of processed events make a
replayed event harmless.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import faust
import orjson
from faust.serializers import codecs

from advisering import metrics
from advisering.engine.matcher import Matcher
from advisering.engine.overview import CitizenState
from advisering.events import Vocabulary
from advisering.http.sources_reload import ReloadingSources
from advisering.kafka.topics import (
    AUDIT,
    CASE_EVENTS,
    DEAD_LETTERS,
    NOTIFICATIONS,
    citizen_topic_name,
)
from advisering.log import get_logger
from advisering.rulebook.watch import MatcherHolder
from advisering.settings import Settings
from advisering.worker import bundle, faust_door, steps, tally
from advisering.worker.lifecycle import WorkerStatus
from advisering.worker.pages import add_pages
from advisering.worker.sending import BatchSender, Record, SendFailed, partition_for

log = get_logger(__name__)


class Position(Protocol):
    """Where a record was read: all the worker reads of a Faust message (dead letters, logs)."""

    topic: str
    partition: int
    offset: int


# One citizen event handled in a correlate batch: (pseudonym or None for a record that
# could not be unpacked, its message, its payload, what to send for it).
Handled = tuple[bytes | None, Position, bytes | None, steps.Outbox]


def encode_state(state: CitizenState) -> bytes:
    """A citizen's state as its changelog record holds it."""
    return orjson.dumps(state.to_json())


class CitizenStateCodec(codecs.Codec):
    """Changelog encoding of a citizen's state (the memory store keeps the object)."""

    def _dumps(self, obj: Any) -> bytes:
        return encode_state(obj)

    def _loads(self, s: bytes) -> Any:
        return CitizenState.from_json(orjson.loads(s))


def register_codecs() -> None:
    """Make the table's serializer name known to Faust; when an app is built, not on import.

    Faust keeps codecs in one process-wide registry; registering the same name
    again replaces it with an equal codec, so building several apps is fine.
    """
    codecs.register("citizen-state", CitizenStateCodec())


@dataclass
class WorkerApp:
    """The app and the handles the agents and tests need."""

    app: faust.App
    holder: MatcherHolder
    vocabulary: Vocabulary
    citizens: Any
    intake_agent: Any
    correlate_agent: Any
    topics: dict[str, Any]
    sender: BatchSender
    status: WorkerStatus = field(default_factory=WorkerStatus)


def faust_broker_urls(bootstrap: str) -> list[str]:
    """Faust's broker URLs for a Kafka bootstrap list (``host:port,host:port``)."""
    return [f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()]


def create_app(
    settings: Settings, matcher: Matcher, vocabulary: Vocabulary, replicas: int = 1
) -> WorkerApp:
    """Build the worker's Faust app with its topics, table and agents."""
    holder = MatcherHolder(matcher)
    app = _faust_app(settings, replicas)
    topics = _declare_topics(app, settings)
    citizens = citizens_table(app, settings)
    agents = Agents(app, settings, vocabulary, holder, citizens,
                    {role: topic.get_topic_name() for role, topic in topics.items()})
    intake_agent = app.agent(topics["case_events"], name="intake")(agents.intake)
    correlate_agent = app.agent(topics["citizen_events"], name="correlate")(agents.correlate)
    status = WorkerStatus()
    add_pages(app, status)
    return WorkerApp(app, holder, vocabulary, citizens, intake_agent, correlate_agent, topics,
                     agents.sender, status)


class Agents:
    """The two agents' bodies: take a batch, run the pure steps, send, then ack.

    Events come in batches (``stream.take_events``) and every batch's records
    go out together (:mod:`advisering.worker.sending`): Faust's per-record
    send costs more than the worker's own work. A batch's events are acked (and can be
    committed) only after Kafka acknowledged its records.
    """

    def __init__(self, app: faust.App, settings: Settings, vocabulary: Vocabulary,
                 holder: MatcherHolder, citizens: Any, names: dict[str, str]) -> None:
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

    def _kafka_producer(self) -> Any:
        """Faust's aiokafka producer (looked up late: the app starts it before the agents)."""
        return faust_door.aiokafka_producer(self.app)

    def records(self, outbox: steps.Outbox) -> list[Record]:
        """The outbox as records to send: citizen events, notifications, audit, dead letters."""
        names = self.names
        return [(names[role], None, key, value)
                for role, pairs in (("citizen_events", outbox.citizen_events),
                                    ("notifications", outbox.notifications),
                                    ("audit", outbox.audit),
                                    ("dead_letters", outbox.dead_letters))
                for key, value in pairs]

    async def send(self, agent: str, out: list[Record]) -> dict[tuple[str, int], int]:
        """Send or stop the worker: its events stay uncommitted and are redone at restart.

        Returns the last offset written per (topic, partition).
        """
        try:
            return await self.sender.send(out)
        except SendFailed as exc:
            log.error("send_failed", agent=agent, error=str(exc))
            await self.app.crash(exc)
            raise

    async def intake(self, stream: Any) -> Any:
        """Validate, dead-letter or route by pseudonym; yields the citizen copies per batch.

        The copies bound for one partition of the repartition topic travel as
        one record (:mod:`advisering.worker.bundle`).
        """
        async for events in stream.take_events(self.batch_max, within=self.batch_seconds):
            out: list[Record] = []
            by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
            grants = self.sources.current().grants  # reloaded when the file changed
            for event in events:
                message = event.message
                box = steps.intake(event.value, self.vocabulary, grants=grants,
                                   topic=message.topic, partition=message.partition,
                                   offset=message.offset, now=tally.now_iso())
                tally.record(box.counts)
                for citizen, payload in box.citizen_events:
                    by_partition.setdefault(partition_for(citizen, self.partitions, 0),
                                            []).append((citizen, payload))
                box.citizen_events = []
                out += self.records(box)
            topic = self.names["citizen_events"]
            out += [(topic, partition, None, bundle.pack(pairs))
                    for partition, pairs in by_partition.items()]
            metrics.BATCH_EVENTS.labels("intake").observe(len(events))
            await self.send("intake", out)
            yield sum(len(pairs) for pairs in by_partition.values())

    async def correlate(self, stream: Any) -> Any:
        """The engine per citizen event; yields the notifications per batch."""
        async for events in stream.take_events(self.batch_max, within=self.batch_seconds):
            touched: dict[bytes, tuple[CitizenState, Any]] = {}
            handled: list[Handled] = []
            for event in events:
                handled += self.correlate_record(event, touched)
            metrics.BATCH_EVENTS.labels("correlate").observe(len(events))
            encoded = {key: None if state.is_empty() else encode_state(state)
                       for key, (state, _) in touched.items()}
            # Defence in depth behind the engine's limits: a state the changelog
            # would refuse stays as it was, and what its events caused is not sent.
            too_large = steps.too_large(encoded, self.max_state_bytes)
            for key in too_large:
                del touched[key]
            out: list[Record] = []
            notified = 0
            for citizen, message, payload, box in handled:
                if citizen is not None and citizen in too_large:
                    letter = steps.state_size_letter(
                        payload, citizen, self.max_state_bytes, topic=message.topic,
                        partition=message.partition, offset=message.offset, now=tally.now_iso())
                    tally.record(letter.counts)
                    out += self.records(letter)
                    continue
                notified += len(box.notifications)
                out += self.records(box)
            # Notifications before state: were the state written first and the
            # worker killed in between, the replayed events would count as seen
            # and their notifications would be lost. This way a replay re-sends
            # them under the same ids (at-least-once, idempotent downstream).
            await self.send("correlate", out)
            await self.save(touched, encoded)
            yield notified

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
        written = await self.send("correlate", records) if records else {}
        faust_door.store_states(
            citizens, [(key, None if state.is_empty() else state, event)
                       for key, (state, event) in touched.items()], written)

    def correlate_record(self, event: Any,
                         touched: dict[bytes, tuple[CitizenState, Any]]) -> list[Handled]:
        """Every citizen event of one repartition record, in order."""
        message = event.message
        try:
            pairs = bundle.unpack(event.value)
        except ValueError as exc:
            return [(None, message, event.value, self.failed(message, event.value, exc))]
        faust_door.set_current_event(event)
        return [(citizen, message, payload,
                 self.correlate_one(message, citizen, payload, touched))
                for citizen, payload in pairs]

    def correlate_one(self, message: Position, citizen: bytes, payload: bytes,
                      touched: dict[bytes, tuple[CitizenState, Any]]) -> steps.Outbox:
        """One citizen event against the batch's newest state of its citizen."""
        before = touched[citizen][0] if citizen in touched else self.citizens.data.get(citizen)
        began = time.perf_counter()
        try:
            state, outbox = steps.correlate(
                citizen.decode(errors="replace"), payload, before, self.holder.matcher,
                self.limits, topic=message.topic, partition=message.partition,
                offset=message.offset, max_depth=self.vocabulary.max_depth, now=tally.now_iso())
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the bus: dead-letter, go on
            return self.failed(message, payload, exc)
        tally.record(outbox.counts, time.perf_counter() - began)
        # Unchanged (a re-delivered or refused event): nothing to write.
        if state is not before and (before is not None or not state.is_empty()):
            touched[citizen] = (state, faust_door.get_current_event())
        return outbox

    @staticmethod
    def failed(message: Position, payload: bytes | None, exc: Exception) -> steps.Outbox:
        """A dead letter for what the engine could not process (a bug): kept, never dropped."""
        # No traceback: its frames and messages could hold event data.
        log.error("event_processing_failed", topic=message.topic,
                  partition=message.partition, offset=message.offset,
                  error=type(exc).__name__)
        outbox = steps.processing_failure(
            payload, exc, topic=message.topic, partition=message.partition,
            offset=message.offset, now=tally.now_iso())
        tally.record(outbox.counts)
        return outbox


def _faust_app(settings: Settings, replicas: int) -> faust.App:
    """The Faust app with the worker's settings (at-least-once: acks from all replicas)."""
    return faust.App(
        settings.worker_app_id,
        broker=faust_broker_urls(settings.bootstrap_servers),
        store=settings.worker_store,
        topic_partitions=settings.worker_partitions,
        topic_replication_factor=replicas,
        consumer_auto_offset_reset="earliest",
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        datadir=str(settings.worker_data_dir),
        producer_acks=-1,
        broker_commit_interval=settings.worker_commit_interval,
        broker_session_timeout=settings.worker_session_timeout,
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout / 3),
    )


def _declare_topics(app: faust.App, settings: Settings) -> dict[str, Any]:
    """The worker's topics by role, all with raw bytes (the steps do the encoding)."""
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    return {
        "case_events": app.topic(CASE_EVENTS, **raw),
        "citizen_events": app.topic(
            citizen_topic_name(settings.worker_app_id), internal=True,
            partitions=settings.worker_partitions, **raw,
        ),
        "notifications": app.topic(NOTIFICATIONS, **raw),
        "audit": app.topic(AUDIT, **raw),
        "dead_letters": app.topic(DEAD_LETTERS, **raw),
    }


def citizens_table(app: faust.App, settings: Settings) -> Any:
    """The citizens table: per pseudonym, the citizen's state."""
    # Keys are the pseudonym's bytes as they come off the repartition topic.
    # Faust derives a table's serializers from its types (json unless a Record):
    # the changelog topic (read in recovery) and the table (used when writing)
    # both get ours explicitly, so the codec is registered with the table.
    register_codecs()
    changelog = app.topic(
        f"{settings.worker_app_id}-citizens-changelog", key_serializer="raw",
        value_serializer="citizen-state", partitions=settings.worker_partitions,
        compacting=True, deleting=False, internal=True, acks=False,
    )
    citizens: Any = app.Table("citizens", partitions=settings.worker_partitions,
                              changelog_topic=changelog)
    faust_door.use_table_serializers(citizens, key="raw", value="citizen-state")
    return citizens


