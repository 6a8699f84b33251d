"""What the worker's agents do with one record, without Faust or Kafka.

Each step takes bytes and returns what to send where, so the agents stay a
few lines long and the behaviour is tested without a broker (bad input as
data: an ok stream and an error stream).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import orjson

from advisering import metrics
from advisering.deadletters import dead_letter
from advisering.engine.evaluate import audit_record, process, recipient_key
from advisering.engine.matcher import Matcher
from advisering.engine.overview import CitizenState
from advisering.engine.trusted import decode_validated
from advisering.events import Rejection, RejectReason, Vocabulary, decode_event
from advisering.grants import GrantCheck

# The label children every event touches, looked up once.
_ACCEPTED = metrics.EVENTS_PROCESSED.labels("accepted")
_DEAD_LETTERED = metrics.EVENTS_PROCESSED.labels("dead_lettered")


@dataclass
class Outbox:
    """Records to send: per topic role, a list of (key, value)."""

    citizen_events: list[tuple[bytes, bytes]] = field(default_factory=list)
    notifications: list[tuple[bytes, bytes]] = field(default_factory=list)
    audit: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[bytes, bytes]] = field(default_factory=list)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def intake(
    payload: bytes | None, vocabulary: Vocabulary, *, grants: GrantCheck, topic: str,
    partition: int | None, offset: int | None,
) -> Outbox:
    """Validate one case event; fan it out per party keyed by pseudonym, or dead-letter it.

    A valid event from a source the sources file does not know, or outside its
    source's grants, is a dead letter too (``unknown_source``, ``not_granted``).
    """
    outbox = Outbox()
    result = decode_event(payload, vocabulary)
    if not isinstance(result, Rejection):
        result = grants.refusal(result) or result
    if isinstance(result, Rejection):
        outbox.dead_letters.append(dead_letter(
            result, payload, topic=topic, partition=partition, offset=offset, received=now_iso(),
        ))
        _DEAD_LETTERED.inc()
        metrics.DEAD_LETTERS.labels(result.reason.value).inc()
        return outbox
    _ACCEPTED.inc()
    value = payload if payload is not None else b""
    for citizen in dict.fromkeys(party.citizen for party in result.data.parties):
        outbox.citizen_events.append((citizen.encode(), value))
    return outbox


def correlate(
    citizen: str, payload: bytes, state: CitizenState | None, matcher: Matcher
) -> tuple[CitizenState, Outbox]:
    """Run the engine for one citizen's copy of an event; returns the new state and sends."""
    began = time.perf_counter()
    event = decode_validated(payload)  # intake validated it
    outcome = process(state, event, citizen, matcher, now_iso())
    outbox = Outbox()
    for notification in outcome.notifications:
        outbox.notifications.append(
            (recipient_key(notification["recipient"]).encode(), orjson.dumps(notification))
        )
        outbox.audit.append((citizen.encode(), orjson.dumps(audit_record(notification))))
        metrics.NOTIFICATIONS_EMITTED.labels(notification["rule"]).inc()
    for rule_id in outcome.matched:
        metrics.RULE_MATCHES.labels(rule_id).inc()
    for rule_id in outcome.throttled:
        metrics.NOTIFICATIONS_THROTTLED.labels(rule_id).inc()
    for rule_id in outcome.suppressed:
        metrics.NOTIFICATIONS_SUPPRESSED.labels(rule_id).inc()
    if outcome.duplicates:
        metrics.DUPLICATES_IGNORED.inc(outcome.duplicates)
    if outcome.stale:
        metrics.STALE_EVENTS.inc()
    metrics.PROCESSING_SECONDS.observe(time.perf_counter() - began)
    return outcome.state, outbox


def processing_failure(
    payload: bytes | None, error: Exception, *, topic: str, partition: int | None,
    offset: int | None,
) -> tuple[bytes, bytes]:
    """A dead letter for an event the engine failed on (a bug): kept, never dropped."""
    rejection = Rejection(RejectReason.PROCESSING_ERROR, "", type(error).__name__)
    metrics.DEAD_LETTERS.labels(rejection.reason.value).inc()
    return dead_letter(rejection, payload, topic=topic, partition=partition, offset=offset,
                       received=now_iso())
