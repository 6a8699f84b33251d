"""The Python SDK for source systems: publish case events safely.

    from advisering.edge.client import Publisher
    from advisering.settings import load_settings

    with Publisher(load_settings()) as publisher:
        results = publisher.publish([event_dict, ...])
        for result in results:
            if not result.ok:
                print(result.index, result.reason, result.path, result.message)

CPR numbers given as parties are pseudonymised before anything leaves the
process. The producer is idempotent with ``acks=all``, records are keyed by
case id, and ``publish`` returns only when Kafka has confirmed (or refused)
every record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from advisering import metrics
from advisering.edge.prepare import prepare_event
from advisering.events import CaseEvent, Rejection, Vocabulary, encode_event, too_deep
from advisering.jsondepth import value_too_deep
from advisering.kafka.clients import case_events_producer_config
from advisering.kafka.connection import KafkaConnection
from advisering.kafka.topics import CASE_EVENTS, default_vocabulary
from advisering.log import get_logger
from advisering.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class PublishResult:
    """The fate of one event: accepted by Kafka, or why not."""

    index: int
    event_id: str | None
    ok: bool
    reason: str | None = None
    path: str | None = None
    message: str | None = None


class PublishError(RuntimeError):
    """Kafka did not confirm delivery in time; nothing may be assumed accepted."""


def publisher_config(settings: Settings, delivery_timeout: float,
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The SDK's producer: durable, with ``delivery_timeout`` seconds per record.

    It connects as ``ADVISERING_BOOTSTRAP_SERVERS`` and ``ADVISERING_KAFKA_*`` say
    (a source system's own Kafka user, with ``SASL_SSL``).
    """
    return case_events_producer_config(
        KafkaConnection.from_settings(settings), {"linger.ms": 5, **(extra or {})},
        client_id="advisering-publisher", delivery_timeout=delivery_timeout)


class Publisher:
    """Publishes case events to ``advisering.case-events`` (idempotent, keyed by citizen)."""

    def __init__(
        self, settings: Settings, *, vocabulary: Vocabulary | None = None,
        delivery_timeout: float | None = None, producer_config: dict[str, Any] | None = None,
    ) -> None:
        """``delivery_timeout`` defaults to ``ADVISERING_PUBLISH_DELIVERY_TIMEOUT``."""
        self._key = settings.pseudonym_key_bytes()  # refuses to start without the key
        self.vocabulary = vocabulary or default_vocabulary(settings.topics_dir, settings)
        self.delivery_timeout = (settings.publish_delivery_timeout if delivery_timeout is None
                                 else delivery_timeout)
        self._producer = Producer(publisher_config(settings, self.delivery_timeout,
                                                   producer_config))

    def prepare(self, raw: Any) -> CaseEvent | Rejection:
        """Pseudonymise and validate one event without sending it."""
        if value_too_deep(raw, self.vocabulary.max_depth):  # a dict never was bytes to check
            return too_deep(self.vocabulary.max_depth)
        return prepare_event(raw, self._key, self.vocabulary)

    def publish(self, events: Iterable[Any]) -> list[PublishResult]:
        """Send every valid event and wait until Kafka confirmed each one."""
        results: dict[int, PublishResult] = {}
        pending = 0

        def delivered(index: int, event_id: str) -> Any:
            def callback(error: KafkaError | None, _message: Message) -> None:
                if error is None:
                    results[index] = PublishResult(index, event_id, True)
                    metrics.PUBLISHED_EVENTS.labels("accepted").inc()
                else:
                    results[index] = PublishResult(index, event_id, False, "kafka_error", None,
                                                   error.str())
                    metrics.PUBLISHED_EVENTS.labels("rejected").inc()
            return callback

        for index, raw in enumerate(events):
            prepared = raw if isinstance(raw, CaseEvent) else self.prepare(raw)
            if isinstance(prepared, Rejection):
                event_id = raw.get("id") if isinstance(raw, dict) else None
                results[index] = PublishResult(index, event_id if isinstance(event_id, str)
                                               else None, False, prepared.reason.value,
                                               prepared.path, prepared.message)
                metrics.PUBLISHED_EVENTS.labels("rejected").inc()
                continue
            self._produce(prepared, delivered(index, prepared.id))
            pending += 1
        if pending:
            remaining = self._producer.flush(self.delivery_timeout)
            if remaining:
                raise PublishError(
                    f"Kafka did not confirm {remaining} event(s) within "
                    f"{self.delivery_timeout:.0f}s; resend them (the bus ignores duplicates)."
                )
        return [results[i] for i in sorted(results)]

    def _produce(self, event: CaseEvent, callback: Any) -> None:
        while True:
            try:
                self._producer.produce(CASE_EVENTS, key=event.key.encode(),
                                       value=encode_event(event), on_delivery=callback)
                return
            except BufferError:
                self._producer.poll(0.1)

    def close(self) -> None:
        """Wait (up to the delivery timeout) for Kafka to confirm what is still in flight."""
        self._producer.flush(self.delivery_timeout)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
