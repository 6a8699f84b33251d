"""The Faust app: its topics, the citizens table and one agent around the pure steps.

The agent (:mod:`advisering.worker.agent`) reads ``advisering.case-events``
and the worker's repartition topic, both co-partitioned with the citizens
table (memory store with a changelog topic, or RocksDB): a case event's copy
for a citizen whose partition it sits on is processed in one hop, and only
the other copies travel through the repartition topic. It takes events in
batches (``stream.take_events``) and sends a batch's records as one Kafka
batch per topic-partition (:mod:`advisering.worker.sending`): Faust's
per-record send and per-message consumer machinery cost more than the
worker's own work (benchmarks/pipeline.py). Processing is at-least-once: a
batch's events are acked (and can be committed) only after Kafka
acknowledged its records, states are saved only after the notifications they
caused were acknowledged, and deterministic notification ids plus the
state's memory of processed events make a replayed event harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from faust.serializers import codecs

from advisering import metrics
from advisering.engine.matcher import Matcher
from advisering.engine.overview import CitizenState
from advisering.events import Vocabulary
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.topics import (
    AUDIT,
    CASE_EVENTS,
    DEAD_LETTERS,
    NOTIFICATIONS,
    citizen_topic_name,
)
from advisering.log import get_logger
from advisering.metrics import COMMIT_HOLES_REFILLED
from advisering.rulebook.watch import MatcherHolder
from advisering.settings import Settings
from advisering.worker import faust_door
from advisering.worker.agent import Admit, CitizenAgent, Fence, OwnedPartitions, encode_state
from advisering.worker.lifecycle import WorkerStatus
from advisering.worker.pages import add_pages
from advisering.worker.sending import BatchSender

log = get_logger(__name__)


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
    agent: Any
    topics: dict[str, Any]
    sender: BatchSender
    status: WorkerStatus = field(default_factory=WorkerStatus)


def create_app(
    settings: Settings, matcher: Matcher, vocabulary: Vocabulary, replicas: int = 1,
    owned_partitions: OwnedPartitions | None = None, fence: Fence | None = None,
    admit: Admit | None = None,
) -> WorkerApp:
    """Build the worker's Faust app with its topics, table and agent.

    ``owned_partitions`` tells which partitions of the table this worker owns
    now; by default Faust's assignor (tests without a broker give their own).
    ``fence`` returns once the worker may write its states; by default its
    group membership confirmed by the broker (``faust_door.confirm_membership``).
    ``admit`` picks a batch's events to process now; by default each input
    partition's in offset order (``faust_door.PartitionOrder``).
    """
    holder = MatcherHolder(matcher)
    app = faust_app(settings, replicas)
    faust_door.keep_commits_across_seeks(app)
    faust_door.commit_from_known_start(app)
    faust_door.track_membership()
    faust_door.put_back_dropped_fetches(app)
    if settings.worker_drain_per_batch:
        faust_door.deliver_fetched_batches(app)
    topics = _declare_topics(app, settings)
    citizens = citizens_table(app, settings)
    names = {role: topic.get_topic_name() for role, topic in topics.items()}
    body = CitizenAgent(app, settings, vocabulary, holder, citizens, names, owned_partitions,
                        fence, admit)
    # One channel over both inputs: one agent, so no two tasks race on a citizen's state.
    inputs = app.topic(names["case_events"], names["citizen_events"],
                       key_serializer="raw", value_serializer="raw")
    agent = app.agent(inputs, name="citizens")(body.process)
    status = WorkerStatus()
    add_pages(app, status)
    if settings.worker_drain_per_batch:  # the repair knows the records its loop delivered
        repair_commit_holes(app, settings.worker_commit_hole_seconds)
    watch_input_lag(app, {names["case_events"]: "case_events",
                          names["citizen_events"]: "citizen_events"})
    return WorkerApp(app, holder, vocabulary, citizens, agent, topics, body.sender, status)


def watch_input_lag(app: faust.App, inputs: dict[str, str]) -> None:
    """Export the worker's input lag, computed when Prometheus scrapes (nothing to schedule)."""
    def lag_of(role: str) -> Callable[[], float]:
        return lambda: float(faust_door.input_lag(app.consumer, inputs)[role])

    for role in inputs.values():
        metrics.WORKER_INPUT_LAG.labels(role).set_function(lag_of(role))


def repair_commit_holes(app: faust.App, interval: float) -> None:
    """Check every ``interval`` seconds for a partition whose commits stopped at a hole.

    The worker's own fixes keep Faust's offset books whole across the
    rebalances found so far (``faust_door.keep_commits_across_seeks``); this
    repairs what they miss, so that a partition's lag never stays behind
    while its records are processed. Each repair is logged and counted.
    """
    repair = faust_door.HoleRepair(app)

    async def check_commit_holes() -> None:
        for hole in repair.check():
            COMMIT_HOLES_REFILLED.inc()
            log.warning("commit_hole_refilled", topic=hole.tp.topic,
                        partition=hole.tp.partition, committed=hole.committed, read=hole.read,
                        first_done=hole.first_done, generation=app.consumer_generation_id)

    app.timer(interval, name="commit-hole-repair")(check_commit_holes)


#: The largest request the worker's producer sends (Faust's default, written down).
#: The worker's largest records stay below it: a repartition bundle (256 KiB,
#: ``bundle.MAX_BYTES``), a citizen's state (``ADVISERING_CITIZEN_MAX_STATE_BYTES``,
#: 512 KiB by default) and a dead letter (its payload cut at 16 KiB).
PRODUCER_MAX_REQUEST_SIZE = 1_000_000
#: Kafka client request timeout of the worker's consumer (Faust's default, written
#: down): above the session timeout (Faust refuses less) and above the rebalance
#: timeout, as aiokafka sends JoinGroup with it and the coordinator may hold that
#: request for up to the rebalance timeout.
BROKER_REQUEST_TIMEOUT = 90.0
#: How long the group coordinator waits for every member to rejoin a rebalance
#: (Faust's default, written down). A member still finishing a batch whose send
#: waits out an election rejoins late and costs one more rebalance, not an event.
BROKER_REBALANCE_TIMEOUT = 60.0


def faust_options(settings: Settings, replicas: int) -> dict[str, Any]:
    """The Faust app's settings: at-least-once, ``acks=all``, and waits that outlast an election.

    ``env={}``: Faust otherwise reads unprefixed variables such as
    ``PRODUCER_ACKS`` or ``BROKER_SESSION_TIMEOUT`` from the environment and
    lets them override what is passed here; the worker's settings come from
    ``ADVISERING_*`` alone. See docs/operators.md "Delivery guarantees" for
    each value and for why the producer is not idempotent. The brokers and
    ``broker_credentials`` come from the one
    :class:`~advisering.kafka.connection.KafkaConnection` (TLS, SASL/SCRAM).
    """
    session = settings.worker_session_timeout
    kafka = KafkaConnection.from_settings(settings)
    return {
        "env": {},
        "broker": kafka.faust_broker_urls(),
        "broker_credentials": kafka.faust_credentials(),
        "store": settings.worker_store,
        "topic_partitions": settings.worker_partitions,
        "topic_replication_factor": replicas,
        "consumer_auto_offset_reset": "earliest",
        "web_host": settings.worker_web_host,
        "web_port": settings.worker_web_port,
        "datadir": str(settings.worker_data_dir),
        "producer_acks": -1,
        "producer_request_timeout": settings.worker_producer_timeout,
        "producer_max_request_size": PRODUCER_MAX_REQUEST_SIZE,
        "broker_commit_interval": settings.worker_commit_interval,
        "broker_session_timeout": session,
        "broker_heartbeat_interval": min(3.0, session / 3),
        "broker_request_timeout": BROKER_REQUEST_TIMEOUT,
        "broker_rebalance_timeout": BROKER_REBALANCE_TIMEOUT,
        # Above the longest stall of a healthy worker: a batch whose send waits for
        # up to the producer timeout while the stream's buffer is full.
        "broker_max_poll_interval": max(300.0, 2 * settings.worker_producer_timeout),
        # A rebalance waits until the agent's current batch is sent and its states
        # are saved, so a partition's next owner recovers them (never a state that
        # the previous owner overwrites afterwards).
        "stream_wait_empty": True,
    }


def faust_app(settings: Settings, replicas: int) -> faust.App:
    """The Faust app with the worker's settings (:func:`faust_options`)."""
    return faust.App(settings.worker_app_id, **faust_options(settings, replicas))


def _declare_topics(app: faust.App, settings: Settings) -> dict[str, Any]:
    """The worker's topics by role, all with raw bytes (the steps do the encoding).

    The repartition topic is made before Faust starts
    (:func:`advisering.worker.process.ensure_citizen_topic`).
    """
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    return {
        "case_events": app.topic(CASE_EVENTS, **raw),
        "citizen_events": app.topic(
            citizen_topic_name(settings.worker_app_id),
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
    # Like every topic: a state is confirmed once two replicas have it (one on a
    # one-node broker). Faust sets this when it creates the topic, never later.
    replicas = int(app.conf.topic_replication_factor)
    changelog = app.topic(
        f"{settings.worker_app_id}-citizens-changelog", key_serializer="raw",
        value_serializer="citizen-state", partitions=settings.worker_partitions,
        compacting=True, deleting=False, internal=True, acks=False,
        config={"min.insync.replicas": str(min(2, replicas))},
    )
    citizens: Any = app.Table("citizens", partitions=settings.worker_partitions,
                              changelog_topic=changelog)
    faust_door.use_table_serializers(citizens, key="raw", value="citizen-state")
    return citizens


