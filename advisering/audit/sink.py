"""`advisering audit-sink`: ``advisering.audit`` into the audit store, then commit; and prune.

The inbox consumer's order of work, with the audit's own rules: a batch's
records are checked, the ones that are no audit record (not JSON, another
shape, too large, a CPR-shaped value anywhere) go to ``advisering.dead-letters``
with a reason (redacted, as every dead letter) and are confirmed by Kafka
first, the good ones are stored in one transaction (a notification id stored
before is skipped), and only then are the offsets committed. Anything failing
on the way rewinds the consumer to the batch's first records, so the batch
comes again and nothing is lost or skipped; nothing in a record stops the sink.

Every ``ADVISERING_AUDIT_PRUNE_INTERVAL_SECONDS`` the sink deletes what is
older than the retention: logged (``audit_pruned``) and counted
(``advisering_audit_pruned_total``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from advisering import metrics
from advisering.audit.store import AuditStorage, created_utc
from advisering.engine.notification import AuditRecord
from advisering.events import Rejection, RejectReason
from advisering.kafka.clients import consumer_config, producer_config
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.deadletters import dead_letter
from advisering.kafka.topics import AUDIT, DEAD_LETTERS
from advisering.log import get_logger
from advisering.privacy import cpr_paths, may_hold_cpr
from advisering.pseudonyms import is_pseudonym

log = get_logger(__name__)

BATCH = 500
DEAD_LETTER_TIMEOUT_SECONDS = 30.0


def check_record(payload: bytes | None, max_bytes: int) -> AuditRecord | Rejection:
    """The audit record in a record's value, or why it is none (never raises)."""
    data = payload or b""
    if len(data) > max_bytes:
        return Rejection(RejectReason.TOO_LARGE, "", f"more than {max_bytes} bytes")
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Rejection(RejectReason.NOT_JSON, "", "the value is not JSON")
    if not isinstance(raw, dict):
        return Rejection(RejectReason.NOT_AN_OBJECT, "", "an audit record is a JSON object")
    if may_hold_cpr(raw):
        path = next(cpr_paths(raw), None)
        if path is not None:
            return Rejection(RejectReason.CPR_DETECTED, path, "a CPR number in an audit record")
    try:
        record = AuditRecord.from_json(raw)
        created_utc(record)
    except (ValueError, OverflowError) as exc:  # a time at year 1 or 9999 overflows in UTC
        return Rejection(RejectReason.INVALID_FIELD, "", str(exc)[:200])
    if not is_pseudonym(record.citizen):
        return Rejection(RejectReason.INVALID_FIELD, "citizen", "citizen is not a pseudonym")
    return record


def audit_sink_consumer_config(kafka: KafkaConnection, group: str) -> dict[str, Any]:
    """The sink's consumer: commits itself, after the batch is in the store."""
    return consumer_config(kafka, group=group, client_id="advisering-audit-sink")


def audit_sink_producer_config(kafka: KafkaConnection) -> dict[str, Any]:
    """The producer of the sink's dead letters (durable, as every producer)."""
    return producer_config(kafka, client_id="advisering-audit-sink",
                           delivery_timeout=DEAD_LETTER_TIMEOUT_SECONDS)


class AuditSinkError(RuntimeError):
    """A batch could not be finished (dead letters unconfirmed, the store failed)."""


class AuditSink:
    """Consumes ``advisering.audit`` into an ``AuditStorage``; see the module's text."""

    def __init__(self, kafka: KafkaConnection, group: str, store: AuditStorage, *,
                 max_record_bytes: int, retention: dt.timedelta,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 consumer: Consumer | None = None, producer: Producer | None = None) -> None:
        """``consumer`` and ``producer`` replace the Kafka clients (tests without a broker)."""
        self.store = store
        self.max_record_bytes = max_record_bytes
        self.retention = retention
        self._now = now
        self._consumer = (consumer if consumer is not None
                          else Consumer(audit_sink_consumer_config(kafka, group)))
        self._producer = (producer if producer is not None
                          else Producer(audit_sink_producer_config(kafka)))
        self.assigned = threading.Event()

    def subscribe(self) -> None:
        """Join the group on ``advisering.audit``."""
        self._consumer.subscribe([AUDIT], on_assign=lambda *_: self.assigned.set())

    def close(self) -> None:
        """Leave the group and flush the producer (the store is the caller's)."""
        self._consumer.close()
        self._producer.flush(5.0)

    def poll_once(self, timeout: float = 0.5) -> int:
        """Check, dead-letter, store and commit one batch; how many records were new.

        Raises ``AuditSinkError`` after rewinding the consumer to the batch.
        """
        messages = [m for m in self._consumer.consume(num_messages=BATCH, timeout=timeout)
                    if not m.error()]
        if not messages:
            return 0
        good: list[AuditRecord] = []
        rejected: list[tuple[Rejection, Message]] = []
        for message in messages:
            checked = check_record(message.value(), self.max_record_bytes)
            if isinstance(checked, Rejection):
                rejected.append((checked, message))
            else:
                good.append(checked)
        try:
            self._dead_letter(rejected)
            new = self.store.add_many(good)
            self._consumer.commit(asynchronous=False)
        except Exception as exc:
            self._rewind(messages)
            raise AuditSinkError(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
        metrics.AUDIT_STORED.inc(new)
        for rejection, _message in rejected:
            metrics.AUDIT_DEAD_LETTERS.labels(rejection.reason.value).inc()
        return new

    def _dead_letter(self, rejected: list[tuple[Rejection, Message]]) -> None:
        """Send the batch's dead letters and wait until Kafka confirmed every one."""
        if not rejected:
            return
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        received = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        for rejection, message in rejected:
            key, value = dead_letter(rejection, message.value(), topic=AUDIT,
                                     partition=message.partition(), offset=message.offset(),
                                     received=received)
            self._producer.produce(DEAD_LETTERS, key=key, value=value, on_delivery=delivered)
            log.warning("audit_record_dead_lettered", reason=rejection.reason.value,
                        partition=message.partition(), offset=message.offset())
        left = self._producer.flush(DEAD_LETTER_TIMEOUT_SECONDS)
        if left or failures:
            raise AuditSinkError(f"{left + len(failures)} dead letters not confirmed")

    def _rewind(self, messages: list[Message]) -> None:
        """Seek each partition of the batch back to its first record, to read it again."""
        first: dict[int, int] = {}
        for message in messages:
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                first[partition] = min(offset, first.get(partition, offset))
        for partition, offset in first.items():
            try:
                self._consumer.seek(TopicPartition(AUDIT, partition, offset))
            except KafkaException as exc:  # partition revoked meanwhile: its new owner reads it
                log.warning("audit_rewind_failed", partition=partition, error=str(exc)[:200])

    def prune(self) -> int:
        """Delete what is older than the retention; logged and counted; how many rows."""
        cutoff = self._now() - self.retention
        pruned = self.store.prune(cutoff)
        metrics.AUDIT_PRUNED.labels("disclosure").inc(pruned.disclosures)
        metrics.AUDIT_PRUNED.labels("lookup").inc(pruned.lookups)
        log.info("audit_pruned", disclosures=pruned.disclosures, lookups=pruned.lookups,
                 before=cutoff.isoformat(timespec="seconds"),
                 retention_days=self.retention.days)
        return pruned.disclosures + pruned.lookups

    def run(self, stop: threading.Event, prune_every: float,
            monotonic: Callable[[], float] = time.monotonic) -> None:
        """Consume and prune until ``stop`` is set; a failing batch is retried after a pause."""
        self.subscribe()
        next_prune = monotonic()
        while not stop.is_set():
            if monotonic() >= next_prune:
                try:
                    self.prune()
                except Exception as exc:  # noqa: BLE001 - pruning is retried at the next turn
                    log.error("audit_prune_failed", error=type(exc).__name__)
                next_prune = monotonic() + prune_every
            try:
                self.poll_once()
            except (AuditSinkError, KafkaException) as exc:
                log.warning("audit_batch_failed", error=str(exc)[:200])
                stop.wait(1.0)

