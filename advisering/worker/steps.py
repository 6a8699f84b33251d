"""What the worker's agents do with one record, without Faust or Kafka.

Each step takes bytes and returns what to send where, so the agents stay a
few lines long and the behaviour is tested without a broker (bad input as
data: an ok stream and an error stream).

:func:`intake` and :func:`correlate` never raise, whatever the bytes: an
exception would break the agent's whole batch. What cannot be decoded is a
dead letter with its reason; what the engine fails on (a bug) is a dead
letter ``processing_error``, logged by type only.
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
from advisering.engine.trusted import decode_trusted
from advisering.events import DEFAULT_MAX_DEPTH, Rejection, RejectReason, Vocabulary, decode_event
from advisering.grants import GrantCheck
from advisering.log import get_logger

log = get_logger(__name__)

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
    try:
        outbox = Outbox()
        result = decode_event(payload, vocabulary)
        if not isinstance(result, Rejection):
            result = grants.refusal(result) or result
        if isinstance(result, Rejection):
            outbox.dead_letters.append(dead_letter(
                result, payload, topic=topic, partition=partition, offset=offset,
                received=now_iso(),
            ))
            _DEAD_LETTERED.inc()
            metrics.DEAD_LETTERS.labels(result.reason.value).inc()
            return outbox
        _ACCEPTED.inc()
        value = payload if payload is not None else b""
        for citizen in dict.fromkeys(party.citizen for party in result.data.parties):
            outbox.citizen_events.append((citizen.encode(), value))
        return outbox
    except Exception as exc:  # a bug must not break the batch: keep the event, go on
        _DEAD_LETTERED.inc()
        return _failed("intake", payload, exc, topic=topic, partition=partition, offset=offset)


def correlate(
    citizen: str, payload: bytes, state: CitizenState | None, matcher: Matcher, *,
    topic: str = "", partition: int | None = None, offset: int | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[CitizenState, Outbox]:
    """Run the engine for one citizen's copy of an event; returns the new state and sends.

    A record that is no event (a hostile or broken writer on the repartition
    topic) or that the engine fails on leaves the state as it was and becomes
    a dead letter.
    """
    unchanged = state if state is not None else CitizenState()
    try:
        return _correlate(citizen, payload, state, matcher, topic=topic, partition=partition,
                          offset=offset, max_depth=max_depth)
    except Exception as exc:  # a bug must not break the batch: keep the event, go on
        return unchanged, _failed("correlate", payload, exc, topic=topic, partition=partition,
                                  offset=offset)


def _correlate(
    citizen: str, payload: bytes, state: CitizenState | None, matcher: Matcher, *,
    topic: str, partition: int | None, offset: int | None, max_depth: int,
) -> tuple[CitizenState, Outbox]:
    began = time.perf_counter()
    event = decode_trusted(payload, max_depth)  # intake validated it, unless forged
    if isinstance(event, Rejection):
        metrics.DEAD_LETTERS.labels(event.reason.value).inc()
        return (state if state is not None else CitizenState()), Outbox(dead_letters=[
            dead_letter(event, payload, topic=topic, partition=partition, offset=offset,
                        received=now_iso())])
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


def _failed(step: str, payload: bytes | None, error: Exception, *, topic: str,
            partition: int | None, offset: int | None) -> Outbox:
    """The dead letter of an event a step failed on, logged by type only (no event data)."""
    log.error("event_processing_failed", step=step, topic=topic, partition=partition,
              offset=offset, error=type(error).__name__)
    try:
        letter = processing_failure(payload, error, topic=topic, partition=partition,
                                    offset=offset)
    except Exception as again:  # the payload defeats even the dead letter: keep its place
        log.error("dead_letter_failed", step=step, error=type(again).__name__)
        letter = (b"unknown", orjson.dumps({
            "reason": RejectReason.PROCESSING_ERROR.value, "path": "",
            "message": type(error).__name__, "problems": [], "source": "unknown",
            "event_id": None, "topic": topic, "partition": partition, "offset": offset,
            "received": now_iso(), "payload": "", "payload_truncated": True}))
    return Outbox(dead_letters=[letter])
