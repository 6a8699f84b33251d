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
from advisering.engine.evaluate import audit_record, process, recipient_key
from advisering.engine.limits import DEFAULT_LIMITS, StateLimits
from advisering.engine.matcher import Matcher
from advisering.engine.overview import CitizenState
from advisering.engine.trusted import decode_trusted
from advisering.events import DEFAULT_MAX_DEPTH, Rejection, RejectReason, Vocabulary, decode_event
from advisering.grants import GrantCheck
from advisering.kafka.deadletters import dead_letter
from advisering.log import get_logger
from advisering.settings import Settings

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


def state_limits(settings: Settings) -> StateLimits:
    """The engine's per-citizen limits from the ``ADVISERING_CITIZEN_*`` settings."""
    return StateLimits(
        max_open_cases=settings.citizen_max_open_cases,
        max_seen_events=settings.citizen_max_seen_events,
        max_tombstones=settings.citizen_max_tombstones,
        max_sent_notifications=settings.citizen_max_sent_notifications,
        max_throttle_windows=settings.citizen_max_throttle_windows,
    )


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
    citizen: str, payload: bytes, state: CitizenState | None, matcher: Matcher,
    limits: StateLimits = DEFAULT_LIMITS, *, topic: str = "", partition: int | None = None,
    offset: int | None = None, max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[CitizenState, Outbox]:
    """Run the engine for one citizen's copy of an event; returns the new state and sends.

    A record that is no event (a hostile or broken writer on the repartition
    topic) or that the engine fails on leaves the state as it was and becomes
    a dead letter. An event the citizen's state limits refuse becomes a dead
    letter (``citizen_state_limit``) and the state returned is the one given
    (a new empty one for a citizen without state). ``topic``, ``partition``
    and ``offset`` locate the record in the dead letter.
    """
    unchanged = state if state is not None else CitizenState()
    try:
        return _correlate(citizen, payload, state, matcher, limits, topic=topic,
                          partition=partition, offset=offset, max_depth=max_depth)
    except Exception as exc:  # a bug must not break the batch: keep the event, go on
        return unchanged, _failed("correlate", payload, exc, topic=topic, partition=partition,
                                  offset=offset)


def _correlate(
    citizen: str, payload: bytes, state: CitizenState | None, matcher: Matcher,
    limits: StateLimits, *, topic: str, partition: int | None, offset: int | None,
    max_depth: int,
) -> tuple[CitizenState, Outbox]:
    began = time.perf_counter()
    event = decode_trusted(payload, max_depth)  # intake validated it, unless forged
    if isinstance(event, Rejection):
        metrics.DEAD_LETTERS.labels(event.reason.value).inc()
        return (state if state is not None else CitizenState()), Outbox(dead_letters=[
            dead_letter(event, payload, topic=topic, partition=partition, offset=offset,
                        received=now_iso())])
    outcome = process(state, event, citizen, matcher, now_iso(), limits)
    outbox = Outbox()
    if outcome.limit is not None:
        name, value = outcome.limit
        outbox.dead_letters.append(state_limit_letter(
            payload, citizen, name, value, topic=topic, partition=partition, offset=offset))
    elif outcome.forgotten:
        metrics.CITIZEN_STATE_TRIMMED.inc(outcome.forgotten)
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
        metrics.REPEATS_SKIPPED.inc(outcome.duplicates)
    if outcome.stale:
        metrics.STALE_EVENTS.inc()
    metrics.PROCESSING_SECONDS.observe(time.perf_counter() - began)
    return outcome.state, outbox


# Where in the event the growth came from, for the dead letter's path.
_LIMIT_PATHS = {"max_open_cases": "data.case.id", "max_tombstones": "data.case.id",
                "max_seen_events": "id"}
# A flood for one citizen is thousands of refusals: one log line per citizen and limit
# per interval, with the number refused since (every refusal is a dead letter and counted).
LIMIT_LOG_SECONDS = 60.0
_LIMIT_LOG_KEYS = 1024
_limit_logged: dict[tuple[str, str], tuple[float, int]] = {}


def _refusals_to_log(citizen: str, limit: str) -> int:
    """How many refusals a log line now covers (0: not now, a line was written lately)."""
    now = time.monotonic()
    last, unlogged = _limit_logged.get((citizen, limit), (float("-inf"), 0))
    if now - last < LIMIT_LOG_SECONDS:
        _limit_logged[(citizen, limit)] = (last, unlogged + 1)
        return 0
    if len(_limit_logged) >= _LIMIT_LOG_KEYS:
        _limit_logged.clear()
    _limit_logged[(citizen, limit)] = (now, 0)
    return unlogged + 1


def state_limit_letter(
    payload: bytes | None, citizen: str, limit: str, value: int, *, topic: str,
    partition: int | None, offset: int | None,
) -> tuple[bytes, bytes]:
    """A dead letter for an event refused because the citizen's state would pass ``limit``.

    Counted per limit, and logged with a prefix of the pseudonym (enough to
    find the citizen's other refusals, no more) at most once per citizen and
    limit every ``LIMIT_LOG_SECONDS``, with the number of refusals it covers.
    """
    short = citizen[:12]
    rejection = Rejection(RejectReason.CITIZEN_STATE_LIMIT, _LIMIT_PATHS.get(limit, ""),
                          f"the state of citizen {short}... would pass {limit} ({value})")
    metrics.DEAD_LETTERS.labels(rejection.reason.value).inc()
    metrics.CITIZEN_STATE_LIMITS.labels(limit).inc()
    refused = _refusals_to_log(short, limit)
    if refused:
        log.warning("citizen_state_limit", limit=limit, value=value, citizen=short,
                    refused=refused, topic=topic, partition=partition, offset=offset)
    return dead_letter(rejection, payload, topic=topic, partition=partition, offset=offset,
                       received=now_iso())


def too_large(encoded: dict[bytes, bytes | None], max_bytes: int) -> set[bytes]:
    """The citizens whose encoded new state is larger than ``max_bytes`` (logged).

    Defence in depth behind the engine's limits, which keep a state far below
    the cap: a record the changelog topic refuses would stop the worker, and
    the replay would refuse it again. The worker keeps these citizens' states
    as they were and dead-letters the batch's events of them instead.
    """
    found = {key for key, value in encoded.items()
             if value is not None and len(value) > max_bytes}
    for key in found:
        log.error("citizen_state_too_large", citizen=key[:12].decode(errors="replace"),
                  bytes=len(encoded[key] or b""), max_bytes=max_bytes)
    return found


def state_size_letter(
    payload: bytes | None, citizen: bytes, max_bytes: int, *, topic: str,
    partition: int | None, offset: int | None,
) -> Outbox:
    """What is sent for an event whose citizen's new state was too large: its dead letter."""
    return Outbox(dead_letters=[state_limit_letter(
        payload, citizen.decode(errors="replace"), "max_state_bytes", max_bytes, topic=topic,
        partition=partition, offset=offset)])


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
