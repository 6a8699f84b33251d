"""Configuration of advisering's confluent-kafka clients, and where librdkafka's log goes.

librdkafka logs on its own: without a ``logger`` it writes straight to
stderr, bypassing structlog, and with the broker gone it writes a ``FAIL``
line at every reconnect attempt (every ~50 ms with several clients). Every
confluent client advisering creates takes its configuration from
:func:`client_config`, which passes a ``logging.Logger`` whose handler
forwards librdkafka's lines to structlog (event ``librdkafka_log``, with the
facility as ``kind``), at most one line per kind per
``ADVISERING_KAFKA_LOG_INTERVAL`` seconds with a count of the lines
suppressed in between, and which backs reconnects off to at most ten seconds.

Every configuration starts from a :class:`~advisering.kafka.connection.KafkaConnection`
(bootstrap servers and the ``ADVISERING_KAFKA_*`` security settings), never
from a bare bootstrap string, and no client's own properties may override
what the connection sets.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from advisering.kafka.connection import SECURITY_PROPERTIES, KafkaConnection
from advisering.log import get_logger

log = get_logger(__name__)

#: Exponential reconnect backoff: 0.5 s, doubling, to at most 10 s per broker.
RECONNECT_BACKOFF_MS = 500
RECONNECT_BACKOFF_MAX_MS = 10_000
#: librdkafka lines are cut here (they hold broker addresses and states, no event data).
MAX_LINE_CHARS = 400
#: Kinds remembered by the rate limit (librdkafka has a few dozen facilities).
MAX_KINDS = 256
DEFAULT_INTERVAL = 10.0


@dataclass
class _Kind:
    last: float
    suppressed: int = 0


class RateLimitedForwarder(logging.Handler):
    """A logging handler that forwards librdkafka's records to structlog, rate-limited.

    The kind of a record is librdkafka's facility (``FAIL``, ``REQTMOUT``,
    ...). The first record of a kind is forwarded; later ones within
    ``interval`` seconds are only counted, and the next forwarded record of
    that kind carries the count as ``suppressed``.
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 sink: Callable[..., Any] | None = None, event: str = "librdkafka_log") -> None:
        super().__init__(level=logging.DEBUG)
        self.interval = interval
        self.event = event
        self._clock = clock
        self._sink = sink
        self._kinds: dict[str, _Kind] = {}
        self._mutex = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Forward the record, or count it when its kind was forwarded within ``interval``."""
        try:
            kind, client, text = _parts(record)
            now = self._clock()
            with self._mutex:
                seen = self._kinds.get(kind)
                if seen is not None and now - seen.last < self.interval:
                    seen.suppressed += 1
                    return
                suppressed = seen.suppressed if seen is not None else 0
                if seen is None and len(self._kinds) >= MAX_KINDS:
                    self._kinds.clear()
                self._kinds[kind] = _Kind(last=now)
            self._forward(record.levelno, kind=kind, client=client, message=text,
                          suppressed=suppressed)
        except Exception:  # noqa: BLE001 - a log line must never take a Kafka client's thread down
            self.handleError(record)

    def _forward(self, level: int, **fields: Any) -> None:
        if self._sink is not None:
            self._sink(level, **fields)
            return
        if level >= logging.ERROR:
            log.error(self.event, **fields)
        elif level >= logging.WARNING:
            log.warning(self.event, **fields)
        elif level >= logging.INFO:
            log.info(self.event, **fields)
        else:
            log.debug(self.event, **fields)


def _parts(record: logging.LogRecord) -> tuple[str, str, str]:
    """(kind, client, text) of a record.

    confluent-kafka logs librdkafka's lines as ``"%s [%s] %s"`` (facility,
    client, text): the facility is the kind. Any other record's kind is its
    logger and message template (``aiokafka: Unable connect to node ...``),
    a bounded set as templates are fixed strings.
    """
    args = record.args
    if record.msg == _CONFLUENT_FORMAT and isinstance(args, tuple) and len(args) == 3:
        kind, client, text = (str(part) for part in args)
        return kind[:32], client[:64], text[:MAX_LINE_CHARS]
    kind = f"{record.name}: {record.msg}"[:80]
    return kind, record.name[:64], record.getMessage()[:MAX_LINE_CHARS]


_CONFLUENT_FORMAT = "%s [%s] %s"


FORWARDER = RateLimitedForwarder()
LIBRDKAFKA_LOGGER = logging.getLogger("advisering.librdkafka")
LIBRDKAFKA_LOGGER.addHandler(FORWARDER)
LIBRDKAFKA_LOGGER.setLevel(logging.DEBUG)  # structlog's level filters
LIBRDKAFKA_LOGGER.propagate = False  # never also through the root logger's stderr handler


#: aiokafka (Faust's Kafka client) logs through the standard library at ERROR on
#: every reconnect and metadata attempt: thousands of lines a minute with Kafka gone.
AIOKAFKA_FORWARDER = RateLimitedForwarder(event="aiokafka_log")


def configure_client_logging(interval: float) -> None:
    """Apply ``ADVISERING_KAFKA_LOG_INTERVAL`` and route aiokafka's log through the limit.

    Called once at the worker's start-up. aiokafka's WARNING and above go to
    structlog, one line per logger and message template per interval.
    """
    FORWARDER.interval = interval
    AIOKAFKA_FORWARDER.interval = interval
    aiokafka = logging.getLogger("aiokafka")
    aiokafka.handlers = [AIOKAFKA_FORWARDER]
    aiokafka.setLevel(logging.WARNING)
    aiokafka.propagate = False


def client_config(kafka: KafkaConnection, props: dict[str, Any] | None = None) -> dict[str, Any]:
    """A confluent-kafka client configuration: the connection, logger, reconnect backoff, ``props``.

    ``props`` may not set what the connection sets (bootstrap servers,
    ``security.protocol``, ``sasl.*``, ``ssl.*`` locations): ValueError. The
    result holds the SASL password in clear for librdkafka: never log it.
    """
    _refuse_security(props)
    config: dict[str, Any] = {
        **kafka.confluent(),
        "logger": LIBRDKAFKA_LOGGER,
        "reconnect.backoff.ms": RECONNECT_BACKOFF_MS,
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
        "log.connection.close": False,
    }
    config.update(props or {})
    return config


def _refuse_security(props: dict[str, Any] | None) -> None:
    """ValueError when a client's own ``props`` would override the connection's settings."""
    overriding = sorted(SECURITY_PROPERTIES & set(props or {}))
    if overriding:
        raise ValueError(f"a client's own properties may not set {overriding}: "
                         "they come from the KafkaConnection")


# -- Delivery guarantees (docs/operators.md "Delivery guarantees") ----------------------
#
# A KRaft controller fences a broker that stopped heartbeating after
# ``broker.session.timeout.ms`` (9 s by default) and moves its leaderships to
# replicas in the ISR; a broker stopped with SIGTERM hands them over at once.
# Every wait below is measured against that: an election must cost a retry,
# never a record.

#: How long a broker may take to acknowledge a produce request with ``acks=all``
#: (librdkafka's default, written down): a dead follower leaves the ISR when it
#: is fenced (9 s), so a healthy quorum answers well within it.
PRODUCE_REQUEST_TIMEOUT_MS = 30_000
#: Backoff between retries of a produce request: 0.1 s, growing to 1 s (librdkafka's
#: defaults, written down), so an election of ~10 s costs about ten retries.
RETRY_BACKOFF_MS = 100
RETRY_BACKOFF_MAX_MS = 1_000
#: Consumer group membership (librdkafka's defaults, written down): a consumer whose
#: heartbeats stop (a paused or dead process) loses its partitions after 45 s; one
#: that stops polling for 5 minutes (a wedged thread) leaves the group. The
#: consumers poll in their own thread and store a batch in well under a second.
CONSUMER_SESSION_TIMEOUT_MS = 45_000
CONSUMER_HEARTBEAT_INTERVAL_MS = 3_000
CONSUMER_MAX_POLL_INTERVAL_MS = 300_000


#: What no producer of advisering may do without.
DURABLE: dict[str, Any] = {"enable.idempotence": True, "acks": "all"}


def producer_config(kafka: KafkaConnection, *, client_id: str, delivery_timeout: float,
                    props: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`client_config` for a producer whose confirmed records survive a broker's death.

    Idempotent (a retried request never writes a record twice, and records
    keep their order per partition) with ``acks=all`` (confirmed only once
    every in-sync replica has it, at least ``min.insync.replicas`` of them).
    Retries are unbounded within ``delivery_timeout`` seconds, the time a
    record has from ``produce`` to its confirmation; it must outlast an
    election. ``props`` may add settings, but not weaken :data:`DURABLE` (ValueError).
    """
    _refuse_security(props)
    weakened = {k: v for k, v in (props or {}).items() if k in DURABLE and v != DURABLE[k]}
    if weakened:
        raise ValueError(f"a producer of advisering must keep {DURABLE}, not {weakened}")
    config = client_config(kafka, {
        "client.id": client_id,
        **DURABLE,
        "delivery.timeout.ms": int(delivery_timeout * 1000),
        "request.timeout.ms": PRODUCE_REQUEST_TIMEOUT_MS,
        "retry.backoff.ms": RETRY_BACKOFF_MS,
        "retry.backoff.max.ms": RETRY_BACKOFF_MAX_MS,
    })
    config.update(props or {})
    return config


def consumer_config(kafka: KafkaConnection, *, group: str, client_id: str,
                    props: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`client_config` for a consumer that commits only what it has handled.

    No automatic commits (each consumer commits after its work, or never);
    ``read_committed`` so that records of an aborted transaction, should a
    transactional producer ever write to these topics, are never read; the
    group membership timeouts above; from the earliest record when the group
    has no offset yet.
    """
    _refuse_security(props)
    config = client_config(kafka, {
        "group.id": group,
        "client.id": client_id,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": CONSUMER_SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": CONSUMER_HEARTBEAT_INTERVAL_MS,
        "max.poll.interval.ms": CONSUMER_MAX_POLL_INTERVAL_MS,
    })
    config.update(props or {})
    return config


#: librdkafka's murmur2 partitioner: for a key, ``(murmur2(key) & 0x7fffffff) % partitions``,
#: as the Java client and aiokafka (the worker) choose; librdkafka's default
#: (``consistent_random``, CRC32) would put a pseudonym on another partition.
CASE_EVENTS_PARTITIONER = "murmur2_random"


def case_events_producer_config(
    kafka: KafkaConnection, props: dict[str, Any] | None = None, *,
    client_id: str = "advisering-edge",
    delivery_timeout: float = 120.0,
) -> dict[str, Any]:
    """:func:`producer_config` for a producer to ``advisering.case-events``.

    The edge keys an event by its first party's pseudonym; with the worker's
    partitioner that key lands on the partition the worker's citizens table
    keeps the pseudonym on, so one citizen's events stay in order end to end.
    """
    return producer_config(kafka, client_id=client_id, delivery_timeout=delivery_timeout,
                           props={"partitioner": CASE_EVENTS_PARTITIONER, **(props or {})})


def broker_answers(kafka: KafkaConnection, timeout: float) -> bool:
    """True when a broker of ``kafka`` answers a metadata request (with its security settings)."""
    return bool(live_broker_ids(kafka, timeout))


def live_broker_ids(kafka: KafkaConnection, timeout: float) -> frozenset[int]:
    """The ids of the brokers the cluster of ``kafka`` lists as alive; empty if none answers.

    A KRaft cluster lists a broker once it has registered with the controller
    and is not fenced, so a restarted node appears only when it serves again.
    """
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - only needed here

    admin = AdminClient(probe_config(kafka))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - a readiness probe: whatever went wrong, it is not ready
        return frozenset()
    return frozenset(int(broker_id) for broker_id in metadata.brokers)


def probe_config(kafka: KafkaConnection) -> dict[str, Any]:
    """A readiness probe's admin client: the connection, and librdkafka's log silenced."""
    return {**kafka.confluent(), "log_level": 0, "logger": _SilentLogger()}


class _SilentLogger:
    """Swallows librdkafka's connection-refused chatter while we poll for readiness."""

    def log(self, *_args: object, **_kwargs: object) -> None:
        """Drop the line (librdkafka calls ``logger.log(level, format, *args)``)."""
        return None
